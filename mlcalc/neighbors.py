"""The graph builder of the exported files, callable on ``ase.Atoms`` (for inspection and tests)."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable

import numpy as np
import torch
from ase import Atoms

from mlcalc import torchscript
from mlcalc.errors import InvalidStructureError, script_error_message
from mlcalc.graph import CELL_LIST_MIN_ATOMS, MAX_IMAGES, PAIR_CHUNK, build_graph

METHODS = ("auto", "brute", "cell")


@lru_cache(maxsize=1)
def _scripted_build_graph() -> Callable:
    return torchscript.script(build_graph)


def neighbor_list(
    atoms: Atoms,
    cutoff: float,
    *,
    dtype: torch.dtype = torch.float64,
    device: str = "cpu",
    method: str = "auto",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(i, j, S)`` of every pair closer than ``cutoff`` (Å), as ``ase.neighborlist.neighbor_list("ijS")``
    returns them, computed by the TorchScript builder that every exported file carries.

    ``method``: ``"auto"`` (what the files do: brute force below ``CELL_LIST_MIN_ATOMS``, the cell list
    above), ``"brute"`` or ``"cell"``."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if not 0 < cutoff < math.inf:
        raise ValueError(f"cutoff must be a positive length in Å, got {cutoff!r}")
    positions = torch.as_tensor(atoms.positions, dtype=dtype, device=device)
    cell = torch.as_tensor(atoms.cell.array, dtype=dtype, device=device).unsqueeze(0)
    pbc = torch.as_tensor(atoms.pbc, device=device).unsqueeze(0)
    batch = torch.zeros(len(atoms), dtype=torch.long, device=device)
    try:
        edge_index, shifts = _scripted_build_graph()(
            positions, cell, pbc, batch, float(cutoff), PAIR_CHUNK, MAX_IMAGES, method, CELL_LIST_MIN_ATOMS
        )
    except torch.jit.Error as exc:  # the builder's checks of the cell, raised through TorchScript
        raise InvalidStructureError(script_error_message(exc)) from None
    return edge_index[0].cpu().numpy(), edge_index[1].cpu().numpy(), shifts.cpu().numpy()
