"""Structures the model-family adapter tests compare on: open clusters, a small sheared crystal with many
periodic images, and molecules in a periodic box with unwrapped positions."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from ase import Atoms
from ase.build import bulk, molecule

#: Molecules holding H, C, N, O, close enough for intermolecular terms.
HCNO_MOLECULES = ("CH3CH2OH", "CH3CONH2", "H2O", "NH3")
HCNO_BOX = (15.5, 8.0, 8.5)  # Å


def organic_cluster(names: Sequence[str] = HCNO_MOLECULES, spacing: float = 3.4, stagger: float = 0.6) -> Atoms:
    """``names`` in a row, ``spacing`` Å apart and staggered by ``stagger`` Å, slightly rattled."""
    atoms = Atoms()
    for k, name in enumerate(names):
        part = molecule(name)
        part.translate([spacing * k, stagger * (k % 2), 0.0])
        atoms += part
    atoms.rattle(0.05, seed=1)
    return atoms


def diamond() -> Atoms:
    """8 carbon atoms in a sheared cell narrower than twice a 5 Å cutoff: many periodic images."""
    atoms = bulk("C", "diamond", a=3.57, cubic=True)
    atoms.set_cell(atoms.cell.array + [[0, 0, 0], [0.3, 0, 0], [0, 0, 0]], scale_atoms=False)
    atoms.rattle(0.05, seed=2)
    return atoms


def molecular_box(cluster: Atoms | None = None, lengths: Sequence[float] = HCNO_BOX) -> Atoms:
    """``cluster`` (default the H, C, N, O cluster) in a periodic box of ``lengths`` Å, its atoms moved by
    random lattice vectors (unwrapped): neighbours across the boundaries."""
    atoms = organic_cluster() if cluster is None else cluster.copy()
    atoms.set_cell(list(lengths))
    atoms.pbc = True
    atoms.center()
    atoms.positions += np.random.default_rng(3).integers(-1, 2, size=(len(atoms), 3)) @ atoms.cell.array
    return atoms


def structure_set(cluster: Callable[[], Atoms], box: Callable[[], Atoms]) -> dict[str, Callable[[], Atoms]]:
    """The three structures every adapter test compares on, by name."""
    return {"organic cluster": cluster, "sheared diamond": diamond, "molecular box": box}


HCNO_STRUCTURES = structure_set(organic_cluster, molecular_box)
