"""``mlcalc analyze``: φ/ψ, secondary structure, RMSF, radius of gyration, distances and VACF spectra of a
trajectory (MDAnalysis), with Pearson correlations against a second trajectory."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

#: ``mlcalc.analysis.report.DEFAULT_SELECTION``, repeated here because that module loads MDAnalysis
#: (tests/test_cli_startup.py checks that the two agree).
DEFAULT_SELECTION = "solute"


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "analyze",
        help="analyse a trajectory: phi/psi, secondary structure, RMSF, Rg, distances, VACF spectrum",
        description="Writes torsions.csv, states.csv, rmsf.csv, rg.csv, distances.csv, spectrum.csv, summary.json "
        "and PNG plots into the output directory; with --compare also comparison.json (Pearson correlations).",
    )
    parser.add_argument("topology", type=Path, help="topology MDAnalysis reads (e.g. start.pdb of mlcalc md)")
    parser.add_argument("trajectory", type=Path, help="trajectory (DCD, XTC, ...)")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("TOPOLOGY", "TRAJECTORY"), help="second trajectory")
    parser.add_argument(
        "--select",
        default=DEFAULT_SELECTION,
        help="MDAnalysis selection, or 'solute' (default): every residue but water and monatomic ions, any case",
    )
    parser.add_argument(
        "-o", "--output", type=Path, default=Path("analysis"), help="output directory (default analysis)"
    )
    parser.add_argument("--distance-max", type=float, default=20.0, help="upper end of the distance histogram, Å")
    parser.add_argument("--no-distances", dest="distances", action="store_false", help="skip the distance histogram")
    parser.add_argument("--no-plots", dest="plots", action="store_false", help="tables only")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mlcalc.analysis.report import analyze, compare_and_write, load_universe

    for path in (args.topology, args.trajectory, *(args.compare or ())):
        if not path.exists():
            hint = ": check the path (mlcalc md writes start.pdb and trajectory.dcd or .xtc into its output directory)"
            if (path.parent / "config.json").exists() and path.name.startswith("trajectory."):
                hint = (
                    f": {path.parent} holds an mlcalc md run whose production stage has not written a frame yet "
                    f"(its state.csv shows how far it got; mlcalc md --resume {path.parent} continues it)"
                )
            raise FileNotFoundError(f"{path} does not exist{hint}")
    span = (0.0, args.distance_max) if args.distances else None
    first = analyze(load_universe(args.topology, args.trajectory), args.output, args.select, span, args.plots)
    print(f"mlcalc analyze: {first['frames']} frames of {first['atoms']} atoms -> {args.output}")
    for row in first.get("states", []):
        print(f"  {row['state']:>6}  {row['population_percent']:5.1f} %")
    if args.compare:
        second_output = args.output / "compared"
        second = analyze(load_universe(*args.compare), second_output, args.select, span, args.plots)
        correlations = compare_and_write(first, second, args.output)
        print("  Pearson r: " + json.dumps(correlations))
    return 0
