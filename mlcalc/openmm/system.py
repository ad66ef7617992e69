"""``create_system``: a whole-system ML ``openmm.System`` from a Topology."""

from __future__ import annotations

from typing import Optional, Union

import numpy as np
import openmm
import torch
from openmm import app, unit

from mlcalc.openmm.forces import create_force
from mlcalc.openmm.molecules import add_molecule_bonds
from mlcalc.openmm.region import PotentialLike, atomic_numbers
from mlcalc.potential import DeviceLike


def create_system(
    topology: app.Topology,
    potential: PotentialLike,
    *,
    positions: Optional[Union[unit.Quantity, np.ndarray]] = None,
    constraints: Optional[object] = None,
    remove_cm_motion: bool = True,
    hydrogen_mass: Optional[unit.Quantity] = None,
    dtype: Union[str, torch.dtype, None] = None,
    implementation: Optional[str] = None,
    cuda_graphs: bool = False,
    device: DeviceLike = None,
) -> openmm.System:
    """A whole-system ML ``openmm.System``: masses and box from ``topology``, one ML force.

    When periodic, a zero-energy bond force over the Topology's bonds keeps molecules whole in OpenMM's
    wrapped output (see :mod:`mlcalc.openmm.molecules`).

    Args:
        topology: every atom must have an element; periodic when it has a box.
        potential: a :class:`mlcalc.Potential` or the path of a potential file.
        positions: needed with ``constraints``: bond lengths are constrained to their values here
            (a ``Quantity``, or an array in nm).
        constraints: ``None``, ``openmm.app.HBonds`` (bonds to hydrogen) or ``openmm.app.AllBonds``.
        remove_cm_motion: add a ``CMMotionRemover``.
        hydrogen_mass: repartition mass from heavy atoms to bonded hydrogens (e.g. ``1.5*amu``).
        dtype, implementation, cuda_graphs, device: as in :func:`mlcalc.openmm.create_force`.
    """
    atomic_numbers(topology)  # a clear error for atoms without an element, before their masses are read
    system = openmm.System()
    masses = [atom.element.mass for atom in topology.atoms()]
    if hydrogen_mass is not None:
        masses = _repartition(topology, masses, hydrogen_mass)
    for mass in masses:
        system.addParticle(mass)
    box = topology.getPeriodicBoxVectors()
    if box is not None:
        system.setDefaultPeriodicBoxVectors(*box)
    if constraints is not None:
        _add_constraints(system, topology, constraints, positions)
    system.addForce(
        create_force(
            potential,
            topology,
            dtype=dtype,
            implementation=implementation,
            cuda_graphs=cuda_graphs,
            device=device,
        )
    )
    if remove_cm_motion:
        system.addForce(openmm.CMMotionRemover())
    if box is not None:
        add_molecule_bonds(system, topology)
    return system


def _repartition(topology: app.Topology, masses: list, hydrogen_mass: unit.Quantity) -> list:
    masses = list(masses)
    for a, b in topology.bonds():
        if a.element == app.element.hydrogen:
            a, b = b, a
        if b.element == app.element.hydrogen and a.element != app.element.hydrogen:
            transfer = hydrogen_mass - masses[b.index]
            masses[b.index] = hydrogen_mass
            masses[a.index] = masses[a.index] - transfer
            if masses[a.index].value_in_unit(unit.dalton) <= 0:
                raise ValueError(
                    f"hydrogen_mass={hydrogen_mass} leaves atom {a.index} ({a.name}) without mass: choose a smaller "
                    "hydrogen mass (1.5 to 4 amu is usual)"
                )
    return masses


def _add_constraints(system: openmm.System, topology: app.Topology, constraints, positions) -> None:
    if constraints not in (app.HBonds, app.AllBonds):
        raise ValueError("constraints must be None, openmm.app.HBonds or openmm.app.AllBonds")
    if positions is None:
        raise ValueError("constraints need positions: bonds are constrained to their lengths in those positions")
    xyz = np.asarray(positions.value_in_unit(unit.nanometer) if unit.is_quantity(positions) else positions, float)
    if xyz.shape != (topology.getNumAtoms(), 3):
        raise ValueError(f"positions must have shape ({topology.getNumAtoms()}, 3), got {xyz.shape}")
    if not list(topology.bonds()):
        raise ValueError(
            "constraints were asked for, but the topology has no bonds (add them, e.g. from a PDB's CONECT)"
        )
    for a, b in topology.bonds():
        if constraints is app.HBonds and app.element.hydrogen not in (a.element, b.element):
            continue
        system.addConstraint(a.index, b.index, float(np.linalg.norm(xyz[a.index] - xyz[b.index])))
