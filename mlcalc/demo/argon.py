"""``mlcalc demo --argon``: one Lennard-Jones potential file, run in both engines, checked against their own LJ.

1. Export a Lennard-Jones argon potential (σ = 3.405 Å, ε/k_B = 119.8 K, 8.5 Å cutoff) with
   :func:`mlcalc.export`.
2. ASE: relax a 32-atom fcc argon cell (positions and cell, ``FrechetCellFilter`` + ``FIRE``) and
   compare the result with ASE's own ``LennardJones`` calculator.
3. OpenMM: NPT molecular dynamics of 256 atoms of liquid argon at 90 K and 1 bar (the potential as a
   ``TorchForce`` or ``PythonForce``, see :mod:`mlcalc.openmm.forces`; ``LangevinMiddleIntegrator``,
   ``MonteCarloBarostat``) and compare the final frame's energy with the ASE calculator's.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import openmm
from ase import Atoms, units
from ase.build import bulk
from ase.calculators.lj import LennardJones as AseLennardJones
from ase.filters import FrechetCellFilter
from ase.io import write
from ase.optimize import FIRE
from openmm import app, unit

from mlcalc.calculator import MLCalculator
from mlcalc.export import export
from mlcalc.models import LennardJones
from mlcalc.openmm import create_system
from mlcalc.openmm.forces import force_class_of
from mlcalc.openmm.platforms import choose_platform
from mlcalc.potential import load
from mlcalc.units import EV_PER_KJ_PER_MOL

SIGMA = 3.405  # Å
EPSILON = 119.8 * units.kB  # eV
CUTOFF = 8.5  # Å
ARGON_MASS = 39.948  # g/mol
AVOGADRO = 6.02214076e23


def run_argon_demo(output: Path, md_steps: int = 3000) -> None:
    """Run the argon demonstration, writing its files to ``output`` and printing what it does."""
    output.mkdir(parents=True, exist_ok=True)
    path = output / "argon-lj.pt"
    export(LennardJones(sigma=SIGMA, epsilon=EPSILON, cutoff=CUTOFF), path, name="argon-lj")
    potential = load(path, device="cpu")
    print(f"[1/3] exported {potential} to {path}")

    _relax_crystal(potential, output)
    _npt_liquid(potential, output, md_steps)
    print(f"done: outputs in {output.resolve()}")


def _relax_crystal(potential, output: Path) -> None:
    atoms = bulk("Ar", "fcc", a=5.6, cubic=True).repeat(2)
    atoms.rattle(0.05, seed=0)
    atoms.calc = MLCalculator(potential)
    start = time.perf_counter()
    optimizer = FIRE(FrechetCellFilter(atoms), logfile=None)
    converged = optimizer.run(fmax=1e-4, steps=2000)
    seconds = time.perf_counter() - start
    lattice = np.cbrt(atoms.get_volume() / 8)
    energy = atoms.get_potential_energy() / len(atoms)
    reference = atoms.copy()
    reference.calc = AseLennardJones(sigma=SIGMA, epsilon=EPSILON, rc=CUTOFF)
    d_energy = abs(atoms.get_potential_energy() - reference.get_potential_energy())
    d_forces = np.abs(atoms.get_forces() - reference.get_forces()).max()
    d_stress = np.abs(atoms.get_stress() - reference.get_stress()).max()
    write(output / "argon-fcc-relaxed.extxyz", atoms)
    print(
        f"[2/3] ASE: relaxed fcc Ar (32 atoms, cell + positions, FIRE + FrechetCellFilter) in "
        f"{optimizer.nsteps} steps, {seconds:.1f} s, converged={converged}: a = {lattice:.4f} Å, "
        f"E = {energy * 1000:.3f} meV/atom\n"
        f"      vs ASE's own LennardJones on the relaxed cell: |ΔE| = {d_energy:.1e} eV, "
        f"max|ΔF| = {d_forces:.1e} eV/Å, max|Δσ| = {d_stress:.1e} eV/Å³"
    )


def _npt_liquid(potential, output: Path, steps: int) -> None:
    n_atoms, temperature, pressure = 256, 90.0, 1.0
    density = 1.39  # g/cm³, close to liquid argon at 90 K
    box = np.cbrt(n_atoms * ARGON_MASS / AVOGADRO / density) * 1e7  # nm
    topology = app.Topology()
    chain = topology.addChain()
    for _ in range(n_atoms):
        topology.addAtom("Ar", app.element.argon, topology.addResidue("AR", chain))
    topology.setPeriodicBoxVectors(np.eye(3) * box * unit.nanometer)
    positions = _spread_atoms(n_atoms, box, minimum=0.3, seed=1)

    system = create_system(topology, potential)
    barostat = openmm.MonteCarloBarostat(pressure * unit.bar, temperature * unit.kelvin, 25)
    barostat.setRandomNumberSeed(5)  # OpenMM's default, 0, draws a new seed for every Context
    system.addForce(barostat)
    integrator = openmm.LangevinMiddleIntegrator(temperature * unit.kelvin, 1 / unit.picosecond, 5 * unit.femtosecond)
    integrator.setRandomNumberSeed(7)
    platform, properties = choose_platform("CPU")
    simulation = app.Simulation(topology, system, integrator, platform, properties)
    simulation.context.setPositions(positions * unit.nanometer)
    simulation.context.setVelocitiesToTemperature(temperature * unit.kelvin, 11)
    simulation.minimizeEnergy(maxIterations=200)
    log = output / "argon-npt.csv"
    interval = max(1, steps // 30)
    simulation.reporters.append(
        app.StateDataReporter(
            str(log), interval, step=True, time=True, potentialEnergy=True, temperature=True, density=True, speed=True
        )
    )
    start = time.perf_counter()
    simulation.step(steps)
    seconds = time.perf_counter() - start
    data = np.atleast_1d(np.genfromtxt(log, delimiter=",", names=True))
    second_half = data[len(data) // 2 :]
    state = simulation.context.getState(getEnergy=True, getPositions=True, enforcePeriodicBox=False)
    app.PDBFile.writeFile(topology, state.getPositions(), str(output / "argon-liquid.pdb"))
    frame = Atoms(
        "Ar" * n_atoms,
        positions=state.getPositions(asNumpy=True).value_in_unit(unit.angstrom),
        cell=np.array(state.getPeriodicBoxVectors().value_in_unit(unit.angstrom)),
        pbc=True,
        calculator=MLCalculator(potential),
    )
    e_openmm = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) * EV_PER_KJ_PER_MOL
    e_ase = frame.get_potential_energy()
    openmm_force = force_class_of(system.getForce(0))
    print(
        f"[3/3] OpenMM: {steps} steps ({steps * 5 / 1000:g} ps) of NPT MD of {n_atoms} Ar atoms at "
        f"{temperature:g} K, {pressure:g} bar ({openmm_force} + MonteCarloBarostat) in {seconds:.1f} s\n"
        f"      second half: mean density {second_half['Density_gmL'].mean():.3f} g/cm³, "
        f"mean T {second_half['Temperature_K'].mean():.1f} K\n"
        f"      final frame: E(OpenMM) = {e_openmm:.10f} eV, E(ASE) = {e_ase:.10f} eV, "
        f"relative difference {abs(e_openmm - e_ase) / abs(e_ase):.1e}"
    )


def _spread_atoms(n: int, box: float, minimum: float, seed: int) -> np.ndarray:
    """Random positions in a cubic box (nm) no closer than ``minimum`` under periodic images."""
    rng = np.random.default_rng(seed)
    placed: list[np.ndarray] = []
    while len(placed) < n:
        trial = rng.uniform(0, box, 3)
        if placed:
            d = np.asarray(placed) - trial
            d -= box * np.round(d / box)
            if (np.einsum("ij,ij->i", d, d) < minimum**2).any():
                continue
        placed.append(trial)
    return np.asarray(placed)
