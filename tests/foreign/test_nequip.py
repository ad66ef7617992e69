"""NequIP and Allegro models compiled by ``nequip-compile --mode torchscript`` (nequip's own tool; tiny
random models trained one step by ``nequip-train``, see make_nequip.py), imported by ``mlcalc.foreign``
and checked against nequip's own ASE calculator on a bulk alloy, a triclinic cell narrower than twice the
cutoff, a slab with vacuum, a molecule in a box and a free molecule; then in OpenMM (both forces) and
in a fresh process where nequip, allegro and e3nn cannot be imported. Bad files are refused.

Runs in the "sevennet" stack of ``scripts/test-stacks`` (nequip needs e3nn >= 0.5, and
``nequip-compile --mode torchscript`` refuses torch >= 2.10); skipped where nequip is not installed.
"""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import numpy as np
import openmm
import pytest
import torch
from ase import Atoms
from family_checks import run_without
from foreign_structures import structures
from make_nequip import compiled
from openmm import unit
from openmm_implementations import IMPLEMENTATIONS
from test_openmm import topology_of

import mlcalc
import mlcalc.foreign
from mlcalc.errors import PluginError
from mlcalc.foreign import nequip as nequip_format
from mlcalc.foreign.files import extra_files
from mlcalc.openmm import create_system
from mlcalc.units import EV_PER_KJ_PER_MOL

nequip_ase = pytest.importorskip("nequip.integrations.ase", reason="nequip is not installed")
pytest.importorskip("allegro", reason="nequip-allegro is not installed")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

KJ_PER_NM = unit.kilojoule_per_mole / unit.nanometer
MODELS = {
    "nequip": ("nequip", "float64", False),
    "allegro": ("allegro", "float64", False),
    "allegro per-edge-type": ("allegro", "float64", True),
    "nequip float32": ("nequip", "float32", False),
}
# Largest difference relative to the largest reference value of each property. float64: both sides
# evaluate the same operations on the same edges in another order (measured ≤ 6e-15); float32: the
# same in single precision (measured: energies 9e-8, forces and stress 2e-6).
FLOAT64 = {"energy": 1e-12, "energies": 1e-10, "forces": 1e-10, "stress": 1e-10}
FLOAT32 = {"energy": 1e-6, "energies": 1e-5, "forces": 1e-4, "stress": 1e-4}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """Each model: (nequip's compiled file, the mlcalc file imported from it)."""
    folder = tmp_path_factory.mktemp("nequip")
    files = compiled(folder, list(MODELS.values()))
    out = {}
    for name, spec in MODELS.items():
        imported = folder / f"{name.replace(' ', '-')}.pt"
        metadata = mlcalc.foreign.import_torchscript(files[spec], imported)
        assert metadata.extra["foreign_format"] == "nequip-torchscript" and metadata.dtype == spec[1]
        assert metadata.extra["model"] == ("Allegro" if spec[0] == "allegro" else "NequIP")
        assert metadata.cutoff == 4.0 and list(metadata.species) == [1, 6, 8, 13, 29]
        if spec[2]:  # make_nequip's H-H 2.5, C-H 3.0, C-C 3.5, Cu-H 3.0, Cu-O 3.2 Å; the rest r_max
            cutoffs = np.array(metadata.extra["per_edge_type_cutoff"].split(), float).reshape(5, 5)
            assert cutoffs[0, 0] == 2.5 and cutoffs[1, 0] == 3.0 and cutoffs[4, 2] == 3.2 and cutoffs[3, 3] == 4.0
        out[name] = files[spec], imported
    return out


@pytest.fixture(scope="module", autouse=True)
def nequip_default_dtype():
    """nequip's calculator makes its input tensors in torch's default dtype, which nequip sets to float64
    once per process (at its first model load): float64 for this module, as in a process of nequip's
    own, then restored for the other tests (mlcalc itself works in the file's dtype either way)."""
    dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(dtype)


