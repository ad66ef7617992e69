"""``mlcalc.batch.run``: fingerprint the tasks, skip the finished ones, run the rest on Dask, write the table.

Scheduling is Dask's: each task is one ``client.submit`` (key ``mlcalc-batch-<task id>``), results
arrive through ``distributed.as_completed``. What makes a batch resumable lives in the task directories
(:mod:`mlcalc.batch.store`): a rerun of the same tasks, after a killed client, a killed worker or a
failure, skips every task whose ``result.json`` has the same fingerprint and runs the others, which
continue from the workflows' own checkpoints (scans, paths, MD).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Iterable, Optional

from mlcalc.batch import store
from mlcalc.batch.summary import BARRIER_PLOT, BatchResult, plot_barriers, row, write_summary
from mlcalc.batch.tasks import Task, fingerprint, task_id, unreadable_id
from mlcalc.files import PathLike

#: Least seconds between two rewrites of the summary while the batch runs (it is always written at the end).
SUMMARY_INTERVAL_S = 2.0


@dataclasses.dataclass
class Planned:
    """A task with its id, fingerprint and directory, and what the directory already says."""

    task: Task
    id: str
    directory: Path
    fingerprint: Optional[dict] = None
    record: Optional[dict] = None  # result.json when finished, or the failure found before running
    cached: bool = False


def plan(tasks: Iterable[Task], output: Path) -> list[Planned]:
    """Fingerprint every task and look at its directory; tasks that cannot be fingerprinted (unreadable
    input, missing potential) or whose directory holds another task get a ``failed`` record."""
    potentials: dict = {}
    planned: dict[str, Planned] = {}
    for task in tasks:
        try:
            record = fingerprint(task, potentials)
        except (OSError, ValueError) as exc:  # StructureFileError, ContractError, FileNotFoundError are these
            ident = unreadable_id(task)
            error = store.error_record(exc)
            store.write_error(output / ident, ident, None, error)
            failure = {"status": "failed", "error": f"{error['type']}: {error['message']}"}
            planned.setdefault(ident, Planned(task, ident, output / ident, record=failure))
            continue
        ident = task_id(task, record)
        if ident in planned:  # the same task twice: run once
            continue
        item = Planned(task, ident, output / ident, record)
        try:
            finished = store.check_directory(item.directory, record)
        except store.BatchDirectoryError as exc:
            item.record = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
        else:
            if finished is not None:
                item.record, item.cached = finished, True
        planned[ident] = item
    return list(planned.values())


def run(
    tasks: Iterable[Task],
    output: PathLike = "batch",
    client=None,
    *,
    workers: Optional[int] = None,
    threads: Optional[int] = None,
    progress: bool = False,
    plot: bool = True,
) -> BatchResult:
    """Run ``tasks`` on Dask, each into its own directory under ``output``; returns the table.

    Args:
        tasks: :class:`~mlcalc.batch.Task` objects (a task given twice runs once).
        output: the batch directory: one directory per task, ``summary.csv``, ``summary.json`` and
            ``barriers.png`` (when tasks report barriers).
        client: a ``dask.distributed.Client`` (any cluster); ``None`` starts a LocalCluster of
            ``workers`` processes with ``threads`` threads each (default: one single-threaded worker per
            core) and closes it at the end.
        workers, threads: the LocalCluster's layout; ``threads`` also applies to the workers of a given
            ``client`` (default there: ``$MLCALC_NUM_THREADS`` or ``$OMP_NUM_THREADS`` of each worker).
        progress: live progress on stderr (tasks done / running / failed, ETA).
        plot: write ``barriers.png``.

    Finished tasks (``result.json`` with the same fingerprint) are not run again; failed ones are.
    A task's exception is caught on the worker: its row says ``failed`` with the error, the rest run on.
    """
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    planned = plan(tasks, output)
    pending = [p for p in planned if p.record is None]
    own = client is None and bool(pending)
    if own:
        from mlcalc.batch.cluster import local_client

        client = local_client(workers, threads)
    try:
        if pending:
            _submit_and_wait(client, pending, planned, output, threads, progress)
    finally:
        if own:
            cluster = client.cluster
            client.close()
            cluster.close()
    rows = [row(p.id, p.task, p.directory, p.record or {}, p.cached) for p in planned]
    write_summary(output, rows)
    if plot:
        from mlcalc.demo.reliability import FLAG_ABOVE

        plot_barriers(rows, output / BARRIER_PLOT, FLAG_ABOVE)
    return BatchResult(rows, output)


def _submit_and_wait(client, pending: list[Planned], planned: list[Planned], output: Path, threads, progress) -> None:
    from distributed import as_completed

    from mlcalc.batch.worker import ThreadLimits, execute

    client.register_plugin(ThreadLimits(threads))
    futures = {}
    for item in pending:
        store.write_task(item.directory, item.id, item.task.to_dict(), item.fingerprint or {})
        future = client.submit(
            execute, item.task, item.id, item.fingerprint, str(item.directory), key=f"mlcalc-batch-{item.id}"
        )
        futures[future] = item
    bar = (
        Progress(len(planned), len(planned) - len(pending), sum(1 for p in planned if _failed(p))) if progress else None
    )
    keys = {future.key for future in futures}
    completed = as_completed(futures)
    last_summary = time.monotonic()
    try:
        while not completed.is_empty():
            batch = completed.next_batch(block=False)
            if not batch:
                if bar is not None:
                    bar.running(_running(client, keys))
                time.sleep(0.2)
                continue
            for future in batch:
                item = futures[future]
                item.record = _outcome(future, item)
                keys.discard(future.key)
                if bar is not None:
                    bar.finished(item, _running(client, keys))
            if time.monotonic() - last_summary > SUMMARY_INTERVAL_S:
                write_summary(
                    output,
                    [row(p.id, p.task, p.directory, p.record or {"status": "pending"}, p.cached) for p in planned],
                )
                last_summary = time.monotonic()
    finally:
        if bar is not None:
            bar.close()


def _failed(item: Planned) -> bool:
    return item.record is not None and item.record.get("status") == "failed"


def _outcome(future, item: Planned) -> dict:
    """The task's record; a future that errored (a task that killed every worker it ran on: Dask's
    ``KilledWorker``) gets its ``error.json`` here."""
    if future.status == "finished":
        return future.result()
    exc = future.exception()
    error = store.error_record(exc)
    if type(exc).__name__ == "KilledWorker":
        error["message"] += (
            " (the worker process died each time it ran this task: a crash or running out of memory; "
            "the task ran up to distributed.scheduler.allowed-failures + 1 times)"
        )
    store.write_error(item.directory, item.id, item.fingerprint, error)
    return {"status": "failed", "error": f"{error['type']}: {error['message']}"}


def _running(client, keys: set) -> int:
    """How many of ``keys`` the workers are running now: per worker those assigned to it, at most its
    threads (Dask queues a few more on a worker than it runs); -1 when the scheduler does not answer."""
    try:
        processing = client.processing()
        threads = client.nthreads()
    except Exception:  # the scheduler is busy or gone: progress is not worth an error
        return -1
    return sum(
        min(sum(1 for key in assigned if key in keys), threads.get(worker, 1))
        for worker, assigned in processing.items()
    )


class Progress:
    """A tqdm bar on stderr: tasks done of all (finished earlier included), running, failed, ETA."""

    def __init__(self, total: int, done: int, failed: int):
        from tqdm import tqdm

        self.failed = failed
        self.bar = tqdm(
            total=total,
            initial=done,
            desc="mlcalc batch",
            unit="task",
            file=sys.stderr,
            dynamic_ncols=True,
            smoothing=0.1,
        )
        self._running = 0
        self._show()

    def _show(self) -> None:
        running = "?" if self._running < 0 else self._running
        self.bar.set_postfix_str(f"running {running}, failed {self.failed}", refresh=True)

    def running(self, count: int) -> None:
        if count != self._running:
            self._running = count
            self._show()

    def finished(self, item: Planned, running: int) -> None:
        if _failed(item):
            self.failed += 1
            self.bar.write(f"mlcalc batch: {item.id} failed: {(item.record or {}).get('error', '').splitlines()[0]}")
        self._running = running
        self.bar.update(1)
        self._show()

    def close(self) -> None:
        self.bar.close()
