"""Throughput of ``mlcalc.batch`` with 2 workers against 1, and Dask's overhead per task.

    python benchmarks/batch.py           # ~3 minutes on 2 cores; results/batch.json
    python benchmarks/batch.py --quick   # fewer tasks, to check the script

- **throughput**: the same relaxed butane scans (bundled demo potential, C-C-C-C, a few seconds each;
  every task a different grid offset, so none is skipped as finished) run on a LocalCluster of 1 and of
  2 single-threaded worker processes; tasks per second from the first submission to the last result,
  after a warm-up task per worker (potential load, TorchScript's first calls), so the ratio is that of
  steady work. Each layout runs in a fresh batch directory.
- **overhead**: empty tasks (the runner's own path: fingerprint, directory, submit, result.json, summary)
  through ``mlcalc.batch.run`` on 2 workers, and bare ``client.submit`` of a no-op: seconds per task.

The JSON records the CPU model, core count, load averages and versions.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from common import cpu_model

HERE = Path(__file__).resolve().parent


def scan_tasks(structure: Path, count: int, offset: int = 0):
    """``count`` butane scans of 6 points, each grid shifted by a different 0.5° (distinct tasks)."""
    from mlcalc.batch import Task

    return [
        Task(
            "scan",
            structure,
            {"dihedral": "0,1,2,3", "grid": [180.0 - 60 * k - 0.5 * (n + offset) for k in range(6)]},
            device="cpu",
        )
        for n in range(count)
    ]


def throughput(workers: int, structure: Path, count: int, workdir: Path) -> dict:
    from mlcalc.batch import local_client, run

    with local_client(workers=workers, threads=1) as client:
        run(scan_tasks(structure, workers, offset=1000 * workers), workdir / f"warm-{workers}", client, plot=False)
        began = time.perf_counter()
        result = run(scan_tasks(structure, count), workdir / f"run-{workers}", client, plot=False)
        seconds = time.perf_counter() - began
        client.cluster.close()
    assert result.ok, result.failed
    walls = [row["wall_s"] for row in result]
    return {
        "workers": workers,
        "tasks": count,
        "seconds": seconds,
        "tasks_per_s": count / seconds,
        "task_wall_s_mean": sum(walls) / len(walls),
    }


def noop() -> None:
    return None


def overhead(count: int, structure: Path, workdir: Path) -> dict:
    """Seconds per task of Dask alone (``client.submit`` of a no-op) and of ``mlcalc.batch.run``'s path
    around a task that does nothing (an ``opt`` of 0 steps: reads the structure, one energy)."""
    from distributed import wait

    from mlcalc.batch import Task, local_client, run

    with local_client(workers=2, threads=1) as client:
        wait([client.submit(noop, pure=False) for _ in range(20)])  # warm
        began = time.perf_counter()
        wait([client.submit(noop, pure=False) for _ in range(count)])
        dask_s = (time.perf_counter() - began) / count
        tasks = [Task("opt", structure, {"steps": 0, "fmax": 100.0 + n}, device="cpu") for n in range(count)]
        run(tasks[:4], workdir / "overhead-warm", client, plot=False)
        began = time.perf_counter()
        run(tasks, workdir / "overhead", client, plot=False)
        batch_s = (time.perf_counter() - began) / count
        began = time.perf_counter()
        run(tasks, workdir / "overhead", client, plot=False)  # every task finished: only the checks
        rerun_s = (time.perf_counter() - began) / count
        client.cluster.close()
    return {
        "tasks": count,
        "dask_noop_s_per_task": dask_s,
        "batch_empty_task_s_per_task": batch_s,
        "batch_rerun_finished_s_per_task": rerun_s,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer tasks")
    parser.add_argument("--tasks", type=int, default=None, help="scan tasks per layout (default 12, --quick 4)")
    parser.add_argument("-o", "--output", type=Path, default=HERE / "results" / "batch.json")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import importlib.metadata

    from ase.build import molecule
    from ase.io import write

    count = args.tasks or (4 if args.quick else 12)
    workdir = Path(tempfile.mkdtemp(prefix="mlcalc-batch-bench-"))
    try:
        structure = workdir / "butane.xyz"
        write(structure, molecule("trans-butane"))
        load_before = os.getloadavg()
        one = throughput(1, structure, count, workdir)
        print(f"1 worker : {one['tasks_per_s']:.3f} tasks/s ({one['task_wall_s_mean']:.2f} s per task)", flush=True)
        two = throughput(2, structure, count, workdir)
        print(f"2 workers: {two['tasks_per_s']:.3f} tasks/s ({two['task_wall_s_mean']:.2f} s per task)", flush=True)
        costs = overhead(40 if args.quick else 200, structure, workdir)
        milliseconds = {key: value * 1e3 for key, value in costs.items() if key.endswith("per_task")}
        print(
            f"speed-up {two['tasks_per_s'] / one['tasks_per_s']:.2f}x; overhead per task: Dask "
            f"{milliseconds['dask_noop_s_per_task']:.1f} ms, mlcalc.batch.run "
            f"{milliseconds['batch_empty_task_s_per_task']:.1f} ms (empty task), "
            f"{milliseconds['batch_rerun_finished_s_per_task']:.1f} ms (finished, skipped)"
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    record = {
        "benchmark": "mlcalc.batch throughput and overhead",
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "versions": {
            name: importlib.metadata.version(name) for name in ("mlcalc", "torch", "ase", "dask", "distributed")
        },
        "python": sys.version.split()[0],
        "task": "relaxed butane C-C-C-C scan, 6 points, bundled demo potential, 1 thread per worker",
        "one_worker": one,
        "two_workers": two,
        "speedup": two["tasks_per_s"] / one["tasks_per_s"],
        "overhead": costs,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
