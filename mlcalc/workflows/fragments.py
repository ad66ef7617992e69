"""Rigid moves that set one internal coordinate: rotate or shift the fragment on one side of a bond.

A relaxed scan or a dihedral-driven path changes its constrained dihedral by a step at a time. Rotating
the whole group on one side of the central bond (as ``ase.Atoms.set_dihedral`` with a mask does) starts
each constrained optimisation from a sensible structure, where moving the four dihedral atoms alone
would tear their substituents off. Bonds are ASE's covalent-radius bonds (``natural_cutoffs``);
periodic images are handled with the minimum image, so molecules may be wrapped.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
from ase import Atoms
from ase.geometry import find_mic
from ase.neighborlist import natural_cutoffs, neighbor_list
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial.transform import Rotation

from mlcalc.workflows.internal import Angle, Dihedral, Distance, InternalCoordinate


def bond_pairs(atoms: Atoms) -> np.ndarray:
    """Covalent bonds ``[[i, j], ...]`` (i < j): atoms closer than the sum of their covalent radii plus
    0.3 Å (the default skin of ASE's ``build_neighbor_list``), periodic images included."""
    radii = np.asarray(natural_cutoffs(atoms)) + 0.15
    i, j = neighbor_list("ij", atoms, radii)
    keep = i < j
    return np.unique(np.stack([i[keep], j[keep]], axis=1), axis=0).reshape(-1, 2)


def side_of_bond(bonds: np.ndarray, n_atoms: int, fixed: int, moving: int) -> Optional[np.ndarray]:
    """Atoms connected to ``moving`` once the ``fixed``–``moving`` bond is cut, or ``None`` if the two
    atoms stay connected (a ring) or ``fixed`` is reached another way."""
    cut = ~(((bonds[:, 0] == fixed) & (bonds[:, 1] == moving)) | ((bonds[:, 0] == moving) & (bonds[:, 1] == fixed)))
    edges = bonds[cut]
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n_atoms, n_atoms))
    _, labels = connected_components(graph, directed=False)
    if labels[fixed] == labels[moving]:
        return None
    return np.flatnonzero(labels == labels[moving])


def moving_group(atoms: Atoms, coordinate: InternalCoordinate, bonds: Optional[np.ndarray] = None) -> np.ndarray:
    """Atoms that a rigid move of ``coordinate`` displaces, as signed indices: the smaller side of the
    bond (for dihedrals); the group beyond the last atom (angles, distances). When the atoms are in a ring
    only the last atom moves. Returned with a sign: +1 when the group is on the last atom's side."""
    bonds = bond_pairs(atoms) if bonds is None else bonds
    n = len(atoms)
    idx = coordinate.indices
    if isinstance(coordinate, Dihedral):
        j, k = idx[1], idx[2]
        side_k = side_of_bond(bonds, n, j, k)
        side_j = side_of_bond(bonds, n, k, j)
        if side_k is None or side_j is None or idx[3] not in side_k or idx[0] not in side_j:
            return np.array([idx[3]])
        return side_k if len(side_k) <= len(side_j) else -1 - side_j  # negative: the j side moves
    pivot, last = (idx[1], idx[2]) if isinstance(coordinate, Angle) else (idx[0], idx[1])
    side = side_of_bond(bonds, n, pivot, last)
    if side is None or idx[0] in side or (isinstance(coordinate, Angle) and idx[1] in side):
        return np.array([last])
    return side


def set_coordinate(
    atoms: Atoms, coordinate: InternalCoordinate, value: float, group: Optional[np.ndarray] = None
) -> None:
    """Set ``coordinate`` of ``atoms`` to ``value`` (degrees or Å) in place by a rigid move of its group.

    Only the group moves (see :func:`moving_group`); when it is a single atom other coordinates of that
    atom change too, and a constrained optimisation puts them right.
    """
    group = moving_group(atoms, coordinate) if group is None else group
    flipped = group.min() < 0
    members = -1 - group if flipped else group
    p = atoms.positions
    cell = atoms.cell if atoms.pbc.any() else None

    def vector(a: int, b: int) -> np.ndarray:
        d = p[b] - p[a]
        return find_mic(d, cell, atoms.pbc)[0] if cell is not None else d

    def relative(origin: int) -> np.ndarray:
        d = p[members] - p[origin]
        return find_mic(d, cell, atoms.pbc)[0] if cell is not None else d

    if isinstance(coordinate, Distance):
        i, j = coordinate.indices
        bond = vector(i, j)
        length = np.linalg.norm(bond)
        shift = (value - length) * bond / length
        p[members] = p[j] + relative(j) + (-shift if flipped else shift)
        atoms.positions = p
        return
    delta = coordinate.difference(coordinate.to_internal(value), coordinate.internal_value(atoms))
    if isinstance(coordinate, Dihedral):
        j, k = coordinate.indices[1:3]
        axis = vector(j, k)
        origin = k
    else:
        i, j, k = coordinate.indices
        axis = np.cross(vector(j, i), vector(j, k))  # rotating k about it by +δ opens the angle i-j-k
        origin = j
    axis = axis / np.linalg.norm(axis)
    rotation = Rotation.from_rotvec((-delta if flipped else delta) * axis)
    p[members] = p[origin] + rotation.apply(relative(origin))
    atoms.positions = p


def degrees_between(a: float, b: float) -> float:
    """Smallest absolute difference of two angles in degrees."""
    return abs((a - b + 180.0) % 360.0 - 180.0) if math.isfinite(a - b) else math.inf
