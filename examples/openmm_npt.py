"""NPT MD of 256 argon atoms at 90 K and 1 bar with a potential file as an OpenMM force (the TorchForce or
PythonForce that mlcalc.openmm picks)."""

from pathlib import Path

import openmm
from openmm import app, unit

import mlcalc
import mlcalc.openmm

mlcalc.export(mlcalc.models.LennardJones(sigma=3.405, epsilon=0.0103, cutoff=8.5), "argon.pt")
pdb = app.PDBFile(str(Path(__file__).with_name("argon-liquid.pdb")))  # liquid argon, 23 Å box
system = mlcalc.openmm.create_system(pdb.topology, "argon.pt")
system.addForce(openmm.MonteCarloBarostat(1 * unit.bar, 90 * unit.kelvin))
integrator = openmm.LangevinMiddleIntegrator(90 * unit.kelvin, 1 / unit.picosecond, 5 * unit.femtosecond)
simulation = app.Simulation(pdb.topology, system, integrator)
simulation.context.setPositions(pdb.positions)
simulation.reporters.append(app.StateDataReporter("npt.csv", 100, step=True, density=True, speed=True))
simulation.step(1000)
