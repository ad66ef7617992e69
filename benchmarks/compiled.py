"""The compiled route against TorchScript, same file, same calculator (issue 22, target 2).

    python benchmarks/compiled.py            # ~10 minutes on 2 CPU cores; results/compiled.json
    python benchmarks/compiled.py --quick    # the demo on small structures, 3 calls: checks the script

For the bundled demo HIP-NN (float64), hippynn's HIP-NN (64 features, through its adapter) and SchNetPack's
PaiNN (128 features x 3), float32 and float64 for the adapters (random weights from the families' own
constructors, as in ``benchmarks/families.py``): one file exported with ``compilable=True``, evaluated
by ``MLCalculator(mlcalc.load(file))`` (TorchScript) and ``MLCalculator(mlcalc.load(file, compile=True))``
in turn (a, b, a, b, ...) on a 53-atom peptide and a 600-atom water box, every atom moved before each
call. Each call asks for energy and forces, as an MD step does. Records the minimum CPU time of each
(``time.process_time``), their ratio, the export and compile times (the first, compiling calls, which
``load`` makes) and the largest differences, which must be round-off (the script exits with 1 otherwise).
torch, BLAS and Inductor's kernels run on one thread.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from ase import Atoms  # noqa: E402
from ase.calculators.calculator import all_changes  # noqa: E402
from common import environment, water_box  # noqa: E402
from families import build_hippynn, build_schnetpack, peptide  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import mlcalc  # noqa: E402
from mlcalc.models.hipnn import HIPNN  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "compiled.json"
CHECKPOINT = Path(__file__).parents[1] / "training" / "runs" / "v15" / "checkpoint.pt"
DISPLACEMENT = 0.02  # Å, standard deviation of the random move of every atom before each call
#: Largest accepted difference, relative to |E| and to the largest force component.
TOLERANCES = {"float64": {"energy": 1e-12, "forces": 1e-9}, "float32": {"energy": 1e-5, "forces": 1e-3}}


def export_demo(folder: Path) -> Path:
    """The bundled demo's model (its training checkpoint, as ``python -m training export`` writes it)."""
    state = torch.load(CHECKPOINT, weights_only=False)
    model = HIPNN(**state["hyperparameters"])
    model.load_state_dict(state["best_model"])
    model = model.double()
    with torch.no_grad():
        model.self_energies.add_(state["self_energy_reference"].double())
    path = folder / "demo.pt"
    mlcalc.export(model.eval(), path, dtype="float64", compilable=True)
    return path


def compare(path: Path, structures: dict[str, Callable[[], Atoms]], calls: int, dtype: str) -> dict:
    """TorchScript against the compiled route on one file, interleaved."""
    start = time.perf_counter()
    compiled = mlcalc.load(path, device="cpu", compile=True)
    load_compiled = time.perf_counter() - start
    scripted = mlcalc.load(path, device="cpu")
    record: dict = {
        "load_compiled_s": load_compiled,
        "compile_s": compiled.module.compile_seconds,
        "file_MB": path.stat().st_size / 1e6,
        "program_MB": compiled.metadata.program["bytes"] / 1e6,
    }
    for name, make in structures.items():
        atoms = make()
        calculators = {"torchscript": mlcalc.MLCalculator(scripted), "compiled": mlcalc.MLCalculator(compiled)}
        rng = np.random.default_rng(0)
        times: dict[str, list[float]] = {k: [] for k in calculators}
        worst = {"energy": 0.0, "forces": 0.0}
        first_call = {}
        for call in range(calls + 1):
            atoms.positions += rng.normal(0, DISPLACEMENT, atoms.positions.shape)
            results = {}
            for key, calc in calculators.items():
                t = time.process_time()
                calc.calculate(atoms, ["energy", "forces"], all_changes)
                elapsed = time.process_time() - t
                if call == 0:
                    first_call[key] = elapsed  # a new size: may compile again
                else:
                    times[key].append(elapsed)
                results[key] = dict(calc.results)
            a, b = results["torchscript"], results["compiled"]
            worst["energy"] = max(worst["energy"], abs(a["energy"] - b["energy"]) / abs(a["energy"]))
            force_difference = float(np.abs(a["forces"] - b["forces"]).max() / np.abs(a["forces"]).max())
            worst["forces"] = max(worst["forces"], force_difference)
        best = {k: min(v) for k, v in times.items()}
        record[name] = {
            "atoms": len(atoms),
            "torchscript_ms": 1e3 * best["torchscript"],
            "compiled_ms": 1e3 * best["compiled"],
            "speedup": best["torchscript"] / best["compiled"],
            "first_call_ms": {k: 1e3 * v for k, v in first_call.items()},
            "max_relative_difference": worst,
            "within_tolerance": all(worst[k] <= TOLERANCES[dtype][k] for k in worst),
        }
        print(
            f"  {name:10s} {len(atoms):5d} atoms  TorchScript {1e3 * best['torchscript']:8.1f} ms  compiled "
            f"{1e3 * best['compiled']:8.1f} ms  speedup {record[name]['speedup']:.2f}  differences E "
            f"{worst['energy']:.1e} F {worst['forces']:.1e}",
            flush=True,
        )
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="the demo only, small structures, 3 calls")
    parser.add_argument("--calls", type=int, default=15)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    structures: dict[str, Callable[[], Atoms]] = {
        "peptide": peptide,
        "water box": lambda: water_box(48 if args.quick else 600),
    }
    calls = 3 if args.quick else args.calls
    cases: list[tuple[str, str, Callable[[Path], Path]]] = [("demo HIP-NN", "float64", export_demo)]
    if not args.quick:
        for dtype in ("float32", "float64"):
            for family, build in (("hippynn HIP-NN", build_hippynn), ("SchNetPack PaiNN", build_schnetpack)):

                def export(folder: Path, build=build, dtype=dtype) -> Path:
                    return build(getattr(torch, dtype), folder, False, compilable=True).path

                cases.append((family, dtype, export))
    report: dict = {"environment": environment(), "calls": calls, "cases": []}
    failed = []
    with tempfile.TemporaryDirectory() as tmp, threadpool_limits(1):
        for label, dtype, export in cases:
            folder = Path(tmp) / f"{label}-{dtype}".replace(" ", "-")
            folder.mkdir()
            start = time.perf_counter()
            path = export(folder)
            export_s = time.perf_counter() - start
            print(f"{label} {dtype}: exported in {export_s:.1f} s", flush=True)
            record = {"model": label, "dtype": dtype, "export_s": export_s, **compare(path, structures, calls, dtype)}
            print(f"  compiled at load in {record['compile_s']:.1f} s", flush=True)
            report["cases"].append(record)
            failed += [f"{label} {dtype} {s}" for s in structures if not record[s]["within_tolerance"]]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")
    if failed:
        print(f"results differ beyond round-off: {failed}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
