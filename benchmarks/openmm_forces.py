"""Per-step cost of mlcalc's ``openmm.PythonForce`` against its openmm-torch ``TorchForce``.

    python benchmarks/openmm_forces.py          # ~2 minutes on 2 CPU cores; results/openmm-forces.json
    python benchmarks/openmm_forces.py --quick  # a few steps only, to check the script

The same potential on the same structure as each force (``create_force(..., implementation=...)``),
and as a trivial force (OpenMM's own cost of a step), in one process: Verlet steps on the OpenMM CPU
(1 thread) and Reference platforms, interleaved repeats, minimum over repeats, wall and CPU time.
Systems: Lennard-Jones liquid argon (256 atoms, periodic), the bundled HIP-NN demo potential on a
108-atom water cluster (open) and on a 300-atom water box (periodic). Both forces must give the same
energy (1e-10 relative, float64) before anything is timed. Where openmm-torch is missing, only the
PythonForce is timed. torch, BLAS and OpenMM run on one thread each.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import ase.io
import openmm
import torch
from ase import Atoms
from common import environment, paired_times, water_box
from openmm import unit
from overheads import _bare_compute, _trivial_system, export_lj
from threadpoolctl import threadpool_limits

import mlcalc
import mlcalc.openmm
from mlcalc.data import resolve_potential_path
from mlcalc.units import ANGSTROM_PER_NM, EV_PER_KJ_PER_MOL

ARGON_PDB = Path(__file__).parents[1] / "examples" / "argon-liquid.pdb"
PLATFORMS = ("CPU", "Reference")
IMPLEMENTATIONS = ("torch", "python")
TOLERANCE = 1e-10  # relative, energies of the two forces and of the bare module (float64)


@dataclass(frozen=True)
class Case:
    """A structure, its potential and the Verlet steps per timed call (full run, ``--quick``)."""

    label: str
    atoms: Callable[[], Atoms]
    potential: Callable[[Path], Path]
    steps: int
    quick_steps: int


def argon_liquid() -> Atoms:
    """The 256-atom liquid-argon box of ``examples/argon-liquid.pdb`` (23.0 Å, periodic)."""
    pdb = ase.io.read(ARGON_PDB)
    return Atoms(numbers=pdb.numbers, positions=pdb.positions, cell=pdb.cell, pbc=True)


def water_cluster() -> Atoms:
    """36 waters (108 atoms) with no cell, as in ``overheads.py``."""
    atoms = water_box(108)
    atoms.pbc = False
    atoms.cell[:] = 0.0
    return atoms


def demo(directory: Path) -> Path:
    """The bundled HIP-NN demo potential (H C N O, cutoff 5 Å)."""
    return resolve_potential_path("demo")


CASES = (
    Case("LJ liquid argon, periodic", argon_liquid, export_lj, steps=20, quick_steps=2),
    Case("HIP-NN 36-water cluster, open", water_cluster, demo, steps=8, quick_steps=2),
    Case("HIP-NN 100-water box, periodic", lambda: water_box(300), demo, steps=3, quick_steps=1),
)


def ml_forces(path: Path, atoms: Atoms) -> tuple[dict[str, openmm.Force], str | None]:
    """The potential at ``path`` on all of ``atoms`` as each implementation that can be built here,
    and why the TorchForce cannot (``None`` where it can)."""
    forces: dict[str, openmm.Force] = {}
    torch_error = None
    for implementation in IMPLEMENTATIONS:
        try:
            forces[implementation] = mlcalc.openmm.create_force(
                path, atoms.numbers.tolist(), periodic=bool(atoms.pbc.all()), implementation=implementation
            )
        except ImportError as exc:
            if implementation != "torch":
                raise
            torch_error = str(exc)
    return forces, torch_error


def system_of(atoms: Atoms, force: openmm.Force) -> openmm.System:
    """The particles of ``atoms`` (masses, box) with ``force`` as the only force."""
    system = openmm.System()
    for mass in atoms.get_masses():
        system.addParticle(mass)
    if atoms.pbc.all():
        system.setDefaultPeriodicBoxVectors(*(atoms.cell.array / ANGSTROM_PER_NM) * unit.nanometer)
    system.addForce(force)
    return system


def simulation(system: openmm.System, atoms: Atoms, platform_name: str) -> tuple[openmm.Context, openmm.Integrator]:
    """A Context (1 thread on the CPU platform) and its 0.5 fs Verlet integrator at ``atoms``' positions."""
    integrator = openmm.VerletIntegrator(0.5 * unit.femtosecond)
    platform = openmm.Platform.getPlatformByName(platform_name)
    properties = {"Threads": "1"} if platform_name == "CPU" else {}
    context = openmm.Context(system, integrator, platform, properties)
    context.setPositions(atoms.positions / ANGSTROM_PER_NM)
    return context, integrator


