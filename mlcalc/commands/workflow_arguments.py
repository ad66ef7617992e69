"""Inputs shared by the ASE workflow commands (``opt``, ``scan``, ``path``, ``neb``); registers no command.

Structures are read with ``ase.io.read`` (any format ASE reads: xyz, extxyz, PDB, CIF, POSCAR, ...).
Internal coordinates are written as comma-separated 0-based atom indices, optionally with a target:
``--dihedral 0,1,2,3`` or ``--dihedral 0,1,2,3=120`` (degrees), ``--distance 0,4=1.5`` (Å).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from mlcalc.commands.arguments import add_potential_argument

if TYPE_CHECKING:  # ase and mlcalc.workflows load when a command runs or parses a coordinate, not for --help
    from ase import Atoms

    from mlcalc.workflows.internal import InternalCoordinate

#: Option name -> class in mlcalc.workflows.internal.
KINDS = {"distance": "Distance", "angle": "Angle", "dihedral": "Dihedral"}

#: Per kind: the metavar, the unit of a target, and an example.
COORDINATE_FORMS = {
    "distance": ("I,J[=TARGET]", "Å", "0,1=1.54"),
    "angle": ("I,J,K[=TARGET]", "degrees", "0,1,2=109.5"),
    "dihedral": ("I,J,K,L[=TARGET]", "degrees", "0,1,2,3=120"),
}


def _read(path: str, index: str):
    from ase.io import read

    from mlcalc.workflows.errors import StructureFileError

    if not Path(path).is_file():
        raise StructureFileError(f"structure file {path} does not exist: check the path (any format ase.io.read reads)")
    try:
        return read(path, index=index)
    except Exception as exc:  # ASE raises many types for unreadable files; the message says what was wrong
        raise StructureFileError(
            f"cannot read {path} as a structure ({type(exc).__name__}: {exc}); give a file ASE reads "
            "(xyz, extxyz, pdb, cif, POSCAR, ...)"
        ) from None


def read_structure(path: str) -> Atoms:
    """The structure in ``path`` (the last frame of a trajectory)."""
    from mlcalc.workflows.errors import StructureFileError

    atoms = _read(path, "-1")
    if len(atoms) == 0:
        raise StructureFileError(f"{path} holds no atoms")
    return atoms


def read_images(path: str) -> list[Atoms]:
    """Every frame of ``path`` (a band or a path written by ``mlcalc path``/``neb``)."""
    from mlcalc.workflows.errors import StructureFileError

    images = _read(path, ":")
    if not images or any(len(image) == 0 for image in images):
        raise StructureFileError(f"{path} holds no structures, or an empty one")
    return images


def parse_coordinate(kind: str, text: str) -> InternalCoordinate:
    """``"0,1,2,3=120"`` → ``Dihedral(0, 1, 2, 3, target=120.0)`` (``kind``: distance, angle, dihedral)."""
    from mlcalc.workflows import internal
    from mlcalc.workflows.errors import InternalCoordinateError

    indices_text, _, target_text = text.partition("=")
    try:
        indices = [int(part) for part in indices_text.replace(" ", "").split(",") if part != ""]
        target = float(target_text) if target_text.strip() else None
    except ValueError:
        metavar, unit, example = COORDINATE_FORMS[kind]
        raise InternalCoordinateError(
            f"cannot read --{kind} {text!r}: expected {metavar}, 0-based atom indices and a target in {unit}, "
            f"e.g. {example}"
        ) from None
    return getattr(internal, KINDS[kind])(*indices, target=target)


def coordinate_type(kind: str):
    """An ``argparse`` type turning ``"0,1,2,3=120"`` into an internal coordinate of ``kind``."""

    def convert(text: str) -> InternalCoordinate:
        from mlcalc.workflows.errors import InternalCoordinateError

        try:
            return parse_coordinate(kind, text)
        except InternalCoordinateError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = kind
    return convert


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``--potential`` (file or bundled name; ``--model`` the old spelling), ``--device`` and ``--dtype``."""
    add_potential_argument(
        parser, required=True, help="potential file written by mlcalc export, or a bundled name such as demo"
    )
    parser.add_argument("--device", help="cpu, cuda, cuda:1 (default: CUDA when available)")
    parser.add_argument("--dtype", choices=("float32", "float64"), help="default: the file's")


def add_optimizer_arguments(parser: argparse.ArgumentParser, backend_default: str) -> None:
    """``--backend``, ``--fmax``, ``--steps`` and ``--optimizer`` of the constrained optimisations."""
    parser.add_argument(
        "--backend",
        choices=("ase", "scipy"),
        default=backend_default,
        help=f"ase: FixInternals + an ASE optimiser; scipy: trust-constr (default {backend_default})",
    )
    parser.add_argument("--fmax", type=float, default=0.01, help="force tolerance, eV/Å (default 0.01)")
    parser.add_argument("--steps", type=int, default=500, help="maximum optimiser iterations per optimisation")
    parser.add_argument("--optimizer", default="BFGS", help="ASE optimiser for --backend ase (default BFGS)")


def add_output_argument(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument("-o", "--output", default=default, help=f"output directory (default {default})")


def make_calculator(args: argparse.Namespace):
    """The :class:`mlcalc.MLCalculator` of ``--potential``, ``--device``, ``--dtype``."""
    from mlcalc.calculator import MLCalculator

    return MLCalculator(args.potential, device=args.device, dtype=args.dtype)


def coordinates_of(args: argparse.Namespace) -> list[InternalCoordinate]:
    """Every ``--distance``, ``--angle`` and ``--dihedral`` given, in that order."""
    found: list[InternalCoordinate] = []
    for kind in KINDS:
        found.extend(getattr(args, kind, None) or [])
    return found


def add_coordinate_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    """Repeatable ``--distance``, ``--angle`` and ``--dihedral`` options."""
    for kind in KINDS:
        metavar, unit, example = COORDINATE_FORMS[kind]
        parser.add_argument(
            f"--{kind}",
            action="append",
            type=coordinate_type(kind),
            metavar=metavar,
            help=f"{verb} {'an' if kind[0] in 'aeiou' else 'a'} {kind} (repeatable): comma-separated 0-based atom "
            f"indices, optionally =TARGET in {unit}, e.g. {example}; without a target the starting value is kept",
        )


def report_relaxed_endpoints(command: str, images: list[Atoms]) -> None:
    """Print how far each endpoint that was relaxed moved (``info`` of :mod:`mlcalc.workflows.endpoints`)."""
    from mlcalc.units import EV_TO_KCAL_MOL

    for name, image in (("initial", images[0]), ("final", images[-1])):
        change = image.info.get("relaxation_eV", 0.0)
        if change:
            print(
                f"mlcalc {command}: relaxed the {name} structure to a minimum first: {change:+.6f} eV "
                f"({change * EV_TO_KCAL_MOL:+.3f} kcal/mol), RMSD {image.info['relaxation_rmsd_A']:.4f} Å"
            )
