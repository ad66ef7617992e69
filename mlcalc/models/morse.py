"""Morse pair potential with ASE's smooth cutoff (Å, eV) as an mlcalc model."""

from typing import Dict, Optional, Sequence

import torch
from torch import Tensor

from mlcalc.models.pairwise import ALL_ELEMENTS, pair_energies_to_atoms


class Morse(torch.nn.Module):
    """V(r) = ε[exp(−2ρ₀(r/r₀ − 1)) − 2 exp(−ρ₀(r/r₀ − 1))] · f_cut(r), with the parameters,
    defaults and quintic smooth cutoff of ASE's ``MorsePotential``: f_cut goes from 1 at
    ``rcut1·r0`` to 0 at ``rcut2·r0`` (the cutoff of the exported file).

    Args:
        epsilon: well depth ε in eV.
        rho0: dimensionless exponential prefactor ρ₀.
        r0: equilibrium distance in Å.
        rcut1, rcut2: start and end of the smooth cutoff, in units of ``r0``.
        species: atomic numbers the exported file accepts (default: every element).
    """

    epsilon: Tensor
    rho0: Tensor
    r0: Tensor
    inner: Tensor
    outer: Tensor

    def __init__(
        self,
        epsilon: float = 1.0,
        rho0: float = 6.0,
        r0: float = 1.0,
        rcut1: float = 1.9,
        rcut2: float = 2.7,
        species: Optional[Sequence[int]] = None,
    ):
        super().__init__()
        if not (r0 > 0 and 0 < rcut1 < rcut2):
            raise ValueError(f"need r0 > 0 and 0 < rcut1 < rcut2, got r0={r0}, rcut1={rcut1}, rcut2={rcut2}")
        for name, value in (("epsilon", epsilon), ("rho0", rho0), ("r0", r0)):
            self.register_buffer(name, torch.tensor(float(value), dtype=torch.float64))
        self.register_buffer("inner", torch.tensor(rcut1 * r0, dtype=torch.float64))
        self.register_buffer("outer", torch.tensor(rcut2 * r0, dtype=torch.float64))
        self.mlcalc_metadata = {
            "name": "morse",
            "cutoff": rcut2 * r0,
            "species": list(species) if species is not None else ALL_ELEMENTS,
            "length_unit": "angstrom",
            "energy_unit": "eV",
            "description": (
                f"Morse pair potential, epsilon={epsilon} eV, rho0={rho0}, r0={r0} Å, "
                f"smooth cutoff from {rcut1 * r0} to {rcut2 * r0} Å (ASE MorsePotential convention)"
            ),
            "references": ["P. M. Morse, Phys. Rev. 34, 57 (1929)"],
        }

    def forward(self, inputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        r = torch.linalg.norm(inputs["edge_vectors"], dim=-1)
        expf = torch.exp(self.rho0 * (1.0 - r / self.r0))
        s = 1.0 - (r - self.inner) / (self.outer - self.inner)
        smooth = torch.where(s >= 1.0, torch.ones_like(s), s * s * s * (10.0 + s * (-15.0 + 6.0 * s)))
        smooth = torch.where(s > 0.0, smooth, torch.zeros_like(s))
        pair = self.epsilon * expf * (expf - 2.0) * smooth
        return {"energies": pair_energies_to_atoms(pair, inputs)}
