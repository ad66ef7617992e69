"""Committees in one file (contract 1.3): the mean and spread of the members, against the member files
evaluated one by one and NumPy's standard deviation of their outputs; mismatched members are refused."""

from __future__ import annotations

from typing import Dict

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.calculator import PropertyNotImplementedError

import mlcalc
from mlcalc.contract import COMMITTEE_OUTPUTS, RESERVED_OUTPUTS
from mlcalc.errors import ContractError
from mlcalc.models import Committee, LennardJones, Morse
from mlcalc.models.hipnn import HIPNN
from mlcalc.units import EV_PER_KJ_PER_MOL

#: Three Morse pair potentials (epsilon eV, rho0) of one r0 and so one cutoff: the members disagree.
MORSE_MEMBERS = ((0.20, 6.0), (0.22, 5.5), (0.18, 6.5))


def _structures() -> dict[str, Atoms]:
    crystal = bulk("Cu", "fcc", a=2.0, cubic=True).repeat(2)  # periodic, with stress
    crystal.rattle(0.04, seed=1)
    triclinic = Atoms(
        "Cu3",
        positions=[[0, 0, 0], [0.9, 0.4, 0.1], [0.3, 1.1, 0.7]],
        cell=[[1.9, 0, 0], [0.4, 2.0, 0], [0.3, 0.5, 2.1]],
        pbc=True,
    )
    cluster = Atoms("Cu5", positions=np.random.default_rng(2).uniform(0, 2.5, (5, 3)))
    return {"crystal": crystal, "triclinic-small-cell": triclinic, "cluster": cluster}


@pytest.fixture(scope="module")
def morse_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("committee")
    members = [Morse(epsilon=e, rho0=r, r0=1.1) for e, r in MORSE_MEMBERS]
    for k, member in enumerate(members):
        mlcalc.export(member, folder / f"member{k}.pt")
    metadata = mlcalc.export(members, folder / "committee.pt")
    return folder / "committee.pt", [folder / f"member{k}.pt" for k in range(len(members))], metadata


def _evaluate(path, atoms: Atoms) -> dict:
    calc = mlcalc.MLCalculator(path)
    atoms = atoms.copy()
    atoms.calc = calc
    out = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces()}
    if atoms.pbc.any():
        out["stress"] = atoms.get_stress()
    for key in ("energy_uncertainty", "forces_uncertainty", "energy_committee"):
        if key in calc.implemented_properties:
            out[key] = calc.get_property(key, atoms)
    return out


@pytest.mark.parametrize("name", ["crystal", "triclinic-small-cell", "cluster"])
def test_committee_is_the_mean_and_spread_of_its_members(morse_files, name):
    committee_path, member_paths, metadata = morse_files
    atoms = _structures()[name]
    committee = _evaluate(committee_path, atoms)
    members = [_evaluate(path, atoms) for path in member_paths]
    energies = np.array([m["energy"] for m in members])
    forces = np.array([m["forces"] for m in members])  # [M, N, 3]
    scale = np.abs(energies).max()
    assert metadata.committee == 3 and metadata.contract_version == mlcalc.CONTRACT_VERSION
    assert committee["energy"] == pytest.approx(energies.mean(), rel=1e-12, abs=1e-12 * scale)
    np.testing.assert_allclose(committee["forces"], forces.mean(axis=0), rtol=1e-12, atol=1e-12 * np.abs(forces).max())
    if "stress" in committee:
        stresses = np.array([m["stress"] for m in members])
        np.testing.assert_allclose(
            committee["stress"], stresses.mean(axis=0), rtol=1e-12, atol=1e-12 * np.abs(stresses).max()
        )
    np.testing.assert_allclose(committee["energy_committee"], energies, rtol=1e-12, atol=1e-12 * scale)
    assert committee["energy_uncertainty"] == pytest.approx(np.std(energies), rel=1e-10, abs=1e-12 * scale)
    spread = np.sqrt(np.sum(np.var(forces, axis=0), axis=1))  # per atom: sqrt(1/M sum_m |F_m - F|^2)
    np.testing.assert_allclose(committee["forces_uncertainty"], spread, rtol=1e-10, atol=1e-12 * np.abs(forces).max())
    assert committee["energy_uncertainty"] > 1e-4 and spread.max() > 1e-4  # the members do disagree


