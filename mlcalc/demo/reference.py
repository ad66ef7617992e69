"""The reference method of the demonstration: GFN2-xTB (tblite's ASE calculator), which the bundled demo
potential was trained on."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from ase import Atoms
from ase.calculators.calculator import BaseCalculator


def gfn2_xtb() -> BaseCalculator:
    """GFN2-xTB as an ASE calculator (``tblite.ase.TBLite``, its defaults), quiet."""
    try:
        from tblite.ase import TBLite
    except ImportError as error:  # a runtime dependency; a clear message if an environment lacks it
        raise ImportError("the demonstration compares with GFN2-xTB: install tblite (pip install tblite)") from error
    return TBLite(method="GFN2-xTB", verbosity=0)


def single_points(structures: Sequence[Atoms], calc: BaseCalculator) -> np.ndarray:
    """Energies (eV) of ``structures`` with ``calc`` (copies are evaluated; the inputs keep their calculators)."""
    energies = []
    for atoms in structures:
        work = atoms.copy()
        work.calc = calc
        energies.append(work.get_potential_energy())
    return np.array(energies)
