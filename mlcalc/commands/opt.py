"""``mlcalc opt``: geometry optimisation with fixed distances, angles and dihedrals."""

from __future__ import annotations

import argparse
from pathlib import Path

from mlcalc.commands.arguments import EXIT_NOT_CONVERGED
from mlcalc.commands.workflow_arguments import (
    add_coordinate_arguments,
    add_model_arguments,
    add_optimizer_arguments,
    add_output_argument,
    coordinates_of,
    make_calculator,
    read_structure,
)


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "opt",
        help="optimise a structure, optionally holding distances, angles and dihedrals fixed",
        description="Minimise the energy of STRUCTURE with the potential, holding every --distance, --angle "
        "and --dihedral at its target (or its starting value). Writes OUTPUT/optimized.extxyz and "
        "OUTPUT/optimized.json (energy in eV, fmax in eV/Å, constraint errors in rad or Å). Exits with 3 "
        "when the optimisation did not converge. Atom indices are 0-based.",
        epilog="example: mlcalc opt butane.xyz --potential demo --dihedral 0,1,2,3=60 --fmax 0.005",
    )
    parser.add_argument("structure", help="structure file (any format ase.io.read reads)")
    add_model_arguments(parser)
    add_coordinate_arguments(parser, "hold")
    add_optimizer_arguments(parser, backend_default="ase")
    add_output_argument(parser, "opt")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mlcalc.workflows.optimize import optimize

    atoms = read_structure(args.structure)
    result = optimize(
        atoms,
        make_calculator(args),
        coordinates_of(args),
        backend=args.backend,
        fmax=args.fmax,
        steps=args.steps,
        optimizer=args.optimizer,
    )
    output = Path(args.output)
    result.write(output)
    print(f"mlcalc opt: {result.message}; E = {result.energy:.6f} eV; outputs in {output}")
    return 0 if result.converged else EXIT_NOT_CONVERGED
