"""MD physics with an ML force in OpenMM: the NPT density against OpenMM's NonbondedForce, NVE energy conservation.

The fluid: 256 argon atoms (``examples/argon-liquid.pdb``, liquid at 90 K), 10 fs steps (0.005 LJ time
units). Statistical errors come from block averages; each test can fail by more than its computed error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openmm
import pytest
from openmm import app, unit
from reference_parameters import CUTOFF, EPSILON, SIGMA

from mlcalc.openmm import create_system
from mlcalc.units import EV_PER_KJ_PER_MOL

ARGON = Path(__file__).parents[1] / "examples" / "argon-liquid.pdb"
TEMPERATURE = 90 * unit.kelvin
PRESSURE = 1 * unit.bar
TIMESTEP = 10 * unit.femtosecond
KJ = unit.kilojoule_per_mole
#: Molar gas constant in kJ/mol/K (OpenMM's).
R = (unit.MOLAR_GAS_CONSTANT_R).value_in_unit(KJ / unit.kelvin)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def argon() -> app.PDBFile:
    return app.PDBFile(str(ARGON))


def nonbonded_system(topology: app.Topology) -> openmm.System:
    """The truncated LJ of ``LennardJones(shift=False)`` through OpenMM's own NonbondedForce (nm, kJ/mol)."""
    system = openmm.System()
    system.setDefaultPeriodicBoxVectors(*topology.getPeriodicBoxVectors())
    nonbonded = openmm.NonbondedForce()
    nonbonded.setNonbondedMethod(openmm.NonbondedForce.CutoffPeriodic)
    nonbonded.setCutoffDistance(CUTOFF / 10)
    nonbonded.setUseSwitchingFunction(False)
    nonbonded.setUseDispersionCorrection(False)
    for atom in topology.atoms():
        system.addParticle(atom.element.mass)
        nonbonded.addParticle(0.0, SIGMA / 10, EPSILON / EV_PER_KJ_PER_MOL)
    system.addForce(nonbonded)
    system.addForce(openmm.CMMotionRemover())
    return system


