"""mlcalc select: frames picked by a committee's spread, against the members' energies computed with ASE's own
Morse calculator, NumPy's standard deviation and the selection rule written out by hand."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.morse import MorsePotential
from ase.io import read, write

import mlcalc
from mlcalc.cli import main
from mlcalc.errors import ContractError
from mlcalc.models import Morse
from mlcalc.uncertainty import SelectionError, select
from mlcalc.uncertainty.select import distance_descriptor

#: Three Morse pair potentials (epsilon eV, rho0) of one r0: the members disagree.
MEMBERS = ((0.20, 6.0), (0.22, 5.5), (0.18, 6.5))
R0 = 1.1


@pytest.fixture(scope="module")
def committee(tmp_path_factory):
    path = tmp_path_factory.mktemp("select") / "committee.pt"
    mlcalc.export([Morse(epsilon=e, rho0=r, r0=R0) for e, r in MEMBERS], path)
    return path


def _cluster(n: int, seed: int, count: int) -> list[Atoms]:
    """``count`` frames of an n-atom Cu cluster, each rattled by a different amount."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0, 2.5, (n, 3))
    frames = [Atoms(f"Cu{n}", positions=base + rng.normal(0, 0.02 + 0.08 * rng.random(), (n, 3))) for _ in range(count)]
    for atoms in frames:  # as extxyz stores them (8 decimals), so that references see the same positions
        atoms.positions = np.round(atoms.positions, 8)
    return frames


def _members(atoms: Atoms) -> tuple[np.ndarray, np.ndarray]:
    """Energies [M] (eV) and forces [M, N, 3] of each member, by ASE's MorsePotential."""
    energies, forces = [], []
    for epsilon, rho0 in MEMBERS:
        copy = atoms.copy()
        copy.calc = MorsePotential(epsilon=epsilon, rho0=rho0, r0=R0)
        energies.append(copy.get_potential_energy())
        forces.append(copy.get_forces())
    return np.array(energies), np.array(forces)


def _by_hand(scores: np.ndarray, above: np.ndarray, separation: int, top=None) -> list[int]:
    """Most uncertain first; skip frames closer than ``separation`` to one already taken."""
    chosen: list[int] = []
    for k in np.argsort(-scores, kind="stable"):
        if above[k] and all(abs(k - c) >= separation for c in chosen) and (top is None or len(chosen) < top):
            chosen.append(int(k))
    return chosen


def test_threshold_and_separation_against_numpy(committee, tmp_path):
    frames = _cluster(5, 1, 24)
    write(tmp_path / "traj.extxyz", frames)
    sigma = np.array([np.std(_members(a)[0]) for a in frames])  # ddof 0, as the committee
    threshold = float(np.median(sigma))
    expected = _by_hand(sigma, sigma > threshold, separation=3)
    assert 2 < len(expected) < 12
    out = tmp_path / "picked.extxyz"
    picked = select(tmp_path / "traj.extxyz", out, potential=committee, threshold=threshold, min_separation=3)
    assert [a.info["frame"] for a in picked] == expected
    np.testing.assert_allclose([a.info["energy_uncertainty"] for a in picked], sigma[expected], rtol=1e-10)
    written = read(out, ":")
    assert [a.info["frame"] for a in written] == expected
    assert [a.info["selection_rank"] for a in written] == list(range(len(expected)))
    for atoms in written:
        assert atoms.info["source"] == str(tmp_path / "traj.extxyz")
        assert atoms.calc is None  # no model energies or forces that could pass for labels
        np.testing.assert_allclose(atoms.positions, frames[atoms.info["frame"]].positions, atol=1e-12)


def test_top_k_per_atom_over_files_of_different_sizes(committee, tmp_path):
    small, large = _cluster(4, 2, 6), _cluster(7, 3, 6)
    write(tmp_path / "small.extxyz", small)
    write(tmp_path / "large.extxyz", large)
    frames = small + large
    per_atom = np.array([np.std(_members(a)[0]) / len(a) for a in frames])
    expected = [int(k) for k in np.argsort(-per_atom, kind="stable")[:4]]
    picked = select([tmp_path / "small.extxyz", tmp_path / "large.extxyz"], potential=committee, top=4, per_atom=True)
    got = [a.info["frame"] + (6 if a.info["source"].endswith("large.extxyz") else 0) for a in picked]
    assert got == expected
    np.testing.assert_allclose([a.info["energy_uncertainty_per_atom"] for a in picked], per_atom[expected], rtol=1e-10)


def test_force_threshold_against_numpy(committee, tmp_path):
    frames = _cluster(5, 4, 10)
    write(tmp_path / "traj.extxyz", frames)
    largest = []
    for atoms in frames:
        _, forces = _members(atoms)
        largest.append(np.sqrt(((forces - forces.mean(axis=0)) ** 2).sum(axis=2).mean(axis=0)).max())
    largest = np.array(largest)
    threshold = float(np.percentile(largest, 60))
    picked = select(tmp_path / "traj.extxyz", potential=committee, force_threshold=threshold)
    assert [a.info["frame"] for a in picked] == _by_hand(largest, largest > threshold, separation=1)
    np.testing.assert_allclose(
        [a.info["forces_uncertainty_max"] for a in picked], np.sort(largest)[::-1][: len(picked)]
    )


