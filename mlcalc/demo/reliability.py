"""Reliability signals on the demonstration's structures: HIP-NN's non-hierarchicality (Philip, Zhou &
Nebgen, arXiv:2211.07181) and, for a committee file (the bundled demo is one), the members' spread."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from ase import Atoms

from mlcalc.models.hipnn import structure_non_hierarchicality
from mlcalc.potential import Potential
from mlcalc.units import EV_TO_KCAL_MOL

#: Non-hierarchicality above which a structure is flagged in the report: about twice the largest value on
#: the demo potential's held-out test structures (2.1e-5) and along its 100 ps MD runs (2.3e-5), both
#: butane (training/data/validation.json). It flags structures unlike the training data; it does not
#: catch every wrong prediction (see the model card).
FLAG_ABOVE = 5e-5


def non_hierarchicality(potential: Potential, structures: Sequence[Atoms]) -> np.ndarray:
    """R = Σ_{n≥1} (E^n)² / Σ_n (E^n)² of each structure (dimensionless, 0 = perfectly hierarchical)."""
    return np.array([structure_non_hierarchicality(potential, atoms) for atoms in structures])


def member_energies(potential: Potential, structures: Sequence[Atoms]) -> Optional[np.ndarray]:
    """Each committee member's energy of each structure [S, M] (eV); None for a single model."""
    if not potential.metadata.committee:
        return None
    results = potential.evaluate(list(structures), forces=False, stress=False)
    return np.array([result["energy_committee"] for result in results])


def relative_spread(potential: Potential, structures: Sequence[Atoms]) -> Optional[np.ndarray]:
    """Per structure, the committee's spread (standard deviation over members) of its energy relative to
    the first structure's, kcal/mol: the uncertainty of a profile's relative energies; None for a single
    model. Errors the members share cancel, as they do in the profile."""
    members = member_energies(potential, structures)
    if members is None:
        return None
    return (members - members[0]).std(axis=1) * EV_TO_KCAL_MOL
