"""Export a Lennard-Jones argon potential and relax an fcc crystal (cell and positions) in ASE."""

from ase.build import bulk
from ase.filters import FrechetCellFilter
from ase.optimize import BFGS

import mlcalc

mlcalc.export(mlcalc.models.LennardJones(sigma=3.405, epsilon=0.0103, cutoff=8.5), "argon.pt")
atoms = bulk("Ar", "fcc", a=5.5, cubic=True)  # 4 atoms: the calculator adds every periodic image
atoms.calc = mlcalc.MLCalculator("argon.pt")
BFGS(FrechetCellFilter(atoms)).run(fmax=1e-4)
print(f"a = {atoms.cell.lengths()[0]:.4f} Å, E = {atoms.get_potential_energy() / len(atoms):.5f} eV/atom")
