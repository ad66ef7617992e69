"""Parameters of the reference potentials the tests export (Å, eV). A module of its own: test modules
cannot import from ``conftest`` (pytest loads every ``conftest.py`` under that one module name)."""

from ase import units

SIGMA = 3.405  # Å, argon
EPSILON = 119.8 * units.kB  # eV
CUTOFF = 8.5  # Å
MORSE = dict(epsilon=0.0104, rho0=6.0, r0=3.8, rcut1=1.6, rcut2=2.2)  # cutoff 8.36 Å
