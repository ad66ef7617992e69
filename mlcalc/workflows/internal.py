"""Internal coordinates (distances, angles, dihedrals) with analytic Jacobians.

Atom indices are **0-based**, as everywhere in ASE and mlcalc: the first atom of a structure is 0, the
last N − 1. Angles and dihedrals are given and reported in degrees, distances in Å; internally (errors,
Jacobians) angles are in radians. In periodic cells every vector between two atoms is its minimum
image, so a molecule may be wrapped across the cell boundary.

Values and derivatives (rows of Wilson's B matrix) come from ``ase.geometry``, the functions ASE's own
``FixInternals`` uses, so the SciPy and ASE back-ends constrain exactly the same functions.

>>> Dihedral(0, 1, 2, 3, target=60.0)  # fix the dihedral 0-1-2-3 at 60°
>>> Distance(4, 5)                      # fix the 4-5 distance at its current value
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
from ase import Atoms
from ase.geometry import (
    conditional_find_mic,
    get_angles,
    get_angles_derivatives,
    get_dihedrals,
    get_dihedrals_derivatives,
    get_distances_derivatives,
)

from mlcalc.workflows.errors import InternalCoordinateError

#: An angle (or an inner angle of a dihedral) closer than this to 0° or 180° is treated as linear (degrees):
#: there the derivative of an angle, and the dihedral itself, are undefined.
LINEAR_TOLERANCE_DEG = 2.0


class InternalCoordinate:
    """A distance, angle or dihedral between atoms (0-based indices), optionally with a target value.

    ``target`` is in degrees (angles, dihedrals) or Å (distances); ``None`` means "keep the value the
    structure has when a workflow starts".
    """

    kind: str = ""
    unit: str = ""
    n_atoms: int = 0

    def __init__(self, *indices: int, target: Optional[float] = None):
        if len(indices) != self.n_atoms:
            raise InternalCoordinateError(f"a {self.kind} needs {self.n_atoms} atom indices, got {list(indices)}")
        checked = []
        for index in indices:
            try:
                whole = not isinstance(index, (bool, np.bool_)) and float(index).is_integer()
            except (TypeError, ValueError):  # None, "a", ...
                whole = False
            if not whole:
                raise InternalCoordinateError(
                    f"atom indices must be whole numbers, got {index!r} in {list(indices)}: give 0-based integer "
                    f"indices, e.g. {type(self).__name__}({', '.join(str(k) for k in range(self.n_atoms))})"
                )
            checked.append(int(index))
        if len(set(checked)) != len(checked):
            raise InternalCoordinateError(
                f"the {self.kind} {self._name(checked)} repeats an atom: a {self.kind} needs {self.n_atoms} "
                "different atoms"
            )
        if any(i < 0 for i in checked):
            raise InternalCoordinateError(
                f"atom indices are 0-based and cannot be negative, got {self.kind} {self._name(checked)}: the first "
                "atom is 0, the last N - 1"
            )
        if target is not None and not math.isfinite(float(target)):
            raise InternalCoordinateError(
                f"the target of the {self.kind} {self._name(checked)} is {target}: give a finite value, in "
                f"{'degrees' if self.unit == 'deg' else 'Å'}"
            )
        self.indices: tuple[int, ...] = tuple(checked)
        self.target: Optional[float] = None if target is None else float(target)

    @classmethod
    def _name(cls, indices: Sequence[int]) -> str:
        return "-".join(str(i) for i in indices)

    @property
    def name(self) -> str:
        """Label such as ``dihedral 0-1-2-3``."""
        return f"{self.kind} {self._name(self.indices)}"

    @property
    def symbol(self) -> str:
        """The unit as printed: ``°`` for angles and dihedrals, ``Å`` for distances."""
        return "°" if self.unit == "deg" else self.unit

    @property
    def axis_label(self) -> str:
        """Plot axis label such as ``dihedral 0-1-2-3 (°)``."""
        return f"{self.name} ({self.symbol})"

    def at(self, value: float) -> str:
        """Label with a value, such as ``dihedral 0-1-2-3 = 110°`` or ``distance 0-2 = 3 Å``."""
        return f"{self.name} = {value:g}" + (self.symbol if self.unit == "deg" else f" {self.symbol}")

    def __repr__(self) -> str:
        args = ", ".join(str(i) for i in self.indices)
        return f"{type(self).__name__}({args}" + ("" if self.target is None else f", target={self.target:g}") + ")"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.same_atoms(other) and self.target == other.target

    def __hash__(self) -> int:
        return hash((type(self).__name__, min(self.indices, self.indices[::-1]), self.target))

    def same_atoms(self, other: "InternalCoordinate") -> bool:
        """True when ``other`` is the same coordinate (read in either direction)."""
        return type(self) is type(other) and self.indices in (other.indices, other.indices[::-1])

    def with_target(self, target: Optional[float]) -> "InternalCoordinate":
        """A copy with another target (degrees or Å)."""
        return type(self)(*self.indices, target=target)

    # --- units -------------------------------------------------------------------------------------
    def to_internal(self, value: float) -> float:
        """Degrees → radians for angles; Å unchanged."""
        return math.radians(value) if self.unit == "deg" else float(value)

    def from_internal(self, value: float) -> float:
        """Radians → degrees for angles; Å unchanged."""
        return math.degrees(value) if self.unit == "deg" else float(value)

    # --- geometry ----------------------------------------------------------------------------------
    def value(self, atoms: Atoms) -> float:
        """Current value in degrees ([0, 360) for dihedrals, as ``Atoms.get_dihedral``) or Å."""
        return self.from_internal(self.internal_value(atoms))

    def internal_value(self, atoms: Atoms) -> float:
        """Current value in radians or Å."""
        raise NotImplementedError

    def difference(self, value: float, reference: float) -> float:
        """``value − reference`` in internal units (radians or Å); for dihedrals wrapped into [−π, π)."""
        return value - reference

    @property
    def required_target(self) -> float:
        """The target (degrees or Å); :class:`InternalCoordinateError` when there is none."""
        if self.target is None:
            raise InternalCoordinateError(f"{self.name} has no target value")
        return self.target

    def error(self, atoms: Atoms, target: Optional[float] = None) -> float:
        """Current value minus the target (radians or Å; wrapped for dihedrals)."""
        target = self.required_target if target is None else target
        return self.difference(self.internal_value(atoms), self.to_internal(target))

    def gradient(self, atoms: Atoms) -> np.ndarray:
        """∂q/∂r, shape [N, 3], in rad/Å (angles) or Å/Å (distances); zero except on its own atoms."""
        gradient = np.zeros((len(atoms), 3))
        gradient[list(self.indices)] = self._derivatives(atoms)
        return gradient

    def _derivatives(self, atoms: Atoms) -> np.ndarray:
        raise NotImplementedError

    def _vectors(self, atoms: Atoms) -> tuple[np.ndarray, ...]:
        """Bond vectors a0→a1, a1→a2, … each as a [1, 3] array (raw; the minimum image is applied by ASE)."""
        p = atoms.positions[list(self.indices)]
        return tuple((p[n + 1] - p[n])[None, :] for n in range(self.n_atoms - 1))

    def check(self, atoms: Atoms) -> None:
        """Raise :class:`InternalCoordinateError` when this coordinate is undefined for ``atoms``."""
        n = len(atoms)
        outside = [i for i in self.indices if i >= n]
        if outside:
            raise InternalCoordinateError(
                f"{self.name}: atom index {outside[0]} is out of range for a structure of {n} atoms; indices "
                f"are 0-based (the first atom is 0, the last {n - 1})"
            )
        self._check_geometry(atoms)

    def _check_geometry(self, atoms: Atoms) -> None:
        raise NotImplementedError


def mic_cell(atoms: Atoms) -> tuple[Optional[np.ndarray], Optional[np.ndarray]]:
    """``(cell, pbc)`` for ``ase.geometry`` when any direction is periodic, else ``(None, None)``."""
    if atoms.pbc.any():
        return atoms.cell.array, atoms.pbc
    return None, None


def _inner_angle(atoms: Atoms, a: int, b: int, c: int) -> float:
    """Angle a-b-c in degrees (minimum image)."""
    cell, pbc = mic_cell(atoms)
    p = atoms.positions
    return float(get_angles((p[a] - p[b])[None], (p[c] - p[b])[None], cell=cell, pbc=pbc)[0])


def _near_linear(angle_deg: float) -> bool:
    return angle_deg < LINEAR_TOLERANCE_DEG or angle_deg > 180.0 - LINEAR_TOLERANCE_DEG


class Distance(InternalCoordinate):
    """Distance between atoms i and j (Å)."""

    kind = "distance"
    unit = "Å"
    n_atoms = 2

    def internal_value(self, atoms: Atoms) -> float:
        cell, pbc = mic_cell(atoms)
        _, (length,) = conditional_find_mic(self._vectors(atoms), cell, pbc)
        return float(length[0])

    def _derivatives(self, atoms: Atoms) -> np.ndarray:
        cell, pbc = mic_cell(atoms)
        return get_distances_derivatives(self._vectors(atoms)[0], cell=cell, pbc=pbc)[0]

    def _check_geometry(self, atoms: Atoms) -> None:
        if self.internal_value(atoms) < 1e-6:
            raise InternalCoordinateError(
                f"{self.name}: the two atoms coincide; remove the duplicated atom from the structure, or choose "
                "two different atoms"
            )
        if self.target is not None and self.target <= 0:
            raise InternalCoordinateError(f"{self.name}: a target distance must be positive, got {self.target} Å")


class Angle(InternalCoordinate):
    """Angle i-j-k at atom j (degrees)."""

    kind = "angle"
    unit = "deg"
    n_atoms = 3

    def _arms(self, atoms: Atoms) -> tuple[np.ndarray, np.ndarray]:
        i, j, k = self.indices
        p = atoms.positions
        return (p[i] - p[j])[None], (p[k] - p[j])[None]

    def internal_value(self, atoms: Atoms) -> float:
        cell, pbc = mic_cell(atoms)
        return math.radians(float(get_angles(*self._arms(atoms), cell=cell, pbc=pbc)[0]))

    def _derivatives(self, atoms: Atoms) -> np.ndarray:
        cell, pbc = mic_cell(atoms)
        return np.radians(get_angles_derivatives(*self._arms(atoms), cell=cell, pbc=pbc)[0])

    def _check_geometry(self, atoms: Atoms) -> None:
        angle = self.value(atoms)
        if _near_linear(angle):
            raise InternalCoordinateError(
                f"{self.name} is {angle:.2f}°, within {LINEAR_TOLERANCE_DEG}° of linear: its derivative is singular "
                "there; constrain a distance instead (e.g. between the outer atoms)"
            )
        if self.target is not None and _near_linear(self.target):
            raise InternalCoordinateError(
                f"{self.name}: a target of {self.target}° is within {LINEAR_TOLERANCE_DEG}° of linear, where the "
                "angle's derivative is singular; constrain a distance between the outer atoms instead"
            )


class Dihedral(InternalCoordinate):
    """Dihedral (torsion) angle i-j-k-l about the j-k bond (degrees, ASE's sign convention)."""

    kind = "dihedral"
    unit = "deg"
    n_atoms = 4

    def internal_value(self, atoms: Atoms) -> float:
        cell, pbc = mic_cell(atoms)
        first, second, third = self._vectors(atoms)
        return math.radians(float(get_dihedrals(first, second, third, cell=cell, pbc=pbc)[0]))

    def difference(self, value: float, reference: float) -> float:
        return wrap(value - reference, 2 * math.pi)

    def _derivatives(self, atoms: Atoms) -> np.ndarray:
        cell, pbc = mic_cell(atoms)
        try:
            first, second, third = self._vectors(atoms)
            return np.radians(get_dihedrals_derivatives(first, second, third, cell=cell, pbc=pbc)[0])
        except ZeroDivisionError:
            raise InternalCoordinateError(f"{self.name} is undefined: three of its atoms are collinear") from None

    def _check_geometry(self, atoms: Atoms) -> None:
        i, j, k, l = self.indices  # noqa: E741
        for a, b, c in ((i, j, k), (j, k, l)):
            angle = _inner_angle(atoms, a, b, c)
            if _near_linear(angle):
                raise InternalCoordinateError(
                    f"{self.name} is undefined: atoms {a}-{b}-{c} are collinear (angle {angle:.2f}°, within "
                    f"{LINEAR_TOLERANCE_DEG}° of linear); choose a dihedral whose inner angles are bent"
                )


def wrap(angle: float, period: float = 360.0) -> float:
    """``angle`` wrapped into [−period/2, period/2)."""
    half = 0.5 * period
    return (angle + half) % period - half


def check_coordinates(atoms: Atoms, coordinates: Sequence[InternalCoordinate]) -> None:
    """Check each coordinate against ``atoms`` and refuse the same coordinate given twice."""
    for n, coordinate in enumerate(coordinates):
        if not isinstance(coordinate, InternalCoordinate):
            raise TypeError(
                f"expected Distance, Angle or Dihedral objects, got {coordinate!r}: wrap the atom indices, "
                "e.g. Dihedral(0, 1, 2, 3)"
            )
        coordinate.check(atoms)
        for other in coordinates[:n]:
            if coordinate.same_atoms(other):
                raise InternalCoordinateError(f"{coordinate.name} is given twice; give each coordinate once")


def resolve_targets(atoms: Atoms, coordinates: Sequence[InternalCoordinate]) -> list[InternalCoordinate]:
    """Copies whose ``target`` is set: coordinates without one keep their current value in ``atoms``."""
    return [c if c.target is not None else c.with_target(c.value(atoms)) for c in coordinates]


def jacobian(atoms: Atoms, coordinates: Sequence[InternalCoordinate]) -> np.ndarray:
    """Rows ∂q/∂r of every coordinate, shape [M, N, 3] (rad/Å or Å/Å)."""
    return np.array([c.gradient(atoms) for c in coordinates]).reshape(len(coordinates), len(atoms), 3)


def constraint_errors(atoms: Atoms, coordinates: Sequence[InternalCoordinate]) -> np.ndarray:
    """Current value minus target of every coordinate (radians or Å; dihedrals wrapped)."""
    return np.array([c.error(atoms) for c in coordinates], dtype=float)
