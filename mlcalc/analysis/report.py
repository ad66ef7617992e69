"""Run every analysis on one trajectory and write tables (CSV/JSON) and plots (PNG) into a directory."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from mlcalc.analysis.compare import compare
from mlcalc.analysis.secondary import state_statistics
from mlcalc.analysis.spectrum import power_spectrum, velocities_from_positions
from mlcalc.analysis.structure import distance_histogram, radius_of_gyration, rmsf
from mlcalc.analysis.torsions import backbone_torsions
from mlcalc.md.files import write_csv, write_json

#: The solute by default: everything but water and the ions Modeller adds.
DEFAULT_SELECTION = "not resname HOH WAT SOL NA CL K Na+ Cl- K+"


def load_universe(topology: str, trajectory: str):
    import MDAnalysis

    return MDAnalysis.Universe(str(topology), str(trajectory))


def analyze(
    universe,
    output: Optional[Path] = None,
    selection: str = DEFAULT_SELECTION,
    distance_range: tuple[float, float] = (0.0, 20.0),
    plots: bool = True,
) -> dict:
    """φ/ψ and secondary structure (if the selection has >= 3 residues with a backbone), RMSF, radius
    of gyration, distance distribution and VACF spectrum of ``selection``; written to ``output`` if given."""
    atoms = universe.select_atoms(selection)
    if len(atoms) == 0:
        raise ValueError(f"the selection {selection!r} matches no atoms")
    frames = len(universe.trajectory)
    if frames < 3:
        raise ValueError(f"the trajectory has {frames} frame(s); the analyses need at least 3")
    result: dict = {"atoms": len(atoms), "frames": frames, "selection": selection}
    backbone = atoms.select_atoms("backbone")
    if len(backbone.residues) >= 3:
        angles, labels = backbone_torsions(atoms)
        result["torsions"] = {"labels": labels, "angles": angles}
        result["states"] = state_statistics(angles[..., 0], angles[..., 1])
    result["rmsf"] = rmsf(atoms) if len(atoms) >= 3 else np.zeros(len(atoms))
    result["rg"] = radius_of_gyration(atoms)
    if len(atoms) >= 2:
        centres, density = distance_histogram(atoms, range_=distance_range)
        result["distance_centres"], result["distance_density"] = centres, density
    dt = universe.trajectory.dt  # ps
    positions = np.array([atoms.positions.copy() for _ in universe.trajectory])
    boxes = np.array([ts.dimensions for ts in universe.trajectory]) if universe.dimensions is not None else None
    velocities = velocities_from_positions(positions, dt, boxes)
    result["spectrum"] = power_spectrum(velocities, dt, masses=atoms.masses)
    if output is not None:
        write_results(result, Path(output), atoms, plots)
    return result


def write_results(result: dict, output: Path, atoms, plots: bool = True) -> None:
    output.mkdir(parents=True, exist_ok=True)
    summary = {key: result[key] for key in ("atoms", "frames", "selection")}
    if "torsions" in result:
        angles, labels = result["torsions"]["angles"], result["torsions"]["labels"]
        header = ["frame"] + [f"{label}_{angle}" for label in labels for angle in ("phi", "psi")]
        rows = [[k, *angles[k].ravel().tolist()] for k in range(len(angles))]
        write_csv(output / "torsions.csv", header, rows)
        states = result["states"]
        write_csv(output / "states.csv", list(states[0]), [list(row.values()) for row in states])
        summary["states"] = states
    write_csv(
        output / "rmsf.csv",
        ["index", "name", "resname", "resid", "rmsf_angstrom"],
        [[a.index, a.name, a.resname, a.resid, float(v)] for a, v in zip(atoms, result["rmsf"])],
    )
    write_csv(output / "rg.csv", ["frame", "rg_angstrom"], list(enumerate(result["rg"].tolist())))
    summary["rg_mean_angstrom"] = float(np.mean(result["rg"]))
    if "distance_density" in result:
        write_csv(
            output / "distances.csv",
            ["distance_angstrom", "density_per_angstrom"],
            zip(result["distance_centres"].tolist(), result["distance_density"].tolist()),
        )
    wavenumbers, power = result["spectrum"]
    write_csv(output / "spectrum.csv", ["wavenumber_cm-1", "power"], zip(wavenumbers.tolist(), power.tolist()))
    write_json(output / "summary.json", summary)
    if plots:
        from mlcalc.analysis.plots import plot_overview, plot_ramachandran

        if "torsions" in result:
            plot_ramachandran(result["torsions"]["angles"], result["torsions"]["labels"], output / "ramachandran.png")
        plot_overview(result, output / "overview.png")


def compare_and_write(first: dict, second: dict, output: Optional[Path] = None) -> dict[str, float]:
    """Pearson correlations between two :func:`analyze` results; ``comparison.json`` in ``output``."""
    correlations = compare(first, second)
    if output is not None:
        write_json(Path(output) / "comparison.json", correlations)
    return correlations
