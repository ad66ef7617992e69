"""Length and energy units a potential may declare, and their conversion factors.

ASE's units (``ase.units``, eV and Å) are the reference: every factor below says how many
Å or eV one declared unit is. OpenMM conversions (nm, kJ/mol) go through the same table, so
a file evaluated through ASE and through OpenMM gives the same numbers after conversion.
"""

from __future__ import annotations

from ase import units as ase_units

from mlcalc.errors import UnitError

#: Å per unit of length.
LENGTH_UNITS: dict[str, float] = {
    "angstrom": 1.0,
    "nm": 10.0,
    "bohr": ase_units.Bohr,
}

#: eV per unit of energy.
ENERGY_UNITS: dict[str, float] = {
    "eV": 1.0,
    "meV": 1e-3,
    "kJ/mol": ase_units.kJ / ase_units.mol,
    "kcal/mol": ase_units.kcal / ase_units.mol,
    "hartree": ase_units.Hartree,
}

_LENGTH_ALIASES = {
    "angstrom": "angstrom",
    "ang": "angstrom",
    "a": "angstrom",
    "å": "angstrom",
    "nm": "nm",
    "nanometer": "nm",
    "nanometre": "nm",
    "bohr": "bohr",
    "a0": "bohr",
}
_ENERGY_ALIASES = {
    "ev": "eV",
    "mev": "meV",
    "kj/mol": "kJ/mol",
    "kcal/mol": "kcal/mol",
    "hartree": "hartree",
    "ha": "hartree",
    "eh": "hartree",
}


def canonical_length_unit(name: str) -> str:
    """The canonical spelling of a length unit (``"Angstrom"`` → ``"angstrom"``)."""
    return _canonical(name, _LENGTH_ALIASES, LENGTH_UNITS, "length unit", "positions")


def canonical_energy_unit(name: str) -> str:
    """The canonical spelling of an energy unit (``"ev"`` → ``"eV"``)."""
    return _canonical(name, _ENERGY_ALIASES, ENERGY_UNITS, "energy unit", "energies")


def _canonical(name: str, aliases: dict[str, str], table: dict[str, float], kind: str, quantity: str) -> str:
    key = str(name).strip().lower()
    if key not in aliases:
        raise UnitError(f"unknown {kind} {name!r}; use one of {sorted(table)} (the unit the model's {quantity} are in)")
    return aliases[key]


def angstrom_per(length_unit: str) -> float:
    """Å in one ``length_unit``."""
    return LENGTH_UNITS[canonical_length_unit(length_unit)]


def ev_per(energy_unit: str) -> float:
    """eV in one ``energy_unit``."""
    return ENERGY_UNITS[canonical_energy_unit(energy_unit)]


#: eV in one kJ/mol, the OpenMM energy unit.
EV_PER_KJ_PER_MOL = ENERGY_UNITS["kJ/mol"]
#: Å in one nm, the OpenMM length unit.
ANGSTROM_PER_NM = LENGTH_UNITS["nm"]

#: kcal/mol in one eV (the workflow tables report barriers in both).
EV_TO_KCAL_MOL = ase_units.mol / ase_units.kcal
