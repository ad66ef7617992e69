"""Argument types shared by the sub-commands (this module registers no command)."""

from __future__ import annotations

import argparse
import sys

#: Exit status of a command whose work ran but did not converge (an optimisation, scan point, path or NEB).
#: 0 is success, 1 an error mlcalc explains, 2 a usage error (argparse's).
EXIT_NOT_CONVERGED = 3


def positive_int(text: str) -> int:
    """``argparse`` type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text}")
    return value


class PotentialOption(argparse.Action):
    """``--potential FILE`` (also the older ``--model FILE``, with a notice on stderr)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        if option_string == "--model":
            print(
                "mlcalc: --model is now --potential (the same in every command); --model still works", file=sys.stderr
            )
        setattr(namespace, self.dest, values)


def add_potential_argument(parser: argparse.ArgumentParser, required: bool, help: str) -> None:
    """``--potential`` (``--model`` the old spelling of opt, scan, path and neb)."""
    parser.add_argument(
        "--potential", "--model", dest="potential", required=required, action=PotentialOption, help=help
    )
