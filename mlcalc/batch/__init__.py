"""High-throughput workflows over Dask: scans, barrier paths, NEBs, optimisations and MD replicas for a
library of molecules, on this machine (a LocalCluster) or a cluster (any ``dask.distributed`` scheduler:
dask-jobqueue for SLURM/PBS, Kubernetes), unchanged.

.. code-block:: python

    from mlcalc.batch import Task, run

    tasks = [Task("scan", f, {"dihedral": "0,1,2,3", "step": 30}) for f in files]
    table = run(tasks, "screening", workers=2)      # or run(tasks, "screening", client=Client(...))

- :mod:`~mlcalc.batch.tasks`: a task (kind, input, settings), its fingerprint and id;
- :mod:`~mlcalc.batch.kinds`: what each kind runs on a worker;
- :mod:`~mlcalc.batch.worker`: one potential load per worker process, thread limits, failures kept;
- :mod:`~mlcalc.batch.store`: a task directory's ``task.json``, ``result.json``, ``error.json``;
- :mod:`~mlcalc.batch.cluster`: LocalCluster and existing schedulers;
- :mod:`~mlcalc.batch.runner`: :func:`run`; :mod:`~mlcalc.batch.summary`: the table and plot;
- :mod:`~mlcalc.batch.config`: batch files of mixed tasks; :mod:`~mlcalc.batch.reliability`: uncertainty.

``mlcalc batch`` is the command line (``docs/batch.md``).
"""

from mlcalc.batch.cluster import connect, local_client
from mlcalc.batch.config import md_replicas, tasks_from_file
from mlcalc.batch.runner import run
from mlcalc.batch.store import BatchDirectoryError
from mlcalc.batch.summary import BatchResult
from mlcalc.batch.tasks import KINDS, Task

__all__ = [
    "KINDS",
    "BatchDirectoryError",
    "BatchResult",
    "Task",
    "connect",
    "local_client",
    "md_replicas",
    "run",
    "tasks_from_file",
]
