"""``mlcalc path``: dihedral-driven reaction path between two structures (arXiv:2211.07181, eqs. 8–11)."""

from __future__ import annotations

import argparse

from mlcalc.commands.arguments import EXIT_NOT_CONVERGED, positive_int
from mlcalc.commands.workflow_arguments import (
    add_model_arguments,
    add_optimizer_arguments,
    add_output_argument,
    coordinate_type,
    make_calculator,
    read_images,
    read_structure,
    report_relaxed_endpoints,
)


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "path",
        help="dihedral-driven path between two structures: barrier height and profile, resumable",
        description="Drive the --guide dihedral from its value in INITIAL to its value in FINAL through "
        "--intermediates constrained optimisations, each started from the previous one, after relaxing INITIAL and "
        "FINAL to minima (unless their forces are below --fmax) (optionally driving a "
        "--partner dihedral along, then re-optimising with only the guide fixed). Writes OUTPUT/path.csv, "
        "path.json (barrier in eV and kcal/mol), path.extxyz (a band that mlcalc neb --band can start from) "
        "and path.png. Exits with 3 when an intermediate did not converge. Atom indices are 0-based.",
        epilog="example: mlcalc path cis.xyz trans.xyz --potential demo --guide 4,5,6,7 --intermediates 19",
    )
    parser.add_argument("initial", help="initial structure (any format ase.io.read reads)")
    parser.add_argument("final", help="final structure, same atoms in the same order")
    add_model_arguments(parser)
    add_settings_arguments(parser)
    parser.add_argument("--compare", metavar="PATH.extxyz", help="another path: report the RMSD of each image, Å")
    parser.add_argument("--restart", action="store_true", help="ignore an existing checkpoint and start afresh")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_output_argument(parser, "path")
    parser.set_defaults(run=run)


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """The path's settings (guide, partner, intermediates, endpoints, optimiser): shared with ``mlcalc batch path``."""
    parser.add_argument(
        "--guide", required=True, type=coordinate_type("dihedral"), metavar="I,J,K,L", help="the guiding dihedral"
    )
    parser.add_argument(
        "--partner", type=coordinate_type("dihedral"), metavar="I,J,K,L", help="a second dihedral driven along"
    )
    parser.add_argument("--intermediates", type=positive_int, default=19, help="number of intermediates I (default 19)")
    parser.add_argument(
        "--direction",
        choices=("shortest", "increasing", "decreasing"),
        default="shortest",
        help="which way round the guide turns (default the shorter)",
    )
    parser.add_argument(
        "--no-relax-endpoints",
        dest="relax_endpoints",
        action="store_false",
        help="use INITIAL and FINAL as given; refuse one that is not a minimum (largest force above --fmax)",
    )
    add_optimizer_arguments(parser, backend_default="scipy")


def run(args: argparse.Namespace) -> int:
    from mlcalc.files import write_json_atomic
    from mlcalc.units import EV_TO_KCAL_MOL
    from mlcalc.workflows.path import dihedral_path, path_rmsd

    result = dihedral_path(
        read_structure(args.initial),
        read_structure(args.final),
        make_calculator(args),
        args.guide,
        args.intermediates,
        partner=args.partner,
        direction=args.direction,
        backend=args.backend,
        fmax=args.fmax,
        steps=args.steps,
        optimizer=args.optimizer,
        output=args.output,
        resume=not args.restart,
        progress=not args.quiet,
        relax_endpoints=args.relax_endpoints,
    )
    report_relaxed_endpoints("path", result.images)
    print(
        f"mlcalc path: barrier {result.barrier:.6f} eV ({result.barrier * EV_TO_KCAL_MOL:.3f} kcal/mol) over "
        f"{len(result.images)} images; {'converged' if result.converged else 'NOT all intermediates converged'}; "
        f"outputs in {args.output}"
    )
    if args.compare is not None:
        rmsd = path_rmsd(result.images, read_images(args.compare))
        write_json_atomic(f"{args.output}/rmsd.json", {"other": args.compare, "rmsd_A": rmsd.tolist()})
        print(f"mlcalc path: RMSD to {args.compare}: mean {rmsd.mean():.4f} Å, max {rmsd.max():.4f} Å")
    return 0 if result.converged else EXIT_NOT_CONVERGED
