"""mlcalc.threads: where the thread count comes from, and what configure_threads sets."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from mlcalc import threads
from mlcalc.threads import available_cores, openmm_platform_properties, resolve_threads


@pytest.fixture
def environment(monkeypatch):
    """No thread variable set; the returned function sets some."""
    for name in threads.ENVIRONMENT_VARIABLES:
        monkeypatch.delenv(name, raising=False)

    def set_variables(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)

    return set_variables


def in_subprocess(code: str, **env: str) -> dict:
    """The JSON that ``code`` prints in a fresh interpreter, with ``env`` added to the environment."""
    done = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.splitlines()[-1])


def test_available_cores_is_the_affinity():
    expected = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert available_cores() == expected >= 1


def test_argument_then_mlcalc_then_omp_variable_then_default(environment, monkeypatch):
    monkeypatch.setattr(threads, "default_threads", lambda: 7)
    assert resolve_threads() == 7
    environment(OMP_NUM_THREADS="3")
    assert resolve_threads() == 3
    environment(MLCALC_NUM_THREADS=" 2 ")
    assert resolve_threads() == 2
    assert resolve_threads(5) == 5
    environment(MLCALC_NUM_THREADS="")  # empty: not set
    assert resolve_threads() == 3


@pytest.mark.parametrize(
    "cores, cpus, load, expected",
    [(2, 2, 0.3, 2), (2, 2, 0.7, 1), (2, 2, 7.0, 1), (16, 16, 5.2, 11), (4, 64, 60.0, 4)],
)
def test_default_is_the_cores_the_load_leaves_free_unless_pinned(monkeypatch, cores, cpus, load, expected):
    monkeypatch.setattr(threads, "available_cores", lambda: cores)
    monkeypatch.setattr(os, "cpu_count", lambda: cpus)
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    assert threads.default_threads() == expected


@pytest.mark.parametrize(
    "argument, variables, named",
    [
        (0, {}, "threads"),
        (-2, {}, "threads"),
        (None, {"MLCALC_NUM_THREADS": "0"}, "MLCALC_NUM_THREADS"),
        (None, {"MLCALC_NUM_THREADS": "two"}, "MLCALC_NUM_THREADS"),
        (None, {"OMP_NUM_THREADS": "4,2"}, "OMP_NUM_THREADS"),
        (None, {"OMP_NUM_THREADS": "-1"}, "OMP_NUM_THREADS"),
    ],
)
def test_invalid_counts_name_their_source(environment, argument, variables, named):
    environment(**variables)
    with pytest.raises(ValueError, match=f"^{named}="):
        resolve_threads(argument)


def test_openmm_properties_set_threads_of_the_cpu_platform_only(environment):
    environment(MLCALC_NUM_THREADS="3")
    assert openmm_platform_properties("CPU") == {"Threads": "3"}
    assert openmm_platform_properties("CPU", 1) == {"Threads": "1"}
    for name in ("Reference", "CUDA", "OpenCL", "HIP"):
        assert openmm_platform_properties(name, 2) == {}


CONFIGURE = """
import json, os
import torch
from threadpoolctl import threadpool_info
from mlcalc.threads import configure_threads
{before}
n = configure_threads({argument})
blas = sorted({{pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}})
variables = [os.environ[name] for name in ("MLCALC_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")]
print(json.dumps([n, torch.get_num_threads(), torch.get_num_interop_threads(), blas, variables]))
"""


def test_configure_threads_sets_torch_and_blas():
    explicit = in_subprocess(CONFIGURE.format(before="", argument=3), MLCALC_NUM_THREADS="1", OMP_NUM_THREADS="1")
    assert explicit == [3, 3, 1, [1], ["3", "3", "1"]]
    from_variable = in_subprocess(CONFIGURE.format(before="", argument=None), MLCALC_NUM_THREADS="2")
    assert from_variable == [2, 2, 1, [1], ["2", "2", "1"]]


def test_configure_threads_keeps_an_interop_count_torch_no_longer_lets_change():
    before = "torch.set_num_interop_threads(2)"  # torch allows this once per process
    assert in_subprocess(CONFIGURE.format(before=before, argument=1))[:3] == [1, 1, 2]


COMMAND_LINE = """
import json, os, sys
from mlcalc.cli import main
code = main(["--threads", "2", "info", "demo"])
print(json.dumps([code, sys.modules["torch"].get_num_threads(), os.environ["OMP_WAIT_POLICY"]]))
"""


def test_the_command_line_configures_threads_before_running_a_command():
    environment = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    done = subprocess.run([sys.executable, "-c", COMMAND_LINE], env=environment, capture_output=True, text=True)
    assert json.loads(done.stdout.splitlines()[-1]) == [0, 2, "PASSIVE"]
    assert in_subprocess(COMMAND_LINE, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="active") == [0, 2, "active"]
