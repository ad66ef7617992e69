"""The screening batch on a SLURM cluster through dask-jobqueue (not run in CI; adapt queue, account, cores).

    pip install dask-jobqueue
    python examples/screening/slurm.py          # on the login node; the workers run as SLURM jobs

The batch is the one ``mlcalc batch run examples/screening/screening.toml`` runs on a laptop, unchanged:
only the client differs. Each SLURM job is one Dask worker process with ``cores`` cores, one task at a
time (``processes=1``), torch/OpenMM threads = the job's cores (``MLCALC_NUM_THREADS``). The batch
directory must be on a file system the login node and the compute nodes share. Run it again after an
interruption (a job killed at its time limit, the login session lost): finished tasks are skipped, the
others continue from their checkpoints.
"""

from pathlib import Path

from dask_jobqueue import SLURMCluster
from distributed import Client

from mlcalc.batch import run, tasks_from_file

CORES = 4  # per worker (per SLURM job)

if __name__ == "__main__":  # Dask starts processes: keep the work under this guard
    cluster = SLURMCluster(
        queue="normal",  # your partition
        account="my-account",  # your account
        cores=CORES,
        processes=1,  # one Dask worker per job, running one task at a time
        memory="8GB",
        walltime="02:00:00",
        job_script_prologue=[
            f"export MLCALC_NUM_THREADS={CORES} OMP_NUM_THREADS={CORES} OMP_WAIT_POLICY=PASSIVE",
            "source ~/venvs/mlcalc/bin/activate",  # the environment mlcalc is installed in
        ],
        worker_extra_args=["--nthreads", "1"],  # one task per worker, its threads set above
    )
    cluster.adapt(minimum=0, maximum=20)  # up to 20 jobs while tasks wait, none when idle
    tasks, options = tasks_from_file(Path(__file__).with_name("screening.toml"))
    with Client(cluster) as client:
        table = run(tasks, "screening", client, threads=CORES, progress=True)
    print(table)
    for row in table.failed:
        print(row["task"], row["error"])
