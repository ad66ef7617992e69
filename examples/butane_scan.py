"""Relaxed C-C-C-C scan of butane, then the anti → gauche barrier by a dihedral-driven path and by NEB.

Runs on the bundled demo potential in well under a minute on a CPU; swap in your own file with
``mlcalc.MLCalculator("model.pt")`` or any ASE calculator (e.g. ``tblite.ase.TBLite``).
Outputs: ``butane-scan/``, ``butane-path/`` and ``butane-neb/`` in the current directory.
"""

from ase.build import molecule

import mlcalc
from mlcalc.units import EV_TO_KCAL_MOL
from mlcalc.workflows import Dihedral, dihedral_path, make_band, optimize, relax_endpoint, relaxed_scan, run_neb

calc = mlcalc.MLCalculator("demo")
butane = molecule("trans-butane")
cccc = Dihedral(0, 1, 2, 3)  # 0-based atom indices: the carbon backbone

scan = relaxed_scan(butane, calc, cccc, grid=range(180, -181, -60), fmax=0.01, output="butane-scan")
for point, energy in zip(scan.points, scan.relative_energies * EV_TO_KCAL_MOL):
    print(f"dihedral {point.values[0]:7.1f}°  {energy:6.2f} kcal/mol  converged={point.converged}")

anti = relax_endpoint(butane, calc, fmax=1e-3)
gauche = relax_endpoint(optimize(anti, calc, [cccc.with_target(65.0)]).atoms, calc, fmax=1e-3)
path = dihedral_path(anti, gauche, calc, cccc, 7, backend="ase", fmax=5e-3, output="butane-path")
neb = run_neb(make_band(anti, gauche, 5), calc, climb=True, fmax=0.02, output="butane-neb")
print(
    f"anti → gauche barrier: driven path {path.barrier * EV_TO_KCAL_MOL:.2f} kcal/mol, "
    f"climbing-image NEB {neb.barrier * EV_TO_KCAL_MOL:.2f} kcal/mol ({neb.calculator_calls} model calls)"
)
