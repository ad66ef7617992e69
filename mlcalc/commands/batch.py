"""``mlcalc batch``: one workflow over many inputs (or a file of mixed tasks) on Dask, resumable."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Optional

from mlcalc.commands import neb as neb_command
from mlcalc.commands import path as path_command
from mlcalc.commands import scan as scan_command
from mlcalc.commands.arguments import EXIT_NOT_CONVERGED, positive_int
from mlcalc.commands.workflow_arguments import (
    add_coordinate_arguments,
    add_model_arguments,
    add_optimizer_arguments,
    coordinates_of,
)

EPILOG = (
    "examples: mlcalc batch scan inputs/*.xyz --potential demo --dihedral 0,1,2,3 --step 30 --workers 2; "
    "mlcalc batch run examples/screening/screening.toml; add --scheduler tcp://host:8786 to run on a cluster. "
    "Run the same command again to finish an interrupted batch: finished tasks are skipped."
)


def _add_batch_arguments(parser: argparse.ArgumentParser, potential: bool = True) -> None:
    """Where and how the batch runs: output, workers, scheduler, progress."""
    if potential:
        add_model_arguments(parser)
    parser.add_argument("-o", "--output", default=None, help="batch directory (default batch)")
    parser.add_argument("--workers", type=positive_int, help="worker processes on this machine (default: one per core)")
    parser.add_argument(
        "--worker-threads",
        type=positive_int,
        metavar="N",
        help="torch/OpenMM threads per worker (default: cores / workers; with --scheduler: each worker's "
        "$MLCALC_NUM_THREADS or $OMP_NUM_THREADS)",
    )
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run on an existing Dask cluster: tcp://host:8786, or a scheduler file (.json)",
    )
    parser.add_argument("--quiet", action="store_true", help="no live progress")
    parser.add_argument("--no-plot", dest="plot", action="store_false", help="no barriers.png")


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "batch",
        help="run a scan, path, NEB, optimisation or MD replicas over many inputs on Dask (laptop or cluster)",
        description="Run one workflow over many structure files, or the mixed tasks of a batch file, on a Dask "
        "LocalCluster (--workers) or an existing cluster (--scheduler). Each task writes its own directory in "
        "OUTPUT (its workflow's files, result.json when finished, error.json when it failed); OUTPUT/summary.csv "
        "and summary.json hold one row per task (status, barrier in kcal/mol and eV, energies, wall time, "
        "directory), barriers.png the barriers. Exits with 1 when a task failed, 3 when one did not converge.",
        epilog=EPILOG,
    )
    kinds = parser.add_subparsers(dest="kind", required=True, metavar="KIND")

    scan = kinds.add_parser("scan", help="relaxed dihedral scan of each input", epilog=EPILOG)
    scan.add_argument("structures", nargs="+", help="starting structures (any format ase.io.read reads)")
    scan_command.add_settings_arguments(scan)
    _add_batch_arguments(scan)

    path = kinds.add_parser("path", help="dihedral-driven path of each pair of structures", epilog=EPILOG)
    path.add_argument("pairs", nargs="+", help="INITIAL:FINAL, or one file whose first and last frames are them")
    path_command.add_settings_arguments(path)
    _add_batch_arguments(path)

    neb = kinds.add_parser("neb", help="climbing-image NEB of each pair of structures", epilog=EPILOG)
    neb.add_argument("pairs", nargs="+", help="INITIAL:FINAL, or one file whose first and last frames are them")
    neb_command.add_settings_arguments(neb)
    _add_batch_arguments(neb)

    opt = kinds.add_parser("opt", help="(constrained) optimisation of each input", epilog=EPILOG)
    opt.add_argument("structures", nargs="+", help="structures (any format ase.io.read reads)")
    add_coordinate_arguments(opt, "hold")
    add_optimizer_arguments(opt, backend_default="ase")
    _add_batch_arguments(opt)

    md = kinds.add_parser("md", help="MD replicas (mlcalc md) of each input", epilog=EPILOG)
    md.add_argument("structures", nargs="+", help="solutes: PDB, mmCIF or SDF")
    md.add_argument("--config", type=Path, help="JSON or TOML file of MD settings (fields of MDConfig)")
    md.add_argument("--replicas", type=positive_int, default=1, help="replicas per input, seeds SEED, SEED+1, ...")
    md.add_argument("--seed", type=int, help="seed of the first replica (default: the config's, else 1)")
    md.add_argument("--potential", "--model", dest="potential", required=True, help="potential file or bundled name")
    _add_batch_arguments(md, potential=False)

    batch_file = kinds.add_parser("run", help="the mixed tasks of a TOML or JSON batch file", epilog=EPILOG)
    batch_file.add_argument("file", type=Path, help="batch file ([[task]] entries; see docs/batch.md)")
    batch_file.add_argument("--potential", "--model", dest="potential", help="override the file's potential")
    _add_batch_arguments(batch_file, potential=False)
    parser.set_defaults(run=run)


def _pair(text: str) -> tuple[str, Optional[str]]:
    """``INITIAL:FINAL`` -> (initial, final); an existing file -> (file, None)."""
    if Path(text).exists() or ":" not in text:
        return text, None
    initial, _, final = text.partition(":")
    return initial, final


def _model(args: argparse.Namespace) -> dict[str, Any]:
    return {"potential": args.potential, "dtype": getattr(args, "dtype", None), "device": getattr(args, "device", None)}


def _optimizer(args: argparse.Namespace) -> dict:
    return {"backend": args.backend, "fmax": args.fmax, "steps": args.steps, "optimizer": args.optimizer}


def make_tasks(args: argparse.Namespace) -> tuple[list, dict]:
    """The tasks the command line describes, and the batch file's options (``run``)."""
    from mlcalc.batch import Task, md_replicas, tasks_from_file

    if args.kind == "run":
        return tasks_from_file(args.file, args.potential)
    if args.kind == "scan":
        settings = {
            "dihedral": [list(d.indices) for d in args.dihedral],
            "start": args.start,
            "stop": args.stop,
            "step": args.step,
            "fixed": [["dihedral", list(d.indices), d.target] for d in args.fix_dihedral],
            "both_directions": args.both_directions,
            **_optimizer(args),
        }
        return [Task("scan", s, settings, **_model(args)) for s in args.structures], {}
    if args.kind in ("path", "neb"):
        if args.kind == "path":
            settings = {
                "guide": list(args.guide.indices),
                "partner": None if args.partner is None else list(args.partner.indices),
                "intermediates": args.intermediates,
                "direction": args.direction,
                "relax_endpoints": args.relax_endpoints,
                **_optimizer(args),
            }
        else:
            keys = ("images", "interpolation", "climb", "k", "fmax", "steps", "optimizer", "relax_endpoints")
            settings = {key: getattr(args, key) for key in keys}
        tasks = []
        for text in args.pairs:
            initial, final = _pair(text)
            tasks.append(Task(args.kind, initial, settings, final=final, **_model(args)))
        return tasks, {}
    if args.kind == "opt":
        constraints = [[c.kind, list(c.indices), c.target] for c in coordinates_of(args)]
        settings = {"constraints": constraints, **_optimizer(args)}
        return [Task("opt", s, settings, **_model(args)) for s in args.structures], {}
    from mlcalc.md.config import MDConfig

    settings = {}
    if args.config is not None:
        settings = MDConfig.from_file(args.config, structure="-", potential="-").to_dict()
        for key in ("structure", "potential", "output"):
            settings.pop(key)
    if args.seed is not None:
        settings["seed"] = args.seed
    tasks = [t for s in args.structures for t in md_replicas(s, settings, args.replicas, potential=args.potential)]
    return tasks, {}


