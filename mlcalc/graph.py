"""Periodic neighbour graph builder, written in TorchScript and compiled into every exported file.

For each structure it finds every pair ``(i, j, S)`` with ``|r_j - r_i + S @ cell| < cutoff`` (S an
integer lattice shift, zero along non-periodic directions, ``(i, i, 0)`` excluded): the same set,
with the same shift convention, as ``ase.neighborlist.neighbor_list("ijS", atoms, cutoff)``.
Shifts refer to the positions as given, so positions may be unwrapped (OpenMM's CPU platform),
wrapped per molecule (its CUDA platform) or anywhere else: the edge vectors do not change.

Three paths, chosen per structure (``method="auto"``):

* cell list (:mod:`mlcalc.cell_list`), O(N), for structures of at least ``CELL_LIST_MIN_ATOMS``
  atoms, any cell (also cells narrower than the cutoff), any pbc;
* brute force, O(N^2), below that size, faster there than binning:

  * minimum image, when the cutoff is below half of every periodic perpendicular cell width: each
    pair then has at most one image within the cutoff, found by rounding fractional differences;
  * all images, for smaller cells: positions are wrapped into the cell and every shift within
    ``floor(cutoff / width) + 1`` cells is searched, so small crystal cells get all their images.

``method="cell"`` or ``"brute"`` forces a path (tests, benchmarks). All are written by hand because
TorchScript cannot call ASE or a C++ list at run time, and the graph has to live inside the file so
that every engine builds exactly the same one.
"""

from __future__ import annotations

from typing import List, Tuple

import torch
from torch import Tensor

from mlcalc.cell_list import cell_list_pairs

#: Candidate (pair, image) distances evaluated at once; bounds memory to ~100 MB in float64.
PAIR_CHUNK = 1 << 21
#: More lattice images than this means a cell absurdly small for the cutoff (or wrong units).
MAX_IMAGES = 1_000_000
#: Structures with at least this many atoms use the cell list (measured crossover, benchmarks/).
CELL_LIST_MIN_ATOMS = 200
# (TorchScript cannot read module globals: the functions below take these as arguments.)


def complete_cell(cell: Tensor, pbc: List[bool]) -> Tensor:
    """Return ``cell`` (float64) with non-periodic rows replaced by unit vectors orthogonal to the
    periodic rows, so that fractional coordinates along periodic directions are well defined.

    Raises ``ValueError`` for a periodic row that is zero or for linearly dependent periodic rows.
    """
    cell = cell.to(torch.float64)
    eye = torch.eye(3, dtype=torch.float64, device=cell.device)
    periodic: List[int] = []
    open_dirs: List[int] = []
    for k in range(3):
        if pbc[k]:
            periodic.append(k)
        else:
            open_dirs.append(k)
    norms = torch.linalg.norm(cell, dim=1)
    for k in periodic:
        if float(norms[k]) == 0.0:
            raise ValueError(
                "cell vector {} is zero but the structure is periodic along it: "
                "set a cell or make direction {} non-periodic".format(k, k)
            )
    if len(periodic) == 3:
        volume = abs(float(torch.linalg.det(cell)))
        if volume <= 1e-10 * float(norms.prod()):
            raise ValueError(
                "the periodic cell has zero volume (its three vectors are linearly dependent): "
                "fix the cell or make the degenerate direction non-periodic"
            )
        return cell
    out = eye.clone()
    for k in periodic:
        out[k] = cell[k]
    if len(periodic) == 2:
        a = cell[periodic[0]]
        b = cell[periodic[1]]
        normal = torch.linalg.cross(a, b)
        size = float(torch.linalg.norm(normal))
        if size <= 1e-10 * float(norms[periodic[0]]) * float(norms[periodic[1]]):
            raise ValueError(
                "periodic cell vectors {} and {} are parallel: fix the cell".format(periodic[0], periodic[1])
            )
        out[open_dirs[0]] = normal / size
    elif len(periodic) == 1:
        a = cell[periodic[0]] / norms[periodic[0]]
        helper = eye[int(torch.argmin(torch.abs(a)))]
        u = torch.linalg.cross(a, helper)
        u = u / torch.linalg.norm(u)
        v = torch.linalg.cross(a, u)
        v = v / torch.linalg.norm(v)
        out[open_dirs[0]] = u
        out[open_dirs[1]] = v
    return out


def _times_matrix(x: Tensor, matrix: Tensor) -> Tensor:
    """``x @ matrix`` for a [..., 3] tensor and a 3x3 matrix as one 2-D ``mm`` (up to 3x faster on
    CPU than a broadcast ``matmul`` for this inner dimension of 3)."""
    return torch.mm(x.reshape(-1, 3), matrix).reshape(x.shape)


