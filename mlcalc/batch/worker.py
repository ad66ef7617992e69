"""The worker side: one potential per worker process, thread limits, and one task run with its failure kept.

- :func:`cached_potential`: a module-level cache keyed by (file, SHA-256, dtype, device), so a worker
  process loads each potential once and every later task on it reuses the loaded module (each task gets
  its own :class:`mlcalc.MLCalculator` around it, cheap). A file whose SHA-256 is not the one the batch
  fingerprinted (changed since, or another file at that path on this node) is refused.
- :class:`ThreadLimits`: a Dask worker plugin applying :func:`mlcalc.threads.configure_threads` in each
  worker process; :func:`execute` applies it again in the thread that runs the task (OpenMP thread counts
  are per thread).
- :func:`execute`: runs a task (:mod:`mlcalc.batch.kinds`), writes ``result.json``, or on any exception
  ``error.json``, and returns the record either way: one failure never stops the batch.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path
from typing import Any, Optional

from distributed import WorkerPlugin

from mlcalc.batch import store
from mlcalc.batch.tasks import Task

_POTENTIALS: dict[tuple, object] = {}
_LOCK = threading.Lock()
#: Thread count set by :class:`ThreadLimits` in this process (None: :func:`mlcalc.threads.resolve_threads`).
_THREADS: dict[str, Any] = {"count": None, "configured": set()}


def cached_potential(potential: str, sha256: str, dtype: str, device: Optional[str]):
    """The loaded :class:`mlcalc.Potential` (loaded on the first call in this process)."""
    from mlcalc.data import resolve_potential_path
    from mlcalc.potential import load

    key = (str(resolve_potential_path(potential).resolve()), sha256, dtype, device)
    with _LOCK:
        if key not in _POTENTIALS:
            loaded = load(potential, device=device, dtype=dtype)
            found = loaded.source_sha256 or "?"
            if found != sha256:
                raise store.BatchDirectoryError(
                    f"the potential {potential} on worker {worker_name()} has SHA-256 {found[:12]}..., "
                    f"not {sha256[:12]}... as when the batch started: the file changed (run the batch again to "
                    "fingerprint it anew), or the workers see another file at that path"
                )
            _POTENTIALS[key] = loaded
        return _POTENTIALS[key]


def potentials_loaded() -> int:
    """Potentials loaded by this process (one per file, dtype and device)."""
    return len(_POTENTIALS)


def configure_this_thread() -> int:
    """Apply the worker's thread count to the calling thread (once per thread); returns it."""
    from mlcalc.threads import configure_threads

    ident = threading.get_ident()
    if ident not in _THREADS["configured"]:
        _THREADS["count"] = configure_threads(_THREADS["count"])
        _THREADS["configured"].add(ident)
    return _THREADS["count"]


class ThreadLimits(WorkerPlugin):
    """Set torch, OpenMM-CPU and BLAS threads in each worker process (:func:`mlcalc.threads.configure_threads`)
    and keep freed memory there for reuse (:func:`mlcalc.allocator.keep_freed_memory`).

    Args:
        threads: threads per worker; ``None`` resolves them on the worker (``$MLCALC_NUM_THREADS``, else
            ``$OMP_NUM_THREADS``, which Dask sets to 1 in the workers it starts).
    """

    name = "mlcalc-thread-limits"

    def __init__(self, threads: Optional[int] = None):
        self.threads = threads

    def setup(self, worker) -> None:
        from mlcalc.allocator import keep_freed_memory

        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        keep_freed_memory()
        _THREADS["count"] = self.threads
        _THREADS["configured"] = set()
        configure_this_thread()


def worker_name() -> str:
    """The Dask worker's name (its address where unnamed), else host:pid."""
    try:
        from distributed import get_worker

        worker = get_worker()
        return f"{worker.name}@{socket.gethostname()}:{os.getpid()}"
    except ValueError:
        return f"{socket.gethostname()}:{os.getpid()}"


def _reference(kind: str, images: list) -> Optional[int]:
    """The image a barrier is measured from: the lowest point of a scan, the initial one of a path/NEB."""
    if kind == "scan":
        return min(range(len(images)), key=lambda n: images[n].get_potential_energy())
    return 0 if kind in ("path", "neb") else None


def execute(task: Task, task_id: str, fingerprint: dict, directory: str) -> dict:
    """Run ``task`` into ``directory``; return its record (status ``done``, ``not converged`` or ``failed``)."""
    from mlcalc.batch.kinds import RUNNERS

    began = time.perf_counter()
    where = Path(directory)
    record: dict[str, Any] = {"id": task_id, "fingerprint": fingerprint, "worker": worker_name()}
    try:
        record["threads"] = configure_this_thread()
        calc, potential = None, None
        if task.kind != "md":  # MD builds its OpenMM force from the file itself
            from mlcalc.calculator import MLCalculator

            potential = cached_potential(
                task.potential, fingerprint["potential_sha256"], fingerprint["dtype"], task.device
            )
            calc = MLCalculator(potential)
        summary = RUNNERS[task.kind](task, calc, where)
        images = summary.pop("images", None)
        if potential is not None and images:
            from mlcalc.batch.reliability import reliability

            summary.update(reliability(potential, images, _reference(task.kind, images)))
        record.update(
            status="done" if summary.get("converged", True) else "not converged",
            summary=summary,
            wall_s=time.perf_counter() - began,
            finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        )
        store.write_result(where, record)
        return record
    except Exception as exc:  # any workflow's failure, whatever its type: recorded, the batch goes on
        error = store.error_record(exc)
        record.update(status="failed", error=f"{error['type']}: {error['message']}", wall_s=time.perf_counter() - began)
        try:
            store.write_error(where, task_id, fingerprint, error)
        except OSError as write_failure:
            record["error"] += f" (and error.json could not be written: {write_failure})"
        return record
