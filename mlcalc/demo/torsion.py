"""Part (a): relaxed C-C-C-C scan of butane with the demo potential, against GFN2-xTB.

Both methods run :func:`mlcalc.workflows.relaxed_scan` on the same grid from ``ase.build``'s
trans-butane (each relaxes its own geometries), and GFN2-xTB also evaluates the demo potential's
geometries (single points). Energies are relative to each curve's 180° (anti) point, kcal/mol.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
from ase.build import molecule

from mlcalc.calculator import MLCalculator
from mlcalc.demo.reference import gfn2_xtb, single_points
from mlcalc.demo.reliability import non_hierarchicality, relative_spread
from mlcalc.potential import Potential
from mlcalc.units import EV_TO_KCAL_MOL
from mlcalc.workflows import Dihedral, relaxed_scan

#: The carbon backbone of ``ase.build.molecule("trans-butane")`` (0-based).
BUTANE_CCCC = Dihedral(0, 1, 2, 3)
FMAX = 0.01  # eV/Å


@dataclass
class TorsionResult:
    """Relative energies (kcal/mol) on the grid (degrees): the demo potential's relaxed scan, GFN2-xTB on
    the demo's geometries, GFN2-xTB's own relaxed scan; convergence and non-hierarchicality per point, and
    the committee's spread of the demo's relative energies (kcal/mol; None for a single model)."""

    angles_deg: np.ndarray
    demo_kcal_mol: np.ndarray
    xtb_on_demo_kcal_mol: np.ndarray
    xtb_kcal_mol: np.ndarray
    demo_converged: np.ndarray
    xtb_converged: np.ndarray
    non_hierarchicality: np.ndarray
    demo_uncertainty_kcal_mol: Optional[np.ndarray] = None

    @property
    def rmse_vs_xtb_scan(self) -> float:
        """RMSE of the demo scan against GFN2-xTB's own relaxed scan (kcal/mol)."""
        return float(np.sqrt(np.mean((self.demo_kcal_mol - self.xtb_kcal_mol) ** 2)))

    @property
    def rmse_vs_xtb_single_points(self) -> float:
        """RMSE of the demo scan against GFN2-xTB single points on the same geometries (kcal/mol)."""
        return float(np.sqrt(np.mean((self.demo_kcal_mol - self.xtb_on_demo_kcal_mol) ** 2)))

    def rows(self) -> list[dict]:
        rows = [
            {
                "angle_deg": a,
                "demo_kcal_mol": d,
                "gfn2_xtb_on_demo_geometry_kcal_mol": s,
                "gfn2_xtb_relaxed_kcal_mol": x,
                "demo_converged": bool(dc),
                "gfn2_xtb_converged": bool(xc),
                "non_hierarchicality": r,
            }
            for a, d, s, x, dc, xc, r in zip(
                self.angles_deg,
                self.demo_kcal_mol,
                self.xtb_on_demo_kcal_mol,
                self.xtb_kcal_mol,
                self.demo_converged,
                self.xtb_converged,
                self.non_hierarchicality,
            )
        ]
        if self.demo_uncertainty_kcal_mol is not None:
            for row, sigma in zip(rows, self.demo_uncertainty_kcal_mol):
                row["demo_uncertainty_kcal_mol"] = sigma
        return rows


def butane_torsion(potential: Potential, output: Path, step_deg: float, progress: bool = False) -> TorsionResult:
    """Scan 180° → −180° + ``step_deg`` with both methods; the workflows' files go to ``output``;
    ``progress``: a progress bar per scan on stderr."""
    grid = np.arange(180.0, -180.0 + 1e-6, -step_deg)[: int(round(360.0 / step_deg))]
    butane = molecule("trans-butane")
    options: dict[str, Any] = dict(fmax=FMAX, resume=False, progress=progress)
    demo = relaxed_scan(butane, MLCalculator(potential), BUTANE_CCCC, grid, output=output / "demo", **options)
    xtb = relaxed_scan(butane, gfn2_xtb(), BUTANE_CCCC, grid, output=output / "gfn2-xtb", **options)
    demo_images = demo.images
    on_demo = single_points(demo_images, gfn2_xtb())
    return TorsionResult(
        angles_deg=grid,
        demo_kcal_mol=(demo.energies - demo.energies[0]) * EV_TO_KCAL_MOL,
        xtb_on_demo_kcal_mol=(on_demo - on_demo[0]) * EV_TO_KCAL_MOL,
        xtb_kcal_mol=(xtb.energies - xtb.energies[0]) * EV_TO_KCAL_MOL,
        demo_converged=np.array([p.converged for p in demo.points]),
        xtb_converged=np.array([p.converged for p in xtb.points]),
        non_hierarchicality=non_hierarchicality(potential, demo_images),
        demo_uncertainty_kcal_mol=relative_spread(potential, demo_images),
    )
