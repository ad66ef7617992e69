"""Verlet skin (neighbour reuse) in MLCalculator: the same numbers as a fresh graph and as ASE's own
Lennard-Jones, rebuilt exactly when an atom has moved half the skin, or the cell, pbc or atoms changed."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.lj import LennardJones as AseLennardJones
from ase.md.langevin import Langevin
from ase.units import fs
from reference_parameters import CUTOFF, EPSILON, SIGMA
from structures import ALL, skewed_box, unwrap

import mlcalc
from mlcalc.contract import METADATA_FILE
from mlcalc.verlet import VerletList

SKIN = 1.0  # Å


def with_skin(atoms: Atoms, potential, skin: float = SKIN) -> tuple[Atoms, mlcalc.MLCalculator]:
    atoms = atoms.copy()
    calc = mlcalc.MLCalculator(potential, skin=skin)
    atoms.calc = calc
    return atoms, calc


def assert_same_as_fresh_graph(atoms: Atoms, potential) -> None:
    fresh = atoms.copy()
    fresh.calc = mlcalc.MLCalculator(potential)
    # The candidates arrive in another order within each centre than a fresh graph's edges, so sums
    # may differ in the last bits: 1e-12 relative is ~4,000 ulp, far below any missed pair (>1e-6).
    assert atoms.get_potential_energy() == pytest.approx(fresh.get_potential_energy(), rel=1e-12, abs=1e-14)
    scale = np.abs(fresh.get_forces()).max()
    np.testing.assert_allclose(atoms.get_forces(), fresh.get_forces(), rtol=0, atol=1e-12 * scale)
    if atoms.pbc.all():
        stress = np.abs(fresh.get_stress()).max()
        np.testing.assert_allclose(atoms.get_stress(), fresh.get_stress(), rtol=0, atol=1e-12 * stress)


STRUCTURES = {**ALL, "unwrapped_skewed_box": lambda: unwrap(skewed_box())}


@pytest.mark.parametrize("name", sorted(STRUCTURES))
def test_md_with_a_skin_matches_ase_lennard_jones_and_reuses_the_list(lj, name):
    """Langevin MD (every structure kind: one-atom, small and large cells, skewed, slab, cluster,
    unwrapped): each step equals ASE's LJ, and most steps reuse the candidates."""
    atoms, calc = with_skin(STRUCTURES[name](), lj)
    reference = atoms.copy()
    reference.calc = AseLennardJones(sigma=SIGMA, epsilon=EPSILON, rc=CUTOFF)
    atoms.set_momenta(np.random.default_rng(0).normal(scale=0.05, size=(len(atoms), 3)))
    dynamics = Langevin(atoms, 5 * fs, temperature_K=300, friction=0.01, fixcm=False, rng=np.random.default_rng(1))
    for _ in range(30):
        dynamics.run(1)
        reference.positions = atoms.positions
        assert atoms.get_potential_energy() == pytest.approx(reference.get_potential_energy(), rel=1e-10)
        np.testing.assert_allclose(atoms.get_forces(), reference.get_forces(), rtol=0, atol=1e-10)
    assert calc.neighbor_reuses > calc.neighbor_builds >= 1


def test_rebuilds_when_an_atom_moves_half_the_skin(lj):
    """Two argon atoms just beyond cutoff + skin are not candidates; each moves towards the other by
    just under skin/2 (still outside the cutoff: reused) and then past it (inside the cutoff: rebuilt)."""
    start = CUTOFF + SKIN + 0.01
    atoms, calc = with_skin(Atoms("Ar2", positions=[[0, 0, 0], [start, 0, 0]]), lj)
    assert atoms.get_potential_energy() == 0.0
    step = 0.499 * SKIN
    atoms.positions = [[step, 0, 0], [start - step, 0, 0]]  # 8.512 Å apart, outside 8.5
    assert atoms.get_potential_energy() == 0.0
    assert (calc.neighbor_builds, calc.neighbor_reuses) == (1, 1)
    step = 0.501 * SKIN
    atoms.positions = [[step, 0, 0], [start - step, 0, 0]]  # 8.508 - 0.004: now inside the cutoff
    atoms.positions[1, 0] -= 0.02
    assert atoms.get_potential_energy() < 0.0
    assert (calc.neighbor_builds, calc.neighbor_reuses) == (2, 1)
    assert_same_as_fresh_graph(atoms, lj)


def test_a_cell_change_always_rebuilds(lj):
    """An NPT-like step (cell scaled with the atoms) moves no atom far but changes every image: rebuilt."""
    atoms, calc = with_skin(ALL["large_fcc"](), lj)
    atoms.get_forces()
    atoms.set_cell(atoms.cell.array * 1.0005, scale_atoms=True)
    assert_same_as_fresh_graph(atoms, lj)
    atoms.set_cell(atoms.cell.array * 0.999, scale_atoms=False)  # the cell alone
    assert_same_as_fresh_graph(atoms, lj)
    assert (calc.neighbor_builds, calc.neighbor_reuses) == (3, 0)


