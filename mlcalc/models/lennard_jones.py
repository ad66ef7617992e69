"""Lennard-Jones pair potential (Å, eV) as an mlcalc model."""

from typing import Dict, Optional, Sequence

import torch
from torch import Tensor

from mlcalc.models.pairwise import ALL_ELEMENTS, pair_energies_to_atoms


class LennardJones(torch.nn.Module):
    """u(r) = 4ε[(σ/r)¹² − (σ/r)⁶] for r < cutoff.

    Args:
        sigma: σ in Å.
        epsilon: ε in eV.
        cutoff: in Å (default 3σ, as ASE's ``LennardJones``).
        shift: ``True`` shifts each pair energy to zero at the cutoff, like ASE's
            ``LennardJones(rc=cutoff)``; ``False`` truncates it, like OpenMM's ``NonbondedForce``
            with ``CutoffPeriodic`` and no switching function or dispersion correction.
        species: atomic numbers the exported file accepts (default: every element).
    """

    sigma: Tensor
    epsilon: Tensor
    offset: Tensor

    def __init__(
        self,
        sigma: float = 1.0,
        epsilon: float = 1.0,
        cutoff: Optional[float] = None,
        shift: bool = True,
        species: Optional[Sequence[int]] = None,
    ):
        super().__init__()
        cutoff = 3.0 * sigma if cutoff is None else float(cutoff)
        if not (sigma > 0 and epsilon >= 0 and cutoff > 0):
            raise ValueError(f"need sigma > 0, epsilon >= 0 and cutoff > 0, got {sigma}, {epsilon}, {cutoff}")
        self.register_buffer("sigma", torch.tensor(float(sigma), dtype=torch.float64))
        self.register_buffer("epsilon", torch.tensor(float(epsilon), dtype=torch.float64))
        ratio6 = (sigma / cutoff) ** 6
        offset = 4.0 * epsilon * (ratio6 * ratio6 - ratio6) if shift else 0.0
        self.register_buffer("offset", torch.tensor(offset, dtype=torch.float64))
        self.mlcalc_metadata = {
            "name": "lennard-jones",
            "cutoff": cutoff,
            "species": list(species) if species is not None else ALL_ELEMENTS,
            "length_unit": "angstrom",
            "energy_unit": "eV",
            "description": (
                f"Lennard-Jones pair potential, sigma={sigma} Å, epsilon={epsilon} eV, "
                f"cutoff={cutoff} Å, {'shifted to zero' if shift else 'truncated'} at the cutoff"
            ),
            "references": ["J. E. Lennard-Jones, Proc. R. Soc. Lond. A 106, 463 (1924)"],
        }

    def forward(self, inputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        vectors = inputs["edge_vectors"]
        r2 = (vectors * vectors).sum(-1)
        c6 = (self.sigma * self.sigma / r2) ** 3
        pair = 4.0 * self.epsilon * (c6 * c6 - c6) - self.offset
        return {"energies": pair_energies_to_atoms(pair, inputs)}