def npt_densities(system: openmm.System, start: openmm.State, steps: int, seed: int, platform: str) -> np.ndarray:
    """Densities (g/cm³) every 10 steps of Langevin NPT (barostat move every 2 steps) from ``start``."""
    system = openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(system))
    barostat = openmm.MonteCarloBarostat(PRESSURE, TEMPERATURE, 2)
    barostat.setRandomNumberSeed(seed)
    system.addForce(barostat)
    integrator = openmm.LangevinMiddleIntegrator(TEMPERATURE, 1 / unit.picosecond, TIMESTEP)
    integrator.setRandomNumberSeed(seed)
    properties = {"Threads": "1"} if platform == "CPU" else {}
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName(platform), properties)
    context.setPeriodicBoxVectors(*start.getPeriodicBoxVectors())
    context.setPositions(start.getPositions())
    context.setVelocities(start.getVelocities())
    mass = sum((system.getParticleMass(i) for i in range(system.getNumParticles())), 0 * unit.dalton)
    grams = (mass / unit.AVOGADRO_CONSTANT_NA).value_in_unit(unit.gram)
    volumes = []
    for _ in range(steps // 10):
        integrator.step(10)
        volumes.append(context.getState().getPeriodicBoxVolume().value_in_unit(unit.centimeter**3))
    return grams / np.array(volumes)


def statistical_inefficiency(samples: np.ndarray, block: int) -> float:
    """Samples per independent sample, by block averaging: ``block`` × var(block means) / var(samples)."""
    means = samples[: len(samples) // block * block].reshape(-1, block).mean(axis=1)
    return float(block * means.var(ddof=1) / samples.var(ddof=1))


@pytest.fixture(scope="module")
def equilibrated(argon) -> openmm.State:
    """The fluid after 30 ps of NPT with NonbondedForce from the PDB (density 1.38 -> ~1.33 g/cm³)."""
    system = nonbonded_system(argon.topology)
    system.addForce(openmm.MonteCarloBarostat(PRESSURE, TEMPERATURE, 2))
    integrator = openmm.LangevinMiddleIntegrator(TEMPERATURE, 1 / unit.picosecond, TIMESTEP)
    integrator.setRandomNumberSeed(7)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("CPU"), {"Threads": "1"})
    context.setPositions(argon.positions)
    context.setVelocitiesToTemperature(TEMPERATURE, 7)
    integrator.step(3000)
    return context.getState(getPositions=True, getVelocities=True)


@pytest.mark.slow
def test_npt_density_equals_nonbonded_force(argon, equilibrated, lj_truncated_path):
    """MonteCarloBarostat NPT at 90 K, 1 bar: the whole-system ML fluid (truncated LJ through a TorchForce) has the
    mean density of the same fluid through OpenMM's NonbondedForce, within 4 combined standard errors.

    Both runs start from one equilibrated state with their own random seeds. The statistical inefficiency
    (samples per independent sample, ~2.5 ps here) comes from block averaging the long NonbondedForce run and
    applies to both: same integrator, barostat and state point. The ML run is 50 ps (9 ms per step), the
    NonbondedForce run 400 ps (CPU platform, single precision forces: far below these errors). Measured: about
    ±0.005 g/cm³ combined (0.4%); the LJ shifted to zero at the cutoff (``shift=True``, same forces inside it, but
    the barostat sees the volume dependence of the shift) came out 3.9% less dense, 10 standard errors off.
    """
    # 5 ps (2 correlation times) dropped to forget the shared start
    ml = npt_densities(create_system(argon.topology, lj_truncated_path), equilibrated, 5500, 1, "Reference")[50:]
    mm = npt_densities(nonbonded_system(argon.topology), equilibrated, 40000, 2, "CPU")[50:]
    inefficiency = statistical_inefficiency(mm, block=200)  # 19 blocks of 20 ps
    errors = [np.sqrt(inefficiency * x.var(ddof=1) / len(x)) for x in (ml, mm)]
    combined = float(np.hypot(*errors))
    print(
        f"density ML {ml.mean():.4f} ± {errors[0]:.4f}, NonbondedForce {mm.mean():.4f} ± {errors[1]:.4f} g/cm³ "
        f"(fluctuation {ml.std():.4f}, {mm.std():.4f}; inefficiency {inefficiency * 0.1:.1f} ps): "
        f"difference {(ml.mean() - mm.mean()) / combined:+.2f} combined standard errors"
    )
    assert combined < 0.01, "too short to detect a 3% density error"
    assert abs(ml.mean() - mm.mean()) < 4 * combined


def nve_energies(system: openmm.System, start: openmm.State, timestep: unit.Quantity, picoseconds: float):
    """Times (ns) and total energies (kJ/mol) every 0.1 ps of Verlet NVE from ``start`` (Reference platform)."""
    integrator = openmm.VerletIntegrator(timestep)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(start.getPositions())
    context.setVelocities(start.getVelocities())
    every = int(round(0.1 * unit.picosecond / timestep))
    times, energies = [], []
    for _ in range(int(round(picoseconds / 0.1))):
        integrator.step(every)
        state = context.getState(getEnergy=True)
        times.append(state.getTime().value_in_unit(unit.nanosecond))
        energies.append((state.getPotentialEnergy() + state.getKineticEnergy()).value_in_unit(KJ))
    return np.array(times), np.array(energies)


@pytest.mark.slow
def test_nve_conserves_energy(argon, morse_path):
    """Verlet NVE with the ML force: Morse with ASE's smooth cutoff (continuous forces; a truncated LJ's energy jumps
    whenever a pair crosses the cutoff, whatever computes it).

    - drift over 20 ps (slope of a linear fit): below 1.5 R × 1 K/ns per atom, the drift that would heat the
      fluid by 1 K per ns (1% of T);
    - Verlet conserves a shadow Hamiltonian within O(dt²) of the true one, so the energy fluctuation at 5 fs is
      a quarter of that at 10 fs (between 1/5.5 and 1/3 allowed). Forces that were not exactly -dE/dx (a unit
      slip, a cutoff term missing) add a fluctuation that does not shrink with dt.
    """
    n = argon.topology.getNumAtoms()
    system = create_system(argon.topology, morse_path)
    integrator = openmm.LangevinMiddleIntegrator(TEMPERATURE, 5 / unit.picosecond, TIMESTEP)
    integrator.setRandomNumberSeed(3)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(argon.positions)
    context.setVelocitiesToTemperature(TEMPERATURE, 3)
    integrator.step(300)
    start = context.getState(getPositions=True, getVelocities=True)

    times, energies = nve_energies(system, start, TIMESTEP, 20.0)
    drift = np.polyfit(times, energies, 1)[0] / n  # kJ/mol/ns/atom
    bound = 1.5 * R * 1.0  # kJ/mol per atom for 1 K, per ns
    _, half_step = nve_energies(system, start, TIMESTEP / 2, 5.0)
    ratio = energies[:50].std() / half_step.std()
    print(
        f"NVE drift {drift:+.2e} kJ/mol/ns/atom (bound {bound:.2e}); energy fluctuation {energies[:50].std():.2e} "
        f"kJ/mol at 10 fs, {half_step.std():.2e} at 5 fs: ratio {ratio:.2f}"
    )
    assert abs(drift) < bound
    assert 3.0 < ratio < 5.5
