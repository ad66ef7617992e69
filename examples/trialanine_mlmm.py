"""ML/MM NPT of trialanine in water: the peptide with an mlcalc potential, water with amber14/TIP3P.

``Modeller`` solvates ``trialanine.pdb`` (zwitterionic Ala3 with hydrogens) in a cubic TIP3P box
(1 nm padding: peptide atoms at least 1 nm from their periodic images; 2.1 nm, 269 waters); amber14
builds the MM System (PME, 1 nm cutoff, bonds to hydrogen constrained);
``mlcalc.openmm.create_mixed_system`` replaces the peptide's internal MM terms by the potential
(mechanical embedding: peptide-water interactions stay amber14) and frees the peptide's constraints.
Then 1 ps of NPT at 300 K and 1 bar with 1 fs steps (the peptide's hydrogens are unconstrained);
about a minute on two CPU cores.

The potential: mlcalc's bundled demo HIP-NN (``mlcalc.load("demo")``: H, C, N, O, trained on GFN2-xTB
energies and forces of small neutral molecules and water; see docs/model-card.md). It is a
demonstration, not a peptide potential, and it has no charge input: the zwitterion's NH3+ and COO-
are outside what it was trained on. Use a potential trained for your system for science.
"""

from pathlib import Path

import openmm
from openmm import app, unit

import mlcalc
import mlcalc.openmm

potential = mlcalc.load("demo")

pdb = app.PDBFile(str(Path(__file__).with_name("trialanine.pdb")))
forcefield = app.ForceField("amber14-all.xml", "amber14/tip3p.xml")
modeller = app.Modeller(pdb.topology, pdb.positions)
modeller.addSolvent(forcefield, model="tip3p", padding=1.0 * unit.nanometer)
mm_system = forcefield.createSystem(
    modeller.topology, nonbondedMethod=app.PME, nonbondedCutoff=1.0 * unit.nanometer, constraints=app.HBonds
)
peptide = [atom.index for atom in modeller.topology.atoms() if atom.residue.name == "ALA"]
system = mlcalc.openmm.create_mixed_system(modeller.topology, mm_system, peptide, potential)
system.addForce(openmm.MonteCarloBarostat(1 * unit.bar, 300 * unit.kelvin))

integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 1 * unit.femtosecond)
simulation = app.Simulation(modeller.topology, system, integrator)
simulation.context.setPositions(modeller.positions)
simulation.minimizeEnergy(maxIterations=100)
simulation.context.setVelocitiesToTemperature(300 * unit.kelvin)
print(f"{len(peptide)} ML atoms ({potential.name}), {system.getNumParticles()} atoms in all")
simulation.reporters.append(
    app.StateDataReporter("trialanine-npt.csv", 100, step=True, potentialEnergy=True, temperature=True, density=True)
)
simulation.step(1000)
mass = sum((system.getParticleMass(i) for i in range(system.getNumParticles())), 0 * unit.dalton)
density = mass / unit.AVOGADRO_CONSTANT_NA / simulation.context.getState().getPeriodicBoxVolume()
grams_per_cm3 = density.value_in_unit(unit.gram / unit.centimeter**3)
print(f"density after {simulation.currentStep} steps: {grams_per_cm3:.3f} g/cm^3")
