"""How ``trialanine.pdb`` was built: zwitterionic Ala-Ala-Ala (pH 7) with amber14 hydrogens.

RDKit builds the peptide from its sequence and sets the backbone to the polyproline II region
(phi = -75°, psi = 145°, the most populated basin of trialanine in water, Hedelius, TrIP thesis, Table 9);
OpenMM's ``Modeller`` adds the hydrogens of the amber14 templates (NH3+ and COO- termini) and the
hydrogens are relaxed in vacuum with amber14, heavy atoms held fixed (a free zwitterion would
collapse into a salt bridge in vacuum). Run: ``python examples/tools/build_trialanine.py`` (needs RDKit).
"""

from pathlib import Path

import openmm
from openmm import app, unit
from rdkit import Chem
from rdkit.Chem import AllChem, rdMolTransforms

PHI, PSI = -75.0, 145.0
OUTPUT = Path(__file__).resolve().parents[1] / "trialanine.pdb"

peptide = Chem.AddHs(Chem.MolFromSequence("AAA"))
AllChem.EmbedMolecule(peptide, randomSeed=4)
conformer = peptide.GetConformer()
backbone = {}
for atom in peptide.GetAtoms():
    info = atom.GetPDBResidueInfo()
    if info is not None and info.GetName().strip() in ("N", "CA", "C"):
        backbone[(info.GetResidueNumber(), info.GetName().strip())] = atom.GetIdx()
for residue in (1, 2, 3):
    n, ca, c = (backbone[(residue, name)] for name in ("N", "CA", "C"))
    if residue > 1:
        rdMolTransforms.SetDihedralDeg(conformer, backbone[(residue - 1, "C")], n, ca, c, PHI)
    if residue < 3:
        rdMolTransforms.SetDihedralDeg(conformer, n, ca, c, backbone[(residue + 1, "N")], PSI)
heavy = Chem.RemoveHs(peptide)
OUTPUT.write_text(Chem.MolToPDBBlock(heavy))

pdb = app.PDBFile(str(OUTPUT))
forcefield = app.ForceField("amber14-all.xml")
modeller = app.Modeller(pdb.topology, pdb.positions)
modeller.addHydrogens(forcefield, pH=7.0)
system = forcefield.createSystem(modeller.topology, nonbondedMethod=app.NoCutoff)
for atom in modeller.topology.atoms():
    if atom.element is not app.element.hydrogen:
        system.setParticleMass(atom.index, 0.0)  # the minimiser does not move massless particles
simulation = app.Simulation(modeller.topology, system, openmm.VerletIntegrator(0.001 * unit.picosecond))
simulation.context.setPositions(modeller.positions)
simulation.minimizeEnergy(maxIterations=200)
positions = simulation.context.getState(getPositions=True).getPositions()
with open(OUTPUT, "w") as handle:
    app.PDBFile.writeFile(modeller.topology, positions, handle)
print(f"wrote {OUTPUT}: {modeller.topology.getNumAtoms()} atoms")
