"""Shared pieces of the benchmarks: test structures, a timer and the environment record."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import time
from typing import Callable

import numpy as np
from ase import Atoms
from ase.build import bulk

WATER_DENSITY = 0.1  # atoms/Å³, liquid water
ARGON_A = 5.26  # Å, fcc lattice constant near the LJ argon minimum
LJ = dict(sigma=3.405, epsilon=0.0103, cutoff=8.5)  # Å, eV, Å


def water_box(n_atoms: int, seed: int = 0) -> Atoms:
    """Periodic cubic box of ~``n_atoms`` atoms (whole H2O molecules, 0.96 Å bonds, 104.5°, random
    orientations, molecules on a jittered lattice) at 0.1 atoms/Å³."""
    rng = np.random.default_rng(seed)
    per_side = max(1, round((n_atoms / 3) ** (1 / 3)))
    n_molecules = max(1, round(n_atoms / 3))
    length = (3 * n_molecules / WATER_DENSITY) ** (1 / 3)
    spacing = length / per_side
    grid = np.stack(np.meshgrid(*[np.arange(per_side + 1)] * 3, indexing="ij"), -1).reshape(-1, 3)
    sites = rng.permutation(grid[(grid < per_side).all(1)])
    extra = rng.uniform(0, per_side, size=(max(0, n_molecules - len(sites)), 3))
    centres = (np.concatenate([sites, extra])[:n_molecules] + 0.5 + rng.uniform(-0.2, 0.2, (n_molecules, 3))) * spacing
    angle = np.radians(104.5) / 2
    local = 0.96 * np.array([[0, 0, 0], [np.sin(angle), np.cos(angle), 0], [-np.sin(angle), np.cos(angle), 0]])
    q, _ = np.linalg.qr(rng.normal(size=(n_molecules, 3, 3)))
    positions = (centres[:, None, :] + np.einsum("kj,mij->mki", local, q)).reshape(-1, 3)
    numbers = np.tile([8, 1, 1], n_molecules)
    return Atoms(numbers=numbers, positions=positions, cell=np.eye(3) * length, pbc=True)


def argon_box(repeat: int = 9, seed: int = 0) -> Atoms:
    """Periodic fcc argon, ``4 * repeat**3`` atoms (2,916 for 9), rattled."""
    atoms = bulk("Ar", "fcc", a=ARGON_A, cubic=True).repeat(repeat)
    atoms.rattle(0.05, seed=seed)
    return atoms


def argon_molecule(repeat: int = 3, seed: int = 0) -> Atoms:
    """An open argon cluster cut from fcc (108 atoms for 3), no cell."""
    atoms = argon_box(repeat, seed)
    atoms.cell[:] = 0.0
    atoms.pbc = False
    return atoms


def best_time(call: Callable[[], object], repeats: int = 5, budget_s: float = 3.0, warmup: int = 2) -> dict:
    """Minimum and median wall time (s) of ``call`` over up to ``repeats`` runs within ``budget_s``
    after ``warmup`` untimed runs (TorchScript optimises a function during its first calls)."""
    for _ in range(warmup):
        call()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < repeats and (not times or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return {"min_s": min(times), "median_s": float(np.median(times)), "runs": len(times)}


def paired_times(
    calls: dict[str, Callable[[], object]], repeats: int = 30, budget_s: float = 6.0, warmup: int = 3
) -> dict[str, dict]:
    """Like :func:`best_time` for several calls run in turn (a, b, a, b, ...), so that each sees the
    same machine state; ratios of their minima are robust to other load on a small machine. Also the
    process CPU time (s, all threads) of each call: ``cpu_min_s``, ``cpu_median_s``."""
    for _ in range(warmup):
        for call in calls.values():
            call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    cpu_times: dict[str, list[float]] = {name: [] for name in calls}
    start = time.perf_counter()
    for _ in range(repeats):
        for name, call in calls.items():
            c0, t0 = time.process_time(), time.perf_counter()
            call()
            times[name].append(time.perf_counter() - t0)
            cpu_times[name].append(time.process_time() - c0)
        if time.perf_counter() - start > budget_s:
            break
    return {
        name: {
            "min_s": min(t),
            "median_s": float(np.median(t)),
            "runs": len(t),
            "cpu_min_s": min(cpu_times[name]),
            "cpu_median_s": float(np.median(cpu_times[name])),
        }
        for name, t in times.items()
    }


def _version(package: str) -> str | None:
    """The installed version of ``package``, or ``None`` where it is not installed."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` says."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def environment() -> dict:
    """Versions, thread counts, CPU model and load of the machine the benchmarks ran on."""
    import ase
    import openmm
    import torch

    cpu = cpu_model()
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "ase": ase.__version__,
        "vesin": _version("vesin"),
        "matscipy": _version("matscipy"),
        "numpy": np.__version__,
        "openmm": openmm.__version__,
        "openmmtorch": _version("openmmtorch"),
        "cpu_model": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "load_average": os.getloadavg(),
    }
