"""O(N) cell-list neighbour search in TorchScript, for structures too large for the O(N^2) paths.

Written by hand (not a call to vesin or matscipy) because it is compiled into every exported file:
TorchScript cannot call a C++ or Python library at run time, and every engine (ASE, OpenMM's C++
TorchForce, CUDA) must build exactly the same graph from the file alone.

Method, for one structure (positions in any unit, ``cutoff`` in the same unit):

1. Fractional coordinates in the *completed* cell (:func:`mlcalc.graph.complete_cell`), wrapped into
   [0, 1) along periodic directions; open directions use the atoms' bounding box.
2. Bins: the longest direction is the "row direction", cut into slabs at least ``cutoff /
   row_divisions`` wide (perpendicular width, fine: cutoff/8); the two others into slabs at least
   ``cutoff / divisions`` wide (cutoff/2). A neighbour lies at most ``reach_k = ceil(cutoff / slab
   width)`` bins away; cells narrower than the cutoff get one bin and a reach of several images.
   Atoms are sorted by bin with ``argsort`` (no padded bins).
3. Rows: the bins of one row are consecutive in sorted order; each row is extended at both ends by
   ``reach + 1`` bins of its periodic images (a slot table of atom index and image), so any run of
   bins is one contiguous range of slots. Each atom searches the rows around it (25 for bins of
   cutoff/2), skipping those farther than the cutoff; along each row it searches only the bins
   within ``sqrt(cutoff² - d²)`` of it (d: its perpendicular distance to the row; for cells with
   orthogonal vectors, else the whole reach), so the searched volume follows the cutoff sphere:
   ~2 candidates per neighbour instead of ~4 for a box of bins. The ranges are expanded exactly with
   ``repeat_interleave`` and ``cumsum`` offsets, in chunks of atoms that bound the working memory.
4. Distances: a float32 pre-filter on coordinates relative to each atom's row (small numbers, so
   float32 keeps ~1e-7 relative precision); only candidates within a narrow band around the cutoff
   are decided again in the input dtype from the original positions and the integer shift.

Centre atoms are taken in their original order and each one's neighbours are generated together,
so the full list (i->j and j->i) comes out sorted by ``i`` without a sort of the edges (a sort of
5M edges costs more than the whole search on a CPU; taking centres in bin order for cache locality and
moving each centre's block into place afterwards was measured slower too).
"""

from __future__ import annotations

import math
from typing import List, Tuple

import torch
from torch import Tensor

#: Slabs per cutoff length across rows: bins of cutoff/2 test ~40% fewer candidates than bins of one cutoff.
DIVISIONS = 2
#: Slabs per cutoff length along rows: fine, so that each row's range follows the cutoff sphere closely.
ROW_DIVISIONS = 8
#: Bins allowed per atom (sparse systems, huge open bounding boxes): keeps memory O(N).
BINS_PER_ATOM = 8
#: float32 round-off allowance of the pre-filter, in units of float32 epsilon times coordinate size.
PREFILTER_ULPS = 16.0