def energy_check(potential: mlcalc.Potential, atoms: Atoms, contexts: dict[str, openmm.Context]) -> dict:
    """Potential energies (kJ/mol) of each Context and of the bare module at the first Context's
    positions (as OpenMM stores them); exits unless all agree to ``TOLERANCE`` relative."""
    states = {name: context.getState(getEnergy=True, getPositions=True) for name, context in contexts.items()}
    energies = {
        name: state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) for name, state in states.items()
    }
    moved = atoms.copy()
    moved.positions = next(iter(states.values())).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    moved.positions *= ANGSTROM_PER_NM
    module_energy = float(_bare_compute(potential, moved, False, plain=True)()["energy"].sum())
    energies["bare module"] = module_energy * potential.energy_unit_in_ev / EV_PER_KJ_PER_MOL
    reference = energies["bare module"]
    worst = max(abs(energy - reference) / abs(reference) for energy in energies.values())
    if worst > TOLERANCE:
        raise SystemExit(f"energies differ by {worst:.1e} relative (> {TOLERANCE:g}), not timing: {energies}")
    return {"energies_kj_per_mol": energies, "max_relative_difference": worst}


def time_case(case: Case, directory: Path, platform_name: str, quick: bool) -> dict:
    """Per-step wall and CPU time (s) on ``platform_name`` of each ML force and of the trivial force,
    and their ratios."""
    atoms = case.atoms()
    path = case.potential(directory)
    potential = mlcalc.load(path, device="cpu", dtype=torch.float64)
    forces, torch_error = ml_forces(path, atoms)
    runs = {name: simulation(system_of(atoms, force), atoms, platform_name) for name, force in forces.items()}
    check = energy_check(potential, atoms, {name: context for name, (context, _) in runs.items()})
    runs["trivial"] = simulation(_trivial_system(runs["python"][0].getSystem()), atoms, platform_name)
    steps = case.quick_steps if quick else case.steps
    calls = {name: (lambda integrator=integrator: integrator.step(steps)) for name, (_, integrator) in runs.items()}
    t = paired_times(calls, repeats=3 if quick else 60, budget_s=1.0 if quick else 25.0, warmup=1)
    row = {
        "system": case.label,
        "n_atoms": len(atoms),
        "potential": potential.name,
        "platform": platform_name,
        "steps_per_call": steps,
        "torchforce": "available" if torch_error is None else f"unavailable: {torch_error}",
        "energy_check": check,
        "timings": t,
        "step_s": {name: t[name]["min_s"] / steps for name in t},
        "step_cpu_s": {name: t[name]["cpu_min_s"] / steps for name in t},
    }
    if "torch" in forces:
        row["python_over_torch"] = ratios(row)
    return row


def ratios(row: dict) -> dict:
    """PythonForce over TorchForce: whole steps, and the ML part (step minus the trivial step), wall and CPU."""
    out = {}
    for key in ("step_s", "step_cpu_s"):
        step = row[key]
        out[key.replace("step", "whole_step")] = step["python"] / step["torch"]
        out[key.replace("step", "ml_part")] = (step["python"] - step["trivial"]) / (step["torch"] - step["trivial"])
    return out


def print_table(rows: list[dict]) -> None:
    """Per-step wall times (ms) and python/torch ratios, one line per system and platform."""
    names = ("trivial", "torch", "python")
    print(f"{'':43}{'per-step wall time, ms':^27}{'python/torch':^21}")
    print(f"{'system':32} {'platform':10}" + "".join(f"{name:>9}" for name in names) + "   wall    CPU     ML")
    for row in rows:
        times = "".join(
            f"{1e3 * row['step_s'][name]:9.3f}" if name in row["step_s"] else f"{'n/a':>9}" for name in names
        )
        ratio = row.get("python_over_torch")
        ratio_text = (
            f"{ratio['whole_step_s']:7.2f}{ratio['whole_step_cpu_s']:7.2f}{ratio['ml_part_s']:7.2f}" if ratio else ""
        )
        print(f"{row['system']:32} {row['platform']:10}{times}{ratio_text}")
    if any("python_over_torch" not in row for row in rows):
        print(f"TorchForce {rows[0]['torchforce']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few steps and repeats only")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    started = time.time()
    report: dict = {
        "command": "python benchmarks/openmm_forces.py" + (" --quick" if args.quick else ""),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "environment": environment() | {"openmm_cpu_threads": 1, "blas_threads": 1},
        "timing": "minimum over interleaved repeats (torch, python, trivial) of steps_per_call steps",
    }
    with threadpool_limits(1), tempfile.TemporaryDirectory() as directory:
        report["rows"] = [
            time_case(case, Path(directory), platform_name, args.quick) for case in CASES for platform_name in PLATFORMS
        ]
    report["wall_s"] = time.time() - started
    report["environment_at_end"] = {"load_average": environment()["load_average"]}
    name = "openmm-forces-quick" if args.quick else "openmm-forces"
    (args.out / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    print_table(report["rows"])
    print(f"wrote {args.out / (name + '.json')} in {report['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
