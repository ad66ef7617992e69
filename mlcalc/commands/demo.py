"""``mlcalc demo``: the README's main job."""

from __future__ import annotations

import argparse
from pathlib import Path

from mlcalc.commands.arguments import positive_int


def positive_float(text: str) -> float:
    """``argparse`` type: a number above 0."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "demo",
        help="the bundled demo potential against GFN2-xTB: butane torsion scan and NEB, OpenMM NPT of water",
        description=(
            "Relaxed butane C-C-C-C scan and anti → gauche climbing-image NEB with the bundled demo potential "
            "and with GFN2-xTB (tblite), NPT MD of a water box in OpenMM on the "
            "demo potential, and a report directory (report.md, CSV, JSON, PNG). --argon runs the Lennard-Jones "
            "argon check of the two engines instead."
        ),
    )
    parser.add_argument("-o", "--output", type=Path, default=Path("mlcalc-demo"), help="directory for the outputs")
    parser.add_argument("--scan-step", type=positive_float, default=15.0, help="scan grid step, degrees (15)")
    parser.add_argument("--neb-images", type=positive_int, default=7, help="NEB interior images (7)")
    parser.add_argument("--md-ps", type=positive_float, default=2.0, help="water NPT MD length, ps (2)")
    parser.add_argument("--argon", action="store_true", help="run the Lennard-Jones argon two-engine check instead")
    parser.add_argument("--steps", type=positive_int, default=3000, help="--argon: OpenMM MD steps of 5 fs (3000)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mlcalc.demo import DemoOptions, run_argon_demo, run_demo

    if args.argon:
        run_argon_demo(args.output, md_steps=args.steps)
    else:
        run_demo(args.output, DemoOptions(args.scan_step, args.neb_images, args.md_ps))
    return 0
