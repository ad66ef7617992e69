"""Neighbour-list timings: mlcalc's TorchScript builder against vesin, matscipy and ASE.

Water-like periodic boxes (0.1 atoms/Å³), cutoff 5 Å, full list with shifts ("ijS") everywhere;
each size runs every implementation side by side, so the ratios share the machine's state.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, Optional

import numpy as np
import torch
import vesin
from ase import Atoms
from ase.neighborlist import neighbor_list as ase_neighbor_list
from common import best_time, paired_times, water_box
from matscipy.neighbours import neighbour_list as matscipy_neighbour_list

from mlcalc.graph import MAX_IMAGES, PAIR_CHUNK, build_graph

CUTOFF = 5.0  # Å
#: Skip an implementation at a size where its predicted time exceeds this (s): ASE above ~20 s.
SLOW_LIMIT_S = {"ase": 20.0, "mlcalc_brute": 8.0}
#: How the time of each implementation grows with N, for that prediction.
SCALING = {"ase": 1.0, "mlcalc_brute": 2.0}


def _mlcalc(atoms: Atoms, method: str, dtype: torch.dtype, threads: int) -> Callable[[], int]:
    builder = torch.jit.script(build_graph)
    positions = torch.tensor(atoms.positions, dtype=dtype)
    cell = torch.tensor(atoms.cell.array, dtype=dtype).unsqueeze(0)
    pbc = torch.tensor(atoms.pbc).unsqueeze(0)
    batch = torch.zeros(len(atoms), dtype=torch.long)

    def run() -> int:
        edges, _ = builder(positions, cell, pbc, batch, CUTOFF, PAIR_CHUNK, MAX_IMAGES, method)
        return edges.shape[1]

    return run


def _vesin(atoms: Atoms, threads: int) -> Callable[[], int]:
    calculator = vesin.NeighborList(cutoff=CUTOFF, full_list=True, n_threads=threads)

    def run() -> int:
        i, _, _ = calculator.compute(atoms.positions, atoms.cell.array, True, quantities="ijS")
        return len(i)

    return run


def _matscipy(atoms: Atoms, threads: int) -> Callable[[], int]:
    return lambda: len(matscipy_neighbour_list("ijS", atoms, CUTOFF)[0])


def _ase(atoms: Atoms, threads: int) -> Callable[[], int]:
    return lambda: len(ase_neighbor_list("ijS", atoms, CUTOFF)[0])


IMPLEMENTATIONS: dict[str, Callable[[Atoms, int], Callable[[], int]]] = {
    "mlcalc_cell_list": lambda atoms, t: _mlcalc(atoms, "cell", torch.float64, t),
    "mlcalc_cell_list_float32": lambda atoms, t: _mlcalc(atoms, "cell", torch.float32, t),
    "mlcalc_brute": lambda atoms, t: _mlcalc(atoms, "brute", torch.float64, t),
    "vesin": _vesin,
    "matscipy": _matscipy,
    "ase": _ase,
}
#: Timed interleaved at every size: the fast implementations, vesin (the reference of the ratios) among them.
INTERLEAVED = ("mlcalc_cell_list", "mlcalc_cell_list_float32", "vesin", "matscipy")


def _predicted(name: str, history: dict, n: int) -> Optional[float]:
    """Time predicted at ``n`` atoms from the last measured size, or None."""
    if not history.get(name):
        return None
    last_n, last_t = history[name][-1]
    return last_t * (n / last_n) ** SCALING.get(name, 1.0)


def time_sizes(sizes: list[int], threads: int) -> list[dict]:
    """One row per (size, implementation): time (s), pairs found, and ratio to vesin.

    The implementations of :data:`INTERLEAVED` run in turn (a, b, c, a, b, c, ...) up to 30 times, so that
    their ratios share the machine's state; a millisecond build timed 5 times alone was off by up to 2x.
    """
    rows: list[dict] = []
    history: dict[str, list[tuple[int, float]]] = {}
    for n in sizes:
        atoms = water_box(n)
        runs: dict[str, Callable[[], int]] = {}
        measured: dict[str, dict] = {}
        for name, make in IMPLEMENTATIONS.items():
            predicted = _predicted(name, history, len(atoms))
            if name in SLOW_LIMIT_S and predicted is not None and predicted > SLOW_LIMIT_S[name]:
                continue
            run = make(atoms, threads)
            pairs = run()
            if name in INTERLEAVED:
                runs[name] = run
            else:
                slow = predicted is not None and predicted > 2.0
                measured[name] = best_time(run, repeats=1 if slow else 5, warmup=0 if slow else 2)
            measured.setdefault(name, {})["pairs"] = pairs
        for name, timing in paired_times(runs, repeats=30, budget_s=3.0, warmup=2).items():
            measured[name].update(timing)
        for name, timing in measured.items():
            history.setdefault(name, []).append((len(atoms), timing["min_s"]))
        reference = measured["vesin"]["min_s"]
        for name, timing in measured.items():
            rows.append(
                {"n_atoms": len(atoms), "implementation": name, **timing, "ratio_to_vesin": timing["min_s"] / reference}
            )
        counts = {name: t["pairs"] for name, t in measured.items() if not name.endswith("float32")}
        if len(set(counts.values())) != 1:
            raise AssertionError(f"implementations disagree on the number of pairs at {len(atoms)} atoms: {counts}")
        print(
            f"{len(atoms):>7} atoms: " + ", ".join(f"{k} {1e3 * v['min_s']:.1f} ms" for k, v in measured.items()),
            flush=True,
        )
    return rows


def crossover(sizes: list[int]) -> list[dict]:
    """Brute force against the cell list at small sizes (where ``CELL_LIST_MIN_ATOMS`` comes from),
    for periodic water boxes (5 Å), periodic argon-like boxes (8.5 Å) and open clusters (5 Å)."""
    rows = []
    rng = np.random.default_rng(1)
    for density, cutoff, periodic in ((0.1, 5.0, True), (0.021, 8.5, True), (0.05, 5.0, False)):
        for n in sizes:
            length = (n / density) ** (1 / 3)
            atoms = Atoms(
                numbers=np.ones(n, int),
                positions=rng.uniform(0, length, (n, 3)),
                cell=np.eye(3) * length * periodic,
                pbc=periodic,
            )
            builder = torch.jit.script(build_graph)
            args = (
                torch.tensor(atoms.positions),
                torch.tensor(atoms.cell.array).unsqueeze(0),
                torch.tensor(atoms.pbc).unsqueeze(0),
                torch.zeros(n, dtype=torch.long),
                cutoff,
                PAIR_CHUNK,
                MAX_IMAGES,
            )
            row = {"n_atoms": n, "cutoff": cutoff, "density": density, "periodic": periodic}
            for method in ("brute", "cell"):
                call = partial(builder, *args, method)
                row[method + "_s"] = best_time(call, repeats=9, budget_s=1.0, warmup=3)["median_s"]
            row["cell_over_brute"] = row["cell_s"] / row["brute_s"]
            rows.append(row)
    return rows
