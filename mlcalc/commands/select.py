"""``mlcalc select``: the frames a committee is least sure of, written as extxyz for labelling."""

from __future__ import annotations

import argparse
from pathlib import Path

from mlcalc.commands.arguments import add_potential_argument, positive_int
from mlcalc.commands.md import number_in


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "select",
        help="pick the most uncertain frames of trajectories, scans, paths or NEB bands for labelling",
        description="Score every frame by a committee's energy spread (evaluated with --potential, or the "
        "energy_uncertainty recorded by mlcalc scan/path/neb), keep those above --threshold (or "
        "--force-threshold) or the --top K most uncertain, skip near duplicates (--min-separation frames, "
        "--min-distance Å in sorted interatomic distances), and write them, most uncertain first, as extxyz "
        "with source, frame and energy_uncertainty in each frame's info.",
        epilog="example: mlcalc select md/trajectory.dcd --potential committee.pt --top 20 --min-separation 10",
    )
    parser.add_argument("inputs", nargs="+", type=Path, help="extxyz files, or DCD/XTC trajectories of mlcalc md")
    add_potential_argument(
        parser, required=False, help="committee file that scores the frames (default: the spread in their info)"
    )
    parser.add_argument("--threshold", type=number_in("eV"), help="energy spread above which a frame is picked, eV")
    parser.add_argument("--per-atom", action="store_true", help="score by the energy spread per atom (eV/atom)")
    parser.add_argument(
        "--force-threshold", type=number_in("eV/Å"), help="largest per-atom force spread above which a frame is picked"
    )
    parser.add_argument(
        "--top", type=positive_int, metavar="K", help="pick at most K frames (alone: the K most uncertain)"
    )
    parser.add_argument(
        "--min-separation", type=positive_int, default=1, metavar="N", help="frames of one file at least N apart"
    )
    parser.add_argument(
        "--min-distance", type=number_in("Å"), metavar="Å", help="frames at least this far apart in the descriptor"
    )
    parser.add_argument("--topology", type=Path, help="topology of DCD/XTC inputs (default: start.pdb beside them)")
    parser.add_argument("--atoms", help="MDAnalysis selection of the atoms to take from DCD/XTC inputs (default all)")
    parser.add_argument(
        "-o", "--output", type=Path, default=Path("selected.extxyz"), help="extxyz file (default selected.extxyz)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mlcalc.uncertainty.select import ENERGY_UNCERTAINTY, FRAME, SOURCE, select

    selected = select(
        args.inputs,
        args.output,
        potential=args.potential,
        threshold=args.threshold,
        top=args.top,
        per_atom=args.per_atom,
        force_threshold=args.force_threshold,
        min_separation=args.min_separation,
        min_distance=args.min_distance,
        topology=args.topology,
        atoms=args.atoms,
    )
    if not selected:
        print("mlcalc select: no frame passed the thresholds; nothing written")
        return 0
    print(f"mlcalc select: {len(selected)} frames -> {args.output}")
    for atoms in selected[:10]:
        print(f"  {atoms.info[SOURCE]} frame {atoms.info[FRAME]}: {atoms.info[ENERGY_UNCERTAINTY]:.4g} eV")
    if len(selected) > 10:
        print(f"  ... and {len(selected) - 10} more")
    return 0
