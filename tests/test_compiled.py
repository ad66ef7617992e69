"""The compiled route (contract 1.4, mlcalc.compiled): a file's exported program through torch.compile gives
the numbers of its TorchScript module, in every engine that runs in Python, and refuses what it cannot do."""

from __future__ import annotations

import json
import pickle
import zipfile

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, molecule

import mlcalc
from mlcalc.compiled import CompiledModule
from mlcalc.contract import METADATA_FILE, PROGRAM_FILE
from mlcalc.errors import CompileError, ContractError
from mlcalc.models import Morse
from mlcalc.models.hipnn import HIPNN

#: float64 round-off of the same sums in another order (fused kernels).
RTOL = 1e-11


def _rewrite(source, target, program=lambda data: data, metadata=lambda record: record) -> None:
    """``source`` saved as ``target`` with its program bytes and metadata record changed (program None:
    left out)."""
    extra = {METADATA_FILE: "", PROGRAM_FILE: ""}
    module = torch.jit.load(str(source), _extra_files=extra)
    files = {METADATA_FILE: json.dumps(metadata(json.loads(extra[METADATA_FILE])))}
    changed = program(extra[PROGRAM_FILE])
    if changed is not None:
        files[PROGRAM_FILE] = changed
    torch.jit.save(module, str(target), _extra_files=files)


def _structures() -> dict[str, Atoms]:
    water = molecule("H2O")
    water.center(vacuum=4.0)
    isolated = Atoms("CH3O", positions=[[0, 0, 0], [1.09, 0, 0], [-0.4, 1.0, 0], [-0.4, -0.5, 0.9], [30, 0, 0]])
    crystal = bulk("C", "diamond", a=3.57, cubic=True)
    crystal.rattle(0.05, seed=3)
    small_triclinic = Atoms(
        "CO", positions=[[0, 0, 0], [1.1, 0.2, 0.1]], cell=[[2.4, 0, 0], [0.7, 2.3, 0], [0.4, 0.5, 2.2]], pbc=True
    )
    lone = Atoms("O", positions=[[0, 0, 0]])  # no edges at all
    return {
        "molecule": molecule("CH3CH2OH"),
        "isolated atom": isolated,
        "water in a box": water,
        "crystal": crystal,
        "triclinic cell smaller than the cutoff": small_triclinic,
        "one atom": lone,
    }


def _small_hipnn(seed: int) -> HIPNN:
    torch.manual_seed(seed)
    return HIPNN(n_features=8, n_interactions=2, n_onsite=1, n_sensitivities=6, cutoff=4.0)


@pytest.fixture(scope="module")
def hipnn_file(tmp_path_factory):
    """A committee of two small HIP-NNs (random weights) exported with its program, and its potentials both
    ways (one compilation serves every test: a committee runs the single-model path and adds its spreads)."""
    path = tmp_path_factory.mktemp("compiled") / "hipnn.pt"
    metadata = mlcalc.export([_small_hipnn(0), _small_hipnn(1)], path, compilable=True)
    return path, metadata, mlcalc.load(path, device="cpu"), mlcalc.load(path, device="cpu", compile=True)


def _assert_close(found: dict, expected: dict, keys=("energy", "energies", "forces", "stress")) -> None:
    for key in keys:
        if key in expected:
            scale = max(np.abs(expected[key]).max(), 1e-300)
            assert np.abs(np.asarray(found[key]) - expected[key]).max() <= RTOL * scale, key


def test_the_file_records_its_program(hipnn_file):
    path, metadata, _, compiled = hipnn_file
    assert metadata.contract_version == "1.4"
    assert set(metadata.program) == {"torch_version", "sha256", "bytes"}
    assert metadata.program["torch_version"] == torch.__version__
    assert mlcalc.read_metadata(path).program == metadata.program
    assert isinstance(compiled.module, CompiledModule) and np.isfinite(compiled.module.compile_seconds)
    assert compiled.compiled and "compiled" in repr(compiled)
    assert compiled.fingerprint() == {**mlcalc.load(path, device="cpu").fingerprint(), "compiled": True}


@pytest.mark.parametrize("name", list(_structures()))
def test_compiled_equals_torchscript(hipnn_file, name):
    _, _, scripted, compiled = hipnn_file
    atoms = _structures()[name]
    _assert_close(compiled.evaluate(atoms)[0], scripted.evaluate(atoms)[0])