def reference(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return nequip_ase.NequIPCalculator.from_compiled_model(str(path), chemical_species_to_atom_type_map=True)


def evaluate(atoms: Atoms, calc) -> dict[str, np.ndarray]:
    atoms = atoms.copy()
    atoms.calc = calc
    out = {
        "energy": np.array(atoms.get_potential_energy()),
        "energies": atoms.get_potential_energies(),
        "forces": atoms.get_forces(),
    }
    if atoms.cell.volume > 0:  # the slab's too: both give the virial over the cell's volume
        out["stress"] = atoms.get_stress()
    return out


def differences(found: dict, expected: dict) -> dict[str, float]:
    return {
        key: float(np.abs(found[key] - expected[key]).max() / max(np.abs(expected[key]).max(), 1e-30))
        for key in expected
    }


@pytest.mark.parametrize("model", list(MODELS))
def test_imported_file_equals_nequips_own_calculator(models, model):
    source, imported = models[model]
    theirs = reference(source)
    ours = mlcalc.MLCalculator(str(imported), device="cpu")
    tolerance = FLOAT32 if MODELS[model][1] == "float32" else FLOAT64
    for name, atoms in structures().items():
        measured = differences(evaluate(atoms, ours), evaluate(atoms, theirs))
        for key, value in measured.items():
            assert value <= tolerance[key], f"{name}, {key}: relative difference {value:.3g} > {tolerance[key]:.3g}"


def test_imported_file_runs_where_nequip_allegro_and_e3nn_cannot_be_imported(models, tmp_path):
    _, imported = models["allegro"]
    atoms = structures()["bulk alloy"]
    found = run_without(imported, atoms, ["nequip", "allegro", "e3nn"], tmp_path)
    expected = evaluate(atoms, mlcalc.MLCalculator(str(imported), device="cpu"))
    assert abs(found["energy"] - expected["energy"]) <= 1e-12 * abs(expected["energy"])
    assert np.abs(found["forces"] - expected["forces"]).max() <= 1e-12 * np.abs(expected["forces"]).max()


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_openmm_forces_equal_nequips_calculator(models, implementation):
    """Energy (kJ/mol) and forces (kJ/mol/nm) in OpenMM are nequip's own, converted."""
    source, imported = models["allegro per-edge-type"]
    atoms = structures()["bulk alloy"]
    system = create_system(topology_of(atoms), imported, implementation=implementation, remove_cm_motion=False)
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(atoms.positions / 10)
    state = context.getState(getEnergy=True, getForces=True)
    expected = evaluate(atoms, reference(source))
    energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    assert energy == pytest.approx(float(expected["energy"]) / EV_PER_KJ_PER_MOL, rel=1e-10)
    forces = state.getForces(asNumpy=True).value_in_unit(KJ_PER_NM)
    expected_forces = expected["forces"] / EV_PER_KJ_PER_MOL * 10
    assert np.abs(forces - expected_forces).max() <= 1e-10 * np.abs(expected_forces).max()


def edited(source: Path, target: Path, **changes) -> Path:
    """A copy of the archive ``source`` with its extra files changed (a value of ``None`` removes one)."""
    with zipfile.ZipFile(source) as archive, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as copy:
        prefix = archive.namelist()[0].split("/")[0]
        for item in archive.infolist():
            name = item.filename.split("/extra/", 1)[1] if "/extra/" in item.filename else None
            if name not in changes:
                copy.writestr(item, archive.read(item))
        for name, value in changes.items():
            if value is not None:
                copy.writestr(f"{prefix}/extra/{name}", value)
    return target


def test_bad_files_are_refused(models, tmp_path):
    source, _ = models["nequip"]
    out = tmp_path / "out.pt"
    with pytest.raises(PluginError, match=r"lacks the metadata \['model_dtype'\].*compile it again with nequip"):
        mlcalc.foreign.import_torchscript(edited(source, tmp_path / "a.pth", model_dtype=None), out)
    with pytest.raises(PluginError, match=r"contradicts itself: num_types is '4' but type_names lists 5 types"):
        mlcalc.foreign.import_torchscript(edited(source, tmp_path / "b.pth", num_types="4"), out)
    with pytest.raises(PluginError, match=r"per_edge_type_cutoff must hold 5² cutoffs in \(0, r_max"):
        mlcalc.foreign.import_torchscript(edited(source, tmp_path / "c.pth", per_edge_type_cutoff="3.0 9.0"), out)
    with pytest.raises(PluginError, match=r"model_dtype 'float16'; supported: \['float32', 'float64'\]"):
        mlcalc.foreign.import_torchscript(edited(source, tmp_path / "d.pth", model_dtype="float16"), out)
    with pytest.raises(PluginError, match=r"r_max 'abc', not a positive number"):
        mlcalc.foreign.import_torchscript(edited(source, tmp_path / "e.pth", r_max="abc"), out)
    # what another nequip version would write: a legacy nequip-deploy file, or metadata 0.19 does not write
    with pytest.raises(PluginError, match=r"deployed by nequip 0\.6\.1 \(`nequip-deploy`.*supported: `nequip-compile"):
        mlcalc.foreign.import_torchscript(edited(source, tmp_path / "f.pth", nequip_version="0.6.1"), out)
    with pytest.raises(PluginError, match=r"metadata \['charges_key'\] that nequip >=0\.19,<0\.20 does not write"):
        mlcalc.foreign.import_torchscript(edited(source, tmp_path / "g.pth", charges_key="x"), out)
    with pytest.raises(PluginError, match=r"kernels that need the packages \['openequivariance'\].*without those"):
        mlcalc.foreign.import_torchscript(
            edited(source, tmp_path / "h.pth", nequip_custom_ops_libs="openequivariance"), out
        )
    with pytest.raises(PluginError, match=r"float64 file.*mlcalc does not convert a foreign file to float32"):
        mlcalc.foreign.import_torchscript(source, out, dtype="float32")
    with pytest.raises(PluginError, match=r"is not a SevenNet file.*leave out the kind"):
        mlcalc.foreign.import_torchscript(source, out, "sevennet-lammps")
    assert not out.exists()


def test_type_names_that_are_not_elements(models, tmp_path):
    source, imported = models["nequip"]
    renamed = edited(source, tmp_path / "renamed.pth", type_names="H C O Al Cu_fcc")
    with pytest.raises(PluginError, match=r"include \['Cu_fcc'\], which are not element symbols.*type_map="):
        mlcalc.foreign.import_torchscript(renamed, tmp_path / "out.pt")
    extra = extra_files(renamed)
    metadata = mlcalc.foreign.import_torchscript(
        renamed, tmp_path / "mapped.pt", options={"type_map": {"Cu_fcc": "Cu"}}
    )
    assert list(metadata.species) == [1, 6, 8, 13, 29]
    atoms = structures()["bulk alloy"]
    mapped = evaluate(atoms, mlcalc.MLCalculator(str(tmp_path / "mapped.pt"), device="cpu"))
    unchanged = evaluate(atoms, mlcalc.MLCalculator(str(imported), device="cpu"))  # Cu_fcc is the model's Cu
    assert max(differences(mapped, unchanged).values()) <= 1e-15
    from mlcalc.cli import main  # the same through the command line: --option type_map=TYPE:SYMBOL

    assert (
        main(
            ["export", "--from", "torchscript", "--option", "type_map=Cu_fcc:Cu", str(renamed), str(tmp_path / "c.pt")]
        )
        == 0
    )
    assert mlcalc.read_metadata(tmp_path / "c.pt").species == metadata.species
    with pytest.raises(PluginError, match=r"has no option\(s\) \['typemap'\]; its options: type_map"):
        mlcalc.foreign.import_torchscript(renamed, tmp_path / "x.pt", options={"typemap": "Cu_fcc:Cu"})
    with pytest.raises(PluginError, match="type_map takes TYPE:SYMBOL pairs"):
        mlcalc.foreign.import_torchscript(renamed, tmp_path / "x.pt", options={"type_map": "Cu_fcc=Cu"})
    with pytest.raises(PluginError, match=r"several of the model's types .* are the element\(s\) \['Al'\]"):
        nequip_format.convert(renamed, extra, type_map={"Cu_fcc": "Al"})
    with pytest.raises(PluginError, match=r"type_map names \['Zz'\], which are not among the model's types"):
        nequip_format.convert(renamed, extra, type_map={"Cu_fcc": "Cu", "Zz": "Fe"})
    with pytest.raises(PluginError, match=r"include \['Cu_fcc -> Xx'\], which are not element symbols"):
        nequip_format.convert(renamed, extra, type_map={"Cu_fcc": "Xx"})