def _minimum_image_pairs(
    positions: Tensor, cell: Tensor, inverse: Tensor, pbc_mask: Tensor, cutoff: float, periodic: bool, pair_chunk: int
) -> Tuple[Tensor, Tensor, Tensor]:
    """Half list (i < j) by the minimum-image convention; valid when cutoff < half of every width."""
    n = positions.shape[0]
    device = positions.device
    cutoff2 = cutoff * cutoff
    rows = max(1, pair_chunk // max(n, 1))
    first: List[Tensor] = []
    second: List[Tensor] = []
    shifts: List[Tensor] = []
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        # Candidates j >= start; the mask below keeps j > i.
        d = positions[start:].unsqueeze(0) - positions[start:stop].unsqueeze(1)
        s = torch.zeros_like(d)
        if periodic:
            s = -torch.round(_times_matrix(d, inverse)) * pbc_mask
            d = d + _times_matrix(s, cell)
        i_local = torch.arange(start, stop, device=device).unsqueeze(1)
        j_local = torch.arange(start, n, device=device).unsqueeze(0)
        keep = ((d * d).sum(-1) < cutoff2) & (j_local > i_local)
        ii, jj = keep.nonzero().unbind(1)
        first.append(ii + start)
        second.append(jj + start)
        shifts.append(s[ii, jj])
    return torch.cat(first), torch.cat(second), torch.cat(shifts)


def _all_image_pairs(
    positions: Tensor,
    cell: Tensor,
    inverse: Tensor,
    pbc: List[bool],
    widths: List[float],
    cutoff: float,
    pair_chunk: int,
    max_images: int,
) -> Tuple[Tensor, Tensor, Tensor]:
    """Full list over every lattice image within the cutoff (any cell size)."""
    n = positions.shape[0]
    device = positions.device
    dtype = positions.dtype
    pbc_mask = torch.tensor(pbc, dtype=dtype, device=device)
    # Wrap into the cell along periodic directions: fractional differences then lie in (-1, 1),
    # so |S_k| <= floor(cutoff / width_k) + 1 covers every image within the cutoff.
    offsets = torch.floor(torch.matmul(positions, inverse)) * pbc_mask
    wrapped = positions - torch.matmul(offsets, cell)
    ranges: List[Tensor] = []
    for k in range(3):
        reach = int(cutoff / widths[k]) + 1 if pbc[k] else 0
        ranges.append(torch.arange(-reach, reach + 1, device=device, dtype=dtype))
    grid = torch.meshgrid(ranges, indexing="ij")
    images = torch.stack([g.reshape(-1) for g in grid], dim=1)  # [M, 3]
    image_vectors = torch.matmul(images, cell)
    central = int(((images == 0).all(dim=1)).nonzero()[0, 0])
    m = images.shape[0]
    cutoff2 = cutoff * cutoff
    rows = max(1, pair_chunk // max(n * m, 1))
    first: List[Tensor] = []
    second: List[Tensor] = []
    shifts: List[Tensor] = []
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        d = wrapped.unsqueeze(0) - wrapped[start:stop].unsqueeze(1)  # [b, n, 3]
        d = d.unsqueeze(2) + image_vectors  # [b, n, M, 3]
        keep = (d * d).sum(-1) < cutoff2
        rows_here = torch.arange(start, stop, device=device)
        keep[torch.arange(stop - start, device=device), rows_here, central] = False
        ii, jj, mm = keep.nonzero().unbind(1)
        i = ii + start
        first.append(i)
        second.append(jj)
        shifts.append(images[mm] - offsets[jj] + offsets[i])
    return torch.cat(first), torch.cat(second), torch.cat(shifts)


def _check_images(pbc: List[bool], widths: List[float], cutoff: float, max_images: int) -> None:
    """Raise ``ValueError`` when the cell needs more than ``max_images`` lattice images."""
    count = 1
    for k in range(3):
        reach = int(cutoff / widths[k]) + 1 if pbc[k] else 0
        count *= 2 * reach + 1
    if count > max_images:
        raise ValueError(
            "the cell needs {} periodic images for cutoff {}: its perpendicular widths {} are far "
            "below the cutoff; check the cell and its units".format(count, cutoff, widths)
        )


def build_single_graph(
    positions: Tensor,
    cell: Tensor,
    pbc: List[bool],
    cutoff: float,
    pair_chunk: int = PAIR_CHUNK,
    max_images: int = MAX_IMAGES,
    method: str = "auto",
    cell_list_min_atoms: int = CELL_LIST_MIN_ATOMS,
) -> Tuple[Tensor, Tensor]:
    """Full neighbour list of one structure: ``edge_index`` [2, E] (i, j) and integer ``shifts`` [E, 3],
    sorted by ``i``, with ``r_j - r_i + shifts @ cell`` shorter than ``cutoff``.

    ``method``: ``"auto"`` (cell list from ``cell_list_min_atoms`` atoms on), ``"cell"`` or ``"brute"``.
    """
    if method != "auto" and method != "cell" and method != "brute":
        raise ValueError("method must be 'auto', 'cell' or 'brute', got '{}'".format(method))
    device = positions.device
    n = positions.shape[0]
    if n == 0:
        return torch.zeros((2, 0), dtype=torch.long, device=device), torch.zeros(
            (0, 3), dtype=torch.long, device=device
        )
    completed = complete_cell(cell, pbc)
    inverse64 = torch.linalg.inv(completed)
    widths: List[float] = (1.0 / torch.linalg.norm(inverse64, dim=0)).tolist()
    inverse = inverse64.to(positions.dtype)
    cell_d = completed.to(positions.dtype)
    _check_images(pbc, widths, cutoff, max_images)
    if method == "cell" or (method == "auto" and n >= cell_list_min_atoms):
        return cell_list_pairs(positions, completed, inverse64, pbc, widths, cutoff, pair_chunk)
    periodic = pbc[0] or pbc[1] or pbc[2]
    minimum_image = True
    for k in range(3):
        if pbc[k] and not cutoff < 0.5 * widths[k]:
            minimum_image = False
    if minimum_image:
        pbc_mask = torch.tensor(pbc, dtype=positions.dtype, device=device)
        i, j, s = _minimum_image_pairs(positions, cell_d, inverse, pbc_mask, cutoff, periodic, pair_chunk)
        first = torch.cat([i, j])
        second = torch.cat([j, i])
        shifts = torch.cat([s, -s])
        order = torch.sort(first * n + second, stable=True)[1]
        first = first[order]
        second = second[order]
        shifts = shifts[order]
    else:
        first, second, shifts = _all_image_pairs(
            positions, cell_d, inverse, pbc, widths, cutoff, pair_chunk, max_images
        )
    edge_index = torch.stack([first, second])
    return edge_index, torch.round(shifts).to(torch.long)


def build_graph(
    positions: Tensor,
    cell: Tensor,
    pbc: Tensor,
    batch: Tensor,
    cutoff: float,
    pair_chunk: int = PAIR_CHUNK,
    max_images: int = MAX_IMAGES,
    method: str = "auto",
    cell_list_min_atoms: int = CELL_LIST_MIN_ATOMS,
) -> Tuple[Tensor, Tensor]:
    """Neighbour list of a batch of structures.

    Args:
        positions: [N, 3] any floating dtype; atoms of one structure contiguous.
        cell: [B, 3, 3] lattice vectors as rows.
        pbc: [B, 3] bool periodic flags.
        batch: [N] int64 structure index of each atom, non-decreasing.
        cutoff: in the unit of ``positions``.
        method: ``"auto"``, ``"cell"`` (cell list) or ``"brute"`` (O(N^2)), see the module docstring.
        cell_list_min_atoms: structures from this size on use the cell list with ``"auto"``.

    Returns:
        ``edge_index`` [2, E] int64 (row 0 the centre atom i, row 1 the neighbour j, global indices) and
        ``shifts`` [E, 3] int64 such that ``positions[j] - positions[i] + shifts @ cell[batch[i]]`` is each
        edge vector. Edges are grouped by structure and sorted by ``i`` within it.
    """
    with torch.no_grad():
        positions = positions.detach()
        cell = cell.detach()
        n_systems = cell.shape[0]
        counts: List[int] = torch.bincount(batch, minlength=n_systems).tolist()
        pbc_rows: List[List[bool]] = pbc.tolist()
        edges: List[Tensor] = []
        shifts: List[Tensor] = []
        start = 0
        for b in range(n_systems):
            stop = start + counts[b]
            e, s = build_single_graph(
                positions[start:stop], cell[b], pbc_rows[b], cutoff, pair_chunk, max_images, method, cell_list_min_atoms
            )
            edges.append(e + start if start > 0 else e)
            shifts.append(s)
            start = stop
        if n_systems == 0:
            return (
                torch.zeros((2, 0), dtype=torch.long, device=positions.device),
                torch.zeros((0, 3), dtype=torch.long, device=positions.device),
            )
        if n_systems == 1:  # no copies: 24k atoms have 1.3M edges, ~50 MB with their shifts
            return edges[0], shifts[0]
        return torch.cat(edges, dim=1), torch.cat(shifts)


class GraphBuilder(torch.nn.Module):
    """TorchScript module wrapping :func:`build_graph` with a fixed cutoff (model length unit)."""

    def __init__(self, cutoff: float):
        super().__init__()
        self.cutoff = float(cutoff)

    def forward(self, positions: Tensor, cell: Tensor, pbc: Tensor, batch: Tensor) -> Tuple[Tensor, Tensor]:
        return build_graph(positions, cell, pbc, batch, self.cutoff)
