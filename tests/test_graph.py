"""The TorchScript graph builder against ase.neighborlist.neighbor_list: same pairs, same shifts.

Every path is compared with ASE: the cell list and the brute-force paths (minimum image, all images
for small cells) forced through ``method=``, and the automatic choice on larger structures.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from ase.neighborlist import neighbor_list as ase_neighbor_list
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structures import ALL, unwrap

import mlcalc
from mlcalc.graph import CELL_LIST_MIN_ATOMS, MAX_IMAGES, PAIR_CHUNK, build_graph, complete_cell

METHODS = ("auto", "brute", "cell")

# Pairs this close to the cutoff may fall either side of it by round-off: ASE computes
# |r_j - r_i + S @ cell| with numpy, we with torch, in another order of operations.
BOUNDARY = {torch.float64: 1e-9, torch.float32: 1e-4}


def pair_set(i, j, shifts, distances, cutoff, band):
    keep = np.abs(distances - cutoff) > band * cutoff
    return {(a, b, tuple(s)) for a, b, s in zip(i[keep].tolist(), j[keep].tolist(), shifts[keep].tolist())}


@lru_cache(maxsize=1)
def scripted_build_graph():
    return torch.jit.script(build_graph)


def graph(atoms: Atoms, cutoff: float, dtype=torch.float64, method="auto", pair_chunk=PAIR_CHUNK, device="cpu"):
    """``(i, j, S)`` of the scripted builder with a forced ``method``."""
    positions = torch.as_tensor(atoms.positions, dtype=dtype, device=device)
    cell = torch.as_tensor(atoms.cell.array, dtype=dtype, device=device).unsqueeze(0)
    pbc = torch.as_tensor(atoms.pbc, device=device).unsqueeze(0)
    batch = torch.zeros(len(atoms), dtype=torch.long, device=device)
    edge_index, shifts = scripted_build_graph()(
        positions, cell, pbc, batch, float(cutoff), pair_chunk, MAX_IMAGES, method
    )
    return edge_index[0].cpu().numpy(), edge_index[1].cpu().numpy(), shifts.cpu().numpy()


def assert_same_graph(atoms: Atoms, cutoff: float, dtype=torch.float64, methods=("auto",), pair_chunk=PAIR_CHUNK):
    """Each of ``methods`` finds ASE's pairs and shifts (away from round-off at the cutoff), each
    edge once, sorted by centre atom; returns the last method's ``(i, j, S)``."""
    i, j, shifts, d = ase_neighbor_list("ijSd", atoms, cutoff)
    expected = pair_set(i, j, shifts, d, cutoff, BOUNDARY[dtype])
    for method in methods:
        if method == "auto" and pair_chunk == PAIR_CHUNK:
            mi, mj, ms = mlcalc.neighbor_list(atoms, cutoff, dtype=dtype)
        else:
            mi, mj, ms = graph(atoms, cutoff, dtype, method, pair_chunk)
        vectors = atoms.positions[mj] - atoms.positions[mi] + ms @ atoms.cell.array
        found = pair_set(mi, mj, ms, np.linalg.norm(vectors, axis=1), cutoff, BOUNDARY[dtype])
        assert found == expected, (
            f"{method}: missing {sorted(expected - found)[:5]}, extra {sorted(found - expected)[:5]} "
            f"(pbc={atoms.pbc.tolist()}, cutoff={cutoff}, {len(atoms)} atoms)"
        )
        assert (np.diff(mi) >= 0).all(), f"{method}: edges must be sorted by centre atom"
        edges = set(zip(mi.tolist(), mj.tolist(), map(tuple, ms.tolist())))
        assert len(edges) == len(mi), f"{method}: repeated edges"
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
    assert_same_graph(atoms, cutoff, methods=("brute", "cell"))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_structures(cutoff_range=(0.4, 0.7), max_atoms=60))
def test_pairs_and_shifts_equal_ase_near_half_width(case):
    """Where the minimum-image shortcut stops being valid: two images of a pair may both count."""
    atoms, cutoff = case
    assert_same_graph(atoms, cutoff, methods=("brute", "cell"))


def test_two_images_of_one_pair_within_the_cutoff():
    """Box 10 Å, atoms 5 Å apart, cutoff 5.5 Å: both images count, in both directions."""
    atoms = Atoms("Ar2", positions=[[0, 0, 0], [5.0, 0, 0]], cell=[10.0, 30.0, 30.0], pbc=True)
    for method in METHODS:
        i, j, s = assert_same_graph(atoms, 5.5, methods=(method,))
        assert sorted(zip(i.tolist(), j.tolist(), s[:, 0].tolist())) == [(0, 1, -1), (0, 1, 0), (1, 0, 0), (1, 0, 1)]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_structures())
def test_pairs_and_shifts_equal_ase_float32(case):
    atoms, cutoff = case
    assert_same_graph(atoms, cutoff, dtype=torch.float32, methods=("brute", "cell"))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_structures(), st.integers(0, 1000))
def test_unwrapping_by_lattice_vectors_changes_only_shifts(case, seed):
    """Moving atom k by n_k lattice vectors turns edge (i, j, S) into (i, j, S + n_i - n_j)."""
    atoms, cutoff = case
    moved = unwrap(atoms, seed=seed)
    n = np.round((moved.positions - atoms.positions) @ np.linalg.inv(atoms.cell.array)).astype(int)
    for method in ("brute", "cell"):
        i, j, s = graph(atoms, cutoff, method=method)
        mi, mj, ms = graph(moved, cutoff, method=method)
        d = np.linalg.norm(atoms.positions[j] - atoms.positions[i] + s @ atoms.cell.array, axis=1)
        ms = ms - n[mi] + n[mj]
        md = np.linalg.norm(atoms.positions[mj] - atoms.positions[mi] + ms @ atoms.cell.array, axis=1)
        assert pair_set(i, j, s, d, cutoff, 1e-9) == pair_set(mi, mj, ms, md, cutoff, 1e-9), method


