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
from mlcalc.files import write_csv_atomic, write_json_atomic

#: The default selection: the word ``solute`` (see :func:`select`), not an MDAnalysis selection string.
DEFAULT_SELECTION = "solute"

#: Residue names of water models, compared in upper case (GROMACS SOL, AMBER WAT, CHARMM TIP3, ...).
WATER_RESIDUES = frozenset(
    {"HOH", "WAT", "SOL", "H2O", "DOD", "TIP3", "TIP3P", "TIP4", "TIP4P", "TIP5", "TIP5P", "SPC", "SPCE", "T3P", "T4P"}
)

#: Monatomic ions, compared in upper case without charge signs or digits (Na+, NA+, CL-, SOD, CLA, POT, MG2+, ...).
ION_RESIDUES = frozenset(
    {"NA", "CL", "K", "LI", "RB", "CS", "MG", "CA", "ZN", "BR", "I", "F", "SOD", "CLA", "POT", "CES", "CAL", "MN"}
)


def select(universe, selection: str = DEFAULT_SELECTION):
    """``selection`` as an AtomGroup: ``"solute"`` is every residue but water and monatomic ions, named in
    any case (a GROMACS file's ``NA+`` and ``CL-`` too); anything else is an MDAnalysis selection."""
    if selection != "solute":
        from MDAnalysis.exceptions import SelectionError

        try:
            return universe.select_atoms(selection)
        except SelectionError as exc:
            raise ValueError(
                f"cannot read the selection {selection!r} ({exc}): write an MDAnalysis selection such as "
                "'resname ALA', 'protein and not name H*' or 'index 0:9', or use 'solute'"
            ) from None
    if not hasattr(universe.residues, "resnames"):  # MDAnalysis's NoDataError is an AttributeError
        raise ValueError(
            "the topology has no residue names, so the selection 'solute' cannot tell solute from water: give a "
            "topology with residues (a PDB such as start.pdb of mlcalc md), or a selection such as --select all"
        )
    kept = [residue.atoms.indices for residue in universe.residues if not _is_solvent(residue)]
    return universe.atoms[np.concatenate(kept)] if kept else universe.atoms[[]]


def _is_solvent(residue) -> bool:
    name = residue.resname.upper()
    return name in WATER_RESIDUES or (len(residue.atoms) == 1 and name.strip("+-0123456789") in ION_RESIDUES)


def make_whole(atoms) -> None:
    """Make every molecule of ``atoms`` whole in every frame, as it is read (MDAnalysis's ``unwrap``
    transformation): molecules written split across a periodic box would otherwise give radii of
    gyration, RMSF and distances of the split, not of the molecule. Bonds come from the topology where
    every atom of ``atoms`` has one, else they are guessed (MDAnalysis, minimum image)."""
    if atoms.universe.dimensions is None or len(atoms) < 2:
        return
    if not hasattr(atoms, "bonds") or any(len(atom.bonds) == 0 for atom in atoms):
        atoms.guess_bonds()
    from MDAnalysis.transformations import unwrap

    atoms.universe.trajectory.add_transformations(unwrap(atoms))


def load_universe(topology: str, trajectory: str):
    import MDAnalysis

    return MDAnalysis.Universe(str(topology), str(trajectory))


def analyze(
    universe,
    output: Optional[Path] = None,
    selection: str = DEFAULT_SELECTION,
    distance_range: Optional[tuple[float, float]] = (0.0, 20.0),
    plots: bool = True,
) -> dict:
    """φ/ψ and secondary structure (if the selection has >= 3 residues with a backbone), RMSF (after
    superposing every frame on the average structure), radius of gyration, distance distribution
    (``distance_range`` Å, ``None`` to skip it) and VACF spectrum of ``selection`` (see :func:`select`),
    its molecules made whole first (:func:`make_whole`); written to ``output`` if given."""
    atoms = select(universe, selection)
    if len(atoms) == 0:
        names = sorted(set(universe.residues.resnames))[:20] if hasattr(universe.residues, "resnames") else []
        raise ValueError(
            f"the selection {selection!r} matches no atoms (residues in the topology: {names}): select some of "
            "them, e.g. --select 'resname ...' or 'index 0:9'"
        )
    make_whole(atoms)
    frames = len(universe.trajectory)
    if frames < 3:
        raise ValueError(
            f"the trajectory has {frames} frame(s); the analyses need at least 3: write frames more often "
            "(mlcalc md --trajectory-interval) or run longer"
        )
    result: dict = {"atoms": len(atoms), "frames": frames, "selection": selection}
    backbone = atoms.select_atoms("backbone")
    if len(backbone.residues) >= 3:
        angles, labels = backbone_torsions(atoms)
        result["torsions"] = {"labels": labels, "angles": angles}
        result["states"] = state_statistics(angles[..., 0], angles[..., 1])
    result["rmsf"] = rmsf(atoms) if len(atoms) >= 3 else np.zeros(len(atoms))
    result["rg"] = radius_of_gyration(atoms)
    if len(atoms) >= 2 and distance_range is not None:
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
        write_csv_atomic(output / "torsions.csv", header, rows)
        states = result["states"]
        write_csv_atomic(output / "states.csv", list(states[0]), [list(row.values()) for row in states])
        summary["states"] = states
    write_csv_atomic(
        output / "rmsf.csv",
        ["index", "name", "resname", "resid", "rmsf_angstrom"],
        [[a.index, a.name, a.resname, a.resid, float(v)] for a, v in zip(atoms, result["rmsf"])],
    )
    write_csv_atomic(output / "rg.csv", ["frame", "rg_angstrom"], list(enumerate(result["rg"].tolist())))
    summary["rg_mean_angstrom"] = float(np.mean(result["rg"]))
    if "distance_density" in result:
        write_csv_atomic(
            output / "distances.csv",
            ["distance_angstrom", "density_per_angstrom"],
            zip(result["distance_centres"].tolist(), result["distance_density"].tolist()),
        )
    wavenumbers, power = result["spectrum"]
    write_csv_atomic(output / "spectrum.csv", ["wavenumber_cm-1", "power"], zip(wavenumbers.tolist(), power.tolist()))
    write_json_atomic(output / "summary.json", summary, indent=2, sort_keys=True)
    if plots:
        from mlcalc.analysis.plots import plot_overview, plot_ramachandran

        if "torsions" in result:
            plot_ramachandran(result["torsions"]["angles"], result["torsions"]["labels"], output / "ramachandran.png")
        plot_overview(result, output / "overview.png")


def compare_and_write(first: dict, second: dict, output: Optional[Path] = None) -> dict[str, float]:
    """Pearson correlations between two :func:`analyze` results; ``comparison.json`` in ``output``."""
    correlations = compare(first, second)
    if output is not None:
        write_json_atomic(Path(output) / "comparison.json", correlations, indent=2, sort_keys=True)
    return correlations
