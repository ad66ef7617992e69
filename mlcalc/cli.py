"""The ``mlcalc`` command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from threadpoolctl import threadpool_limits

from mlcalc.errors import MLCalcError


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mlcalc",
        description="Run TorchScript machine-learned interatomic potentials in ASE and OpenMM.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    info = commands.add_parser("info", help="print the metadata of a potential file")
    info.add_argument("path", type=Path, help="a file written by mlcalc.export")
    info.add_argument("--json", action="store_true", help="print the raw JSON record")
    info.set_defaults(run=_info)

    demo = commands.add_parser(
        "demo",
        help="a short demonstration on a bundled Lennard-Jones argon potential (ASE relaxation + OpenMM NPT MD)",
    )
    demo.add_argument("--output", type=Path, default=Path("mlcalc-demo"), help="directory for the outputs")
    demo.add_argument("--steps", type=_positive_int, default=3000, help="OpenMM MD steps of 5 fs (default 3000)")
    demo.set_defaults(run=_demo)

    args = parser.parse_args(argv)
    # numpy's OpenBLAS workers busy-wait after each call and starve torch's threads: an ASE cell
    # relaxation ran 5x slower on 2 cores. The command line owns its process, so it limits them.
    threadpool_limits(1, user_api="blas")
    try:
        return args.run(args)
    except (MLCalcError, FileNotFoundError, ValueError) as exc:
        print(f"mlcalc {args.command}: error: {exc}", file=sys.stderr)
        return 1


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text}")
    return value


def _info(args: argparse.Namespace) -> int:
    from mlcalc.potential import read_metadata

    metadata = read_metadata(args.path)
    if args.json:
        print(metadata.to_json())
        return 0
    species = metadata.symbols
    rows = [
        ("name", metadata.name),
        ("description", metadata.description),
        ("contract version", metadata.contract_version),
        ("cutoff", f"{metadata.cutoff:g} {metadata.length_unit}"),
        (
            "species",
            ", ".join(species) if len(species) <= 20 else f"{len(species)} elements ({species[0]}..{species[-1]})",
        ),
        ("units", f"length {metadata.length_unit}, energy {metadata.energy_unit}"),
        ("dtype", metadata.dtype),
        ("references", "; ".join(metadata.references) or "-"),
        ("written by", f"mlcalc {metadata.mlcalc_version or '?'}, torch {metadata.torch_version or '?'}"),
    ]
    rows += [(f"extra.{k}", str(v)) for k, v in sorted(metadata.extra.items())]
    width = max(len(k) for k, _ in rows)
    print(f"{args.path}")
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from mlcalc.demo import run_demo

    run_demo(args.output, md_steps=args.steps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
