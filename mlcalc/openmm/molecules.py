"""Keep molecules of the ML region whole when OpenMM wraps positions into the periodic box.

OpenMM wraps molecule by molecule (``getState(enforcePeriodicBox=True)``, the DCD/XTC/PDB reporters),
and finds the molecules from the bonds its forces report and from its constraints. An ML force reports
no bonds, so in a whole-system ML System, or in the ML region of an ML/MM one (whose MM bonded terms were
removed), every atom was wrapped on its own and a solute came out split across the box. A
``CustomBondForce`` of energy 0 over the Topology's bonds between ML atoms tells OpenMM the molecules;
it changes no energy, force or dynamics.
"""

from __future__ import annotations

from typing import Iterable, Optional

import openmm
from openmm import app

#: Name of the zero-energy bond force that marks the ML region's molecules.
MOLECULES_FORCE_NAME = "mlcalc:molecules"


def add_molecule_bonds(
    system: openmm.System, topology: app.Topology, atoms: Optional[Iterable[int]] = None
) -> Optional[openmm.CustomBondForce]:
    """Add to ``system`` a zero-energy ``CustomBondForce`` over the bonds of ``topology`` between the
    given atoms (``None``: all), so that OpenMM wraps their molecules whole. Returns it, or ``None`` when
    there is no such bond (a Topology without bonds: then atoms are wrapped one by one, as before)."""
    selected = None if atoms is None else set(atoms)
    bonds = [
        (a.index, b.index)
        for a, b in topology.bonds()
        if selected is None or (a.index in selected and b.index in selected)
    ]
    if not bonds:
        return None
    force = openmm.CustomBondForce("0")
    force.setName(MOLECULES_FORCE_NAME)
    for a, b in bonds:
        force.addBond(a, b)
    system.addForce(force)
    return force
