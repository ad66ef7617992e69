from __future__ import annotations

from pathlib import Path

import pytest
import torch
from reference_parameters import CUTOFF, EPSILON, MORSE, SIGMA
from threadpoolctl import threadpool_limits

import mlcalc

torch.set_num_threads(2)
# numpy's OpenBLAS workers busy-wait after every call and starve torch on small machines: an ASE
# optimiser loop ran 5x slower here. One BLAS thread, as docs/getting-started.md advises for ASE scripts.
threadpool_limits(1, user_api="blas")


@pytest.fixture(scope="module")
def one_torch_thread():
    """For modules of small MD systems (~100-300 atoms): two torch threads on a shared 2-core machine
    ran them 10x slower than one (measured). Use with ``pytestmark = pytest.mark.usefixtures(...)``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def lj_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "lj.pt"
    mlcalc.export(mlcalc.models.LennardJones(sigma=SIGMA, epsilon=EPSILON, cutoff=CUTOFF), path)
    return path


@pytest.fixture(scope="session")
def lj_truncated_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "lj-truncated.pt"
    mlcalc.export(mlcalc.models.LennardJones(sigma=SIGMA, epsilon=EPSILON, cutoff=CUTOFF, shift=False), path)
    return path


@pytest.fixture(scope="session")
def morse_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "morse.pt"
    mlcalc.export(mlcalc.models.Morse(**MORSE), path)
    return path


@pytest.fixture(scope="session")
def lj(lj_path) -> mlcalc.Potential:
    return mlcalc.load(lj_path, device="cpu")


@pytest.fixture(scope="session")
def morse(morse_path) -> mlcalc.Potential:
    return mlcalc.load(morse_path, device="cpu")


@pytest.fixture(scope="session")
def argon(tmp_path_factory) -> tuple[Path, Path]:
    """For mlcalc md: a periodic PDB of 108 argon atoms and a truncated LJ argon potential with a 7 Å cutoff
    (small box, quick steps)."""
    from test_md_pipeline import write_argon

    directory = tmp_path_factory.mktemp("argon")
    potential = directory / "argon.pt"
    mlcalc.export(mlcalc.models.LennardJones(sigma=3.405, epsilon=0.0103, cutoff=7.0, shift=False), potential)
    return write_argon(directory / "argon.pdb"), potential


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason="no CUDA GPU visible to torch")
    if not torch.cuda.is_available():
        for item in items:
            if "cuda" in item.keywords:
                item.add_marker(skip)
