"""Helpers shared by the pair potentials."""

from __future__ import annotations

from typing import Dict

import torch
from torch import Tensor

#: Atomic numbers 1..118: a pair potential with one parameter set accepts every element.
ALL_ELEMENTS = list(range(1, 119))


def pair_energies_to_atoms(pair: Tensor, inputs: Dict[str, Tensor]) -> Tensor:
    """Per-atom energies [N] from energies of the full (both-ways) edge list: half of each
    pair energy goes to its centre atom, as ASE's pair calculators split them."""
    n = inputs["positions"].shape[0]
    centre = inputs["edge_index"][0]
    return torch.zeros(n, dtype=pair.dtype, device=pair.device).index_add(0, centre, 0.5 * pair)