def test_batches_verlet_lists_and_energy_only_calls(hipnn_file):
    _, _, scripted, compiled = hipnn_file
    images = list(_structures().values())
    for found, expected in zip(compiled.evaluate(images), scripted.evaluate(images)):
        _assert_close(found, expected)
    atoms = molecule("CH3CH2OH")
    calculators = [mlcalc.MLCalculator(p, skin=1.0) for p in (scripted, compiled)]
    rng = np.random.default_rng(0)
    for _ in range(4):
        atoms.positions += rng.normal(0, 0.05, atoms.positions.shape)
        for calc in calculators:
            calc.calculate(atoms, ["energy", "forces"])
        _assert_close(calculators[1].results, calculators[0].results)
    assert calculators[1].neighbor_reuses == calculators[0].neighbor_reuses > 0
    energy_only = compiled.evaluate(atoms, forces=False, stress=False)[0]
    assert energy_only["energy"] == pytest.approx(scripted.evaluate(atoms)[0]["energy"], rel=RTOL)


def test_calculator_takes_compile(hipnn_file):
    path, _, scripted, compiled = hipnn_file
    calc = mlcalc.MLCalculator(compiled)
    assert calc.parameters["compiled"] is True
    atoms = bulk("C", "diamond", a=3.6)
    atoms.calc = calc
    expected = scripted.evaluate(atoms)[0]
    assert atoms.get_potential_energy() == pytest.approx(expected["energy"], rel=RTOL)
    np.testing.assert_allclose(
        atoms.get_stress(), expected["stress"], rtol=0, atol=RTOL * np.abs(expected["stress"]).max()
    )
    with pytest.raises(ValueError, match="loaded without it"):
        mlcalc.MLCalculator(scripted, compile=True)


def test_committee_spreads_compiled(hipnn_file):
    _, metadata, scripted, compiled = hipnn_file
    assert metadata.committee == 2
    crystal = bulk("C", "diamond", a=3.57, cubic=True)
    crystal.rattle(0.04, seed=1)
    found = compiled.evaluate(crystal, force_uncertainty=True)[0]
    expected = scripted.evaluate(crystal, force_uncertainty=True)[0]
    _assert_close(found, expected, ("energy", "forces", "stress", "energy_committee", "forces_uncertainty"))
    assert found["energy_uncertainty"] == pytest.approx(expected["energy_uncertainty"], rel=RTOL)


def test_python_force_runs_and_pickles_the_compiled_route(hipnn_file):
    openmm = pytest.importorskip("openmm")
    from openmm import unit

    import mlcalc.openmm
    from mlcalc.openmm.pythonforce import PotentialComputation
    from mlcalc.openmm.region import ml_region

    if not hasattr(openmm, "PythonForce"):
        pytest.skip("openmm.PythonForce needs OpenMM >= 8.5")
    _, _, scripted, compiled = hipnn_file
    atoms = molecule("CH3CH2OH")
    force = mlcalc.openmm.create_force(compiled, atoms.numbers.tolist(), periodic=False)
    assert mlcalc.openmm.implementation_of(force) == "python"
    system = openmm.System()
    for mass in atoms.get_masses():
        system.addParticle(mass)
    system.addForce(force)
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(atoms.positions * 0.1)
    energy = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    expected = scripted.evaluate(atoms)[0]["energy"] / mlcalc.units.EV_PER_KJ_PER_MOL
    assert energy == pytest.approx(expected, rel=RTOL)
    with pytest.raises(ValueError, match="TorchForce .* cannot use a compiled potential"):
        mlcalc.openmm.create_force(compiled, atoms.numbers.tolist(), periodic=False, implementation="torch")
    region = ml_region(compiled, atoms.numbers.tolist(), None, False, None)
    copied = pickle.loads(pickle.dumps(PotentialComputation(region, torch.device("cpu"))))
    assert isinstance(copied.module, CompiledModule)


# --- what it refuses -------------------------------------------------------------------------------


def test_a_file_without_program_says_how_to_get_one(tmp_path):
    path = tmp_path / "plain.pt"
    mlcalc.export(Morse(species=[29]), path)
    assert mlcalc.read_metadata(path).program == {}
    with pytest.raises(CompileError, match=r"no exported program .* compilable=True"):
        mlcalc.load(path, device="cpu", compile=True)
    with pytest.raises(CompileError, match="no exported program"):
        mlcalc.MLCalculator(path, compile=True)


