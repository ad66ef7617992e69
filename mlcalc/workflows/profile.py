"""What a band of images (an NEB, a dihedral-driven path) reports about its energy profile."""

from __future__ import annotations

import numpy as np
from ase import Atoms


class EnergyProfile:
    """Mixin for results holding ``images`` (initial structure first), each with its energy (eV)."""

    images: list[Atoms]

    @property
    def energies(self) -> np.ndarray:
        """Energy of each image, eV."""
        return np.array([image.get_potential_energy() for image in self.images])

    @property
    def barrier(self) -> float:
        """Highest image minus the initial structure, eV (for a climbing-image NEB: the saddle)."""
        energies = self.energies
        return float(energies.max() - energies[0])