@pytest.mark.parametrize("name", sorted(ALL))
@pytest.mark.parametrize("cutoff", [2.5, 5.0, 8.5, 12.0])
def test_reference_structures(name, cutoff):
    atoms = ALL[name]()
    assert_same_graph(atoms, cutoff, methods=METHODS)
    assert_same_graph(unwrap(atoms, seed=1), cutoff, methods=METHODS)


def test_both_paths_are_exercised():
    """The minimum-image path for wide cells, the all-images path for narrow ones, same answers."""
    wide = ALL["large_fcc"]()
    assert widths(wide.cell.array).min() > 2 * 8.5
    narrow = ALL["primitive_fcc"]()
    assert widths(narrow.cell.array).max() < 8.5
    i, _, s = assert_same_graph(narrow, 8.5)
    assert len(i) > 70 and np.abs(s).max() >= 2  # the single atom sees dozens of its own images


def water_like_box(n: int, seed: int = 0, skew: bool = False) -> Atoms:
    """``n`` atoms at 0.1 atoms/Å³ (liquid water), uniformly random, optionally in a skewed cell."""
    rng = np.random.default_rng(seed)
    length = (n / 0.1) ** (1 / 3)
    cell = np.eye(3) * length
    if skew:
        cell[1, 0], cell[2, 0], cell[2, 1] = 0.4 * length, -0.3 * length, 0.25 * length
    return Atoms(numbers=np.ones(n, int), scaled_positions=rng.random((n, 3)), cell=cell, pbc=True)


def large_structures() -> dict[str, tuple[Atoms, float]]:
    """A few thousand atoms each: the automatic choice takes the cell list."""
    slab = water_like_box(1500, seed=2)
    slab.pbc = [True, True, False]
    slab.positions[:, 2] *= 0.5  # a film with vacuum above it, open along z
    cluster = water_like_box(1200, seed=3)
    cluster.pbc = False
    cluster.cell[:] = 0.0  # no cell at all: the bounding box is binned
    cluster.positions += 1e3
    return {
        "water_3000": (water_like_box(3000), 5.0),
        "skewed_unwrapped_2000": (unwrap(water_like_box(2000, seed=1, skew=True), seed=2), 5.0),
        "slab_1500": (slab, 6.0),
        "open_cluster_1200": (cluster, 4.0),
    }


@pytest.mark.parametrize("name", sorted(large_structures()))
def test_large_structures_take_the_cell_list_and_equal_ase(name):
    atoms, cutoff = large_structures()[name]
    assert len(atoms) >= CELL_LIST_MIN_ATOMS  # "auto" is the cell list here
    assert_same_graph(atoms, cutoff)


def test_large_structure_float32_and_small_chunks():
    """float32 positions (pre-filter and re-check in float32), and chunks of ~40 atoms each."""
    atoms, cutoff = large_structures()["skewed_unwrapped_2000"]
    assert_same_graph(atoms, cutoff, dtype=torch.float32)
    assert_same_graph(atoms, cutoff, methods=("cell",), pair_chunk=5000)


def test_sparse_open_structure_keeps_bins_bounded():
    """Atoms 10⁵ Å apart in open space would need ~10¹⁵ cutoff-sized bins: the grid is coarsened."""
    rng = np.random.default_rng(5)
    groups = [rng.normal(size=(20, 3)) * 2.0 + corner for corner in np.eye(3) * 1e5]
    atoms = Atoms(numbers=np.ones(80, int), positions=np.concatenate(groups + [rng.normal(size=(20, 3))]))
    assert_same_graph(atoms, 3.0, methods=("cell",))


def test_coincident_atoms_are_neighbours():
    """Two atoms at the same point are a pair at distance 0 (only (i, i, 0) is excluded)."""
    atoms = Atoms("Ar3", positions=[[1, 1, 1], [1, 1, 1], [3, 1, 1]], cell=[4.0, 4.0, 4.0], pbc=True)
    for method in ("brute", "cell"):
        i, j, _ = assert_same_graph(atoms, 2.5, methods=(method,))
        assert (0, 1) in set(zip(i.tolist(), j.tolist()))


def test_unknown_method_raises():
    with pytest.raises(Exception, match="method must be"):
        graph(ALL["cluster"](), 5.0, method="fast")


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


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_cell_list_equals_cpu(dtype):
    for name, (atoms, cutoff) in large_structures().items():
        cpu = graph(atoms, cutoff, dtype=dtype, method="cell")
        gpu = graph(atoms, cutoff, dtype=dtype, method="cell", device="cuda")
        for a, b in zip(cpu, gpu):
            assert np.array_equal(a, b), name


@pytest.mark.parametrize("method", ["auto", "brute", "cell"])
def test_public_neighbor_list_takes_every_path(method):
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(3)
    atoms.rattle(0.05, seed=4)
    i, j, shifts, d = ase_neighbor_list("ijSd", atoms, 5.0)
    mi, mj, ms = mlcalc.neighbor_list(atoms, 5.0, method=method)
    assert {(a, b, tuple(s)) for a, b, s in zip(mi, mj, ms.tolist())} == {
        (a, b, tuple(s)) for a, b, s in zip(i, j, shifts.tolist())
    }
    with pytest.raises(ValueError, match="method must be one of"):
        mlcalc.neighbor_list(atoms, 5.0, method="fast")
