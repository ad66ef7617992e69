"""Thread counts that do not oversubscribe the cores: torch (OpenMP), OpenMM's CPU platform and BLAS.

The rule (:func:`configure_threads`, applied by the ``mlcalc`` command line before any sub-command):
``n`` threads for torch's intra-op pool and OpenMM's CPU platform (they take turns within an MD step),
one torch inter-op thread, one BLAS thread. ``n`` is ``--threads``/the argument, else
``$MLCALC_NUM_THREADS``, else ``$OMP_NUM_THREADS``, else :func:`default_threads`: the cores that the
1-minute load average leaves free (at least 1), or every core of a pinned subset (a scheduler's
allocation). The command line also sets ``OMP_WAIT_POLICY=PASSIVE`` unless it is set: idle OpenMP
threads then sleep instead of spinning, which bounds the loss when load arrives after the start.

Measured with ``python benchmarks/threads.py`` (AMD EPYC, 2 cores, torch 2.13, OpenMM 8.6.1; demo
potential, 30-water cluster; steps/s, best of the runs, higher is better; results/threads.json). The
machine was never idle: other sessions kept its load average at 4-7 ("idle" = no load added);
"loaded" adds 4 busy-looping processes. Loops: OpenMM MD all-ML / ML-MM (10 ML waters in 1038 atoms,
PME) / ASE BFGS steps.

=============================  ===================  ===================
variant                        idle                 loaded
=============================  ===================  ===================
defaults (nothing set)         4.6 / 7.6 / 1.2      0.58 / 0.80 / 0.22
n = 2 everywhere, BLAS 1       2.7 / 10 / 3.4       0.69 / 0.86 / 0.42
n = 1 everywhere               43 / 80 / 37         4.6 / 18 / 11
n = 2, OMP_WAIT_POLICY=PASSIVE 54 / 52 / 24         19 / 8.4 / 17
=============================  ===================  ===================

With torch 2.9.1 and OpenMM 8.5.2 (``--quick``, load 3-7) the order was the same: n = 1 60 / 81 / 40
idle, 5.0 / 25 / 8.2 loaded; PASSIVE 41 / 89 / 43 and 7.9 / 19 / 11; n = 2 spinning 3.9 / 9.4 / 3.8 and
0.7 / 0.8 / 0.8. An earlier run of the same loops at load 2-4 gave the same order (n = 1: 125 / 168 /
81; n = 2: 15 / 118 / 11; PASSIVE: 100 / 138 / 63; defaults 151 / 132 / 4). Spinning OpenMP (torch) and
OpenBLAS threads that share cores with other work cost 3-30x; one thread is never much slower on small
systems, and PASSIVE recovers most of the loss of several threads. Idle speed-ups of several threads
(large systems) could not be measured here, hence all cores only where the load leaves them free.
"""

from __future__ import annotations

import os

#: Environment variables read by :func:`resolve_threads`, first one set wins.
ENVIRONMENT_VARIABLES = ("MLCALC_NUM_THREADS", "OMP_NUM_THREADS")


def available_cores() -> int:
    """The number of cores this process may run on (its CPU affinity where the OS reports it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def default_threads() -> int:
    """The thread count when neither an argument nor a variable sets one: every available core when the
    process is pinned to a subset of the machine's (a scheduler's allocation), else the cores that the
    1-minute load average leaves free, at least 1."""
    cores = available_cores()
    if cores < (os.cpu_count() or cores) or not hasattr(os, "getloadavg"):
        return cores
    return max(1, cores - round(os.getloadavg()[0]))


def _parse(text: str, name: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError(f"{name}={text!r} is not a whole number of threads: give a whole number, 1 or more") from None
    if value < 1:
        raise ValueError(f"{name}={text!r}: the number of threads must be at least 1")
    return value


def resolve_threads(threads: int | None = None) -> int:
    """``threads`` itself, else ``$MLCALC_NUM_THREADS``, else ``$OMP_NUM_THREADS``, else :func:`default_threads`.

    Raises:
        ValueError: the value (naming the argument or variable it came from) is not a whole number >= 1.
    """
    if threads is not None:
        return _parse(str(threads), "threads")
    for name in ENVIRONMENT_VARIABLES:
        text = os.environ.get(name, "")
        if text.strip():
            return _parse(text, name)
    return default_threads()


def configure_threads(threads: int | None = None) -> int:
    """Apply the rule to this process and return the thread count ``n`` (see :func:`resolve_threads`).

    torch runs ``n`` intra-op threads and one inter-op thread (if torch still lets it be set), BLAS one
    thread. ``MLCALC_NUM_THREADS=n`` makes later :func:`resolve_threads` calls (and child processes) agree;
    ``OMP_NUM_THREADS=n`` and ``OPENBLAS_NUM_THREADS=1`` reach the libraries loaded later (e.g. SciPy's
    own OpenBLAS, tblite's OpenMP).
    """
    n = resolve_threads(threads)
    os.environ["MLCALC_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = str(n)
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(n)
    if torch.get_num_interop_threads() != 1:
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # torch allows it once, before any inter-op work: keep what it has
            pass
    threadpool_limits(1, user_api="blas")
    return n


def openmm_platform_properties(platform_name: str, threads: int | None = None) -> dict[str, str]:
    """Platform properties for ``openmm.Platform.getPlatformByName(platform_name)``: ``{"Threads": "n"}``
    for the CPU platform (``n`` from :func:`resolve_threads`), ``{}`` for the others."""
    if platform_name == "CPU":
        return {"Threads": str(resolve_threads(threads))}
    return {}
