"""O(N) cell-list neighbour search in TorchScript, for structures too large for the O(N^2) paths.

Written by hand (not a call to vesin or matscipy) because it is compiled into every exported file:
TorchScript cannot call a C++ or Python library at run time, and every engine (ASE, OpenMM's C++
TorchForce, CUDA) must build exactly the same graph from the file alone.

Method, for one structure (positions in any unit, ``cutoff`` in the same unit):

1. Fractional coordinates in the *completed* cell (:func:`mlcalc.graph.complete_cell`), wrapped into
   [0, 1) along periodic directions; open directions use the atoms' bounding box.
2. Bins: each direction is cut into ``nb_k`` slabs at least ``cutoff / divisions`` wide
   (perpendicular width), so a neighbour lies at most ``reach_k = ceil(cutoff / slab width)`` bins
   away; cells narrower than the cutoff get one bin and a reach of several images. Atoms are sorted
   by bin with ``argsort`` (no padded bins).
3. Rows: along the direction with most bins ("row direction") the bins of one row are consecutive
   in sorted order; each row is extended at both ends by ``reach`` bins of its periodic images (a
   slot table of atom index and image, ~10% more slots), so bins ``c - reach .. c + reach`` are one
   contiguous range and each atom's candidates are one range per neighbouring row (25 rows for
   bins of cutoff/2). The ranges are expanded exactly with ``repeat_interleave`` and ``cumsum``
   offsets, in chunks of atoms that bound the working memory.
4. Distances: a float32 pre-filter on coordinates relative to each atom's row (small numbers, so
   float32 keeps ~1e-7 relative precision); only candidates within a narrow band around the cutoff
   are decided again in the input dtype from the original positions and the integer shift.

Centre atoms are taken in their original order and each one's neighbours are generated together,
so the full list (i->j and j->i) comes out sorted by ``i`` without a sort of the edges (a sort of
5M edges costs more than the whole search on a CPU).
"""

from __future__ import annotations

import math
from typing import List, Tuple

import torch
from torch import Tensor

#: Slabs per cutoff length: bins of cutoff/2 test ~40% fewer candidates than bins of one cutoff.
DIVISIONS = 2
#: Bins allowed per atom (sparse systems, huge open bounding boxes): keeps memory O(N).
BINS_PER_ATOM = 8
#: float32 round-off allowance of the pre-filter, in units of float32 epsilon times coordinate size.
PREFILTER_ULPS = 16.0


