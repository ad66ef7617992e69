"""Energy unit factors for the workflow tables (from ``ase.units``, like the rest of mlcalc)."""

from __future__ import annotations

from ase import units

#: 1 eV in kcal/mol.
EV_TO_KCAL_MOL = units.mol / units.kcal
