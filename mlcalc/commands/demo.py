"""``mlcalc demo``: the README's main job."""

from __future__ import annotations

import argparse
from pathlib import Path

from mlcalc.commands.arguments import positive_int


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "demo",
        help="a short demonstration on a bundled Lennard-Jones argon potential (ASE relaxation + OpenMM NPT MD)",
    )
    parser.add_argument("--output", type=Path, default=Path("mlcalc-demo"), help="directory for the outputs")
    parser.add_argument("--steps", type=positive_int, default=3000, help="OpenMM MD steps of 5 fs (default 3000)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mlcalc.demo import run_demo

    run_demo(args.output, md_steps=args.steps)
    return 0