def _bin_grid(
    frac: Tensor, pbc: List[bool], widths: List[float], cutoff: float, divisions: int, max_bins: int
) -> Tuple[List[float], List[float], List[int], List[int]]:
    """Per direction: fractional ``start`` and ``span`` of the binned region, bin counts and reach.

    Periodic directions span [0, 1); open directions the bounding box of ``frac``.
    """
    low: List[float] = frac.min(dim=0)[0].tolist()
    high: List[float] = frac.max(dim=0)[0].tolist()
    start: List[float] = []
    span: List[float] = []
    bins: List[int] = []
    extent: List[float] = []
    for k in range(3):
        if pbc[k]:
            start.append(0.0)
            span.append(1.0)
        else:
            start.append(low[k])
            span.append(high[k] - low[k])
        extent.append(span[k] * widths[k])
        bins.append(max(1, int(extent[k] * divisions / (cutoff * (1.0 + 1e-9)))))
    while bins[0] * bins[1] * bins[2] > max_bins:
        k = 0
        for d in range(1, 3):
            if bins[d] > bins[k]:
                k = d
        bins[k] = max(1, bins[k] // 2)
    reach: List[int] = []
    for k in range(3):
        if extent[k] <= 0.0:
            reach.append(0)
        else:
            r = int(math.ceil(cutoff * bins[k] / extent[k] * (1.0 + 1e-12)))
            reach.append(r if pbc[k] else min(r, bins[k] - 1))
    return start, span, bins, reach


def _row_offsets(reach: List[int], order: List[int], device: torch.device) -> Tensor:
    """[K, 2] int64 bin offsets (along ``order[0]``, along ``order[1]``) of the rows to search."""
    ranges = [
        torch.arange(-reach[order[0]], reach[order[0]] + 1, device=device),
        torch.arange(-reach[order[1]], reach[order[1]] + 1, device=device),
    ]
    grid = torch.meshgrid(ranges, indexing="ij")
    return torch.stack([g.reshape(-1) for g in grid], dim=1)


def _extended_rows(
    counts: Tensor, perm: Tensor, n_rows: int, nb_row: int, margin: int
) -> Tuple[Tensor, Tensor, Tensor]:
    """Each row of bins extended by ``margin`` bins of periodic images at both ends, so that bins
    ``c - reach .. c + reach`` are one contiguous range of slots (no wrapping in the inner loop).

    Returns ``cum`` [n_rows * (nb_row + 2 margin) + 1] int32 (first slot of each extended bin),
    and per slot the atom (original index) and its lattice image along the row direction.
    """
    device = counts.device
    extended = torch.arange(-margin, nb_row + margin, device=device)  # [nb_row + 2 margin]
    image = torch.div(extended, nb_row, rounding_mode="floor")
    source_bin = (torch.arange(n_rows, device=device).unsqueeze(1) * nb_row + (extended - image * nb_row)).reshape(-1)
    ext_counts = counts.index_select(0, source_bin)
    cum = torch.zeros(source_bin.shape[0] + 1, dtype=torch.int32, device=device)
    cum[1:] = torch.cumsum(ext_counts, 0)
    total = perm.shape[0] if margin == 0 else int(cum[-1])
    bin_start = torch.cumsum(counts, 0) - counts
    ext_bin = torch.repeat_interleave(ext_counts, output_size=total)  # extended bin of each slot
    within = torch.arange(total, device=device) - (cum[:-1].to(torch.long)).index_select(0, ext_bin)
    ext_atom = perm.index_select(0, bin_start.index_select(0, source_bin.index_select(0, ext_bin)) + within)
    ext_image = image.repeat(n_rows).index_select(0, ext_bin)
    return cum, ext_atom, ext_image


def _edges(
    pair: Tensor,
    slot: Tensor,
    first_atom: int,
    k_combos: int,
    row_images: List[Tensor],
    ext_atom: Tensor,
    ext_image: Tensor,
    order: List[int],
    offsets: Tensor,
    unwrapped: bool,
) -> Tuple[Tensor, Tensor, Tensor]:
    """Centre ``i``, neighbour ``j`` and integer shift [E, 3] (int64) of candidates given by their
    (centre atom, neighbour row) index ``pair`` and extended-row ``slot``."""
    i = torch.div(pair, k_combos, rounding_mode="floor").to(torch.long) + first_atom
    j = ext_atom.index_select(0, slot)
    shifts = torch.empty((pair.shape[0], 3), dtype=torch.long, device=pair.device)
    shifts[:, order[0]] = row_images[0].index_select(0, pair)
    shifts[:, order[1]] = row_images[1].index_select(0, pair)
    shifts[:, order[2]] = ext_image.index_select(0, slot)
    if unwrapped:
        shifts += offsets.index_select(0, i) - offsets.index_select(0, j)
    return i, j, shifts


def cell_list_pairs(
    positions: Tensor,
    cell: Tensor,
    inverse: Tensor,
    pbc: List[bool],
    widths: List[float],
    cutoff: float,
    pair_chunk: int,
    divisions: int = DIVISIONS,
    bins_per_atom: int = BINS_PER_ATOM,
    prefilter_ulps: float = PREFILTER_ULPS,
) -> Tuple[Tensor, Tensor]:
    """Full neighbour list of one structure by a cell list: ``(edge_index, shifts)``, sorted by ``i``.

    Args:
        positions: [N, 3], any floating dtype, anywhere (unwrapped positions are fine).
        cell: [3, 3] float64 completed cell (rows; open directions orthonormal to the periodic ones).
        inverse: [3, 3] float64 inverse of ``cell``.
        pbc: periodic flags.
        widths: perpendicular widths of ``cell`` (length unit).
        cutoff: in the unit of ``positions``.
        pair_chunk: candidate pairs examined at once (bounds the working memory, ~50 bytes each).
        divisions: bins per cutoff length.
        bins_per_atom: at most this many bins per atom (plus 64).
        prefilter_ulps: float32 round-off allowance of the pre-filter.

    Returns:
        ``edge_index`` [2, E] (``i``, ``j``) and integer ``shifts`` [E, 3], int64, with
        ``|positions[j] - positions[i] + shifts @ cell| < cutoff``, every image, ``(i, i, 0)`` excluded.
    """
    n = positions.shape[0]
    device = positions.device
    dtype = positions.dtype
    positions64 = positions.to(torch.float64)
    frac = torch.mm(positions64, inverse)
    pbc_mask = torch.tensor(pbc, dtype=torch.float64, device=device)
    offsets = torch.floor(frac) * pbc_mask  # lattice vectors that wrap each atom into the cell
    frac = frac - offsets
    start, span, bins, reach = _bin_grid(frac, pbc, widths, cutoff, divisions, bins_per_atom * n + 64)
    # The row direction (last, fastest-varying bin index) is the one with most bins.
    row = 0
    for k in range(1, 3):
        if bins[k] > bins[row]:
            row = k
    order: List[int] = []
    for k in range(3):
        if k != row:
            order.append(k)
    order.append(row)
    start_t = torch.tensor(start, dtype=torch.float64, device=device)
    width_t = torch.tensor([span[k] / bins[k] for k in range(3)], dtype=torch.float64, device=device)
    nb_t = torch.tensor(bins, dtype=torch.long, device=device)
    cell_bin = torch.floor((frac - start_t) / width_t).to(torch.long)
    cell_bin = torch.minimum(torch.clamp(cell_bin, min=0), nb_t - 1)

    # Sort atoms by bin; counts[b] atoms in bin b (rows of nb_row bins along the row direction).
    nb_row = bins[row]
    n_rows = bins[order[0]] * bins[order[1]]
    key = (cell_bin[:, order[0]] * bins[order[1]] + cell_bin[:, order[1]]) * nb_row + cell_bin[:, row]
    perm = torch.argsort(key, stable=True)
    counts = torch.bincount(key, minlength=n_rows * nb_row)
    offsets_long = offsets.to(torch.long)
    unwrapped = bool((offsets_long != 0).any())

    # Coordinates relative to the origin of each atom's row (bins 0.. along the row direction).
    row_frac = start_t + cell_bin.to(torch.float64) * width_t
    row_frac[:, row] = start[row]
    local64 = torch.mm(frac - row_frac, cell)
    local = local64.to(torch.float32)
    reach_row = reach[row]
    margin = reach_row if pbc[row] else 0
    row_vector = cell[row].to(torch.float32)
    ext_cum, ext_atom, ext_image = _extended_rows(counts, perm, n_rows, nb_row, margin)
    ext_local = local.index_select(0, ext_atom) + ext_image.to(torch.float32).unsqueeze(1) * row_vector
    ext_columns = [ext_local[:, c].contiguous() for c in range(3)]
    size = float(local64.abs().max()) + float(torch.linalg.norm(row_vector)) * (margin // nb_row + 1) + cutoff
    tolerance = prefilter_ulps * 1.2e-7 * size
    inner = max(cutoff - tolerance, 0.0)
    outer = cutoff + tolerance

    # K neighbour rows (offsets in the two other directions) per centre atom.
    combos = _row_offsets(reach, order, device)
    k_combos = combos.shape[0]
    step = torch.zeros((k_combos, 3), dtype=torch.float64, device=device)
    step[:, order[0]] = combos[:, 0].to(torch.float64) * width_t[order[0]]
    step[:, order[1]] = combos[:, 1].to(torch.float64) * width_t[order[1]]
    combo_vectors = torch.mm(step, cell).to(torch.float32)  # [K, 3]
    # Expected candidates per atom (mean bin occupancy times bins searched) sets the chunk size.
    per_atom = max(1, k_combos * (2 * reach_row + 1) * n // (n_rows * nb_row))
    atoms_per_chunk = max(1, pair_chunk // per_atom)
    ext_per_row = nb_row + 2 * margin

    cutoff2 = cutoff * cutoff
    cell_d = cell.to(dtype)
    edges: List[Tensor] = []
    all_shifts: List[Tensor] = []
    for first_atom in range(0, n, atoms_per_chunk):
        last_atom = min(n, first_atom + atoms_per_chunk)
        m = last_atom - first_atom
        centre_bin = cell_bin[first_atom:last_atom]  # [m, 3]
        # Neighbour row in the two other directions: wrap periodic ones, drop open ones outside.
        valid = torch.ones((m, k_combos), dtype=torch.bool, device=device)
        target_rows: List[Tensor] = []
        images: List[Tensor] = []
        for a in range(2):
            d = order[a]
            target = centre_bin[:, d].unsqueeze(1) + combos[:, a].unsqueeze(0)  # [m, K]
            image = torch.div(target, bins[d], rounding_mode="floor")
            if not pbc[d]:
                valid = valid & (image == 0)
            target_rows.append(target - image * bins[d])
            images.append(image.reshape(-1))
        # Bins c - reach .. c + reach of that row: one range of the extended row.
        centre_row = centre_bin[:, row].unsqueeze(1)
        low = torch.clamp(centre_row - reach_row, min=-margin) + margin
        high = torch.clamp(centre_row + reach_row, max=nb_row - 1 + margin) + margin
        row_base = (target_rows[0] * bins[order[1]] + target_rows[1]) * ext_per_row
        begin = ext_cum.index_select(0, torch.where(valid, row_base + low, 0).reshape(-1))
        counts_here = ext_cum.index_select(0, torch.where(valid, row_base + high + 1, 0).reshape(-1)) - begin
        total = int(counts_here.sum())
        if total == 0:
            continue
        # int32 indices: half the memory traffic of int64 in the gathers over all candidates.
        pair = torch.repeat_interleave(counts_here, output_size=total)
        first_candidate = torch.cumsum(counts_here, 0) - counts_here
        slot = (begin - first_candidate).index_select(0, pair)
        slot += torch.arange(total, dtype=torch.int32, device=device)
        # Squared distances column by column: 1-D gathers are ~2x faster than gathers of [., 3] rows.
        origin = (local[first_atom:last_atom].unsqueeze(1) - combo_vectors.unsqueeze(0)).reshape(-1, 3).t()
        r2 = torch.zeros(total, dtype=torch.float32, device=device)
        for c in range(3):
            delta = ext_columns[c].index_select(0, slot) - origin[c].contiguous().index_select(0, pair)
            r2.addcmul_(delta, delta)
        candidate = (r2 < outer * outer).nonzero().squeeze(1)
        pair = pair.index_select(0, candidate)
        slot = slot.index_select(0, candidate)
        r2 = r2.index_select(0, candidate)
        keep = torch.ones_like(r2, dtype=torch.bool)
        # (i, i, 0) has a distance of exactly zero (the same float32 numbers subtracted).
        zero = (r2 == 0.0).nonzero().squeeze(1)
        if zero.shape[0] > 0:
            i, j, shifts = _edges(
                pair[zero],
                slot[zero],
                first_atom,
                k_combos,
                images,
                ext_atom,
                ext_image,
                order,
                offsets_long,
                unwrapped,
            )
            keep[zero] = (i != j) | (shifts != 0).any(1)
        # Decide the pairs near the cutoff from the positions as given, in their own dtype.
        near = (r2 >= inner * inner).nonzero().squeeze(1)
        if near.shape[0] > 0:
            i, j, shifts = _edges(
                pair[near],
                slot[near],
                first_atom,
                k_combos,
                images,
                ext_atom,
                ext_image,
                order,
                offsets_long,
                unwrapped,
            )
            exact = positions[j] - positions[i] + torch.mm(shifts.to(dtype), cell_d)
            keep[near] = keep[near] & ((exact * exact).sum(1) < cutoff2)
        kept = keep.nonzero().squeeze(1)
        i, j, shifts = _edges(
            pair.index_select(0, kept),
            slot.index_select(0, kept),
            first_atom,
            k_combos,
            images,
            ext_atom,
            ext_image,
            order,
            offsets_long,
            unwrapped,
        )
        edges.append(torch.stack([i, j]))
        all_shifts.append(shifts)
    if len(edges) == 0:
        no_edges = torch.zeros((2, 0), dtype=torch.long, device=device)
        return no_edges, torch.zeros((0, 3), dtype=torch.long, device=device)
    return torch.cat(edges, dim=1), torch.cat(all_shifts)
