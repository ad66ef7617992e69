"""The potential contract: export, metadata, load-time validation, units and dtypes."""

from __future__ import annotations

import json
import zipfile
from typing import Dict

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.lj import LennardJones as AseLennardJones
from ase.units import Bohr, Hartree
from reference_parameters import CUTOFF, EPSILON, SIGMA
from structures import ALL
from torch import Tensor

import mlcalc
from mlcalc.cli import main
from mlcalc.contract import METADATA_FILE
from mlcalc.units import EV_PER_KJ_PER_MOL

SPECIES = dict(cutoff=4.0, species=[1, 8], length_unit="angstrom", energy_unit="eV")


class Harmonic(torch.nn.Module):
    """A minimal user model: k/2 (r - r0)^2 per edge pair, species-dependent k."""

    def __init__(self):
        super().__init__()
        self.k = torch.nn.Parameter(torch.tensor([1.0, 2.0], dtype=torch.float64))

    def forward(self, inputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        r = torch.linalg.norm(inputs["edge_vectors"], dim=1)
        k = self.k[inputs["species"][inputs["edge_index"][0]]]
        pair = 0.5 * k * (r - 1.0) ** 2
        energies = torch.zeros_like(inputs["positions"][:, 0]).index_add(0, inputs["edge_index"][0], 0.5 * pair)
        return {"energies": energies, "charges": torch.zeros_like(energies)}


def test_export_and_load_round_trip(tmp_path):
    path = tmp_path / "h.pt"
    metadata = mlcalc.export(
        Harmonic(), path, **SPECIES, name="harmonic", description="test", references=["doi:x"], extra={"epochs": 3}
    )
    assert mlcalc.read_metadata(path) == metadata
    assert metadata.contract_version == mlcalc.CONTRACT_VERSION
    assert metadata.mlcalc_version == mlcalc.__version__ and metadata.torch_version == torch.__version__
    potential = mlcalc.load(path, device="cpu")
    assert potential.species == (1, 8) and potential.cutoff == 4.0 and potential.dtype == torch.float64
    assert potential.metadata.extra == {"epochs": 3}
    assert not list(tmp_path.glob(".*tmp")), "the atomic write left a temporary file behind"


def test_the_file_works_without_mlcalc(tmp_path):
    """Plain torch.jit.load plus the documented forward: what other codes get."""
    path = tmp_path / "h.pt"
    mlcalc.export(Harmonic(), path, **SPECIES)
    extra = {METADATA_FILE: ""}
    module = torch.jit.load(str(path), _extra_files=extra)
    assert json.loads(extra[METADATA_FILE])["cutoff"] == 4.0
    positions = torch.tensor([[0.0, 0, 0], [1.5, 0, 0], [0, 1.2, 0]], dtype=torch.float64)
    out = module(torch.tensor([8, 1, 1]), positions, torch.zeros(3, 3), torch.zeros(3, dtype=torch.bool))
    expected = 0.5 * 2.0 * 0.5**2 * 0.5 + 0.5 * 1.0 * 0.5**2 * 0.5 + 0.5 * 2.0 * 0.2**2 * 0.5 + 0.5 * 1.0 * 0.2**2 * 0.5
    expected += 2 * 0.5 * 0.5 * 1.0 * (np.hypot(1.5, 1.2) - 1) ** 2
    assert out["energy"].item() == pytest.approx(expected, rel=1e-14)
    assert set(out) == {"energy", "energies", "charges"}


def test_an_already_scripted_model_is_accepted_and_left_alone(tmp_path):
    scripted = torch.jit.script(Harmonic())
    mlcalc.export(scripted, tmp_path / "h.pt", **SPECIES, dtype="float32")
    assert scripted.k.dtype == torch.float64 and scripted.k.is_leaf
    assert mlcalc.load(tmp_path / "h.pt", device="cpu").module.model.k.dtype == torch.float32


def test_lennard_jones_exports_with_no_arguments(tmp_path):
    metadata = mlcalc.export(
        mlcalc.models.LennardJones(sigma=SIGMA, epsilon=EPSILON, cutoff=CUTOFF), tmp_path / "lj.pt"
    )
    assert metadata.name == "lennard-jones" and metadata.cutoff == CUTOFF and len(metadata.species) == 118


def test_info_prints_the_metadata(lj_path, capsys):
    assert main(["info", str(lj_path)]) == 0
    out = capsys.readouterr().out
    for text in (
        "lennard-jones",
        f"contract version  {mlcalc.CONTRACT_VERSION}",
        "cutoff            8.5 angstrom",
        "118 elements (H..Og)",
    ):
        assert text in out
    assert main(["info", "--json", str(lj_path)]) == 0
    assert json.loads(capsys.readouterr().out)["cutoff"] == CUTOFF


def test_info_on_a_bad_file_says_why(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    assert main(["info", str(bad)]) == 1
    assert "not a TorchScript file" in capsys.readouterr().err


# --- models that break the contract -------------------------------------------------------


class WrongSignature(torch.nn.Module):
    def forward(self, positions: Tensor) -> Tensor:
        return positions.sum()


class NotScriptable(torch.nn.Module):
    def forward(self, inputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        return {"energies": torch.tensor(np.zeros(len(inputs["positions"])))}


class Returns(torch.nn.Module):
    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def forward(self, inputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        e = (inputs["positions"] ** 2).sum(1)
        if self.kind == "no energies":
            return {"atomic_energy": e}
        if self.kind == "column":
            return {"energies": e.unsqueeze(1)}
        if self.kind == "reserved":
            return {"energies": e, "forces": inputs["positions"]}
        if self.kind == "nan":
            return {"energies": e * float("nan")}
        return {"energies": e.float()}


@pytest.mark.parametrize(
    "model, message",
    [
        (WrongSignature(), "forward\\(self, inputs: Dict\\[str, Tensor\\]\\) -> Dict\\[str, Tensor\\]"),
        (NotScriptable(), "could not be compiled with TorchScript"),
        (Returns("no energies"), "returned no 'energies'"),
        (Returns("column"), "'energies' of shape \\[2, 1\\]; the contract needs per-atom energies of shape \\[2\\]"),
        (Returns("reserved"), "'forces', a key mlcalc reserves"),
        (Returns("nan"), "non-finite energy"),
        (Returns("float32"), "float32; the file declares float64"),
    ],
)
def test_models_that_break_the_contract_are_refused(tmp_path, model, message):
    with pytest.raises(mlcalc.ContractError, match=message):
        mlcalc.export(model, tmp_path / "x.pt", **SPECIES, dtype="float64")
    assert not (tmp_path / "x.pt").exists()


def test_missing_metadata_arguments_are_named(tmp_path):
    with pytest.raises(mlcalc.ContractError, match="species=..., length_unit=..., energy_unit=..."):
        mlcalc.export(Harmonic(), tmp_path / "x.pt", cutoff=4.0)


@pytest.mark.parametrize(
    "fields, error, message",
    [
        (dict(length_unit="furlong"), mlcalc.UnitError, "unknown length unit 'furlong'"),
        (dict(energy_unit="kcal"), mlcalc.UnitError, "unknown energy unit 'kcal'"),
        (dict(cutoff=-1.0), mlcalc.ContractError, "cutoff must be a positive number"),
        (dict(species=[0]), mlcalc.ContractError, "invalid atomic numbers \\[0\\]"),
        (dict(dtype="float16"), mlcalc.ContractError, "dtype must be"),
    ],
)
def test_bad_metadata_is_refused(tmp_path, fields, error, message):
    with pytest.raises(error, match=message):
        mlcalc.export(Harmonic(), tmp_path / "x.pt", **{**SPECIES, **fields})


# --- files that break the contract ---------------------------------------------------------


def rewrite_metadata(source, target, **changes):
    extra = {METADATA_FILE: ""}
    module = torch.jit.load(str(source), _extra_files=extra)
    record = json.loads(extra[METADATA_FILE])
    record.update(changes)
    torch.jit.save(module, str(target), _extra_files={METADATA_FILE: json.dumps(record)})


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        mlcalc.load(tmp_path / "nothing.pt")


def test_not_torchscript(tmp_path):
    path = tmp_path / "x.pt"
    path.write_bytes(b"\x00" * 100)
    with pytest.raises(mlcalc.ContractError, match="not a TorchScript file"):
        mlcalc.load(path)


def test_zip_that_is_not_torchscript(tmp_path, lj_path):
    path = tmp_path / "x.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"x/extra/{METADATA_FILE}", mlcalc.read_metadata(lj_path).to_json())
    with pytest.raises(mlcalc.ContractError, match="could not be loaded by TorchScript"):
        mlcalc.load(path)


def test_torchscript_without_metadata(tmp_path):
    path = tmp_path / "x.pt"
    torch.jit.save(torch.jit.script(WrongSignature()), str(path))
    with pytest.raises(mlcalc.ContractError, match="no mlcalc metadata.*mlcalc.export"):
        mlcalc.load(path)


EXTENSION_EXPORT = """
import sys
from typing import Dict

import torch
from torch import Tensor

import mlcalc

library = torch.library.Library("mlcalc_test_extension", "DEF")
library.define("halve(Tensor x) -> Tensor")
library.impl("halve", lambda x: 0.5 * x, "CompositeExplicitAutograd")


class Halved(torch.nn.Module):
    def forward(self, inputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        r2 = (inputs["edge_vectors"] ** 2).sum(1)
        pair = torch.ops.mlcalc_test_extension.halve(r2)
        return {"energies": torch.zeros_like(inputs["positions"][:, 0]).index_add(0, inputs["edge_index"][0], pair)}


mlcalc.export(Halved(), sys.argv[1], cutoff=3.0, species=[1, 8], length_unit="angstrom", energy_unit="eV")
"""


def test_file_needing_an_extension_that_is_not_loaded(tmp_path):
    """A sound file whose model calls an operator of a C++ extension (here one registered in the exporting
    process only) is refused with the operator and what to load, not called damaged; once the operator is
    registered, the same file loads and runs."""
    import subprocess
    import sys

    path, script = tmp_path / "extension.pt", tmp_path / "export_extension.py"  # TorchScript reads the source
    script.write_text(EXTENSION_EXPORT)
    subprocess.run([sys.executable, str(script), str(path)], check=True, capture_output=True)
    with pytest.raises(
        mlcalc.ExtensionError,
        match=r"extension\.pt cannot be loaded: it calls "
        r"'mlcalc_test_extension::halve'.*import it .* before loading",
    ) as refused:
        mlcalc.load(path)
    assert "damaged" not in str(refused.value)
    library = torch.library.Library("mlcalc_test_extension", "DEF")
    library.define("halve(Tensor x) -> Tensor")
    library.impl("halve", lambda x: 0.5 * x, "CompositeExplicitAutograd")
    water = Atoms("OH2", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    water.calc = mlcalc.MLCalculator(mlcalc.load(path))
    r2 = [0.96**2, 0.24**2 + 0.93**2, 1.2**2 + 0.93**2]
    assert water.get_potential_energy() == pytest.approx(sum(r2), rel=1e-12)  # each pair twice, halved


def test_known_extensions_name_their_package():
    message = "Unknown type name '__torch__.torch.classes.metatomic.System':\n  File ..."
    advice = mlcalc.torchscript.missing_extension(message)
    assert "'metatomic::System'" in advice and "pip install metatomic-torch" in advice
    assert mlcalc.torchscript.missing_extension("PytorchStreamReader failed reading zip archive") is None


def test_torchscript_with_metadata_but_another_interface(tmp_path, lj_path):
    path = tmp_path / "x.pt"
    metadata = mlcalc.read_metadata(lj_path)
    torch.jit.save(torch.jit.script(WrongSignature()), str(path), _extra_files={METADATA_FILE: metadata.to_json()})
    with pytest.raises(mlcalc.ContractError, match="forward\\(\\) is .* the contract needs"):
        mlcalc.load(path)


@pytest.mark.parametrize(
    "changes, error, message",
    [
        (dict(contract_version="2.0"), mlcalc.ContractError, "contract version 2.0 is not supported.*upgrade mlcalc"),
        (dict(contract_version="1.7"), mlcalc.ContractError, "contract version 1.7 is not supported"),
        (dict(contract_version="one"), mlcalc.ContractError, "not of the form MAJOR.MINOR"),
        (dict(energy_unit="erg"), mlcalc.UnitError, "unknown energy unit 'erg'"),
        (dict(cutoff=9.0), mlcalc.ContractError, "cutoff 8.5 disagrees with its metadata 9.0"),
        (dict(species=[18]), mlcalc.ContractError, "species disagree"),
        (dict(colour="blue"), mlcalc.ContractError, "unknown fields \\['colour'\\]"),
    ],
)
def test_files_with_bad_metadata_are_refused(tmp_path, lj_path, changes, error, message):
    path = tmp_path / "x.pt"
    rewrite_metadata(lj_path, path, **changes)
    with pytest.raises(error, match=message):
        mlcalc.load(path)


def test_metadata_without_required_fields(tmp_path, lj_path):
    path = tmp_path / "x.pt"
    extra = {METADATA_FILE: ""}
    module = torch.jit.load(str(lj_path), _extra_files=extra)
    record = json.loads(extra[METADATA_FILE])
    del record["cutoff"]
    torch.jit.save(module, str(path), _extra_files={METADATA_FILE: json.dumps(record)})
    with pytest.raises(mlcalc.ContractError, match="lacks \\['cutoff'\\]"):
        mlcalc.load(path)


# --- units and dtypes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "length_unit, angstrom, energy_unit, ev",
    [("nm", 10.0, "kJ/mol", EV_PER_KJ_PER_MOL), ("bohr", Bohr, "hartree", Hartree), ("angstrom", 1.0, "meV", 1e-3)],
)
def test_declared_units_are_converted_to_ev_and_angstrom(tmp_path, length_unit, angstrom, energy_unit, ev):
    """LJ argon written in other units gives ASE's eV/Å numbers after conversion."""
    model = mlcalc.models.LennardJones(sigma=SIGMA / angstrom, epsilon=EPSILON / ev, cutoff=CUTOFF / angstrom)
    path = tmp_path / "lj.pt"
    mlcalc.export(model, path, length_unit=length_unit, energy_unit=energy_unit)
    atoms = ALL["small_fcc"]()
    reference = atoms.copy()
    reference.calc = AseLennardJones(sigma=SIGMA, epsilon=EPSILON, rc=CUTOFF)
    atoms.calc = mlcalc.MLCalculator(path, device="cpu")
    assert atoms.get_potential_energy() == pytest.approx(reference.get_potential_energy(), rel=1e-12)
    np.testing.assert_allclose(atoms.get_forces(), reference.get_forces(), rtol=0, atol=1e-12 * EPSILON / SIGMA)
    np.testing.assert_allclose(atoms.get_stress(), reference.get_stress(), rtol=0, atol=1e-12 * EPSILON / SIGMA**3)


def test_float32(lj_path, lj):
    atoms = ALL["skewed_box"]()
    single = mlcalc.load(lj_path, device="cpu", dtype="float32")
    assert single.dtype == torch.float32
    assert all(b.dtype == torch.float32 for b in single.module.buffers() if b.is_floating_point())
    r32, r64 = single.evaluate(atoms)[0], lj.evaluate(atoms)[0]
    # float32 carries ~7 digits; sums over ~10^4 pair terms lose one or two.
    assert r32["energy"] == pytest.approx(r64["energy"], rel=1e-5)
    np.testing.assert_allclose(r32["forces"], r64["forces"], atol=1e-5 * np.abs(r64["forces"]).max())
    np.testing.assert_allclose(r32["stress"], r64["stress"], atol=1e-5 * np.abs(r64["stress"]).max())


def test_export_in_float32(tmp_path):
    path = tmp_path / "lj32.pt"
    metadata = mlcalc.export(
        mlcalc.models.LennardJones(sigma=SIGMA, epsilon=EPSILON, cutoff=CUTOFF), path, dtype="float32"
    )
    assert metadata.dtype == "float32"
    assert mlcalc.load(path, device="cpu").dtype == torch.float32
    assert mlcalc.load(path, device="cpu", dtype=torch.float64).dtype == torch.float64


def test_bad_dtype_and_device(lj_path):
    with pytest.raises(ValueError, match="dtype must be 'float32' or 'float64'"):
        mlcalc.load(lj_path, dtype="float16")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA GPU.*device='cpu'"):
            mlcalc.load(lj_path, device="cuda")


def test_a_cutoff_below_the_models_own_is_refused(tmp_path):
    """LJ declaring 3 Å exported with cutoff=2: a pair at 2.5 Å would silently drop out of the energy."""
    model = mlcalc.models.LennardJones(sigma=2.0, epsilon=0.01, cutoff=3.0)
    with pytest.raises(mlcalc.ContractError, match=r"cutoff=2 is below the 3 the model declares"):
        mlcalc.export(model, tmp_path / "lj.pt", cutoff=2.0)
    assert not (tmp_path / "lj.pt").exists()
    mlcalc.export(model, tmp_path / "lj.pt")  # its own cutoff
    pair = Atoms("Ar2", positions=[[0, 0, 0], [2.5, 0, 0]])
    pair.calc = mlcalc.MLCalculator(tmp_path / "lj.pt")
    assert pair.get_potential_energy() < 0


def test_authors_and_license_are_recorded_and_older_files_still_load(tmp_path, lj_path, capsys):
    """Contract 1.2 adds ``authors`` and ``license``; a 1.1 file (without them) loads as before."""
    path = tmp_path / "credited.pt"
    model = mlcalc.models.LennardJones(sigma=SIGMA, epsilon=EPSILON, cutoff=CUTOFF)
    metadata = mlcalc.export(model, path, authors=["A. Person", "B. Person"], license="MIT")
    assert metadata.authors == ("A. Person", "B. Person") and metadata.license == "MIT"
    assert mlcalc.load(path).metadata.authors == ("A. Person", "B. Person")
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "authors           A. Person, B. Person" in out and "license           MIT" in out
    older = tmp_path / "older.pt"
    extra = {METADATA_FILE: ""}
    module = torch.jit.load(str(lj_path), _extra_files=extra)
    record = json.loads(extra[METADATA_FILE])
    del record["authors"], record["license"]
    record["contract_version"] = "1.1"
    torch.jit.save(module, str(older), _extra_files={METADATA_FILE: json.dumps(record)})
    assert mlcalc.load(older).metadata.authors == () and mlcalc.load(older).metadata.license == ""
    with pytest.raises(mlcalc.ContractError, match=r"authors must be a list of names.*authors=\['A. Person'\]"):
        mlcalc.export(model, tmp_path / "x.pt", authors="A. Person")


class _RecordInputs(torch.nn.Module):
    """Eager-only model that records the keys and dtypes of the input dictionary it receives."""

    def __init__(self):
        super().__init__()
        self.seen: dict = {}

    def forward(self, inputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        self.seen = {key: value.dtype for key, value in inputs.items()}
        return {"energies": inputs["positions"].sum(1)}


def test_model_inputs_are_the_contracts():
    """``PotentialModule`` writes its input dictionary's keys literally (TorchScript): they must be
    ``contract.MODEL_INPUTS``, the list the docs and the export errors quote."""
    from mlcalc.contract import MODEL_INPUTS
    from mlcalc.module import PotentialModule

    model = _RecordInputs()
    module = PotentialModule(model, cutoff=3.0, species=[1, 8])
    positions = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.96], [0.93, 0.0, -0.24]], dtype=torch.float64)
    module.compute(
        torch.tensor([8, 1, 1]), positions, torch.zeros(3, 3, dtype=torch.float64), torch.zeros(3, dtype=torch.bool)
    )
    assert list(model.seen) == list(MODEL_INPUTS)
    integers = {"atomic_numbers", "species", "batch", "edge_index", "edge_shifts"}
    assert {key for key, dtype in model.seen.items() if dtype == torch.int64} == integers
    assert model.seen["pbc"] == torch.bool
