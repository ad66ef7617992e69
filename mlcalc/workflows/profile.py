"""What a band of images (an NEB, a dihedral-driven path) reports about its energy profile."""

from __future__ import annotations

from typing import Optional

import numpy as np
from ase import Atoms

from mlcalc.workflows.output import energy_uncertainty


class EnergyProfile:
    """Mixin for results holding ``images`` (initial structure first), each with its energy (eV)."""

    images: list[Atoms]

    @property
    def energies(self) -> np.ndarray:
        """Energy of each image, eV."""
        return np.array([image.get_potential_energy() for image in self.images])

    @property
    def uncertainties(self) -> Optional[np.ndarray]:
        """A committee's energy spread at each image, eV; ``None`` unless every image has one."""
        return uncertainties_of(self.images)

    def add_uncertainty(self, rows: list[dict]) -> list[dict]:
        """``rows`` (one per image) with ``energy_uncertainty_eV`` when the images have a spread."""
        return with_uncertainty(rows, self.uncertainties)

    @property
    def barrier(self) -> float:
        """Highest image minus the initial structure, eV (for a climbing-image NEB: the saddle)."""
        energies = self.energies
        return float(energies.max() - energies[0])


def uncertainties_of(structures: list[Atoms]) -> Optional[np.ndarray]:
    """The committee spread (eV) recorded with each structure, or ``None`` unless all have one."""
    values = [energy_uncertainty(atoms) for atoms in structures]
    return None if not values or any(v is None for v in values) else np.array(values, dtype=float)


def with_uncertainty(rows: list[dict], spread: Optional[np.ndarray]) -> list[dict]:
    """``rows`` (one per structure) with an ``energy_uncertainty_eV`` column when ``spread`` (eV) is given."""
    if spread is not None:
        for row, sigma in zip(rows, spread):
            row["energy_uncertainty_eV"] = float(sigma)
    return rows
