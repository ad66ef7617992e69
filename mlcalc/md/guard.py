"""Stop a simulation that blew up before it writes anything of the bad state.

:class:`StateGuard` is an OpenMM reporter placed before the run's own reporters, with an interval that
divides theirs and the checkpoint interval, so every step at which a frame, a row or a checkpoint is
written is checked first: a non-finite potential or kinetic energy, or a temperature above the run's
``max_temperature``, raises :class:`SimulationBlewUpError` and the other reporters of that step never
run. (An exploded Langevin run of an ML potential reaches 1e20 K within a few steps, long before the
positions turn NaN; a sound run stays within a few per cent of its target.)
"""

from __future__ import annotations

import math

import numpy as np
import openmm
from openmm import unit

from mlcalc.errors import MLCalcError

#: Boltzmann's constant in kJ/mol/K (OpenMM's units).
BOLTZMANN_KJ_PER_MOL_K = (unit.BOLTZMANN_CONSTANT_kB * unit.AVOGADRO_CONSTANT_NA).value_in_unit(
    unit.kilojoule_per_mole / unit.kelvin
)


class SimulationBlewUpError(MLCalcError, RuntimeError):
    """Non-finite or implausible energies or temperatures: the run stopped before writing them."""


def degrees_of_freedom(system: openmm.System) -> int:
    """3 per massive particle, less constraints and the removed centre-of-mass motion (as OpenMM's reporter)."""
    dof = 3 * sum(1 for i in range(system.getNumParticles()) if system.getParticleMass(i) > 0 * unit.dalton)
    dof -= system.getNumConstraints()
    if any(isinstance(force, openmm.CMMotionRemover) for force in system.getForces()):
        dof -= 3
    return max(dof, 1)


def check_state(state: openmm.State, dof: int, max_temperature: float, where: str) -> None:
    """Raise :class:`SimulationBlewUpError` when ``state``'s energies are not finite or its temperature (K)
    exceeds ``max_temperature``; ``where`` says what was being done, for the message."""
    potential = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    kinetic = state.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole)
    temperature = 2 * kinetic / (dof * BOLTZMANN_KJ_PER_MOL_K)
    step = f"step {state.getStepCount()} ({state.getTime().value_in_unit(unit.picosecond):g} ps)"
    if not (math.isfinite(potential) and math.isfinite(kinetic)):
        problem = f"the potential energy is {potential} and the kinetic energy {kinetic} kJ/mol"
    elif temperature > max_temperature:
        problem = f"the temperature is {temperature:.4g} K, above max_temperature = {max_temperature:g} K"
    else:
        return
    raise SimulationBlewUpError(
        f"the simulation blew up at {step}, {where}: {problem}. Nothing of this state was written. Usual causes: "
        "a time step too long for the fastest motion (bonds to hydrogen: 0.5 fs without constraints), a bad "
        "starting structure, or a potential used outside its training data"
    )


class StateGuard:
    """OpenMM reporter: :func:`check_state` every ``interval`` steps (on multiples of it)."""

    def __init__(self, interval: int, dof: int, max_temperature: float):
        self.interval = int(interval)
        self.dof = dof
        self.max_temperature = float(max_temperature)

    def describeNextReport(self, simulation: openmm.app.Simulation) -> tuple:
        # Positions, wrapped: OpenMM reports first to the reporters that want wrapped positions, in their
        # order, so this one runs before a trajectory reporter of the same step whatever the box.
        steps = self.interval - simulation.currentStep % self.interval
        return (steps, True, False, False, True, True)

    def report(self, simulation: openmm.app.Simulation, state: openmm.State) -> None:
        check_state(state, self.dof, self.max_temperature, "before writing its outputs")
        if not np.isfinite(state.getPositions(asNumpy=True)._value).all():
            raise SimulationBlewUpError(
                f"the simulation blew up at step {state.getStepCount()}: positions are not finite. Nothing of this "
                "state was written"
            )
