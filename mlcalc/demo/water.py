"""Part (c): NPT molecular dynamics of a periodic water box in OpenMM, the whole system on the demo potential.

OpenMM's ``Modeller`` fills a cubic box with TIP3P-equilibrated water (positions only; no force field
terms are used), :func:`mlcalc.openmm.create_system` puts every atom on the demo potential (flexible
water; hydrogen mass repartitioned to 2 amu so that 1 fs steps resolve the O-H vibration, which leaves
equilibrium properties such as the density unchanged), and a ``LangevinMiddleIntegrator`` with a
``MonteCarloBarostat`` runs NPT at 300 K and 1 bar.
Every ``REPORT_FS`` the density, temperature, longest O-H bond and the frame's non-hierarchicality are
recorded. The last frame's energy is compared with :class:`mlcalc.MLCalculator` on the same positions
and box: the two engines run the same file.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np
import openmm
from ase import Atoms
from openmm import app, unit

from mlcalc.calculator import MLCalculator
from mlcalc.demo.reliability import member_energies
from mlcalc.models.hipnn import structure_non_hierarchicality
from mlcalc.openmm import create_system
from mlcalc.openmm.forces import force_class_of
from mlcalc.openmm.platforms import choose_platform
from mlcalc.potential import Potential
from mlcalc.units import EV_PER_KJ_PER_MOL

TEMPERATURE = 300.0  # K
PRESSURE = 1.0  # bar
TIMESTEP_FS = 1.0
HYDROGEN_MASS = 2.0  # amu
FRICTION_PER_PS = 5.0  # tight coupling: the minimised start heats to 300 K within ~0.3 ps of a short run
BAROSTAT_INTERVAL = 25  # steps
REPORT_FS = 50.0
GRAMS_PER_DALTON = 1.66053906660e-24
#: Liquid water at 300 K and 0.1 MPa, g/cm³ (IAPWS-95: 996.51 kg/m³).
EXPERIMENTAL_DENSITY = 0.99651
GAS_CONSTANT = unit.MOLAR_GAS_CONSTANT_R.value_in_unit(unit.kilojoule_per_mole / unit.kelvin)


@dataclass
class WaterResult:
    """Time series (ps, g/cm³, K, Å, dimensionless; a committee's energy spread per frame in eV, None for a
    single model) and the two-engine check of the last frame (eV)."""

    n_waters: int
    times_ps: np.ndarray
    densities: np.ndarray
    temperatures: np.ndarray
    longest_oh: np.ndarray
    non_hierarchicality: np.ndarray
    energy_openmm_eV: float
    energy_ase_eV: float
    seconds: float
    openmm_force: str  # "TorchForce" or "PythonForce": which one mlcalc.openmm chose here
    platform: str
    energy_uncertainty_eV: Optional[np.ndarray] = None

    @property
    def second_half(self) -> slice:
        return slice(len(self.times_ps) // 2, None)

    @property
    def density_drift(self) -> float:
        """Change of the density over the second half by a least-squares line, g/cm³."""
        times, densities = self.times_ps[self.second_half], self.densities[self.second_half]
        if len(times) < 2:
            return float("nan")
        slope = np.polyfit(times, densities, 1)[0]
        return float(slope * (times[-1] - times[0]))

    @property
    def density_equilibrated(self) -> bool:
        """False while the density still drifts over the second half by more than twice its fluctuations
        (standard deviation; pure noise drifts by 0.7 of it on average): its mean is no equilibrium density."""
        drift = self.density_drift
        return bool(np.isfinite(drift) and abs(drift) <= 2 * self.densities[self.second_half].std())

    @property
    def relative_difference(self) -> float:
        return abs(self.energy_openmm_eV - self.energy_ase_eV) / abs(self.energy_ase_eV)

    def rows(self) -> list[dict]:
        rows = [
            {"time_ps": t, "density_g_cm3": d, "temperature_K": k, "longest_OH_A": b, "non_hierarchicality": r}
            for t, d, k, b, r in zip(
                self.times_ps, self.densities, self.temperatures, self.longest_oh, self.non_hierarchicality
            )
        ]
        if self.energy_uncertainty_eV is not None:
            for row, sigma in zip(rows, self.energy_uncertainty_eV):
                row["energy_uncertainty_eV"] = sigma
        return rows


def water_box(box_nm: float) -> app.Modeller:
    """A cubic box of edge ``box_nm`` filled with water by ``Modeller.addSolvent`` (TIP3P geometry)."""
    modeller = app.Modeller(app.Topology(), [])
    box = openmm.Vec3(box_nm, box_nm, box_nm) * unit.nanometer
    modeller.addSolvent(app.ForceField("amber14/tip3p.xml"), model="tip3p", boxSize=box)
    return modeller


def water_npt(
    potential: Potential, picoseconds: float, box_nm: float = 1.0, seed: int = 7, progress: bool = False
) -> WaterResult:
    """Run the NPT simulation (``picoseconds`` long) and return its record; ``seed`` fixes the thermostat's
    noise, the starting velocities and the barostat's moves, so a run repeats bit for bit; ``progress``:
    a progress bar on stderr (ps simulated, ns/day)."""
    modeller = water_box(box_nm)
    topology = modeller.topology
    system = create_system(topology, potential, hydrogen_mass=HYDROGEN_MASS * unit.amu)
    barostat = openmm.MonteCarloBarostat(PRESSURE * unit.bar, TEMPERATURE * unit.kelvin, BAROSTAT_INTERVAL)
    barostat.setRandomNumberSeed(seed)  # OpenMM's default, 0, draws a new seed for every Context
    system.addForce(barostat)
    integrator = openmm.LangevinMiddleIntegrator(
        TEMPERATURE * unit.kelvin, FRICTION_PER_PS / unit.picosecond, TIMESTEP_FS * unit.femtosecond
    )
    integrator.setRandomNumberSeed(seed)
    platform, properties = choose_platform("CPU")
    simulation = app.Simulation(topology, system, integrator, platform, properties)
    simulation.context.setPositions(modeller.positions)
    simulation.minimizeEnergy(maxIterations=100)
    simulation.context.setVelocitiesToTemperature(TEMPERATURE * unit.kelvin, seed)

    numbers = np.array([atom.element.atomic_number for atom in topology.atoms()])
    oxygens = np.flatnonzero(numbers == 8)
    mass = sum(system.getParticleMass(i).value_in_unit(unit.dalton) for i in range(system.getNumParticles()))
    degrees_of_freedom = 3 * system.getNumParticles() - 3  # create_system removes the centre-of-mass motion
    interval = max(1, int(round(REPORT_FS / TIMESTEP_FS)))
    n_reports = max(1, int(round(picoseconds * 1000.0 / TIMESTEP_FS / interval)))
    records = []
    bar = _progress_bar(n_reports * interval) if progress else None
    began = time.perf_counter()
    for _ in range(n_reports):
        simulation.step(interval)
        if bar is not None:
            bar.update(interval)
        state = simulation.context.getState(getPositions=True, getEnergy=True)
        frame = _frame(numbers, state)
        kinetic = state.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole)
        records.append(
            (
                state.getTime().value_in_unit(unit.picosecond),
                mass * GRAMS_PER_DALTON / (frame.get_volume() * 1e-24),
                2 * kinetic / (degrees_of_freedom * GAS_CONSTANT),
                _longest_oh(frame, oxygens),
                structure_non_hierarchicality(potential, frame),
                frame.copy(),
            )
        )
    seconds = time.perf_counter() - began
    if bar is not None:
        bar.close()
    frame.calc = MLCalculator(potential)
    times, densities, temperatures, longest, hierarchy = (np.array(column) for column in list(zip(*records))[:5])
    members = member_energies(potential, [record[5] for record in records])
    return WaterResult(
        n_waters=len(oxygens),
        times_ps=times,
        densities=densities,
        temperatures=temperatures,
        longest_oh=longest,
        non_hierarchicality=hierarchy,
        energy_openmm_eV=state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) * EV_PER_KJ_PER_MOL,
        energy_ase_eV=frame.get_potential_energy(),
        seconds=seconds,
        openmm_force=force_class_of(system.getForce(0)),
        platform=platform.getName(),
        energy_uncertainty_eV=None if members is None else members.std(axis=1),
    )


def _progress_bar(steps: int):
    from tqdm.auto import tqdm

    return tqdm(total=steps, desc=f"water NPT ({TIMESTEP_FS:g} fs steps)", unit="step", file=sys.stderr)


def _frame(numbers: np.ndarray, state: openmm.State) -> Atoms:
    """The state as periodic ``ase.Atoms`` (Å), positions unwrapped as OpenMM holds them."""
    return Atoms(
        numbers=numbers,
        positions=state.getPositions(asNumpy=True).value_in_unit(unit.angstrom),
        cell=np.array(state.getPeriodicBoxVectors().value_in_unit(unit.angstrom)),
        pbc=True,
    )


def _longest_oh(frame: Atoms, oxygens: np.ndarray) -> float:
    """Longest O-H bond (Å, minimum image) of waters stored as O, H, H."""
    hydrogens = np.concatenate([oxygens + 1, oxygens + 2])
    vectors = frame.positions[hydrogens] - frame.positions[np.concatenate([oxygens, oxygens])]
    fractional = np.linalg.solve(frame.cell.array.T, vectors.T).T
    vectors = (fractional - np.round(fractional)) @ frame.cell.array
    return float(np.linalg.norm(vectors, axis=1).max())