def test_batches_give_each_structure_its_own_spread(morse_files):
    committee_path, _, _ = morse_files
    structures = list(_structures().values())
    potential = mlcalc.load(committee_path)
    together = potential.evaluate(structures, force_uncertainty=True)
    for atoms, result in zip(structures, together):
        alone = _evaluate(committee_path, atoms)
        assert result["energy_uncertainty"] == pytest.approx(alone["energy_uncertainty"], rel=1e-12)
        np.testing.assert_allclose(result["forces_uncertainty"], alone["forces_uncertainty"], rtol=1e-10, atol=1e-14)


def test_a_hipnn_committee_in_float32_and_float64(tmp_path):
    """A neural-network family (HIP-NN, random weights of different seeds) in both dtypes."""
    members = []
    for seed in range(4):
        torch.manual_seed(seed)
        members.append(HIPNN(n_features=8, n_sensitivities=6, cutoff=4.0))
    atoms = molecule("CH3CH2OH")
    for dtype, rtol in (("float64", 1e-12), ("float32", 2e-5)):
        paths = []
        for k, member in enumerate(members):
            paths.append(tmp_path / f"{dtype}-{k}.pt")
            mlcalc.export(member, paths[-1], dtype=dtype)
        mlcalc.export(members, tmp_path / f"{dtype}.pt", dtype=dtype)
        committee = _evaluate(tmp_path / f"{dtype}.pt", atoms)
        each = [_evaluate(path, atoms) for path in paths]
        energies = np.array([m["energy"] for m in each])
        forces = np.array([m["forces"] for m in each])
        assert committee["energy"] == pytest.approx(energies.mean(), rel=rtol)
        np.testing.assert_allclose(
            committee["forces"], forces.mean(axis=0), rtol=rtol, atol=rtol * np.abs(forces).max()
        )
        assert committee["energy_uncertainty"] == pytest.approx(
            np.std(energies), rel=10 * rtol, abs=rtol * np.abs(energies).max()
        )


def test_a_single_model_reports_no_uncertainty(lj_path):
    atoms = bulk("Ar", "fcc", a=5.26)
    atoms.calc = mlcalc.MLCalculator(lj_path)
    assert mlcalc.load(lj_path).metadata.committee == 0
    assert "energy_uncertainty" not in atoms.calc.implemented_properties
    with pytest.raises(PropertyNotImplementedError):
        atoms.calc.get_property("energy_uncertainty", atoms)


def test_committee_file_runs_in_openmm_unchanged(morse_files):
    """OpenMM sees the committee's mean energy and forces (the ML force ignores the spread)."""
    openmm = pytest.importorskip("openmm")
    from openmm import unit

    from mlcalc.openmm import create_force

    committee_path, _, _ = morse_files
    atoms = _structures()["cluster"]
    system = openmm.System()
    for _ in atoms:
        system.addParticle(63.5)
    system.addForce(create_force(committee_path, list(atoms.numbers), periodic=False, implementation="python"))
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(atoms.positions * 0.1)
    energy = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    expected = _evaluate(committee_path, atoms)["energy"] / EV_PER_KJ_PER_MOL
    assert energy == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize(
    "members, problem",
    [
        ([LennardJones(cutoff=5.0), LennardJones(cutoff=6.0)], r"differ in cutoff \(member 0: 5.0; member 1: 6.0\)"),
        (
            [Morse(species=[1, 6]), Morse(species=[1, 8])],
            r"differ in species \(member 0: \[1, 6\]; member 1: \[1, 8\]\)",
        ),
        ([Morse(), Morse().float()], r"differ in dtype \(member 0: 'float64'; member 1: 'float32'\)"),
        ([LennardJones()], r"at least two members, got 1"),
    ],
    ids=["cutoff", "species", "dtype", "one member"],
)
def test_mismatched_members_are_refused(members, problem):
    with pytest.raises(ContractError, match=problem):
        Committee(members)


