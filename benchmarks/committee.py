"""The bundled demo as a committee against the single model it is built around (issue 25, item 5).

    python benchmarks/committee.py           # ~3 minutes on 2 CPU cores; results/committee.json

The demo file (a last-layer committee, ``mlcalc.models.last_layer``) and the same HIP-NN exported alone
from its checkpoint (``training/runs/v15``), each through ``mlcalc.MLCalculator``, in turn (a, b, a, b,
...) on a 53-atom peptide, the demo's 32-water box and a 600-atom water box, every atom moved before each
call. A call asks for energy and forces, as an MD step or an optimiser step does (the committee then also
returns each member's energy and their spread); ``forces_uncertainty`` (each member's forces: one backward
pass per member) is timed separately. Records the minimum CPU time of each (``time.process_time``) and
the ratio committee / single (target ≤ 1.5), and checks that the two give the same energy and forces
(the committee's mean is the model: float64 round-off, or the script exits with 1). One thread.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")

import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from ase import Atoms  # noqa: E402
from common import environment, paired_times, water_box  # noqa: E402
from families import peptide  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import mlcalc  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "committee.json"
ROOT = Path(__file__).parents[1]
CHECKPOINT = ROOT / "training" / "runs" / "v15" / "checkpoint.pt"
DISPLACEMENT = 0.02  # Å, standard deviation of the random move of every atom before each call
TOLERANCE = {"energy": 1e-12, "forces": 1e-9}  # relative to |E| and to the largest force component


def single_model(folder: Path) -> Path:
    """The demo's HIP-NN alone, exported by the training pipeline (``python -m training export``)."""
    path = folder / "single.pt"
    command = [sys.executable, "-m", "training", "export", "--checkpoint", str(CHECKPOINT), "--output", str(path)]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    return path


def timed_calls(atoms: Atoms, calculators: dict, properties: list[str]) -> dict:
    """Paired CPU times of each calculator on ``atoms`` moved before each call."""
    rng = np.random.default_rng(0)
    start = atoms.positions.copy()

    def call(calc) -> None:
        atoms.positions = start + rng.normal(0, DISPLACEMENT, start.shape)
        calc.calculate(atoms, properties)

    return paired_times({name: (lambda c=calc: call(c)) for name, calc in calculators.items()})


def main() -> int:
    torch.set_num_threads(1)
    structures = {
        "peptide (53 atoms)": peptide(),
        "32 waters": water_box(96, seed=1),
        "600 atoms of water": water_box(600),
    }
    with tempfile.TemporaryDirectory() as tmp, threadpool_limits(1):
        single = mlcalc.load(single_model(Path(tmp)), device="cpu")
        committee = mlcalc.load("demo", device="cpu")
        if not committee.metadata.committee:
            print("the bundled demo is not a committee", file=sys.stderr)
            return 1
        cases, worst = [], {"energy": 0.0, "forces": 0.0}
        for name, atoms in structures.items():
            calcs = {"single": mlcalc.MLCalculator(single), "committee": mlcalc.MLCalculator(committee)}
            for calc in calcs.values():
                calc.calculate(atoms.copy(), ["energy", "forces"])
            a, b = calcs["single"].results, calcs["committee"].results
            worst["energy"] = max(worst["energy"], abs(a["energy"] - b["energy"]) / abs(a["energy"]))
            worst["forces"] = max(
                worst["forces"], float(np.abs(a["forces"] - b["forces"]).max() / np.abs(a["forces"]).max())
            )
            plain = timed_calls(atoms.copy(), calcs, ["energy", "forces"])
            spread = timed_calls(
                atoms.copy(), {"committee": calcs["committee"]}, ["energy", "forces", "forces_uncertainty"]
            )
            cases.append(
                {
                    "structure": name,
                    "atoms": len(atoms),
                    "single_cpu_min_s": plain["single"]["cpu_min_s"],
                    "committee_cpu_min_s": plain["committee"]["cpu_min_s"],
                    "committee_over_single": plain["committee"]["cpu_min_s"] / plain["single"]["cpu_min_s"],
                    "with_forces_uncertainty_cpu_min_s": spread["committee"]["cpu_min_s"],
                    "with_forces_uncertainty_over_single": spread["committee"]["cpu_min_s"]
                    / plain["single"]["cpu_min_s"],
                }
            )
            print(
                f"{name}: committee / single {cases[-1]['committee_over_single']:.2f}, with forces_uncertainty "
                f"{cases[-1]['with_forces_uncertainty_over_single']:.2f} "
                f"(single {1e3 * plain['single']['cpu_min_s']:.1f} ms CPU)"
            )
    report = {
        "environment": environment(),
        "members": committee.metadata.committee,
        "largest_relative_difference": worst,
        "cases": cases,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"largest differences {worst}; {RESULTS}")
    return 0 if all(worst[k] <= TOLERANCE[k] for k in TOLERANCE) else 1


if __name__ == "__main__":
    sys.exit(main())
