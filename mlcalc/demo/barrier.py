"""Part (b): the butane anti → gauche barrier by climbing-image NEB with the demo potential, against GFN2-xTB.

Each method relaxes its own anti and gauche minima (the gauche start: anti with C-C-C-C held at 65°),
ASE's IDPP interpolates a band between them and :func:`mlcalc.workflows.run_neb` relaxes it (climbing
image; the demo potential evaluates each band in one batched call). GFN2-xTB also evaluates the demo
potential's band (single points). Energies in kcal/mol relative to each band's anti end.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from ase import Atoms
from ase.build import molecule
from ase.calculators.calculator import BaseCalculator

from mlcalc.calculator import MLCalculator
from mlcalc.demo.reference import gfn2_xtb, single_points
from mlcalc.demo.reliability import non_hierarchicality, relative_spread
from mlcalc.demo.torsion import BUTANE_CCCC
from mlcalc.potential import Potential
from mlcalc.units import EV_TO_KCAL_MOL
from mlcalc.workflows import NEBResult, make_band, optimize, relax_endpoint, run_neb

GAUCHE_START_DEG = 65.0
NEB_STEPS = 1000
ENDPOINT_FMAX = 1e-3  # eV/Å


def butane_endpoints(calc: BaseCalculator) -> tuple[Atoms, Atoms]:
    """Relaxed anti and gauche butane."""
    anti = relax_endpoint(molecule("trans-butane"), calc, fmax=ENDPOINT_FMAX)
    held = optimize(anti, calc, [BUTANE_CCCC.with_target(GAUCHE_START_DEG)]).atoms
    return anti, relax_endpoint(held, calc, fmax=ENDPOINT_FMAX)


@dataclass
class BarrierResult:
    """The demo potential's band and GFN2-xTB's (relative energies in kcal/mol), GFN2-xTB on the demo
    band, the C-C-C-C dihedral (degrees), the non-hierarchicality of each demo image and the committee's
    spread of the demo's relative energies (kcal/mol; None for a single model)."""

    demo: NEBResult
    xtb: NEBResult
    xtb_on_demo_kcal_mol: np.ndarray
    non_hierarchicality: np.ndarray
    demo_uncertainty_kcal_mol: Optional[np.ndarray] = None

    @property
    def demo_kcal_mol(self) -> np.ndarray:
        return (self.demo.energies - self.demo.energies[0]) * EV_TO_KCAL_MOL

    @property
    def xtb_kcal_mol(self) -> np.ndarray:
        return (self.xtb.energies - self.xtb.energies[0]) * EV_TO_KCAL_MOL

    @property
    def demo_dihedrals_deg(self) -> np.ndarray:
        return np.array([BUTANE_CCCC.value(image) for image in self.demo.images])

    @property
    def xtb_dihedrals_deg(self) -> np.ndarray:
        return np.array([BUTANE_CCCC.value(image) for image in self.xtb.images])

    def barriers(self) -> dict:
        """Barriers and reaction energies (gauche − anti, kcal/mol) of the three profiles."""
        profiles = {
            "demo": self.demo_kcal_mol,
            "gfn2_xtb_on_demo_band": self.xtb_on_demo_kcal_mol,
            "gfn2_xtb_neb": self.xtb_kcal_mol,
        }
        values = {
            **{f"barrier_{name}_kcal_mol": float(p.max()) for name, p in profiles.items()},
            **{f"reaction_energy_{name}_kcal_mol": float(p[-1]) for name, p in profiles.items()},
        }
        if self.demo_uncertainty_kcal_mol is not None:  # the spread at the demo's highest image and at gauche
            values["barrier_demo_uncertainty_kcal_mol"] = float(
                self.demo_uncertainty_kcal_mol[self.demo_kcal_mol.argmax()]
            )
            values["reaction_energy_demo_uncertainty_kcal_mol"] = float(self.demo_uncertainty_kcal_mol[-1])
        return values

    def rows(self) -> list[dict]:
        rows = [
            {
                "image": n,
                "demo_dihedral_deg": dd,
                "demo_kcal_mol": d,
                "gfn2_xtb_on_demo_band_kcal_mol": s,
                "non_hierarchicality": r,
                "gfn2_xtb_dihedral_deg": xd,
                "gfn2_xtb_neb_kcal_mol": x,
            }
            for n, (dd, d, s, r, xd, x) in enumerate(
                zip(
                    self.demo_dihedrals_deg,
                    self.demo_kcal_mol,
                    self.xtb_on_demo_kcal_mol,
                    self.non_hierarchicality,
                    self.xtb_dihedrals_deg,
                    self.xtb_kcal_mol,
                )
            )
        ]
        if self.demo_uncertainty_kcal_mol is not None:
            for row, sigma in zip(rows, self.demo_uncertainty_kcal_mol):
                row["demo_uncertainty_kcal_mol"] = sigma
        return rows


def anti_gauche_neb(calc: BaseCalculator, n_images: int, output: Path, progress: bool = False) -> NEBResult:
    """End points relaxed with ``calc``, an IDPP band of ``n_images`` interior images, climbing-image NEB."""
    band = make_band(*butane_endpoints(calc), n_images)
    return run_neb(band, calc, climb=True, steps=NEB_STEPS, output=output, progress=progress)  # fmax 0.01 eV/Å


def butane_barrier(potential: Potential, output: Path, n_images: int, progress: bool = False) -> BarrierResult:
    """Both NEBs; the workflows' files go to ``output``/demo and ``output``/gfn2-xtb; ``progress``: a
    progress bar per NEB on stderr."""
    demo = anti_gauche_neb(MLCalculator(potential), n_images, output / "demo", progress)
    xtb = anti_gauche_neb(gfn2_xtb(), n_images, output / "gfn2-xtb", progress)
    on_demo = single_points(demo.images, gfn2_xtb())
    return BarrierResult(
        demo=demo,
        xtb=xtb,
        xtb_on_demo_kcal_mol=(on_demo - on_demo[0]) * EV_TO_KCAL_MOL,
        non_hierarchicality=non_hierarchicality(potential, demo.images),
        demo_uncertainty_kcal_mol=relative_spread(potential, demo.images),
    )