def test_members_in_different_units_are_refused(tmp_path):
    first, second = Morse(), Morse()
    second.mlcalc_metadata = {**second.mlcalc_metadata, "energy_unit": "kcal/mol"}
    with pytest.raises(ContractError, match=r"differ in energy_unit \(member 0: 'eV'; member 1: 'kcal/mol'\)"):
        mlcalc.export([first, second], tmp_path / "x.pt")


@pytest.mark.parametrize("key", sorted(COMMITTEE_OUTPUTS))
def test_a_model_may_not_return_the_committee_outputs(tmp_path, key):
    """The file computes these itself; a model returning one would be silently overwritten."""
    assert key in RESERVED_OUTPUTS

    class Returns(torch.nn.Module):
        def __init__(self, key: str):
            super().__init__()
            self.key = key

        def forward(self, inputs: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
            energies = inputs["positions"].sum(1)
            return {"energies": energies, self.key: energies}

    with pytest.raises(ContractError, match=f"the model returned '{key}', a key mlcalc reserves"):
        mlcalc.export(
            Returns(key), tmp_path / "x.pt", cutoff=3.0, species=[1], length_unit="angstrom", energy_unit="eV"
        )


def test_a_committee_output_that_is_not_the_mean_is_refused(tmp_path):
    class Inconsistent(torch.nn.Module):
        def forward(self, inputs: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
            energies = inputs["positions"].sum(1)
            return {"energies": energies, "energies_committee": torch.stack([energies, 2 * energies + 1], 1)}

    with pytest.raises(ContractError, match="not the mean of its 'energies_committee'"):
        mlcalc.export(
            Inconsistent(), tmp_path / "x.pt", cutoff=3.0, species=[1], length_unit="angstrom", energy_unit="eV"
        )


def test_batch_barrier_uncertainty_is_the_spread_of_the_members_barriers(morse_files):
    """``mlcalc batch`` reports a committee's barrier uncertainty as the standard deviation of the members'
    own barriers (highest image against the reference), computed here from the member files."""
    from mlcalc.batch.reliability import reliability

    committee_path, member_paths, _ = morse_files
    base = _structures()["cluster"]
    images = []
    for step in range(4):
        atoms = base.copy()
        atoms.positions[0] += [0.15 * step, 0.0, 0.0]
        atoms.calc = mlcalc.MLCalculator(committee_path)
        atoms.get_potential_energy()
        images.append(atoms)
    top = int(np.argmax([a.get_potential_energy() for a in images]))
    barriers = [_evaluate(path, images[top])["energy"] - _evaluate(path, images[0])["energy"] for path in member_paths]
    result = reliability(mlcalc.load(committee_path), images, reference=0)
    assert result["barrier_uncertainty_eV"] == pytest.approx(np.std(barriers), rel=1e-9)
    assert result["non_hierarchicality_max"] is None


def test_force_uncertainty_of_a_single_model_is_refused(lj_path):
    with pytest.raises(ContractError, match="a single model, not a committee"):
        mlcalc.load(lj_path).evaluate(bulk("Ar", "fcc", a=5.26), force_uncertainty=True)


def test_force_spread_only_when_asked(morse_files):
    """Energies and forces take one backward pass (the mean energy's gradient); the force spread is computed
    only when a caller asks for it, and then the forces are the members' mean to round-off."""
    committee_path, _, _ = morse_files
    potential = mlcalc.load(committee_path)
    atoms = _structures()["crystal"]
    plain = potential.evaluate(atoms)[0]
    spread = potential.evaluate(atoms, force_uncertainty=True)[0]
    assert "forces_uncertainty" not in plain and "energy_uncertainty" in plain
    np.testing.assert_allclose(spread["forces"], plain["forces"], rtol=1e-12, atol=1e-14)
    assert spread["energy_uncertainty"] == plain["energy_uncertainty"]