def test_recorded_uncertainty_and_descriptor_duplicates(tmp_path):
    """Without a potential: the spread scan/path/neb record in info. Near duplicates (a rotated, renumbered copy)
    are skipped by min_distance; the descriptor is the sorted pair distances."""
    rng = np.random.default_rng(5)
    base = Atoms("CuAgCuAg", positions=rng.uniform(0, 2, (4, 3)))
    twin = base.copy()
    twin.rotate(40, "z")
    twin = twin[[2, 3, 0, 1]]  # same elements, other order
    other = Atoms("CuAgCuAg", positions=rng.uniform(0, 3, (4, 3)))
    images = [base, twin, other]
    for atoms, spread in zip(images, (0.3, 0.2, 0.1)):
        atoms.info["energy_uncertainty"] = spread
    write(tmp_path / "scan.extxyz", images)

    key, vector = distance_descriptor(base)
    by_hand = []
    for pair in ((29, 29), (29, 47), (47, 47)):
        d = [
            base.get_distance(i, j)
            for i in range(4)
            for j in range(i + 1, 4)
            if sorted(base.numbers[[i, j]]) == list(pair)
        ]
        by_hand.extend(sorted(d))
    np.testing.assert_allclose(vector, by_hand, rtol=1e-12)
    np.testing.assert_allclose(distance_descriptor(twin)[1], vector, atol=1e-12)

    assert [a.info["frame"] for a in select(tmp_path / "scan.extxyz", top=3)] == [0, 1, 2]
    assert [a.info["frame"] for a in select(tmp_path / "scan.extxyz", top=3, min_distance=0.05)] == [0, 2]
    assert [a.info["frame"] for a in select(tmp_path / "scan.extxyz", threshold=0.15)] == [0, 1]


def test_refusals(committee, lj_path, tmp_path):
    write(tmp_path / "bare.extxyz", _cluster(3, 6, 2))
    (tmp_path / "empty.extxyz").write_text("")
    with pytest.raises(SelectionError, match="no input files"):
        select([], top=1)
    with pytest.raises(SelectionError, match="empty.extxyz is empty"):
        select(tmp_path / "empty.extxyz", top=1)
    with pytest.raises(SelectionError, match="top .* 1 or more"):
        select(tmp_path / "bare.extxyz", potential=committee, top=0)
    with pytest.raises(SelectionError, match="give a threshold"):
        select(tmp_path / "bare.extxyz", potential=committee)
    with pytest.raises(SelectionError, match="threshold must be a finite number above 0"):
        select(tmp_path / "bare.extxyz", potential=committee, threshold=float("nan"))
    with pytest.raises(SelectionError, match="records no energy_uncertainty: give a committee potential"):
        select(tmp_path / "bare.extxyz", top=1)
    with pytest.raises(ContractError, match="single model"):
        select(tmp_path / "bare.extxyz", potential=lj_path, top=1)


def test_command_line(committee, tmp_path, capsys):
    write(tmp_path / "traj.extxyz", _cluster(5, 7, 8))
    out = tmp_path / "sel.extxyz"
    assert (
        main(["select", str(tmp_path / "traj.extxyz"), "--potential", str(committee), "--top", "2", "-o", str(out)])
        == 0
    )
    assert "2 frames" in capsys.readouterr().out
    assert len(read(out, ":")) == 2
    assert main(["select", str(tmp_path / "traj.extxyz"), "--top", "2", "-o", str(out)]) == 1
    error = capsys.readouterr().err
    assert "records no energy_uncertainty" in error and "Traceback" not in error
    with pytest.raises(SystemExit) as exit_:
        main(["select", str(tmp_path / "traj.extxyz"), "--top", "0"])
    assert exit_.value.code == 2


def test_trajectory_of_mlcalc_md(tmp_path):
    """A DCD with start.pdb beside it (mlcalc md's layout), scored by a committee of Lennard-Jones argons."""
    from openmm import app, unit
    from test_md_pipeline import write_argon

    members = [mlcalc.models.LennardJones(sigma=3.405 * (1 + 0.01 * k), epsilon=0.0103, cutoff=7.0) for k in range(3)]
    mlcalc.export(members, tmp_path / "argon.pt")
    pdb = app.PDBFile(str(write_argon(tmp_path / "start.pdb")))
    rng = np.random.default_rng(8)
    start = np.array(pdb.positions.value_in_unit(unit.angstrom))
    with open(tmp_path / "trajectory.dcd", "wb") as stream:
        dcd = app.DCDFile(stream, pdb.topology, 0.001)
        for k in range(5):
            dcd.writeModel(unit.Quantity(start + rng.normal(0, 0.05 * (k % 3 + 1), start.shape), unit.angstrom))
    import MDAnalysis

    universe = MDAnalysis.Universe(str(tmp_path / "start.pdb"), str(tmp_path / "trajectory.dcd"))
    calc = mlcalc.MLCalculator(tmp_path / "argon.pt")
    sigma = []
    for ts in universe.trajectory:
        atoms = Atoms(f"Ar{len(universe.atoms)}", positions=universe.atoms.positions, cell=ts.dimensions, pbc=True)
        sigma.append(calc.get_property("energy_uncertainty", atoms))
    picked = select(tmp_path / "trajectory.dcd", potential=tmp_path / "argon.pt", top=3, min_separation=2)
    assert [a.info["frame"] for a in picked] == _by_hand(np.array(sigma), np.ones(5, bool), separation=2, top=3)
    frames = [a.info["frame"] for a in picked]
    np.testing.assert_allclose([a.info["energy_uncertainty"] for a in picked], np.array(sigma)[frames], rtol=1e-10)
    assert all(a.pbc.all() and len(a) == 108 for a in picked)
