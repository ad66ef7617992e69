"""Internal coordinates: values and Jacobians against ASE and finite differences, rigid group moves,
and clear errors for bad indices."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule

from mlcalc.workflows.errors import InternalCoordinateError
from mlcalc.workflows.fragments import moving_group, set_coordinate
from mlcalc.workflows.internal import Angle, Dihedral, Distance, check_coordinates


def butane() -> Atoms:
    atoms = molecule("trans-butane")
    atoms.rattle(0.05, seed=3)  # no symmetry left
    return atoms


def wrapped_butane() -> Atoms:
    """Butane in a periodic box, straddling its boundary (atom positions wrapped into the cell)."""
    atoms = butane()
    atoms.cell = [7.0, 8.0, 9.0]
    atoms.pbc = True
    atoms.translate(-atoms.positions[1] - [0.3, 0.0, 0.0])  # C1 near the origin: the molecule crosses x=0
    atoms.wrap()
    return atoms


COORDINATES = [Distance(1, 2), Angle(0, 1, 2), Dihedral(0, 1, 2, 3), Dihedral(4, 0, 1, 2)]


@pytest.mark.parametrize("make", [butane, wrapped_butane])
def test_values_match_ase_and_gradients_match_finite_differences(make):
    atoms = make()
    mic = bool(atoms.pbc.any())
    reference = {
        "distance": lambda c: atoms.get_distance(*c.indices, mic=mic),
        "angle": lambda c: atoms.get_angle(*c.indices, mic=mic),
        "dihedral": lambda c: atoms.get_dihedral(*c.indices, mic=mic),
    }
    for coordinate in COORDINATES:
        assert coordinate.value(atoms) == pytest.approx(reference[coordinate.kind](coordinate), abs=1e-10)
        gradient = coordinate.gradient(atoms)
        numeric = np.zeros_like(gradient)
        h = 1e-5  # Å; central differences are exact to O(h²) ~ 1e-10 relative
        for i in coordinate.indices:
            for k in range(3):
                plus, minus = atoms.copy(), atoms.copy()
                plus.positions[i, k] += h
                minus.positions[i, k] -= h
                numeric[i, k] = coordinate.difference(
                    coordinate.internal_value(plus), coordinate.internal_value(minus)
                ) / (2 * h)
        np.testing.assert_allclose(gradient, numeric, atol=1e-8)


@pytest.mark.parametrize(
    "coordinate, value",
    [
        (Dihedral(0, 1, 2, 3), 65.0),
        (Dihedral(3, 2, 1, 0), -100.0),
        (Dihedral(4, 0, 1, 2), 100.0),
        (Angle(0, 1, 2), 125.0),
        (Angle(2, 1, 0), 100.0),
        (Distance(1, 2), 1.7),
        (Distance(2, 1), 1.4),
    ],
)
@pytest.mark.parametrize("make", [butane, wrapped_butane])
def test_set_coordinate_moves_one_side_rigidly(make, coordinate, value):
    atoms = make()
    before = atoms.copy()
    group = moving_group(atoms, coordinate)
    members = -1 - group if group.min() < 0 else group
    set_coordinate(atoms, coordinate, value, group)
    assert abs(coordinate.error(atoms, value)) < 1e-10  # rad or Å; dihedrals compared modulo 360°
    still = np.setdiff1d(np.arange(len(atoms)), members)
    np.testing.assert_array_equal(atoms.positions[still], before.positions[still])
    mic = bool(atoms.pbc.any())
    # bonds inside the moved group keep their lengths: the move is rigid
    for i in members:
        for j in members:
            assert atoms.get_distance(i, j, mic=mic) == pytest.approx(before.get_distance(i, j, mic=mic), abs=1e-9)


def test_labels_print_each_unit_once():
    """Axis labels and valued labels of plots and error messages: degrees glued to the number, Å spaced."""
    assert Dihedral(0, 1, 2, 3).axis_label == "dihedral 0-1-2-3 (°)"
    assert Angle(0, 1, 2).at(109.5) == "angle 0-1-2 = 109.5°"
    assert Distance(0, 2).axis_label == "distance 0-2 (Å)"
    assert Distance(0, 2).at(3) == "distance 0-2 = 3 Å"


def test_bad_indices_are_refused_with_clear_messages():
    atoms = butane()
    with pytest.raises(InternalCoordinateError, match="out of range for a structure of 14 atoms; indices are 0-based"):
        check_coordinates(atoms, [Dihedral(0, 1, 2, 14)])
    with pytest.raises(InternalCoordinateError, match="repeats an atom"):
        Dihedral(0, 1, 1, 2)
    with pytest.raises(InternalCoordinateError, match="0-based and cannot be negative"):
        Dihedral(-1, 0, 1, 2)
    with pytest.raises(InternalCoordinateError, match="needs 4 atom indices"):
        Dihedral(0, 1, 2)
    with pytest.raises(InternalCoordinateError, match="whole numbers"):
        Distance(0, 1.5)
    with pytest.raises(InternalCoordinateError, match="given twice"):
        check_coordinates(atoms, [Dihedral(0, 1, 2, 3), Dihedral(3, 2, 1, 0)])
    linear = Atoms("C4", positions=[[0, 0, 0], [1.5, 0, 0], [3.0, 0.0, 0.0], [4.0, 1.0, 0.0]])
    with pytest.raises(InternalCoordinateError, match="atoms 0-1-2 are collinear"):
        check_coordinates(linear, [Dihedral(0, 1, 2, 3)])
    with pytest.raises(InternalCoordinateError, match="within 2.0° of linear"):
        check_coordinates(linear, [Angle(0, 1, 2)])
