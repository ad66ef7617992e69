"""``mlcalc scan``: relaxed scan of one or two dihedrals (or other internal coordinates)."""

from __future__ import annotations

import argparse
from typing import Optional

import numpy as np

from mlcalc.commands.arguments import EXIT_NOT_CONVERGED
from mlcalc.commands.workflow_arguments import (
    add_model_arguments,
    add_optimizer_arguments,
    add_output_argument,
    coordinate_type,
    make_calculator,
    read_structure,
)


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "scan",
        help="relaxed scan of one or two dihedrals (constrained optimisation at each point), resumable",
        description="At each grid point hold the scanned dihedral(s) at the point's value and optimise "
        "everything else, starting from the previous point. Writes OUTPUT/scan.csv, scan.json (angles in "
        "degrees, energies in eV and kcal/mol, relative to the lowest converged point), scan.extxyz and "
        "scan.png. Run the same command again to resume an interrupted scan. Exits with 3 when a point did "
        "not converge. Atom indices are 0-based.",
        epilog="example: mlcalc scan butane.xyz --potential demo --dihedral 0,1,2,3 --step 10",
    )
    parser.add_argument("structure", help="starting structure (any format ase.io.read reads)")
    add_model_arguments(parser)
    add_settings_arguments(parser)
    parser.add_argument("--restart", action="store_true", help="ignore an existing checkpoint and start afresh")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_output_argument(parser, "scan")
    parser.set_defaults(run=run)


def grid(current: float, start: Optional[float], stop: Optional[float], step: float) -> Optional[list[float]]:
    """The grid ``start, start+step, ..., stop`` (degrees); without ``start`` and ``stop`` the full circle
    by ``step`` from the grid point nearest ``current`` (``None``: the library's default, 10°). Refuses a zero or
    non-finite step and grids of more than :data:`mlcalc.workflows.scan.MAX_GRID_POINTS` points."""
    from mlcalc.workflows.scan import MAX_GRID_POINTS

    if not np.isfinite(step) or step == 0:
        raise ValueError(f"--step must be a non-zero angle in degrees, got {step:g}")
    if (start is None) != (stop is None):
        raise ValueError("give both --start and --stop, or neither")
    if start is not None and stop is not None and not (np.isfinite(start) and np.isfinite(stop)):
        raise ValueError(f"--start and --stop must be finite angles in degrees, got {start:g} and {stop:g}")
    span = 360.0 if start is None or stop is None else abs(stop - start)
    if span / abs(step) + 1 > MAX_GRID_POINTS:
        raise ValueError(
            f"--step {step:g}° makes a grid of {span / abs(step) + 1:.3g} points (more than {MAX_GRID_POINTS}), each "
            "a constrained optimisation: use a step of at least a fraction of a degree (e.g. --step 1)"
        )
    if start is None or stop is None:
        if step == 10.0:
            return None
        full = np.arange(0.0, 360.0 - 1e-9, abs(step))
        first = int(np.argmin(np.abs((full - current + 180.0) % 360.0 - 180.0)))
        return [float(v) for v in np.roll(full, -first)]
    if (stop - start) * step < 0:
        raise ValueError(
            f"--step {step:g} does not lead from --start {start:g} to --stop {stop:g}: use --step {-step:g} "
            "(its sign is the direction: a negative step walks the grid down)"
        )
    count = int(np.floor((stop - start) / step + 1e-9)) + 1
    return [float(start + n * step) for n in range(count)]


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """The scan's settings (coordinates, grid, optimiser): shared with ``mlcalc batch scan``."""
    parser.add_argument(
        "--dihedral",
        action="append",
        required=True,
        type=coordinate_type("dihedral"),
        metavar="I,J,K,L",
        help="the dihedral to scan (0-based indices); give it twice for a 2D scan",
    )
    parser.add_argument("--start", type=float, help="first angle, degrees (default: 0–350 from the nearest value)")
    parser.add_argument("--stop", type=float, help="last angle, degrees, included when the grid reaches it")
    parser.add_argument("--step", type=float, default=10.0, help="grid spacing, degrees (default 10)")
    parser.add_argument(
        "--fix-dihedral",
        action="append",
        default=[],
        type=coordinate_type("dihedral"),
        metavar="I,J,K,L[=TARGET]",
        help="another dihedral held fixed at every point (repeatable): 0-based atom indices I,J,K,L, optionally "
        "=TARGET in degrees, e.g. 4,0,1,2=60; without a target the starting value is kept",
    )
    parser.add_argument("--both-directions", action="store_true", help="walk the grid back again (hysteresis)")
    add_optimizer_arguments(parser, backend_default="ase")


def run(args: argparse.Namespace) -> int:
    from mlcalc.workflows.scan import relaxed_scan

    if len(args.dihedral) > 2:
        raise ValueError(f"a scan takes one or two --dihedral options, got {len(args.dihedral)}")
    if any(d.target is not None for d in args.dihedral):
        raise ValueError("the scanned --dihedral takes no =TARGET: set the grid with --start, --stop, --step")
    atoms = read_structure(args.structure)
    for dihedral in args.dihedral:
        dihedral.check(atoms)  # indices in range, atoms not collinear: before any grid is made
    grids = [grid(d.value(atoms), args.start, args.stop, args.step) for d in args.dihedral]
    scan = relaxed_scan(
        atoms,
        make_calculator(args),
        args.dihedral if len(args.dihedral) == 2 else args.dihedral[0],
        grids if len(grids) == 2 and grids[0] is not None else grids[0],
        fixed=args.fix_dihedral,
        both_directions=args.both_directions,
        backend=args.backend,
        fmax=args.fmax,
        steps=args.steps,
        optimizer=args.optimizer,
        output=args.output,
        resume=not args.restart,
        progress=not args.quiet,
    )
    span = float(np.ptp(scan.relative_energies))
    status = "all points converged" if scan.converged else f"points {scan.unconverged} did NOT converge"
    print(f"mlcalc scan: {len(scan.points)} points, {status}; energy span {span:.6f} eV; outputs in {args.output}")
    return 0 if scan.converged else EXIT_NOT_CONVERGED
