"""Dask clients: a LocalCluster on this machine, or an existing scheduler (a cluster started elsewhere).

On this machine: ``workers`` worker processes (``processes=True``: each its own interpreter, so torch's
and OpenMP's threads are its own), each running one task at a time (``threads_per_worker=1``) with
``threads`` torch/OpenMM/BLAS threads (:class:`~mlcalc.batch.worker.ThreadLimits`), ``workers x
threads`` at most the cores. A worker that dies mid-task is restarted by its nanny and the scheduler
runs the task again elsewhere, up to ``distributed.scheduler.allowed-failures`` times (Dask's default 3).
"""

from __future__ import annotations

import importlib.util
from typing import Optional

from mlcalc.threads import available_cores


def default_layout(workers: Optional[int], threads: Optional[int]) -> tuple[int, int]:
    """``(workers, threads per worker)``: by default one single-threaded worker per available core, or
    as many threads per worker as the cores allow for the workers asked for."""
    cores = available_cores()
    if workers is None:
        workers = max(1, cores // (threads or 1))
    if threads is None:
        threads = max(1, cores // workers)
    if workers < 1 or threads < 1:
        raise ValueError(f"need at least one worker and one thread per worker, got {workers} and {threads}")
    return workers, threads


def worker_environment(threads: int) -> dict[str, str]:
    """Variables for worker processes: ``threads`` for torch/OpenMP/OpenMM, one BLAS thread, idle OpenMP
    threads sleeping (see :mod:`mlcalc.threads`). Set before the process starts, as OpenMP reads them once."""
    n = str(threads)
    return {
        "MLCALC_NUM_THREADS": n,
        "OMP_NUM_THREADS": n,
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OMP_WAIT_POLICY": "PASSIVE",
    }


def local_client(workers: Optional[int] = None, threads: Optional[int] = None, **cluster_options):
    """A ``dask.distributed.Client`` of a new LocalCluster (see the module docstring); close it (and its
    ``cluster``) when done, or use it in a ``with`` block. ``cluster_options`` go to ``LocalCluster``."""
    from distributed import Client, LocalCluster

    workers, threads = default_layout(workers, threads)
    dashboard = ":0" if importlib.util.find_spec("bokeh") else None  # Dask's dashboard needs bokeh
    options = dict(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        env=worker_environment(threads),
        dashboard_address=dashboard,
    )
    cluster = LocalCluster(**{**options, **cluster_options})
    return Client(cluster)


def connect(address: str):
    """A client of the scheduler at ``address`` (``tcp://host:8786``, or a scheduler file's path)."""
    from distributed import Client

    if address.endswith(".json"):
        return Client(scheduler_file=address)
    return Client(address)
