"""Freed memory kept for reuse (:func:`mlcalc.keep_freed_memory`) against glibc's defaults.

    python benchmarks/allocator.py           # ~3 minutes on 2 cores; results/allocator.json
    python benchmarks/allocator.py --quick   # 600 atoms, 3 calls: checks the script

The bundled demo (float64) on water boxes of 600, 1,500 and 3,000 atoms, in two engines: forces from
:class:`mlcalc.MLCalculator` after moving every atom (an optimiser's or ASE MD's call), and OpenMM MD
steps through the PythonForce (``mlcalc.openmm.create_system``, Verlet, 0.5 fs, CPU platform). Each
variant runs in a fresh process (``default``: malloc as the process starts; ``keep``:
:func:`mlcalc.keep_freed_memory` first), one torch and one OpenMM thread, the two alternating over two
rounds. Records per case the minimum and median CPU time per call or step (``time.process_time``:
user and system, the kernel's page zeroing included), the minor page faults per call and the peak
resident memory; exits with 1 if the two variants' energies differ (they must be bit-identical).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "allocator.json"
VARIANTS = ("default", "keep")
ENGINES = ("ase", "openmm")
DISPLACEMENT = 0.02  # Å, standard deviation of the random move of every atom before each ASE call


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _measure(calls: int, step) -> dict:
    """CPU seconds and minor page faults of ``calls`` calls of ``step`` (after five warm-up calls: with
    freed memory kept, the heap grows to its working size over the first few)."""
    for _ in range(5):
        step()
    seconds, faults = [], []
    for _ in range(calls):
        before, start = _faults(), time.process_time()
        step()
        seconds.append(time.process_time() - start)
        faults.append(_faults() - before)
    return {
        "cpu_min_s": min(seconds),
        "cpu_median_s": float(np.median(seconds)),
        "faults_median": int(np.median(faults)),
    }


def ase_case(atoms, calls: int) -> dict:
    """Energy and forces from the ASE calculator after every atom moved."""
    import mlcalc

    atoms = atoms.copy()
    atoms.calc = mlcalc.MLCalculator("demo", device="cpu")
    rng = np.random.default_rng(0)

    def step():
        atoms.positions = atoms.positions + rng.normal(0.0, DISPLACEMENT, atoms.positions.shape)
        atoms.get_forces()

    record = _measure(calls, step)
    record["energy_eV"] = float(atoms.get_potential_energy())
    return record


def openmm_case(atoms, calls: int) -> dict:
    """Single MD steps of the box in OpenMM, every atom on the demo through the PythonForce."""
    import openmm
    from openmm import app, unit

    import mlcalc.openmm

    topology = app.Topology()
    chain = topology.addChain()
    for _ in range(len(atoms) // 3):
        residue = topology.addResidue("HOH", chain)
        for name, element in (
            ("O", app.Element.getBySymbol("O")),
            ("H1", app.element.hydrogen),
            ("H2", app.element.hydrogen),
        ):
            topology.addAtom(name, element, residue)
    topology.setPeriodicBoxVectors(atoms.cell.array * 0.1 * unit.nanometer)
    system = mlcalc.openmm.create_system(topology, "demo", implementation="python")
    integrator = openmm.VerletIntegrator(0.5 * unit.femtosecond)
    platform = openmm.Platform.getPlatformByName("CPU")
    context = openmm.Context(system, integrator, platform, {"Threads": "1"})
    context.setPositions(atoms.positions * 0.1)
    context.setVelocitiesToTemperature(300 * unit.kelvin, 1)
    record = _measure(calls, lambda: integrator.step(1))
    energy = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    record["energy_kJ_mol"] = float(energy)
    return record


def child(n_atoms: int, variant: str, calls: int) -> dict:
    """One variant in this (fresh) process: both engines on a box of ``n_atoms``."""
    import torch
    from common import water_box

    import mlcalc

    torch.set_num_threads(1)
    applied = mlcalc.keep_freed_memory() if variant == "keep" else False
    if variant == "keep" and not applied:
        raise SystemExit("keep_freed_memory() did nothing here (not glibc, or MLCALC_KEEP_FREED_MEMORY=0)")
    atoms = water_box(n_atoms)
    result = {engine: case(atoms, calls) for engine, case in (("ase", ase_case), ("openmm", openmm_case))}
    result["peak_rss_MB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="600 atoms, 3 calls, one round")
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--child", nargs=2, metavar=("ATOMS", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    calls = 3 if args.quick else args.calls
    if args.child:
        print(json.dumps(child(int(args.child[0]), args.child[1], calls)))
        return
    sys.path.insert(0, str(HERE))
    from common import environment

    sizes = (600,) if args.quick else (600, 1500, 3000)
    rounds = 1 if args.quick else 2
    runs: dict = {}
    for _ in range(rounds):
        for n_atoms in sizes:
            for variant in VARIANTS:
                command = [sys.executable, __file__, "--child", str(n_atoms), variant, "--calls", str(calls)]
                env = dict(os.environ, MLCALC_KEEP_FREED_MEMORY="1")
                out = subprocess.run(command, check=True, capture_output=True, text=True, env=env, cwd=HERE)
                runs.setdefault((n_atoms, variant), []).append(json.loads(out.stdout.strip().splitlines()[-1]))
    cases, identical = [], True
    for n_atoms in sizes:
        row: dict = {"atoms": n_atoms}
        for engine in ENGINES:
            per = {v: [r[engine] for r in runs[(n_atoms, v)]] for v in VARIANTS}
            entry = {
                v: {
                    "cpu_min_s": min(r["cpu_min_s"] for r in per[v]),
                    "cpu_median_s": float(np.median([r["cpu_median_s"] for r in per[v]])),
                    "faults_per_call": int(np.median([r["faults_median"] for r in per[v]])),
                }
                for v in VARIANTS
            }
            entry["speedup_min"] = entry["default"]["cpu_min_s"] / entry["keep"]["cpu_min_s"]
            entry["speedup_median"] = entry["default"]["cpu_median_s"] / entry["keep"]["cpu_median_s"]
            energy_key = "energy_eV" if engine == "ase" else "energy_kJ_mol"
            energies = {r[energy_key] for v in VARIANTS for r in per[v]}
            entry["energies_identical"] = len(energies) == 1
            identical &= entry["energies_identical"]
            row[engine] = entry
        row["peak_rss_MB"] = {v: max(r["peak_rss_MB"] for r in runs[(n_atoms, v)]) for v in VARIANTS}
        cases.append(row)
        print(
            f"{n_atoms:5d} atoms: ASE {row['ase']['speedup_min']:.2f}x (faults/call "
            f"{row['ase']['default']['faults_per_call']} -> {row['ase']['keep']['faults_per_call']}), OpenMM "
            f"{row['openmm']['speedup_min']:.2f}x, peak RSS {row['peak_rss_MB']['default']:.0f} -> "
            f"{row['peak_rss_MB']['keep']:.0f} MB"
        )
    import torch

    torch.set_num_threads(1)
    result = {"environment": environment(), "calls": calls, "rounds": rounds, "cases": cases}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")
    if not identical:
        sys.exit("the two variants' energies differ: keeping freed memory must not change a number")


if __name__ == "__main__":
    main()
