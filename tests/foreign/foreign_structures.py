"""Structures on which the foreign TorchScript files are checked against their own ASE calculators: five
elements in a bulk alloy, a cell narrower than twice the 4 Å cutoff, a slab with vacuum, a molecule in a
box and free (shared by test_metatomic.py and test_nequip.py)."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.build import bulk, fcc111, molecule


def structures() -> dict[str, Atoms]:
    rng = np.random.default_rng(0)
    alloy = bulk("Cu", "fcc", a=3.7, cubic=True) * (2, 2, 2)
    alloy.symbols = rng.choice(["H", "C", "O", "Al", "Cu"], len(alloy))
    alloy.rattle(0.1, seed=1)
    # three atoms, every cell vector (~3 Å) shorter than twice the 4 Å cutoff, skewed
    small = Atoms("COCu", scaled_positions=rng.random((3, 3)), cell=3.0 * (np.eye(3) + rng.normal(0, 0.1, (3, 3))))
    small.pbc = True
    slab = fcc111("Al", size=(2, 2, 3), vacuum=7.5)  # periodic in x and y, vacuum along z
    slab.symbols[[0, 5]] = "Cu"
    slab.append("H")
    slab.positions[-1] = slab.positions[-2] + [0.0, 0.0, 1.5]
    slab.rattle(0.03, seed=4)
    methanol = molecule("CH3OH")
    methanol.rattle(0.05, seed=5)
    boxed = methanol.copy()
    boxed.center(vacuum=6.0)
    boxed.pbc = True
    free = methanol.copy()
    return {"bulk alloy": alloy, "small triclinic": small, "slab": slab, "molecule in box": boxed, "molecule": free}
