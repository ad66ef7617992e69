"""``mlcalc neb``: nudged elastic band (ASE), every band evaluated in one batched model call."""

from __future__ import annotations

import argparse

from mlcalc.commands.arguments import EXIT_NOT_CONVERGED, positive_int
from mlcalc.commands.workflow_arguments import (
    add_model_arguments,
    add_output_argument,
    make_calculator,
    read_images,
    read_structure,
    report_relaxed_endpoints,
)


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "neb",
        help="climbing-image NEB between two structures (ASE), the band evaluated in one batch",
        description="Relax a band between INITIAL and FINAL with ASE's NEB (improved tangent, climbing image), "
        "starting from an IDPP or linear interpolation, or from a given --band (e.g. path.extxyz of mlcalc "
        "path). INITIAL and FINAL are first relaxed to minima (unless their forces are below --fmax), so the "
        "barrier is measured from a minimum. Writes OUTPUT/neb.extxyz, neb.csv, neb.json (barrier in eV and "
        "kcal/mol) and neb.png. Exits with 3 when the band did not converge.",
        epilog="example: mlcalc neb reactant.xyz product.xyz --potential demo --images 7",
    )
    parser.add_argument("initial", nargs="?", help="initial structure (any format ase.io.read reads)")
    parser.add_argument("final", nargs="?", help="final structure, same atoms in the same order")
    parser.add_argument("--band", metavar="FILE", help="start from every frame of FILE instead (endpoints included)")
    add_model_arguments(parser)
    add_settings_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no optimiser log (one line per step) on stdout")
    add_output_argument(parser, "neb")
    parser.set_defaults(run=run)


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """The NEB's settings (images, springs, optimiser, endpoints): shared with ``mlcalc batch neb``."""
    parser.add_argument("--images", type=positive_int, default=7, help="interior images (default 7)")
    parser.add_argument("--interpolation", choices=("idpp", "linear"), default="idpp", help="default idpp")
    parser.add_argument("--no-climb", dest="climb", action="store_false", help="no climbing image")
    parser.add_argument("--k", type=float, default=0.1, help="spring constant, eV/Å² (default 0.1)")
    parser.add_argument(
        "--fmax",
        type=float,
        default=0.01,
        help="NEB force tolerance, eV/Å (default 0.01: the climbing image reaches the saddle point)",
    )
    parser.add_argument(
        "--no-relax-endpoints",
        dest="relax_endpoints",
        action="store_false",
        help="use the endpoints as given; refuse one that is not a minimum (largest force above --fmax)",
    )
    parser.add_argument("--steps", type=int, default=1000, help="maximum optimiser iterations")
    parser.add_argument("--optimizer", default="FIRE", help="FIRE (default), BFGS, LBFGS, MDMin or FIRE2")


def run(args: argparse.Namespace) -> int:
    from mlcalc.units import EV_TO_KCAL_MOL
    from mlcalc.workflows.endpoints import prepare_endpoint
    from mlcalc.workflows.neb import make_band, run_neb

    calc = make_calculator(args)
    if args.band is not None:
        if args.initial is not None or args.final is not None:
            raise ValueError("give INITIAL and FINAL, or --band, not both")
        band = read_images(args.band)
    elif args.initial is None or args.final is None:
        raise ValueError("give INITIAL and FINAL structures (or a --band file)")
    else:
        # relaxed before the interpolation, so that the band starts between the minima
        initial, final = (
            prepare_endpoint(
                read_structure(path), calc, name=name, relax=args.relax_endpoints, fmax=args.fmax, steps=args.steps
            )
            for path, name in ((args.initial, "initial"), (args.final, "final"))
        )
        band = make_band(initial, final, args.images, interpolation=args.interpolation)
    result = run_neb(
        band,
        calc,
        climb=args.climb,
        k=args.k,
        fmax=args.fmax,
        steps=args.steps,
        optimizer=args.optimizer,
        logfile=None if args.quiet else "-",
        output=args.output,
        relax_endpoints=args.relax_endpoints,
    )
    report_relaxed_endpoints("neb", result.images)
    print(
        f"mlcalc neb: barrier {result.barrier:.6f} eV ({result.barrier * EV_TO_KCAL_MOL:.3f} kcal/mol), "
        f"{'converged' if result.converged else 'NOT converged'} in {result.steps} steps (fmax "
        f"{result.fmax:.3g} eV/Å, {result.calculator_calls} model calls); outputs in {args.output}"
    )
    return 0 if result.converged else EXIT_NOT_CONVERGED
