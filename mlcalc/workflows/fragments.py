"""Rigid moves that set one internal coordinate: rotate or shift the fragment on one side of a bond.

A relaxed scan or a dihedral-driven path changes its constrained dihedral by a step at a time. Rotating
the whole group on one side of the central bond (as ``ase.Atoms.set_dihedral`` with a mask does) starts
each constrained optimisation from a sensible structure, where moving the four dihedral atoms alone
would tear their substituents off. Bonds are ASE's covalent-radius bonds (``natural_cutoffs``);
periodic images are handled with the minimum image, so molecules may be wrapped.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
from ase import Atoms
from ase.geometry import find_mic
from ase.neighborlist import natural_cutoffs, neighbor_list
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial.transform import Rotation

from mlcalc.errors import InvalidStructureError
from mlcalc.workflows.errors import InternalCoordinateError
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


def molecule_labels(atoms: Atoms, bonds: Optional[np.ndarray] = None) -> np.ndarray:
    """Molecule number of each atom: connected components of the covalent bonds of :func:`bond_pairs`."""
    bonds = bond_pairs(atoms) if bonds is None else bonds
    n = len(atoms)
    graph = coo_matrix((np.ones(len(bonds)), (bonds[:, 0], bonds[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def check_dihedrals_in_one_molecule(
    atoms: Atoms, coordinates: Sequence[InternalCoordinate], bonds: Optional[np.ndarray] = None
) -> None:
    """Refuse a dihedral whose four atoms are spread over several molecules, one of them polyatomic.

    Turning such a "dihedral" rotates a whole molecule rigidly about an axis through another, which is
    not a torsion of anything. Distances and angles between molecules stay allowed, and so do dihedrals
    of single atoms (argon, a Lennard-Jones cluster), which have no molecule to carry along.
    """
    dihedrals = [c for c in coordinates if isinstance(c, Dihedral)]
    if not dihedrals:
        return
    labels = molecule_labels(atoms, bonds)
    sizes = np.bincount(labels)
    for dihedral in dihedrals:
        molecules = labels[list(dihedral.indices)].tolist()
        if len(set(molecules)) == 1 or all(sizes[m] == 1 for m in molecules):
            continue
        groups: dict[int, list[int]] = {}
        for index, molecule in zip(dihedral.indices, molecules):
            groups.setdefault(molecule, []).append(index)
        shown = " | ".join(", ".join(str(i) for i in members) for members in groups.values())
        raise InternalCoordinateError(
            f"the {dihedral.name} joins atoms of {len(groups)} different molecules (atoms {shown}: no "
            "chain of covalent bonds, by ASE's covalent radii, links them), so turning it would rotate one "
            "molecule rigidly about another. Give four atoms of one molecule (usually a bonded chain "
            "i-j-k-l, 0-based), or constrain the distance or angle between the molecules instead"
        )


#: Two atoms closer than this fraction of the sum of their covalent radii, or than CLASH_FLOOR_A, clash:
#: the shortest bonds known (H2 0.74 Å, C≡C 1.20 Å, N≡N 1.10 Å) stay above 0.7 of both.
CLASH_FRACTION = 0.6
CLASH_FLOOR_A = 0.6


def check_no_clash(atoms: Atoms, name: str = "input") -> None:
    """Refuse a structure in which two atoms are closer than any chemical bond (a clash, in Å: below
    ``CLASH_FRACTION`` × the sum of ASE's covalent radii, or ``CLASH_FLOOR_A``), minimum image in cells.

    An ML potential is undefined there, and optimisers started from it end in spurious minima (the demo
    potential turns two H atoms 0.46 Å apart into an H₂ on a carbon) that then look like results.
    """
    from ase.data import covalent_radii

    radii = covalent_radii[atoms.numbers]
    reach = max(CLASH_FRACTION * 2 * radii.max(), CLASH_FLOOR_A) if len(atoms) else 0.0
    i, j, d = neighbor_list("ijd", atoms, reach)
    limit = np.maximum(CLASH_FRACTION * (radii[i] + radii[j]), CLASH_FLOOR_A)
    close = (i < j) & (d < limit)
    if close.any():
        symbols = atoms.get_chemical_symbols()
        pairs = sorted(zip(d[close].tolist(), i[close].tolist(), j[close].tolist()))
        shown = "; ".join(f"atoms {a} ({symbols[a]}) and {b} ({symbols[b]}) {r:.3f} Å apart" for r, a, b in pairs[:5])
        raise InvalidStructureError(
            f"the {name} structure has {len(pairs)} clash(es), atoms closer than any chemical bond: {shown} "
            "(0-based indices). An ML potential has no meaning there and an optimiser would end in a spurious "
            "minimum: fix the structure (a misplaced or duplicated atom, wrong units, or a wrong cell?)"
        )
