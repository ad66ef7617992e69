"""The ``mlcalc`` command line: finds its sub-commands in :mod:`mlcalc.commands`."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from typing import Optional, Sequence

from threadpoolctl import threadpool_limits

import mlcalc.commands
from mlcalc.errors import MLCalcError


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mlcalc",
        description="Run TorchScript machine-learned interatomic potentials in ASE and OpenMM.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(mlcalc.commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"mlcalc.commands.{info.name}")
        if hasattr(module, "register"):
            module.register(commands)
    args = parser.parse_args(argv)
    # numpy's OpenBLAS workers busy-wait after each call and starve torch's threads: an ASE cell
    # relaxation ran 5x slower on 2 cores. The command line owns its process, so it limits them.
    threadpool_limits(1, user_api="blas")
    try:
        return args.run(args)
    except (MLCalcError, FileNotFoundError, ValueError) as exc:
        notes = "".join(f"\n  {note}" for note in getattr(exc, "__notes__", ()))  # e.g. where a scan stopped
        print(f"mlcalc {args.command}: error: {exc}{notes}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