def run(args: argparse.Namespace) -> int:
    from mlcalc.batch import connect, run

    tasks, options = make_tasks(args)
    output = Path(args.output or options.get("output") or "batch")
    workers = args.workers or options.get("workers")
    client = connect(args.scheduler) if args.scheduler else None
    try:
        result = run(
            tasks, output, client, workers=workers, threads=args.worker_threads, progress=not args.quiet, plot=args.plot
        )
    finally:
        if client is not None:
            client.close()
    counts: dict[str, int] = {}
    for row in result:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
        barrier = row["barrier_kcal_mol"]
        shown = f"barrier {barrier:8.3f} kcal/mol" if barrier is not None else " " * 25
        cached = " (finished earlier)" if row["cached"] else ""
        print(f"  {row['task']:<48} {row['status']:<14} {shown}{cached}")
    done = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    print(f"mlcalc batch: {len(result)} tasks: {done}; table in {output / 'summary.csv'}")
    if result.failed:
        for row in result.failed:
            print(f"mlcalc batch: {row['task']} failed: {row['error']}", file=sys.stderr)
        print(
            "mlcalc batch: fix the failed inputs and run the same command again: finished tasks are skipped",
            file=sys.stderr,
        )
        return 1
    return EXIT_NOT_CONVERGED if counts.get("not converged") else 0
