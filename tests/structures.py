"""Test structures for argon-like potentials (σ = 3.405 Å): every path of the graph builder."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.build import bulk, fcc111
from ase.cluster import Icosahedron

A_FCC = 5.26  # Å, near the LJ argon lattice constant


def primitive_fcc() -> Atoms:
    """One atom in a primitive fcc cell: widths ~3 Å, every image matters for an 8.5 Å cutoff."""
    atoms = bulk("Ar", "fcc", a=A_FCC)
    atoms.cell[2] += [0.1, -0.2, 0.05]  # break symmetry a little
    return atoms


def small_fcc(rattle: float = 0.08, seed: int = 0) -> Atoms:
    """32 atoms, widths 10.5 Å < 2 × cutoff: the all-images path."""
    atoms = bulk("Ar", "fcc", a=A_FCC, cubic=True).repeat(2)
    atoms.rattle(rattle, seed=seed)
    return atoms


def large_fcc(rattle: float = 0.08, seed: int = 0) -> Atoms:
    """256 atoms, widths 21 Å > 2 × cutoff: the minimum-image path."""
    atoms = bulk("Ar", "fcc", a=A_FCC, cubic=True).repeat(4)
    atoms.rattle(rattle, seed=seed)
    return atoms


def skewed_box(seed: int = 0) -> Atoms:
    """A strongly skewed triclinic cell (angles far from 90°) filled at liquid-argon density."""
    rng = np.random.default_rng(seed)
    cell = np.array([[14.0, 0.0, 0.0], [9.0, 13.0, 0.0], [-6.0, 5.0, 15.0]])
    volume = abs(np.linalg.det(cell))
    n = int(volume * 0.021)
    frac: list[np.ndarray] = []
    while len(frac) < n:
        trial = rng.random(3)
        if frac:
            d = np.asarray(frac) - trial
            d -= np.round(d)
            r = np.linalg.norm(d @ cell, axis=1)
            if r.min() < 3.2:
                continue
        frac.append(trial)
    return Atoms("Ar" * n, scaled_positions=np.asarray(frac), cell=cell, pbc=True)


def slab() -> Atoms:
    """An fcc(111) slab: periodic in-plane, open along z (pbc = T, T, F)."""
    atoms = fcc111("Ar", size=(3, 3, 3), a=A_FCC, vacuum=6.0)
    atoms.rattle(0.05, seed=3)
    return atoms


def cluster() -> Atoms:
    """A 55-atom icosahedral cluster, no cell, no periodicity."""
    atoms = Icosahedron("Ar", noshells=3, latticeconstant=A_FCC)
    atoms.rattle(0.05, seed=4)
    atoms.cell[:] = 0.0
    atoms.pbc = False
    return atoms


def unwrap(atoms: Atoms, seed: int = 0, reach: int = 3) -> Atoms:
    """Move every atom by a random lattice vector along its periodic directions."""
    rng = np.random.default_rng(seed)
    moved = atoms.copy()
    n = rng.integers(-reach, reach + 1, size=(len(atoms), 3)) * atoms.pbc
    moved.positions += n @ atoms.cell.array
    return moved


ALL = {
    "primitive_fcc": primitive_fcc,
    "small_fcc": small_fcc,
    "large_fcc": large_fcc,
    "skewed_box": skewed_box,
    "slab": slab,
    "cluster": cluster,
}
