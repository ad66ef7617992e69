"""Fixed internal coordinates for ASE optimisers, without ``FixInternals``' global projection.

``ase.constraints.FixInternals.adjust_forces`` projects out of the forces not only the gradients of the
fixed coordinates but also the net force and the rigid-body torque of the whole ``Atoms``. For an
isolated molecule those are zero anyway; in a periodic box of solvent they are not, and removing them
changes the force on every solvent atom and puts spurious forces on the constrained molecule (see
``tests/test_workflows_constraints.py``). :class:`FixInternalCoordinates` keeps ASE's position
correction (``adjust_positions``) and replaces ``adjust_forces`` by the projection a constrained
minimisation needs: remove from the forces on the constrained atoms their components along the
constraint gradients, and touch nothing else. The constraint gradients are themselves free of
translation and rotation, so for an isolated molecule the result is the same.

The same projection, written on plain arrays, gives the constrained ``fmax`` both back-ends report.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from ase import Atoms
from ase.constraints import FixAtoms, FixInternals

from mlcalc.workflows.errors import ConstraintNotHeldError, InternalCoordinateError
from mlcalc.workflows.internal import Angle, Dihedral, Distance, InternalCoordinate, jacobian


class FixInternalCoordinates(FixInternals):
    """``FixInternals`` for fixed distances, angles and dihedrals whose ``adjust_forces`` leaves the forces
    on unconstrained atoms untouched (see the module docstring). For optimisation, not for MD.

    Args:
        coordinates: :class:`~mlcalc.workflows.internal.Distance`, ``Angle`` and ``Dihedral`` objects
            with their targets set (Å, degrees).
        mic: use the minimum image (set it for periodic cells).
        epsilon: convergence of ASE's position correction (Å and degrees; 1e-7° = 1.7e-9 rad).
    """

    def __init__(self, coordinates: Sequence[InternalCoordinate], mic: bool = False, epsilon: float = 1e-7):
        missing = [c.name for c in coordinates if c.target is None]
        if missing:
            raise InternalCoordinateError(
                f"FixInternalCoordinates needs targets; {', '.join(missing)} has none: give each a target=, or take "
                "the current values with mlcalc.workflows.internal.resolve_targets(atoms, coordinates)"
            )
        super().__init__(
            bonds=[[c.target, list(c.indices)] for c in coordinates if isinstance(c, Distance)],
            angles_deg=[[c.target, list(c.indices)] for c in coordinates if isinstance(c, Angle)],
            dihedrals_deg=[[c.target, list(c.indices)] for c in coordinates if isinstance(c, Dihedral)],
            mic=mic,
            epsilon=epsilon,
        )
        self.coordinates = list(coordinates)

    def adjust_positions(self, atoms: Atoms, new: np.ndarray) -> None:
        try:
            super().adjust_positions(atoms, new)
        except ValueError as exc:  # ASE's bare "FixInternals.adjust_positions did not converge."
            held = ", ".join(c.at(c.required_target) for c in self.coordinates)
            raise ConstraintNotHeldError(
                f"the constraints ({held}) cannot be met near the new positions (ASE: {exc}): the step went "
                "where they have no nearby solution, usually an angle of a held dihedral near 180°, where the "
                "dihedral is undefined, or targets that contradict each other; approach the targets in "
                "smaller steps (a finer scan grid, more path images)"
            ) from None

    def adjust_forces(self, atoms: Atoms, forces: np.ndarray) -> None:
        self.initialize(atoms)
        positions = atoms.positions
        rows = []
        for constraint in self.constraints:
            constraint.setup_jacobian(positions)
            rows.append(constraint.jacobian.copy())
            constraint.adjust_forces(positions, forces)  # only records projected_forces (ClimbFixInternals)
        project_out(forces, np.reshape(rows, (len(rows), -1, 3)))

    def __repr__(self) -> str:
        return "FixInternalCoordinates(" + ", ".join(repr(c) for c in self.constraints) + ")"


def project_out(forces: np.ndarray, gradients: np.ndarray) -> np.ndarray:
    """Remove from ``forces`` [N, 3], in place, their components along the constraint ``gradients``
    [M, N, 3]; only the atoms the gradients involve are changed (the rest keep their exact bits)."""
    if len(gradients) == 0:
        return forces
    involved = np.flatnonzero(np.any(gradients != 0.0, axis=(0, 2)))
    block = gradients[:, involved, :].reshape(len(gradients), -1)
    basis, _ = np.linalg.qr(block.T)  # orthonormal basis of the constraint gradients, [3n, M]
    local = forces[involved].reshape(-1)
    forces[involved] = (local - basis @ (basis.T @ local)).reshape(-1, 3)
    return forces


def constrained_forces(
    atoms: Atoms, forces: np.ndarray, coordinates: Sequence[InternalCoordinate], fixed: np.ndarray
) -> np.ndarray:
    """Forces [N, 3] with fixed atoms zeroed and the constraint gradient components removed."""
    projected = np.array(forces, dtype=float, copy=True)
    projected[fixed] = 0.0
    return project_out(projected, jacobian(atoms, coordinates))


def max_force(forces: np.ndarray) -> float:
    """Largest per-atom force norm (eV/Å)."""
    return float(np.sqrt((np.asarray(forces) ** 2).sum(axis=1)).max()) if len(forces) else 0.0


def fixed_atoms(atoms: Atoms, coordinates: Sequence[InternalCoordinate]) -> np.ndarray:
    """Boolean mask of atoms held by ``FixAtoms``; refuses other ASE constraints and fixed atoms that
    are part of a constrained coordinate."""
    fixed = np.zeros(len(atoms), dtype=bool)
    for constraint in atoms.constraints:
        if not isinstance(constraint, FixAtoms):
            raise InternalCoordinateError(
                f"the structure carries a {type(constraint).__name__} constraint; the workflows support only "
                "FixAtoms (and their own internal-coordinate constraints): remove it with atoms.set_constraint()"
            )
        fixed[constraint.index] = True
    for coordinate in coordinates:
        both = [i for i in coordinate.indices if fixed[i]]
        if both:
            raise InternalCoordinateError(
                f"atom {both[0]} is held by FixAtoms and is part of the constrained {coordinate.name}; "
                "release it or constrain a coordinate of free atoms"
            )
    return fixed
