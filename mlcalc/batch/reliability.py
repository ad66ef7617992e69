"""Uncertainty of a task's barrier where the potential gives one, and HIP-NN's reliability signal.

- **Uncertainty**: a potential whose model returns a per-structure energy uncertainty (an output named
  in :data:`UNCERTAINTY_OUTPUTS`, shape [B], in the model's energy unit: an ensemble's spread, say)
  gives the barrier's as √(σ_top² + σ_ref²) (eV and kcal/mol), σ of the highest image and of the
  reference (the lowest point of a scan, the initial structure of a path or NEB), taken as independent;
  a committee file (``energy_committee`` [B, M]) gives the standard deviation of its members' barriers.
- **Non-hierarchicality** (HIP-NN files such as the demo potential; Philip, Zhou & Nebgen,
  arXiv:2211.07181): the largest value along the task's structures, dimensionless; the demo flags values above
  :data:`mlcalc.demo.reliability.FLAG_ABOVE`. It flags structures unlike the training data, it is not
  an error bar.

Potentials with neither output get ``None``: no uncertainty is invented.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
import torch
from ase import Atoms

from mlcalc.potential import Potential
from mlcalc.units import EV_TO_KCAL_MOL

#: Model outputs read as a per-structure energy uncertainty (standard deviation), first found wins.
UNCERTAINTY_OUTPUTS = ("energy_uncertainty", "energy_std")
#: A committee's per-structure member energies [B, M] (mlcalc.contract's committee outputs): where given,
#: the barrier's uncertainty is the standard deviation of the members' barriers instead.
COMMITTEE_OUTPUT = "energy_committee"


def reliability(potential: Potential, images: Sequence[Atoms], reference: Optional[int]) -> dict:
    """``barrier_uncertainty_eV``/``_kcal_mol`` (``None`` when the potential gives no uncertainty or
    there is no barrier, ``reference`` None) and ``non_hierarchicality_max`` (``None`` for non-HIP-NN
    potentials) over ``images``, each holding its energy (eV)."""
    from mlcalc.models.hipnn import non_hierarchicality

    sigmas: list[float] = []
    members: list[np.ndarray] = []  # a committee's member energies per image (eV)
    ratios: list[float] = []
    for atoms in images:
        out = potential.model_outputs(atoms)
        if COMMITTEE_OUTPUT in out:
            members.append(out[COMMITTEE_OUTPUT].reshape(-1).cpu().numpy() * potential.energy_unit_in_ev)
        key = next((k for k in UNCERTAINTY_OUTPUTS if k in out and out[k].numel() == 1), None)
        if key is not None:
            sigmas.append(float(out[key].reshape(())) * potential.energy_unit_in_ev)
        if "hierarchical_energies" in out:
            terms = out["hierarchical_energies"]
            batch = torch.zeros(terms.shape[0], dtype=torch.long, device=terms.device)
            ratios.append(float(non_hierarchicality(terms, batch, 1)[0]))
    result: dict = {
        "barrier_uncertainty_eV": None,
        "barrier_uncertainty_kcal_mol": None,
        "non_hierarchicality_max": max(ratios) if len(ratios) == len(images) and ratios else None,
    }
    if reference is not None and images and (len(members) == len(images) or len(sigmas) == len(images)):
        energies = [atoms.get_potential_energy() for atoms in images]
        top = int(np.argmax(energies))
        if len(members) == len(images):  # the members' own barriers: correlated errors cancel
            sigma = float(np.std(members[top] - members[reference]))
        else:
            sigma = math.hypot(sigmas[top], sigmas[reference])
        result.update(barrier_uncertainty_eV=sigma, barrier_uncertainty_kcal_mol=sigma * EV_TO_KCAL_MOL)
    return result
