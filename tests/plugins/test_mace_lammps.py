"""MACE's LAMMPS export (``mace_create_lammps_model``, mace's own tool), imported by ``mlcalc.foreign``:
equal to mace's own ASE calculator, in OpenMM, and without mace or e3nn installed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from family_checks import assert_openmm_parity, assert_parity, evaluate, run_without
from family_structures import HCNO_STRUCTURES as STRUCTURES
from family_structures import diamond, molecular_box

mace = pytest.importorskip("mace")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::torch.jit.TracerWarning")

from test_mace import FLOAT32, FLOAT64, mace_model, reference_calculator  # noqa: E402

import mlcalc  # noqa: E402
import mlcalc.foreign  # noqa: E402
from mlcalc.errors import PluginError  # noqa: E402


def lammps_export(model: torch.nn.Module, folder: Path, dtype: str, head: str = "Default") -> Path:
    """The model saved as a .model file and exported for LAMMPS by mace's own command."""
    torch.save(model, folder / "my.model")
    tool = Path(sys.executable).with_name("mace_create_lammps_model")
    subprocess.run(
        [str(tool), "my.model", "--dtype", dtype, "--head", head], cwd=folder, check=True, capture_output=True
    )
    return folder / "my.model-lammps.pt"


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """``imported(kind, dtype)``: the model, mace's calculator for it and the imported LAMMPS export."""
    cache = {}

    def build(kind: str, dtype: str = "float64"):
        if (kind, dtype) not in cache:
            folder = tmp_path_factory.mktemp("mace-lammps")
            model = mace_model(kind)
            source = lammps_export(model, folder, dtype)
            metadata = mlcalc.foreign.import_torchscript(source, folder / "imported.pt")
            assert metadata.extra["foreign_format"] == "mace-lammps" and metadata.dtype == dtype
            cache[kind, dtype] = model, reference_calculator(model), folder / "imported.pt"
        return cache[kind, dtype]

    return build


@pytest.mark.parametrize("kind", ["scaleshift", "multihead"])
@pytest.mark.parametrize("name", sorted(STRUCTURES))
def test_imported_lammps_export_equals_mace_calculator(imported, kind, name):
    """Energies, forces and stress (small sheared cells too) to float64 round-off."""
    _, reference, path = imported(kind)
    assert_parity(STRUCTURES[name](), mlcalc.MLCalculator(str(path)), reference, FLOAT64)


def test_float32_export(imported):
    _, reference, path = imported("scaleshift", "float32")
    for name in ("organic cluster", "sheared diamond"):
        assert_parity(STRUCTURES[name](), mlcalc.MLCalculator(str(path)), reference, FLOAT32)


def test_openmm_and_no_mace(imported, tmp_path):
    _, _, path = imported("scaleshift")
    assert_openmm_parity(path, diamond())
    atoms = molecular_box()
    found = run_without(path, atoms, ["mace", "e3nn", "mlcalc_mace"], tmp_path)
    expected = evaluate(atoms, mlcalc.MLCalculator(str(path)))
    assert abs(found["energy"] - expected["energy"]) <= 1e-12 * abs(expected["energy"])
    assert np.abs(found["forces"] - expected["forces"]).max() <= 1e-12 * np.abs(expected["forces"]).max()


def test_mliap_and_mismatched_kinds_are_refused(imported, tmp_path):
    _, _, path = imported("scaleshift")
    source = next(path.parent.glob("*-lammps.pt"))
    with pytest.raises(PluginError, match=r"is not a SevenNet file.*leave out the kind"):
        mlcalc.foreign.import_torchscript(source, tmp_path / "x.pt", "sevennet-lammps")
    with pytest.raises(
        PluginError, match=r"float64 file, as its tool exported it; mlcalc does not convert a foreign file to float32"
    ):
        mlcalc.foreign.import_torchscript(source, tmp_path / "x.pt", dtype="float32")
