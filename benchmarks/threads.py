"""Thread settings of torch, OpenMM's CPU platform and BLAS, without and with other load on the machine.

    python benchmarks/threads.py           # 7.5 minutes on 2 cores at a load average of 4-7
    python benchmarks/threads.py --quick   # 5 minutes there (mostly imports under load), to check the script

Each variant runs in a fresh process (``OMP_WAIT_POLICY`` must be set before torch loads), on the bundled
demo potential and a 30-water cluster (liquid density, no cell), timing three loops:

- ``openmm_ml``: OpenMM MD of the cluster, every atom ML (``create_system``, ``implementation="python"``);
- ``openmm_mlmm``: OpenMM MD of a 2.2 nm TIP3P box (PME) with 10 of its waters ML (``create_mixed_system``):
  OpenMM's own threads (PME) and torch's take turns within every step;
- ``ase_bfgs``: BFGS steps of :class:`mlcalc.MLCalculator` on the cluster (torch and numpy in turns).

Variants: ``defaults`` (nothing set), ``cores`` (:func:`mlcalc.threads.configure_threads` with every core,
OpenMM ``Threads`` too), ``one`` (one thread everywhere) and ``cores-passive`` (``cores`` with
``OMP_WAIT_POLICY=PASSIVE``: idle OpenMP threads sleep instead of spinning). The ``loaded`` condition
starts 4 busy-looping processes (ended after the measurement, and by themselves after 10 minutes at
most). Writes ``results/threads.json``: per loop and variant the steps per second (higher is better).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

from common import cpu_model

HERE = Path(__file__).resolve().parent
VARIANTS = {
    "defaults": {"threads": None, "env": {}},
    "cores": {"threads": "cores", "env": {}},
    "one": {"threads": 1, "env": {}},
    "cores-passive": {"threads": "cores", "env": {"OMP_WAIT_POLICY": "PASSIVE"}},
}
#: Variables that set thread counts or OpenMP behaviour: cleared so that each variant sets only its own.
THREAD_VARIABLES = (
    "MLCALC_NUM_THREADS",
    "OMP_NUM_THREADS",
    "OMP_WAIT_POLICY",
    "GOMP_SPINCOUNT",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENMM_CPU_THREADS",
)
LOOPS = ("openmm_ml", "openmm_mlmm", "ase_bfgs")
LOAD_PROCESSES = 4
LOAD_LIMIT_S = 600  # a busy loop ends by itself after this long even if this script is killed


def water_cluster():
    """30 waters at liquid density (``common.water_box``) without a cell, as ASE Atoms."""
    from common import water_box

    atoms = water_box(90)
    atoms.cell[:] = 0.0
    atoms.pbc = False
    return atoms


def timed(step, steps: int, budget_s: float, chunk: int) -> dict:
    """Steps per second of ``step(chunk)`` repeated until ``steps`` steps or ``budget_s`` seconds, after
    two untimed steps (TorchScript optimises a function during its first calls)."""
    step(2)
    done, start = 0, time.perf_counter()
    while done < steps and time.perf_counter() - start < budget_s:
        step(chunk)
        done += chunk
    elapsed = time.perf_counter() - start
    return {"steps": done, "seconds": round(elapsed, 3), "steps_per_s": round(done / elapsed, 2)}


def worker(variant: str, steps: int, budget_s: float) -> dict:
    """Time the three loops in this process under ``variant``; returns the record."""
    import openmm
    import torch
    from ase.optimize import BFGS
    from openmm import app, unit

    import mlcalc
    from mlcalc.openmm import create_mixed_system, create_system
    from mlcalc.threads import available_cores, configure_threads, openmm_platform_properties

    threads = VARIANTS[variant]["threads"]
    if threads is not None:
        configure_threads(available_cores() if threads == "cores" else threads)
        properties = openmm_platform_properties("CPU")
    else:
        properties = {}
    potential = mlcalc.load("demo")
    cluster = water_cluster()

    def simulate(topology, system, positions) -> openmm.Context:
        integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 0.5 * unit.femtosecond)
        integrator.setRandomNumberSeed(1)
        context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("CPU"), properties)
        context.setPositions(positions)
        return context

    topology = app.Topology()
    chain = topology.addChain()
    for _ in range(len(cluster) // 3):
        residue = topology.addResidue("HOH", chain)
        for symbol in ("O", "H", "H"):
            topology.addAtom(symbol, app.Element.getBySymbol(symbol), residue)
    positions = cluster.positions * 0.1  # nm
    context = simulate(topology, create_system(topology, potential, implementation="python"), positions)
    results = {"openmm_ml": timed(context.getIntegrator().step, steps, budget_s, 10)}

    forcefield = app.ForceField("amber14/tip3pfb.xml")
    modeller = app.Modeller(app.Topology(), [])
    modeller.addSolvent(forcefield, boxSize=openmm.Vec3(2.2, 2.2, 2.2) * unit.nanometer)
    mm = forcefield.createSystem(modeller.topology, nonbondedMethod=app.PME, nonbondedCutoff=0.9 * unit.nanometer)
    mixed = create_mixed_system(modeller.topology, mm, range(30), potential, implementation="python")
    context = simulate(modeller.topology, mixed, modeller.positions)
    results["openmm_mlmm"] = timed(context.getIntegrator().step, steps, budget_s, 10)
    results["openmm_mlmm"]["atoms"] = mixed.getNumParticles()

    cluster.calc = mlcalc.MLCalculator(potential)
    optimizer = BFGS(cluster, logfile=None)
    results["ase_bfgs"] = timed(lambda n: optimizer.run(fmax=1e-9, steps=n), steps // 5, budget_s, 2)
    results["torch_threads"] = torch.get_num_threads()
    results["openmm_threads"] = context.getPlatform().getPropertyValue(context, "Threads")
    return results | {"torch": torch.__version__, "openmm": openmm.__version__}


def run_variant(variant: str, steps: int, budget_s: float) -> dict:
    """:func:`worker` in a fresh process with only the variant's thread variables set."""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES} | VARIANTS[variant]["env"]
    command = [
        sys.executable,
        str(Path(__file__)),
        "--worker",
        variant,
        "--steps",
        str(steps),
        "--budget",
        str(budget_s),
    ]
    load_before = os.getloadavg()[0]
    began = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=HERE, capture_output=True, text=True, timeout=20 * budget_s + 120)
    if done.returncode != 0:
        raise RuntimeError(f"variant {variant} failed:\n{done.stderr}")
    record = json.loads(done.stdout.strip().splitlines()[-1])
    return record | {"load_average_before": round(load_before, 2), "process_s": round(time.perf_counter() - began, 1)}