def test_pbc_atoms_and_wrapping_rebuild(lj):
    atoms, calc = with_skin(unwrap(skewed_box()), lj)
    atoms.get_forces()
    atoms.wrap()  # atoms jump by lattice vectors: far more than the skin
    assert_same_as_fresh_graph(atoms, lj)
    atoms.pbc = [True, True, False]
    assert_same_as_fresh_graph(atoms, lj)
    del atoms[3]
    assert_same_as_fresh_graph(atoms, lj)
    assert (calc.neighbor_builds, calc.neighbor_reuses) == (4, 0)


def test_skin_with_float32_and_in_another_length_unit(lj_path, tmp_path):
    """A float32 potential, and a model in nm (the skin is given in Å and converted)."""
    atoms, calc = with_skin(ALL["small_fcc"](), mlcalc.load(lj_path, dtype="float32"))
    fresh = atoms.copy()
    fresh.calc = mlcalc.MLCalculator(lj_path, dtype="float32")
    for _ in range(5):
        atoms.positions += 0.01
        fresh.positions = atoms.positions
        assert atoms.get_potential_energy() == pytest.approx(fresh.get_potential_energy(), rel=1e-6)
    assert calc.neighbor_builds == 1
    nm_path = tmp_path / "lj-nm.pt"
    mlcalc.export(
        mlcalc.models.LennardJones(sigma=SIGMA / 10, epsilon=EPSILON, cutoff=CUTOFF / 10), nm_path, length_unit="nm"
    )
    potential = mlcalc.load(nm_path)
    verlet = potential.verlet_list(SKIN)
    assert verlet.skin == pytest.approx(SKIN / 10) and verlet.cutoff == pytest.approx(CUTOFF / 10)
    atoms, _ = with_skin(ALL["large_fcc"](), potential)
    assert_same_as_fresh_graph(atoms, potential)


def test_default_is_no_skin(lj):
    calc = mlcalc.MLCalculator(lj)
    assert calc.verlet is None and calc.neighbor_builds == 0 and calc.neighbor_reuses == 0


@pytest.mark.parametrize("skin", [-0.5, float("nan"), float("inf")])
def test_bad_skin_is_refused(lj, skin):
    with pytest.raises(ValueError, match="skin is a length in Å"):
        mlcalc.MLCalculator(lj, skin=skin)


def test_a_file_without_the_verlet_methods_is_refused_with_the_fix():
    class Contract10(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    with pytest.raises(mlcalc.ContractError, match="contract 1.0, before Verlet lists; re-export it"):
        VerletList(torch.jit.script(Contract10()), cutoff=5.0, skin=1.0)


def test_a_verlet_list_serves_one_structure(lj):
    verlet = lj.verlet_list(SKIN)
    images = [ALL["small_fcc"](), ALL["cluster"]()]
    with pytest.raises(ValueError, match="one structure"):
        lj.evaluate(images, verlet=verlet)


def test_candidates_of_the_wrong_shape_are_refused(lj):
    atoms = ALL["cluster"]()
    args = (
        torch.tensor(atoms.numbers),
        torch.tensor(atoms.positions),
        torch.tensor(atoms.cell.array),
        torch.tensor(atoms.pbc),
        None,
    )
    with pytest.raises(torch.jit.Error, match="candidate edges must have shapes"):
        lj.module.compute_from_neighbors(
            *args, torch.zeros(3, 4, dtype=torch.long), torch.zeros(4, 3, dtype=torch.long)
        )
    with pytest.raises(torch.jit.Error, match="outside 0.."):
        edges = torch.tensor([[0], [len(atoms)]])
        lj.module.compute_from_neighbors(*args, edges, torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(torch.jit.Error, match="at least the model's"):
        lj.module.neighbor_list_within(args[1], args[2], args[3], None, CUTOFF - 1.0)


def test_a_contract_1_0_file_still_loads(lj_path, tmp_path):
    """Files written before 1.1 load as before (their modules may lack the Verlet methods)."""
    extra = {METADATA_FILE: ""}
    module = torch.jit.load(str(lj_path), _extra_files=extra)
    record = json.loads(extra[METADATA_FILE])
    record["contract_version"] = "1.0"
    old = tmp_path / "old.pt"
    torch.jit.save(module, str(old), _extra_files={METADATA_FILE: json.dumps(record)})
    atoms = ALL["small_fcc"]()
    atoms.calc = mlcalc.MLCalculator(old)
    assert atoms.get_potential_energy() == pytest.approx(mlcalc.load(lj_path).evaluate(atoms)[0]["energy"], rel=1e-14)


def test_nan_positions_are_named_with_a_skin_too(lj):
    atoms, _ = with_skin(ALL["large_fcc"](), lj)
    atoms.get_forces()
    atoms.positions[4] = np.nan  # after a build: the list would be reused if NaN compared as small
    with pytest.raises(mlcalc.InvalidStructureError, match=r"positions of atoms \[4\] are NaN or infinite"):
        atoms.get_forces()
