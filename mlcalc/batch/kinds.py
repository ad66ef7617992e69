"""What each kind of task runs (on a worker): the workflow, with its outputs in the task's directory.

Each runner takes the task, a calculator (``None`` for MD, which loads the potential into OpenMM) and
the task directory, runs the workflow with ``output=directory`` and ``resume=True`` where it has a
checkpoint (scan, path; MD resumes from its own checkpoints), and returns a small JSON-able summary:
``converged`` and, as the workflow reports them, barriers (eV and kcal/mol), energies (eV) or the MD
state. Errors propagate; :func:`mlcalc.batch.worker.execute` records them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import numpy as np
from ase import Atoms
from ase.calculators.calculator import BaseCalculator

from mlcalc.batch.tasks import Task
from mlcalc.units import EV_TO_KCAL_MOL


def _endpoints(task: Task) -> tuple[Atoms, Atoms]:
    """Initial and final structure: two files, or the first and last frames of one."""
    from mlcalc.commands.workflow_arguments import read_images, read_structure
    from mlcalc.workflows.errors import StructureFileError

    if task.final is not None:
        return read_structure(task.structure), read_structure(task.final)
    frames = read_images(task.structure)
    if len(frames) < 2:
        raise StructureFileError(
            f"{task.structure} holds one structure: a {task.kind} task needs a final structure too (final=, or a "
            "file whose first and last frames are the endpoints)"
        )
    return frames[0], frames[-1]


def _barrier(barrier_eV: float) -> dict:
    return {"barrier_eV": float(barrier_eV), "barrier_kcal_mol": float(barrier_eV) * EV_TO_KCAL_MOL}


def run_scan(task: Task, calc: BaseCalculator, directory: Path) -> dict:
    """Relaxed scan; the barrier is the highest converged point above the lowest one (on the grid)."""
    from mlcalc.commands.scan import grid
    from mlcalc.commands.workflow_arguments import read_structure
    from mlcalc.workflows import Dihedral, relaxed_scan

    s = task.settings
    atoms = read_structure(task.structure)
    dihedrals = [Dihedral(*indices) for indices in s["dihedral"]]
    for dihedral in dihedrals:
        dihedral.check(atoms)
    if s["grid"] is not None:
        grids = s["grid"]
    else:
        made = [grid(d.value(atoms), s["start"], s["stop"], s["step"]) for d in dihedrals]
        grids = made if len(made) == 2 and made[0] is not None else made[0]
    scan = relaxed_scan(
        atoms,
        calc,
        dihedrals if len(dihedrals) == 2 else dihedrals[0],
        grids,
        fixed=[Dihedral(*indices, target=target) for _, indices, target in s["fixed"]],
        both_directions=s["both_directions"],
        backend=s["backend"],
        fmax=s["fmax"],
        steps=s["steps"],
        optimizer=s["optimizer"],
        output=directory,
        resume=True,
    )
    relative = scan.relative_energies
    converged = np.array([p.converged for p in scan.points])
    top = float(relative[converged].max()) if converged.any() else float(relative.max())
    return {
        "converged": scan.converged,
        **_barrier(top),
        "energy_eV": float(scan.energies[converged].min() if converged.any() else scan.energies.min()),
        "points": len(scan.points),
        "unconverged_points": scan.unconverged,
        "images": [p.atoms for p in scan.points],
        "files": ["scan.csv", "scan.json", "scan.extxyz", "scan.png"],
    }


def run_path(task: Task, calc: BaseCalculator, directory: Path) -> dict:
    """Dihedral-driven path; the barrier as :class:`~mlcalc.workflows.PathResult` reports it."""
    from mlcalc.workflows import Dihedral, dihedral_path

    s = task.settings
    initial, final = _endpoints(task)
    result = dihedral_path(
        initial,
        final,
        calc,
        Dihedral(*s["guide"]),
        s["intermediates"],
        partner=None if s["partner"] is None else Dihedral(*s["partner"]),
        direction=s["direction"],
        backend=s["backend"],
        fmax=s["fmax"],
        steps=s["steps"],
        optimizer=s["optimizer"],
        output=directory,
        resume=True,
        relax_endpoints=s["relax_endpoints"],
    )
    return {
        "converged": result.converged,
        **_barrier(result.barrier),
        "energy_eV": float(result.energies[0]),
        "points": len(result.images),
        "images": result.images,
        "files": ["path.csv", "path.json", "path.extxyz", "path.png"],
    }


def run_neb(task: Task, calc: BaseCalculator, directory: Path) -> dict:
    """Climbing-image NEB from relaxed endpoints, as ``mlcalc neb`` runs it (no checkpoint: a retried
    NEB starts again)."""
    from mlcalc.workflows import make_band, prepare_endpoint, run_neb

    s = task.settings
    initial, final = (
        prepare_endpoint(a, calc, name=name, relax=s["relax_endpoints"], fmax=s["fmax"], steps=s["steps"])
        for a, name in zip(_endpoints(task), ("initial", "final"))
    )
    result = run_neb(
        make_band(initial, final, s["images"], interpolation=s["interpolation"]),
        calc,
        climb=s["climb"],
        k=s["k"],
        fmax=s["fmax"],
        steps=s["steps"],
        optimizer=s["optimizer"],
        output=directory,
        relax_endpoints=s["relax_endpoints"],
    )
    return {
        "converged": result.converged,
        **_barrier(result.barrier),
        "reverse_barrier_eV": result.reverse_barrier,
        "energy_eV": float(result.energies[0]),
        "points": len(result.images),
        "steps": result.steps,
        "images": result.images,
        "files": ["neb.csv", "neb.json", "neb.extxyz", "neb.png"],
    }


def run_opt(task: Task, calc: BaseCalculator, directory: Path) -> dict:
    """Constrained optimisation; writes ``optimized.extxyz`` and ``optimized.json`` as ``mlcalc opt`` does."""
    from mlcalc.commands.workflow_arguments import read_structure
    from mlcalc.workflows import internal, optimize

    s = task.settings
    kinds = {"distance": internal.Distance, "angle": internal.Angle, "dihedral": internal.Dihedral}
    constraints = [kinds[kind](*indices, target=target) for kind, indices, target in s["constraints"]]
    result = optimize(
        read_structure(task.structure),
        calc,
        constraints,
        backend=s["backend"],
        fmax=s["fmax"],
        steps=s["steps"],
        optimizer=s["optimizer"],
    )
    result.write(directory)
    return {
        "converged": result.converged,
        "energy_eV": result.energy,
        "steps": result.steps,
        "images": [result.atoms],
        "files": ["optimized.extxyz", "optimized.json"],
    }


def run_md(task: Task, calc: Optional[BaseCalculator], directory: Path) -> dict:
    """One MD replica (:class:`mlcalc.md.pipeline.Run`) into ``directory``, continued from its checkpoint
    when an earlier attempt left one; the summary is the production half of ``state.csv``."""
    from mlcalc.md.config import MDConfig
    from mlcalc.md.pipeline import CONFIG, Run

    config = MDConfig(
        structure=str(Path(task.structure).resolve()),
        potential=task.potential,
        output=str(directory),
        **task.settings,
    )
    md = Run.resume(directory) if (directory / CONFIG).exists() else Run.start(config, directory)
    md.run(progress=False)
    return {
        "converged": True,
        "steps": int(md.simulation.currentStep),
        **_state_summary(directory / "state.csv"),
        "files": ["state.csv", md.trajectory_path.name, "final.pdb"],
    }


def _state_summary(path: Path) -> dict:
    """Means over the second half of ``state.csv`` (OpenMM's StateDataReporter): temperature (K),
    potential energy (kJ/mol), density (g/mL) where recorded."""
    import csv

    with open(path, newline="") as stream:
        rows = list(csv.DictReader(line.lstrip("#") for line in stream))
    half = rows[len(rows) // 2 :]
    columns = {
        "temperature_K": "Temperature (K)",
        "potential_energy_kJ_mol": "Potential Energy (kJ/mole)",
        "density_g_mL": "Density (g/mL)",
    }
    summary = {}
    for key, column in columns.items():
        values = [float(row[column]) for row in half if row.get(column) not in (None, "")]
        if values:
            summary[key] = float(np.mean(values))
    return summary


#: What each kind runs: ``runner(task, calc, directory) -> summary`` (``calc`` is None for MD).
RUNNERS: dict[str, Callable[..., dict]] = {
    "scan": run_scan,
    "path": run_path,
    "neb": run_neb,
    "opt": run_opt,
    "md": run_md,
}
