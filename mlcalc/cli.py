"""The ``mlcalc`` command line: finds its sub-commands in :mod:`mlcalc.commands`.

Nothing heavy (torch, OpenMM, MDAnalysis, matplotlib) loads before a sub-command runs: ``mlcalc --help``
stays fast, and thread settings are made before torch starts its threads (see :mod:`mlcalc.threads`).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import os
import pkgutil
import platform
import sys
from typing import Optional, Sequence

import mlcalc.commands
from mlcalc._version import __version__
from mlcalc.allocator import keep_freed_memory
from mlcalc.commands.arguments import positive_int
from mlcalc.errors import MLCalcError
from mlcalc.threads import configure_threads

#: Distributions whose installed versions ``mlcalc --version`` names (read from their metadata, not imported).
VERSION_OF = ("torch", "openmm", "openmmtorch", "ase")


def version_text() -> str:
    """``mlcalc X.Y.Z`` and the versions of Python and of the installed :data:`VERSION_OF`."""
    installed = []
    for name in VERSION_OF:
        try:
            installed.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return f"mlcalc {__version__} (Python {platform.python_version()}; {', '.join(installed)})"


class _VersionAction(argparse.Action):
    """``--version``: print :func:`version_text` and exit (argparse's own would build the text on every call)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the versions and exit", **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_) -> None:
        print(version_text())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """The parser with every sub-command of :mod:`mlcalc.commands`."""
    parser = argparse.ArgumentParser(
        prog="mlcalc",
        description="Run TorchScript machine-learned interatomic potentials in ASE and OpenMM.",
    )
    parser.add_argument("--version", action=_VersionAction)
    parser.add_argument(
        "--threads",
        type=positive_int,
        metavar="N",
        help="threads of torch and of OpenMM's CPU platform (default: $MLCALC_NUM_THREADS, else "
        "$OMP_NUM_THREADS, else the cores that the load average leaves free; see mlcalc.threads)",
    )
    parser.add_argument(
        "-T", "--traceback", action="store_true", help="on an error, show the full traceback instead of one line"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(mlcalc.commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"mlcalc.commands.{info.name}")
        if hasattr(module, "register"):
            module.register(commands)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``mlcalc ARGV``; the exit status is 0, 1 for an error it explains in one line (``-T`` shows the
    traceback), 2 for a usage error, 3 when the work ran but did not converge (opt, scan, path, neb)."""
    # Before anything loads torch (OpenMP reads it once): idle OpenMP threads sleep instead of spinning,
    # which keeps several threads from stalling each other under other load (numbers in mlcalc.threads).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    args = build_parser().parse_args(argv)
    try:
        # The command line owns its process: one thread count for torch and OpenMM, one BLAS thread
        # (busy-waiting OpenBLAS workers starved torch: an ASE cell relaxation ran 5x slower on 2 cores).
        args.threads = configure_threads(args.threads)
        # ... and freed memory kept for the next call, not mapped afresh (1.7x on 1,500 water atoms; mlcalc.allocator).
        keep_freed_memory()
        return args.run(args)
    except (MLCalcError, FileNotFoundError, ValueError) as exc:
        if args.traceback:
            raise
        notes = "".join(f"\n  {note}" for note in getattr(exc, "__notes__", ()))  # e.g. where a scan stopped
        print(f"mlcalc {args.command}: error: {exc}{notes}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