def _bin_grid(
    frac: Tensor, pbc: List[bool], widths: List[float], cutoff: float, divisions: int, row_divisions: int, max_bins: int
) -> Tuple[List[float], List[float], List[int], List[int], int]:
    """Per direction: fractional ``start`` and ``span`` of the binned region, bin counts and reach,
    and the row direction (the longest; its bins are ``row_divisions`` per cutoff, the others'
    ``divisions``).

    Periodic directions span [0, 1); open directions the bounding box of ``frac``.
    """
    low: List[float] = frac.min(dim=0)[0].tolist()
    high: List[float] = frac.max(dim=0)[0].tolist()
    start: List[float] = []
    span: List[float] = []
    extent: List[float] = []
    for k in range(3):
        if pbc[k]:
            start.append(0.0)
            span.append(1.0)
        else:
            start.append(low[k])
            span.append(high[k] - low[k])
        extent.append(span[k] * widths[k])
    row = 0
    for k in range(1, 3):
        if extent[k] > extent[row]:
            row = k
    bins: List[int] = []
    for k in range(3):
        per_cutoff = row_divisions if k == row else divisions
        bins.append(max(1, int(extent[k] * per_cutoff / (cutoff * (1.0 + 1e-9)))))
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
    return start, span, bins, reach, row


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
    pair_shift: List[Tensor],
    slot_shift: List[Tensor],
    ext_atom: Tensor,
) -> Tuple[Tensor, Tensor, Tensor]:
    """Centre ``i``, neighbour ``j`` and integer shift [E, 3] (int64) of candidates given by their
    (centre atom, neighbour row) index ``pair`` and extended-row ``slot``: the shift is the row's
    part (images across rows, the centre's wrapping) plus the slot's (image along the row, the
    neighbour's wrapping), given column by column (1-D gathers: several times faster than of rows of 3)."""
    i = torch.div(pair, k_combos, rounding_mode="floor").to(torch.long) + first_atom
    j = ext_atom.index_select(0, slot)
    shifts = torch.empty((pair.shape[0], 3), dtype=torch.long, device=pair.device)
    for c in range(3):
        torch.add(pair_shift[c].index_select(0, pair), slot_shift[c].index_select(0, slot), out=shifts[:, c])
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
    row_divisions: int = ROW_DIVISIONS,
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
        divisions: bins per cutoff length across rows.
        row_divisions: bins per cutoff length along rows.
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
    start, span, bins, reach, row = _bin_grid(
        frac, pbc, widths, cutoff, divisions, row_divisions, bins_per_atom * n + 64
    )
    order: List[int] = []
    for k in range(3):
        if k != row:
            order.append(k)
    order.append(row)
    start_t = torch.tensor(start, dtype=torch.float64, device=device)
    # (A flat open direction has one bin; any width avoids 0/0 in its bin coordinate.)
    width_t = torch.tensor(
        [span[k] / bins[k] if span[k] > 0 else 1.0 for k in range(3)], dtype=torch.float64, device=device
    )
    nb_t = torch.tensor(bins, dtype=torch.long, device=device)
    bin_coordinate = (frac - start_t) / width_t  # continuous bin index along each direction
    cell_bin = torch.minimum(torch.clamp(torch.floor(bin_coordinate).to(torch.long), min=0), nb_t - 1)
    inside = bin_coordinate - cell_bin.to(torch.float64)  # position inside the bin, in bin widths
    bin_length = [span[k] * widths[k] / bins[k] for k in range(3)]  # perpendicular bin widths

    # Sort atoms by bin; counts[b] atoms in bin b (rows of nb_row bins along the row direction).
    nb_row = bins[row]
    n_rows = bins[order[0]] * bins[order[1]]
    key = (cell_bin[:, order[0]] * bins[order[1]] + cell_bin[:, order[1]]) * nb_row + cell_bin[:, row]
    perm = torch.argsort(key, stable=True)
    counts = torch.bincount(key, minlength=n_rows * nb_row)
    offsets_long = offsets.to(torch.long)

    # Coordinates relative to the origin of each atom's row (bins 0.. along the row direction).
    row_frac = start_t + cell_bin.to(torch.float64) * width_t
    row_frac[:, row] = start[row]
    local64 = torch.mm(frac - row_frac, cell)
    local = local64.to(torch.float32)
    reach_row = reach[row]
    # One bin more than the reach: the search below reaches cutoff + the float32 tolerance.
    margin = reach_row + 1 if pbc[row] else 0
    row_vector = cell[row].to(torch.float32)
    ext_cum, ext_atom, ext_image = _extended_rows(counts, perm, n_rows, nb_row, margin)
    ext_local = local.index_select(0, ext_atom) + ext_image.to(torch.float32).unsqueeze(1) * row_vector
    # Integer shift of each slot: its image along the row, less the lattice vector that wrapped its atom.
    slot_shift = [-offsets_long[:, c].index_select(0, ext_atom) for c in range(3)]
    slot_shift[row] += ext_image
    ext_columns = [ext_local[:, c].contiguous() for c in range(3)]
    size = float(local64.abs().max()) + float(torch.linalg.norm(row_vector)) * (margin // nb_row + 1) + cutoff
    tolerance = prefilter_ulps * 1.2e-7 * size
    inner = max(cutoff - tolerance, 0.0)
    outer = cutoff + tolerance
    # With mutually orthogonal cell vectors the perpendicular offsets along the three directions are
    # Cartesian components: a row at distance d from an atom is searched over sqrt(outer² - d²) only.
    gram = torch.mm(cell, cell.t())
    off_diagonal = float((gram - torch.diag(torch.diagonal(gram))).abs().max())
    orthogonal = off_diagonal <= 1e-12 * float(torch.diagonal(gram).max())

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
    kept_pairs: List[Tensor] = []
    kept_slots: List[Tensor] = []
    chunk_pair_shifts: List[List[Tensor]] = []
    chunk_first_atoms: List[int] = []
    for first_atom in range(0, n, atoms_per_chunk):
        last_atom = min(n, first_atom + atoms_per_chunk)
        m = last_atom - first_atom
        centre_bin = cell_bin[first_atom:last_atom]  # [m, 3]
        # Neighbour rows in the two other directions: wrap periodic ones, drop open ones outside
        # and those farther than the cutoff (gap: perpendicular distance from the atom to the row).
        valid = torch.ones((m, k_combos), dtype=torch.bool, device=device)
        gap2 = torch.zeros((m, k_combos), dtype=torch.float64, device=device)
        target_rows: List[Tensor] = []
        # Integer shift of each (centre, row) pair: the row's images, plus the centre's wrapping vector.
        pair_shift = [offsets_long[first_atom:last_atom, c].unsqueeze(1).expand(m, k_combos) for c in range(3)]
        for a in range(2):
            d = order[a]
            offset = combos[:, a].unsqueeze(0).to(torch.float64)  # [1, K]
            target = centre_bin[:, d].unsqueeze(1) + combos[:, a].unsqueeze(0)  # [m, K]
            image = torch.div(target, bins[d], rounding_mode="floor")
            if not pbc[d]:
                valid = valid & (image == 0)
            target_rows.append(target - image * bins[d])
            pair_shift[d] = pair_shift[d] + image
            u = inside[first_atom:last_atom, d].unsqueeze(1)
            gap = torch.where(offset > 0, offset - u, torch.clamp(u - offset - 1.0, min=0.0))
            gap = torch.clamp(gap * bin_length[d] - tolerance, min=0.0)
            gap2 = gap2 + gap * gap if orthogonal else torch.maximum(gap2, gap * gap)
        valid = valid & (gap2 < outer * outer)
        # The bins of that row within reach: one range of the extended row.
        if bin_length[row] <= 0.0:  # all atoms at one coordinate along an open row: one bin
            half = torch.zeros_like(gap2)
        elif orthogonal:
            half = torch.sqrt(torch.clamp(outer * outer - gap2, min=0.0)) / bin_length[row]
        else:
            half = torch.full_like(gap2, outer / bin_length[row])
        centre_row = bin_coordinate[first_atom:last_atom, row].unsqueeze(1)
        # Clamped alike, so that low <= high stays true.
        low = torch.clamp(torch.floor(centre_row - half).to(torch.long), -margin, nb_row - 1 + margin) + margin
        high = torch.clamp(torch.floor(centre_row + half).to(torch.long), -margin, nb_row - 1 + margin) + margin
        row_base = (target_rows[0] * bins[order[1]] + target_rows[1]) * ext_per_row
        pair_shift = [column.reshape(-1) for column in pair_shift]  # [m * K] each
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
        # One mask over all candidates, compacted once (compacting the pre-filtered candidates first and
        # the kept ones after cost ~10% more at 100k atoms).
        within = r2 < outer * outer
        # Decided apart (few): (i, i, 0), whose distance is exactly zero (the same float32 numbers
        # subtracted), and the pairs near the cutoff, from the positions as given, in their own dtype.
        special = ((r2 >= inner * inner) & within) | (r2 == 0.0)
        rare = special.nonzero().squeeze(1)
        if rare.shape[0] > 0:
            i, j, rare_shifts = _edges(pair[rare], slot[rare], first_atom, k_combos, pair_shift, slot_shift, ext_atom)
            rare_r2 = r2[rare]
            exact = positions[j] - positions[i] + torch.mm(rare_shifts.to(dtype), cell_d)
            not_self = (rare_r2 != 0.0) | (i != j) | (rare_shifts != 0).any(1)
            within[rare] = not_self & ((rare_r2 < inner * inner) | ((exact * exact).sum(1) < cutoff2))
        kept = within.nonzero().squeeze(1)
        # Kept as int32 (pair, slot) until the end: 8 bytes per edge instead of 40 for (i, j, shift).
        kept_pairs.append(pair.index_select(0, kept))
        kept_slots.append(slot.index_select(0, kept))
        chunk_pair_shifts.append(pair_shift)
        chunk_first_atoms.append(first_atom)
    n_edges = 0
    for pairs in kept_pairs:
        n_edges += pairs.shape[0]
    # Each chunk's edges are written once, straight into the outputs: per-chunk edge tensors joined by
    # a cat write every edge twice, and fresh memory costs a page fault per 4 kB on its first write.
    edge_index = torch.empty((2, n_edges), dtype=torch.long, device=device)
    shifts = torch.empty((n_edges, 3), dtype=torch.long, device=device)
    written = 0
    for c in range(len(kept_pairs)):
        pairs = kept_pairs[c]
        slots = kept_slots[c]
        stop = written + pairs.shape[0]
        edge_index[0, written:stop].copy_(torch.div(pairs, k_combos, rounding_mode="floor") + chunk_first_atoms[c])
        # the aten op, not torch.index_select: torch_geometric (which SevenNet imports) replaces that Python
        # function with its own, which TorchScript then fails to compile
        torch.ops.aten.index_select(ext_atom, 0, slots, out=edge_index[1, written:stop])
        for d in range(3):
            torch.add(
                chunk_pair_shifts[c][d].index_select(0, pairs),
                slot_shift[d].index_select(0, slots),
                out=shifts[written:stop, d],
            )
        written = stop
    return edge_index, shifts