def busy_loops(count: int) -> list[subprocess.Popen]:
    """``count`` processes spinning on a core each, for at most ``LOAD_LIMIT_S`` seconds."""
    loop = f"import time\nend = time.time() + {LOAD_LIMIT_S}\nwhile time.time() < end: pass"
    return [subprocess.Popen([sys.executable, "-c", loop]) for _ in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter loops, to check the script")
    parser.add_argument("--output", type=Path, default=HERE / "results" / "threads.json")
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=300, help=argparse.SUPPRESS)
    parser.add_argument("--budget", type=float, default=6.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.steps, args.budget)))
        return
    steps, budget_s, rounds = (
        (60, 1.5, {"idle": 1, "loaded": 1}) if args.quick else (300, 2.0, {"idle": 2, "loaded": 1})
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # so that the busy loops are ended on kill too

    from mlcalc.threads import available_cores

    record = {
        "cpu_model": cpu_model(),
        "available_cores": available_cores(),
        "python": platform.python_version(),
        "busy_loop_processes": LOAD_PROCESSES,
        "max_steps": steps,
        "budget_s_per_loop": budget_s,
        "rounds": rounds,
        "runs": {},
        "best_steps_per_s": {},
    }
    for condition in ("idle", "loaded"):
        load = busy_loops(LOAD_PROCESSES) if condition == "loaded" else []
        try:
            for _ in range(rounds[condition]):  # variants interleaved: other load on the machine hits them alike
                for variant in VARIANTS:
                    result = run_variant(variant, steps, budget_s)
                    record["runs"].setdefault(condition, {}).setdefault(variant, []).append(result)
                    rates = ", ".join(f"{k} {v['steps_per_s']}/s" for k, v in result.items() if isinstance(v, dict))
                    print(f"{condition:>6} {variant:<14} {rates}  (load {result['load_average_before']})", flush=True)
        finally:
            for process in load:
                process.kill()
                process.wait()
        record["best_steps_per_s"][condition] = {
            variant: {loop: max(run[loop]["steps_per_s"] for run in runs) for loop in LOOPS}
            for variant, runs in record["runs"][condition].items()
        }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record["best_steps_per_s"], indent=1))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
