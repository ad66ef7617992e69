"""The TorchScript graph builder against ase.neighborlist.neighbor_list: same pairs, same shifts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.neighborlist import neighbor_list as ase_neighbor_list
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structures import ALL, unwrap

import mlcalc
from mlcalc.graph import build_graph, complete_cell

# Pairs this close to the cutoff may fall either side of it by round-off: ASE computes
# |r_j - r_i + S @ cell| with numpy, we with torch, in another order of operations.
BOUNDARY = {torch.float64: 1e-9, torch.float32: 1e-4}


def pair_set(i, j, shifts, distances, cutoff, band):
    keep = np.abs(distances - cutoff) > band * cutoff
    return {(a, b, tuple(s)) for a, b, s in zip(i[keep].tolist(), j[keep].tolist(), shifts[keep].tolist())}


def assert_same_graph(atoms: Atoms, cutoff: float, dtype=torch.float64):
    i, j, shifts, d = ase_neighbor_list("ijSd", atoms, cutoff)
    expected = pair_set(i, j, shifts, d, cutoff, BOUNDARY[dtype])
    mi, mj, ms = mlcalc.neighbor_list(atoms, cutoff, dtype=dtype)
    vectors = atoms.positions[mj] - atoms.positions[mi] + ms @ atoms.cell.array
    found = pair_set(mi, mj, ms, np.linalg.norm(vectors, axis=1), cutoff, BOUNDARY[dtype])
    assert found == expected, (
        f"missing {sorted(expected - found)[:5]}, extra {sorted(found - expected)[:5]} "
        f"(pbc={atoms.pbc.tolist()}, cutoff={cutoff})"
    )
    assert (np.diff(mi) >= 0).all(), "edges must be sorted by centre atom"
    return mi, mj, ms


def widths(cell: np.ndarray) -> np.ndarray:
    """Perpendicular widths of a full-rank cell."""
    return 1.0 / np.linalg.norm(np.linalg.inv(cell), axis=0)


@st.composite
def random_structures(draw, cutoff_range=(0.05, 2.5), max_atoms=40):
    """Orthorhombic, triclinic and strongly skewed cells, any size, any mix of pbc, atoms anywhere,
    cutoffs (in units of the narrowest width) from far below to far above one half (both paths)."""
    kind = draw(st.sampled_from(["orthorhombic", "triclinic", "skewed"]))
    lengths = draw(st.lists(st.floats(1.0, 25.0), min_size=3, max_size=3))
    cell = np.diag(lengths)
    if kind != "orthorhombic":
        reach = 0.5 if kind == "triclinic" else 3.0
        off = draw(st.lists(st.floats(-reach, reach), min_size=3, max_size=3))
        cell[1, 0] = off[0] * lengths[0]
        cell[2, 0] = off[1] * lengths[0]
        cell[2, 1] = off[2] * lengths[1]
        if draw(st.booleans()):  # a general orientation, not lower-triangular
            q, _ = np.linalg.qr(
                np.asarray(draw(st.lists(st.floats(-1, 1), min_size=9, max_size=9))).reshape(3, 3) + 2 * np.eye(3)
            )
            cell = cell @ q
    pbc = draw(st.lists(st.booleans(), min_size=3, max_size=3))
    n = draw(st.integers(1, max_atoms))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    spread = draw(st.sampled_from([(0.0, 1.0), (-2.0, 3.0)]))  # wrapped, or unwrapped by cells
    positions = rng.uniform(*spread, size=(n, 3)) @ cell
    cutoff = draw(st.floats(*cutoff_range)) * widths(cell).min()
    return Atoms(numbers=np.ones(n, int), positions=positions, cell=cell, pbc=pbc), cutoff


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_structures())
def test_pairs_and_shifts_equal_ase_float64(case):
    atoms, cutoff = case
    assert_same_graph(atoms, cutoff)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_structures(cutoff_range=(0.4, 0.7), max_atoms=60))
def test_pairs_and_shifts_equal_ase_near_half_width(case):
    """Where the minimum-image shortcut stops being valid: two images of a pair may both count."""
    atoms, cutoff = case
    assert_same_graph(atoms, cutoff)


def test_two_images_of_one_pair_within_the_cutoff():
    """Box 10 Å, atoms 5 Å apart, cutoff 5.5 Å: both images count, in both directions."""
    atoms = Atoms("Ar2", positions=[[0, 0, 0], [5.0, 0, 0]], cell=[10.0, 30.0, 30.0], pbc=True)
    i, j, s = assert_same_graph(atoms, 5.5)
    assert sorted(zip(i.tolist(), j.tolist(), s[:, 0].tolist())) == [(0, 1, -1), (0, 1, 0), (1, 0, 0), (1, 0, 1)]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_structures())
def test_pairs_and_shifts_equal_ase_float32(case):
    atoms, cutoff = case
    assert_same_graph(atoms, cutoff, dtype=torch.float32)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_structures(), st.integers(0, 1000))
def test_unwrapping_by_lattice_vectors_changes_only_shifts(case, seed):
    """Moving atom k by n_k lattice vectors turns edge (i, j, S) into (i, j, S + n_i - n_j)."""
    atoms, cutoff = case
    moved = unwrap(atoms, seed=seed)
    n = np.round((moved.positions - atoms.positions) @ np.linalg.inv(atoms.cell.array)).astype(int)
    i, j, s = mlcalc.neighbor_list(atoms, cutoff)
    mi, mj, ms = mlcalc.neighbor_list(moved, cutoff)
    d = np.linalg.norm(atoms.positions[j] - atoms.positions[i] + s @ atoms.cell.array, axis=1)
    md = np.linalg.norm(atoms.positions[mj] - atoms.positions[mi] + (ms - n[mi] + n[mj]) @ atoms.cell.array, axis=1)
    assert pair_set(i, j, s, d, cutoff, 1e-9) == pair_set(mi, mj, ms - n[mi] + n[mj], md, cutoff, 1e-9)


@pytest.mark.parametrize("name", sorted(ALL))
@pytest.mark.parametrize("cutoff", [2.5, 5.0, 8.5, 12.0])
def test_reference_structures(name, cutoff):
    atoms = ALL[name]()
    assert_same_graph(atoms, cutoff)
    assert_same_graph(unwrap(atoms, seed=1), cutoff)


def test_both_paths_are_exercised():
    """The minimum-image path for wide cells, the all-images path for narrow ones, same answers."""
    wide = ALL["large_fcc"]()
    assert widths(wide.cell.array).min() > 2 * 8.5
    narrow = ALL["primitive_fcc"]()
    assert widths(narrow.cell.array).max() < 8.5
    i, _, s = assert_same_graph(narrow, 8.5)
    assert len(i) > 70 and np.abs(s).max() >= 2  # the single atom sees dozens of its own images


def test_batch_equals_separate_structures():
    structures = [ALL["small_fcc"](), ALL["cluster"](), ALL["slab"](), ALL["skewed_box"]()]
    positions = torch.tensor(np.concatenate([a.positions for a in structures]))
    cell = torch.tensor(np.stack([a.cell.array for a in structures]))
    pbc = torch.tensor(np.stack([a.pbc for a in structures]))
    batch = torch.tensor(np.repeat(np.arange(len(structures)), [len(a) for a in structures]))
    edge_index, shifts = torch.jit.script(build_graph)(positions, cell, pbc, batch, 6.0)
    offset = 0
    expected_edges, expected_shifts = [], []
    for atoms in structures:
        i, j, s = mlcalc.neighbor_list(atoms, 6.0)
        expected_edges.append(np.stack([i, j]) + offset)
        expected_shifts.append(s)
        offset += len(atoms)
    assert np.array_equal(edge_index.numpy(), np.concatenate(expected_edges, axis=1))
    assert np.array_equal(shifts.numpy(), np.concatenate(expected_shifts))


def test_edge_vectors_carry_gradients_to_positions_and_cell(lj):
    atoms = ALL["small_fcc"]()
    positions = torch.tensor(atoms.positions, requires_grad=True)
    cell = torch.tensor(atoms.cell.array, requires_grad=True)
    out = lj.module.forward(torch.tensor(atoms.numbers), positions, cell, torch.tensor(atoms.pbc), None)
    edge_index, shifts = lj.module.neighbor_list(positions, cell, torch.tensor(atoms.pbc), None)
    # d(sum of edge vectors)/d(cell) is the sum of the shifts: check it through a linear functional.
    i, j = edge_index
    vectors = positions[j] - positions[i] + shifts.to(cell.dtype) @ cell
    weights = torch.randn_like(vectors)
    g_pos, g_cell = torch.autograd.grad((vectors * weights).sum(), [positions, cell])
    assert torch.allclose(g_cell, shifts.to(cell.dtype).T @ weights)
    assert torch.allclose(g_pos, torch.zeros_like(g_pos).index_add(0, j, weights).index_add(0, i, -weights))
    g_energy = torch.autograd.grad(out["energy"].sum(), [positions, cell])
    assert all(g is not None and g.abs().sum() > 0 for g in g_energy)


@pytest.mark.parametrize(
    "cell, pbc, message",
    [
        (np.zeros((3, 3)), [True, False, False], "cell vector 0 is zero"),
        (np.diag([3.0, 3.0, 0.0]), [True, True, True], "cell vector 2 is zero"),
        (np.array([[3.0, 0, 0], [0, 3.0, 0], [3.0, 3.0, 0]]), [True, True, True], "zero volume"),
        (np.array([[3.0, 0, 0], [6.0, 0, 0], [0, 0, 3.0]]), [True, True, False], "parallel"),
    ],
)
def test_degenerate_periodic_cells_raise(cell, pbc, message):
    with pytest.raises(ValueError, match=message):
        complete_cell(torch.tensor(cell), pbc)


def test_open_directions_need_no_cell():
    """Zero cell vectors along non-periodic directions are completed, not rejected."""
    atoms = Atoms("Ar2", positions=[[0, 0, 0], [3.0, 0, 0]], cell=[5.0, 0, 0], pbc=[True, False, False])
    assert_same_graph(atoms, 4.0)


@pytest.mark.cuda
def test_cuda_graph_equals_cpu():
    for name, make in ALL.items():
        atoms = make()
        for dtype in (torch.float32, torch.float64):
            cpu = mlcalc.neighbor_list(atoms, 8.5, dtype=dtype)
            gpu = mlcalc.neighbor_list(atoms, 8.5, dtype=dtype, device="cuda")
            for a, b in zip(cpu, gpu):
                assert np.array_equal(a, b), name
