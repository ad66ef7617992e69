"""Run every mlcalc benchmark and write ``results/benchmarks.json`` and ``results/neighbors.png``.

    python benchmarks/run.py              # full run (~4 minutes on 2 CPU cores)
    python benchmarks/run.py --threads 1  # torch and vesin on one thread each
    python benchmarks/run.py --quick      # small sizes only, to check the script
    python benchmarks/run.py --threads 1 --malloc default   # glibc's own malloc settings

By default the process keeps freed memory for reuse (:func:`mlcalc.keep_freed_memory`), as the ``mlcalc``
command line and its workers do: without it every graph build of a large box faults in its output memory
afresh, while vesin's ``NeighborList`` object reuses its own buffers from call to call.

Neighbour lists (water-like box, cutoff 5 Å, full list with shifts) for mlcalc's TorchScript
builder, vesin, matscipy and ASE; the brute-force/cell-list crossover; peak memory of a graph build;
the ASE calculator and OpenMM TorchForce overheads over the bare module; batched NEB evaluation.
Extra requirements: ``pip install -r benchmarks/requirements.txt``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from common import environment
from memory import in_subprocess
from neighbors import crossover, time_sizes
from overheads import all_overheads
from plot import plot_neighbors

import mlcalc
from mlcalc.graph import CELL_LIST_MIN_ATOMS

FULL_SIZES = [300, 1000, 3000, 10000, 24000, 50000, 100000]
QUICK_SIZES = [300, 1000, 3000]
CROSSOVER_SIZES = [20, 50, 100, 200, 400, 800]
MEMORY_SIZES = [25000, 50000, 100000]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only")
    parser.add_argument(
        "--threads",
        type=int,
        default=torch.get_num_threads(),
        help="threads for torch and vesin (default: torch's default)",
    )
    parser.add_argument(
        "--malloc",
        choices=("kept", "default"),
        default="kept",
        help="kept: mlcalc.keep_freed_memory() first, as the mlcalc command line (default); default: glibc's settings",
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    kept = mlcalc.keep_freed_memory() if args.malloc == "kept" else False
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    command = (
        "python benchmarks/run.py"
        + (" --quick" if args.quick else "")
        + f" --threads {args.threads}"
        + (" --malloc default" if args.malloc == "default" else "")
    )
    report: dict = {
        "command": command,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "environment": environment(),
        "cell_list_min_atoms": CELL_LIST_MIN_ATOMS,
        "freed_memory_kept": kept,
    }
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    report["neighbors"] = {
        "cutoff_angstrom": 5.0,
        "density_atoms_per_A3": 0.1,
        "quantities": "ijS, full list",
        "rows": time_sizes(sizes, args.threads),
    }
    report["crossover"] = crossover(CROSSOVER_SIZES[:3] if args.quick else CROSSOVER_SIZES)
    report["memory"] = [in_subprocess(n, args.threads) for n in (MEMORY_SIZES[:1] if args.quick else MEMORY_SIZES)]
    with tempfile.TemporaryDirectory() as directory:
        report["overheads"] = all_overheads(Path(directory))
    report["environment_at_end"] = {"load_average": environment()["load_average"]}
    name = (
        ("benchmarks-quick" if args.quick else "benchmarks")
        + f"-{args.threads}-threads"
        + ("-default-malloc" if args.malloc == "default" else "")
    )
    (args.out / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    plot_neighbors(
        report["neighbors"]["rows"],
        args.out / f"{name.replace('benchmarks', 'neighbors')}.png",
        f"{report['environment']['cpu_model']}, torch and vesin threads: {args.threads}, freed memory "
        + ("kept" if kept else "returned (glibc's defaults)"),
    )
    print(f"wrote {args.out / (name + '.json')}")


if __name__ == "__main__":
    main()
