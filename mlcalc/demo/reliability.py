"""HIP-NN's own reliability signal on the demonstration's structures: non-hierarchicality (Philip, Zhou &
Nebgen, arXiv:2211.07181)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from ase import Atoms

from mlcalc.models.hipnn import structure_non_hierarchicality
from mlcalc.potential import Potential

#: Non-hierarchicality above which a structure is flagged in the report: about twice the largest value on
#: the demo potential's held-out test structures (2.1e-5) and along its 100 ps MD runs (2.3e-5), both
#: butane (training/data/validation.json). It flags structures unlike the training data; it does not
#: catch every wrong prediction (see the model card).
FLAG_ABOVE = 5e-5


def non_hierarchicality(potential: Potential, structures: Sequence[Atoms]) -> np.ndarray:
    """R = Σ_{n≥1} (E^n)² / Σ_n (E^n)² of each structure (dimensionless, 0 = perfectly hierarchical)."""
    return np.array([structure_non_hierarchicality(potential, atoms) for atoms in structures])