def test_another_dtype_is_refused(hipnn_file):
    path, _, _, compiled = hipnn_file
    with pytest.raises(CompileError, match="float64; it compiles in that dtype only"):
        mlcalc.load(path, device="cpu", dtype="float32", compile=True)
    with pytest.raises(CompileError, match="float64; it compiles in that dtype only"):
        compiled.to(dtype="float32")


def test_a_scripted_model_cannot_be_made_compilable(tmp_path):
    scripted = torch.jit.script(Morse(species=[29]))
    with pytest.raises(ContractError, match="scripted model cannot be exported with torch.export"):
        mlcalc.export(
            scripted, tmp_path / "x.pt", cutoff=2.7, species=[29], length_unit="Å", energy_unit="eV", compilable=True
        )
    assert not (tmp_path / "x.pt").exists()


class _DataDependent(torch.nn.Module):
    """A model whose size depends on data without telling torch.export (int() of a tensor)."""

    def __init__(self):
        super().__init__()
        self.mlcalc_metadata = {"cutoff": 3.0, "species": [1], "length_unit": "angstrom", "energy_unit": "eV"}

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        width = int(torch.bincount(inputs["edge_index"][0]).max()) if inputs["edge_index"].shape[1] > 0 else 0
        r = torch.linalg.norm(inputs["edge_vectors"], dim=-1)
        pad = torch.zeros(width, dtype=r.dtype)
        energies = torch.zeros_like(inputs["positions"][:, 0]).index_add(0, inputs["edge_index"][0], torch.exp(-r))
        return {"energies": energies + pad.sum()}


def test_a_model_that_does_not_export_is_refused_naming_torch_export(tmp_path):
    model = _DataDependent()
    mlcalc.export(model, tmp_path / "plain.pt")  # TorchScript takes it
    with pytest.raises(ContractError, match=r"could not be exported with torch.export .* without compilable=True"):
        mlcalc.export(model, tmp_path / "x.pt", compilable=True)


def test_a_tampered_program_is_refused(hipnn_file, tmp_path):
    path = hipnn_file[0]
    damaged = tmp_path / "damaged.pt"
    _rewrite(path, damaged, program=lambda data: data[:-10] + b"0" * 10)
    with pytest.raises(ContractError, match="does not match the SHA-256 .* damaged"):
        mlcalc.load(damaged, device="cpu", compile=True)
    missing = tmp_path / "missing.pt"
    _rewrite(path, missing, program=lambda data: None)
    with pytest.raises(ContractError, match="records an exported program but the file holds none"):
        mlcalc.load(missing, device="cpu", compile=True)
    assert mlcalc.load(missing, device="cpu").evaluate(molecule("H2O"))  # TorchScript still runs it


def test_a_program_of_other_weights_is_refused(hipnn_file, tmp_path):
    path = hipnn_file[0]
    other = tmp_path / "other.pt"
    mlcalc.export([_small_hipnn(2), _small_hipnn(3)], other, compilable=True)
    with zipfile.ZipFile(other) as archive:
        program = archive.read(next(n for n in archive.namelist() if n.endswith(PROGRAM_FILE)))
    mixed = tmp_path / "mixed.pt"
    record = mlcalc.read_metadata(other).program
    _rewrite(path, mixed, program=lambda _: program, metadata=lambda r: {**r, "program": record})
    with pytest.raises(ContractError, match="does not hold the weights of its TorchScript model"):
        mlcalc.load(mixed, device="cpu", compile=True)


def test_a_malformed_program_record_is_refused():
    from mlcalc.contract import Metadata

    with pytest.raises(ContractError, match="program must be empty or record torch_version, sha256 and bytes"):
        Metadata("x", 3.0, (1,), "angstrom", "eV", program={"sha256": "0"})


def test_the_command_line_exports_compilable_files_and_refuses_it_for_foreign_files(tmp_path, capsys):
    from mlcalc.cli import main

    foreign = tmp_path / "foreign.pt"
    torch.jit.save(torch.jit.script(torch.nn.Identity()), str(foreign))
    assert main(["export", "--from", "torchscript", "--compilable", str(foreign), str(tmp_path / "o.pt")]) != 0
    assert "a foreign TorchScript file has no Python model" in capsys.readouterr().err
