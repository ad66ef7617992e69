"""The ``openmm.System`` of a run: whole-system ML or ML/MM, with a Monte Carlo barostat when periodic."""

from __future__ import annotations

import numpy as np
import openmm
from openmm import app, unit

from mlcalc.errors import InvalidStructureError
from mlcalc.md.config import MDConfig
from mlcalc.md.prepare import select_atoms
from mlcalc.openmm import create_mixed_system, create_system
from mlcalc.potential import load


def box_width(box_vectors) -> float:
    """The smallest distance between opposite faces of the periodic cell (nm)."""
    if unit.is_quantity(box_vectors):
        cell = np.array(box_vectors.value_in_unit(unit.nanometer), float)
    else:
        cell = np.array([vector.value_in_unit(unit.nanometer) for vector in box_vectors], float)
    volume = abs(np.linalg.det(cell))
    return float(min(volume / np.linalg.norm(np.cross(cell[i - 2], cell[i - 1])) for i in range(3)))


def check_box(box_vectors, cutoff: float, what: str) -> None:
    """A clear error when the box is narrower than twice ``cutoff`` (nm): atoms would see their own images."""
    width = box_width(box_vectors)
    if width < 2 * cutoff:
        raise InvalidStructureError(
            f"the periodic box is {width:.3f} nm wide, less than twice the {what} cutoff ({cutoff:g} nm): "
            f"atoms would interact with their own periodic images. Use a box at least {2 * cutoff:.3f} nm wide "
            "(more solvent padding or waters), or a smaller cutoff"
        )


def build_system(config: MDConfig, topology: app.Topology, positions, forcefield=None) -> openmm.System:
    """Whole-system ML (``mode="ml"``) or ML/MM (``"mlmm"``); a barostat at ``config.pressure`` if periodic.

    The barostat is part of the System from the start (its frequency is set to 0 during NVT), so one
    System and one checkpoint format serve every stage.
    """
    potential = load(config.potential, device="cpu")
    box = topology.getPeriodicBoxVectors()
    if box is not None:
        check_box(box, potential.cutoff / 10.0, f"ML potential's ({potential.name})")
    if config.mode == "ml":
        system = create_system(topology, potential, implementation=config.implementation)
    else:
        if forcefield is None:
            forcefield = app.ForceField(*config.forcefield)
        method = app.PME if box is not None else app.NoCutoff
        if box is not None:
            check_box(box, config.mm_cutoff, "MM nonbonded")
        mm = forcefield.createSystem(
            topology, nonbondedMethod=method, nonbondedCutoff=config.mm_cutoff * unit.nanometer, constraints=app.HBonds
        )
        ml_atoms = select_atoms(topology, config.ml_selection)
        system = create_mixed_system(topology, mm, ml_atoms, potential, implementation=config.implementation)
    if box is not None:
        system.addForce(
            openmm.MonteCarloBarostat(
                config.pressure * unit.bar, config.temperature * unit.kelvin, config.barostat_interval
            )
        )
    return system


def barostat(system: openmm.System):
    """The System's ``MonteCarloBarostat``, or ``None``."""
    for force in system.getForces():
        if isinstance(force, openmm.MonteCarloBarostat):
            return force
    return None
