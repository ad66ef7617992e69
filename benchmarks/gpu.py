"""GPU figures: the TorchScript graph builder and the ASE calculator on a CUDA device.

    python benchmarks/gpu.py                 # on a machine with CUDA (~2 minutes)
    python benchmarks/gpu.py --device cpu    # the same script on the CPU, to check it

Writes ``results/gpu-<device>.json``. Needs only torch, numpy and ase (no vesin, matscipy or OpenMM,
which a GPU machine may lack). Timings synchronise the device and take the minimum over repeats.

- **Graph builder**: water-like periodic boxes (0.1 atoms/Å³), cutoff 5 Å, full list with shifts,
  float32 and float64, at the sizes of the published H100 cell-list anchors (NVIDIA nvalchemi,
  float32, 5 Å: ~0.9 ms at 32k atoms, ~6.7 ms at 131k); the pair counts must equal the CPU builder's.
  Also the peak CUDA memory of a build, and whether a build can be captured in a CUDA graph.
- **ASE calculator overhead**: ``MLCalculator.get_forces`` on a moved structure against the bare
  module's ``compute`` on the device (results copied to the host in both), LJ argon box and the
  bundled HIP-NN on a 3,000-atom water box.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from common import argon_box, paired_times, water_box

import mlcalc
from mlcalc.data import resolve_potential_path
from mlcalc.graph import MAX_IMAGES, PAIR_CHUNK, build_graph

CUTOFF = 5.0  # Å
#: Published H100 cell-list times (s) at these sizes: NVIDIA nvalchemi, float32, cutoff 5 Å.
ANCHORS_S = {32768: 0.9e-3, 131072: 6.7e-3}
SIZES = [3000, 24000, 32768, 100000, 131072]
QUICK_SIZES = [3000, 24000]


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _device_time(call: Callable[[], object], device: torch.device, repeats: int) -> dict:
    """Minimum and median wall time (s) of ``call``, the device synchronised around each run."""
    for _ in range(3):
        call()
    times = []
    for _ in range(repeats):
        _synchronize(device)
        start = time.perf_counter()
        call()
        _synchronize(device)
        times.append(time.perf_counter() - start)
    return {"min_s": min(times), "median_s": float(np.median(times)), "runs": repeats}


def builder_rows(sizes: list[int], device: torch.device) -> list[dict]:
    """Graph-build time, pairs and peak device memory per size and dtype."""
    builder = torch.jit.script(build_graph)
    rows = []
    for n in sizes:
        atoms = water_box(n)
        cpu_pairs = None
        for dtype in (torch.float32, torch.float64):
            args = (
                torch.tensor(atoms.positions, dtype=dtype, device=device),
                torch.tensor(atoms.cell.array, dtype=dtype, device=device).unsqueeze(0),
                torch.tensor(atoms.pbc, device=device).unsqueeze(0),
                torch.zeros(len(atoms), dtype=torch.long, device=device),
                CUTOFF,
                PAIR_CHUNK,
                MAX_IMAGES,
            )
            pairs = int(builder(*args)[0].shape[1])
            if dtype == torch.float64:
                cpu_pairs = int(builder(*[a.cpu() if isinstance(a, torch.Tensor) else a for a in args])[0].shape[1])
                if pairs != cpu_pairs:
                    raise AssertionError(f"{len(atoms)} atoms: {pairs} pairs on {device}, {cpu_pairs} on the CPU")
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
                before = torch.cuda.memory_allocated(device)
            timing = _device_time(partial(builder, *args), device, repeats=10 if n <= 32768 else 5)
            row = {"n_atoms": len(atoms), "dtype": str(dtype).replace("torch.", ""), "pairs": pairs, **timing}
            if device.type == "cuda":
                row["peak_memory_mib"] = (torch.cuda.max_memory_allocated(device) - before) / 2**20
            anchor = ANCHORS_S.get(n)
            if anchor is not None and dtype == torch.float32:
                row["ratio_to_h100_anchor"] = timing["min_s"] / anchor
            rows.append(row)
            print(f"{len(atoms):>7} atoms {row['dtype']}: {1e3 * timing['min_s']:.2f} ms, {pairs} pairs", flush=True)
    return rows


def graph_capture(device: torch.device) -> dict:
    """Whether one build can be captured in a CUDA graph (it cannot while it synchronises the host)."""
    if device.type != "cuda":
        return {"captured": False, "reason": "no CUDA device"}
    atoms = water_box(3000)
    args = (
        torch.tensor(atoms.positions, dtype=torch.float32, device=device),
        torch.tensor(atoms.cell.array, dtype=torch.float32, device=device).unsqueeze(0),
        torch.tensor(atoms.pbc, device=device).unsqueeze(0),
        torch.zeros(len(atoms), dtype=torch.long, device=device),
    )
    builder = torch.jit.script(build_graph)
    builder(*args, CUTOFF)
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph):
            builder(*args, CUTOFF)
    except Exception as exc:  # the capture's error is the result
        return {"captured": False, "reason": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}
    return {"captured": True}


def calculator_overhead(path: Path, atoms, label: str, device: torch.device) -> dict:
    """``MLCalculator.get_forces`` on a moved structure against the bare ``compute`` on the device."""
    calc = mlcalc.MLCalculator(path, device=device)
    potential = calc.potential
    rng = np.random.default_rng(0)
    moving = atoms.copy()
    moving.calc = calc
    positions = torch.tensor(atoms.positions, dtype=potential.dtype, device=device)
    inputs = (
        torch.tensor(atoms.numbers, device=device),
        positions,
        torch.tensor(atoms.cell.array, dtype=potential.dtype, device=device),
        torch.tensor(atoms.pbc, device=device),
        None,
    )
    periodic = bool(atoms.pbc.any())

    def calculator() -> None:
        moving.positions += rng.normal(scale=1e-4, size=moving.positions.shape)
        moving.get_forces()

    def bare() -> None:
        positions.add_(torch.from_numpy(rng.normal(scale=1e-4, size=atoms.positions.shape)).to(positions))
        out = potential.module.compute(*inputs, True, periodic)
        out["forces"].cpu()

    t = paired_times({"calculator": calculator, "bare": bare}, repeats=50, budget_s=20.0)
    return {
        "system": label,
        "n_atoms": len(atoms),
        "potential": potential.name,
        "bare_compute": t["bare"],
        "calculator_get_forces": t["calculator"],
        "ratio": t["calculator"]["min_s"] / t["bare"]["min_s"],
        "target": "<= 1.10",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="small sizes only")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here: run with --device cpu to check the script")
    report = {
        "command": "python benchmarks/gpu.py" + (" --quick" if args.quick else "") + f" --device {args.device}",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "torch": torch.__version__,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "builder": builder_rows(QUICK_SIZES if args.quick else SIZES, device),
        "cuda_graph_capture": graph_capture(device),
    }
    with tempfile.TemporaryDirectory() as directory:
        lj = Path(directory) / "lj-argon.pt"
        mlcalc.export(mlcalc.models.LennardJones(sigma=3.405, epsilon=0.0103, cutoff=8.5), lj)
        report["calculator"] = [
            calculator_overhead(lj, argon_box(), "fcc argon, periodic", device),
            calculator_overhead(resolve_potential_path("demo"), water_box(3000), "3,000 water atoms (HIP-NN)", device),
        ]
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"gpu-{device.type}" + ("-quick" if args.quick else "")
    (args.out / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out / (name + '.json')}")


if __name__ == "__main__":
    main()
