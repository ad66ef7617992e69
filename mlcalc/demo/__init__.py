"""``mlcalc demo``: the bundled demo potential (a HIP-NN trained on GFN2-xTB) on three molecular tasks.

(a) a relaxed butane C-C-C-C scan and (b) the butane anti → gauche barrier by climbing-image NEB, each
against GFN2-xTB (tblite) on the same tasks, and (c) NPT molecular dynamics of a periodic water box in
OpenMM with the same file; (d) a report directory with tables, plots and ``report.md``, including
HIP-NN's non-hierarchicality per structure and the committee's spread beside each number (the bundled
demo is a last-layer committee) as reliability signals. ``mlcalc demo --argon`` runs the
Lennard-Jones argon check of the two engines (:func:`run_argon_demo`) instead.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from mlcalc.demo.argon import run_argon_demo
from mlcalc.demo.barrier import butane_barrier
from mlcalc.demo.report import EXPERIMENTAL_BUTANE_BARRIER, write_report
from mlcalc.demo.torsion import butane_torsion
from mlcalc.demo.water import EXPERIMENTAL_DENSITY, water_npt
from mlcalc.potential import load

__all__ = ["DemoOptions", "run_argon_demo", "run_demo"]


@dataclass(frozen=True)
class DemoOptions:
    """Lengths of the three parts: scan grid step (degrees), NEB interior images, MD length (ps); and
    whether each part shows a live progress bar on stderr."""

    scan_step_deg: float = 15.0
    neb_images: int = 7
    md_ps: float = 2.0
    progress: bool = True


def _stage(text: str) -> None:
    """Say what starts now (the bars follow on stderr while it runs)."""
    print(text, flush=True)


def _plus_minus(sigma: Optional[float]) -> str:
    """`` ± sigma`` for a committee's spread, nothing for a single model."""
    return "" if sigma is None else f" ± {sigma:.2f}"


def run_demo(output: Path, options: DemoOptions = DemoOptions()) -> Path:
    """Run the demonstration, printing what it does; returns the path of ``output/report.md``."""
    output.mkdir(parents=True, exist_ok=True)
    potential = load("demo", device="cpu")
    print(f"demo potential: {potential.name} ({potential.metadata.description.split('.')[0]})")
    seconds = {}

    _stage(f"[1/3] butane C-C-C-C relaxed scan every {options.scan_step_deg:g}°: demo potential, then GFN2-xTB ...")
    began = time.perf_counter()
    torsion = butane_torsion(potential, output / "torsion", options.scan_step_deg, options.progress)
    seconds["butane_torsion"] = time.perf_counter() - began
    print(
        f"[1/3] butane C-C-C-C relaxed scan, {len(torsion.angles_deg)} points every {options.scan_step_deg:g}°, "
        f"demo potential and GFN2-xTB ({seconds['butane_torsion']:.0f} s): RMSE {torsion.rmse_vs_xtb_scan:.2f} "
        f"kcal/mol vs GFN2-xTB's relaxed scan, {torsion.rmse_vs_xtb_single_points:.2f} kcal/mol vs GFN2-xTB "
        f"on the demo geometries"
        + (
            ""
            if torsion.demo_uncertainty_kcal_mol is None
            else f"; committee spread of the demo's relative energies at most "
            f"{torsion.demo_uncertainty_kcal_mol.max():.2f} kcal/mol"
        )
    )

    _stage(f"[2/3] butane anti → gauche climbing-image NEB, {options.neb_images} images: demo, then GFN2-xTB ...")
    began = time.perf_counter()
    barrier = butane_barrier(potential, output / "neb", options.neb_images, options.progress)
    seconds["butane_neb"] = time.perf_counter() - began
    b = barrier.barriers()
    print(
        f"[2/3] butane anti → gauche climbing-image NEB, {options.neb_images} images ({seconds['butane_neb']:.0f} s, "
        f"converged: demo {barrier.demo.converged}, GFN2-xTB {barrier.xtb.converged}): barrier "
        f"{b['barrier_demo_kcal_mol']:.2f}{_plus_minus(b.get('barrier_demo_uncertainty_kcal_mol'))} kcal/mol "
        "(GFN2-xTB on the demo band "
        f"{b['barrier_gfn2_xtb_on_demo_band_kcal_mol']:.2f}), GFN2-xTB's own NEB "
        f"{b['barrier_gfn2_xtb_neb_kcal_mol']:.2f} kcal/mol (experiment ≈ {EXPERIMENTAL_BUTANE_BARRIER:g}: "
        "GFN2-xTB, which the demo potential learned, is known to be low here)"
    )

    _stage(f"[3/3] OpenMM NPT MD of a water box on the demo potential, {options.md_ps:g} ps ...")
    began = time.perf_counter()
    water = water_npt(potential, options.md_ps, progress=options.progress)
    seconds["water_npt"] = time.perf_counter() - began
    half = water.second_half
    status = (
        "equilibrated"
        if water.density_equilibrated
        else f"NOT equilibrated: still drifting by {water.density_drift:+.3f} g/cm³"
    )
    print(
        f"[3/3] OpenMM NPT MD of {water.n_waters} waters (whole system on the demo potential as a "
        f"{water.openmm_force}, {water.platform} platform), "
        f"{water.times_ps[-1]:g} ps at 300 K, 1 bar ({seconds['water_npt']:.0f} s): second half mean density "
        f"{water.densities[half].mean():.3f} g/cm³ ({status}; experiment {EXPERIMENTAL_DENSITY:.3f}), "
        f"mean T {water.temperatures[half].mean():.0f} K\n"
        f"      last frame: E(OpenMM) = {water.energy_openmm_eV:.10f} eV, E(ASE) = {water.energy_ase_eV:.10f} eV, "
        f"relative difference {water.relative_difference:.1e}"
        + (
            ""
            if water.energy_uncertainty_eV is None
            else f"; committee spread {water.energy_uncertainty_eV[-1]:.3f} eV (at most "
            f"{water.energy_uncertainty_eV.max():.3f} eV along the run)"
        )
    )
    report = write_report(output, potential, torsion, barrier, water, seconds)
    print(f"report: {report.resolve()}")
    return report
