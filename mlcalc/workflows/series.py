"""A checkpointed series of constrained optimisations: the engine under relaxed scans and driven paths.

Each :class:`Step` optimises a structure with some coordinates held at targets, starting from an input
structure or from the result of an earlier step. Results are appended to a :class:`Checkpoint` as they
complete, so a killed run resumes at the first unfinished step from bit-identical structures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

import numpy as np
from ase import Atoms
from ase.calculators.calculator import BaseCalculator
from ase.calculators.singlepoint import SinglePointCalculator

from mlcalc.workflows.internal import InternalCoordinate
from mlcalc.workflows.optimize import optimize_unchecked
from mlcalc.workflows.output import UNCERTAINTY_INFO, Checkpoint


@dataclass(frozen=True)
class Step:
    """One constrained optimisation.

    Attributes:
        targets: ``{coordinate index: target}`` (degrees or Å) for the coordinates held in this step;
            the series' ``fixed`` coordinates are held too.
        start: the name of an input structure, or the index of the earlier step whose result starts it.
        tag: free label stored with the result ("forward", "driven", ...).
    """

    targets: dict
    start: Union[int, str]
    tag: str = ""


@dataclass
class StepResult:
    """Outcome of a :class:`Step`: energy (eV), fmax (eV/Å), measured values of the series' coordinates
    (degrees or Å), largest constraint error (rad or Å), convergence, and the final structure."""

    step: Step
    energy: float
    fmax: float
    values: list[float]
    max_constraint_error: float
    converged: bool
    iterations: int
    message: str
    atoms: Atoms

    def record(self) -> dict:
        """JSON-able form (positions at full precision) for a checkpoint."""
        return {
            "energy": self.energy,
            "fmax": self.fmax,
            "values": self.values,
            "max_constraint_error": self.max_constraint_error,
            "converged": self.converged,
            "iterations": self.iterations,
            "message": self.message,
            "positions": self.atoms.positions.tolist(),
            "forces": self.atoms.calc.results["forces"].tolist(),
            **({UNCERTAINTY_INFO: self.atoms.info[UNCERTAINTY_INFO]} if UNCERTAINTY_INFO in self.atoms.info else {}),
        }

    @classmethod
    def from_record(cls, step: Step, record: dict, template: Atoms) -> "StepResult":
        atoms = template.copy()
        atoms.positions = np.array(record["positions"], dtype=float)
        atoms.calc = SinglePointCalculator(
            atoms, energy=record["energy"], forces=np.array(record["forces"], dtype=float)
        )
        atoms.info.pop(UNCERTAINTY_INFO, None)
        if UNCERTAINTY_INFO in record:
            atoms.info[UNCERTAINTY_INFO] = record[UNCERTAINTY_INFO]
        return cls(
            step=step,
            energy=record["energy"],
            fmax=record["fmax"],
            values=list(record["values"]),
            max_constraint_error=record["max_constraint_error"],
            converged=record["converged"],
            iterations=record["iterations"],
            message=record["message"],
            atoms=atoms,
        )


def measured_values(atoms: Atoms, coordinates: Sequence[InternalCoordinate], near: Sequence[Optional[float]]) -> list:
    """Values of ``coordinates`` in ``atoms`` (degrees or Å); each angle is reported as the equivalent
    closest to the matching entry of ``near`` (so a dihedral at a target of 350° reads 350, not −10)."""
    values = []
    for coordinate, reference in zip(coordinates, near):
        value = coordinate.value(atoms)
        if reference is not None and coordinate.kind == "dihedral":
            value = reference + coordinate.from_internal(
                coordinate.difference(coordinate.to_internal(value), coordinate.to_internal(reference))
            )
        values.append(value)
    return values


def run_series(
    inputs: dict[str, Atoms],
    calc: BaseCalculator,
    coordinates: Sequence[InternalCoordinate],
    plan: Sequence[Step],
    *,
    fixed: Sequence[InternalCoordinate] = (),
    checkpoint: Optional[Checkpoint] = None,
    on_step: Optional[Callable[[int, StepResult], None]] = None,
    progress: bool = False,
    description: str = "",
    **optimize_options,
) -> list[StepResult]:
    """Run the steps of ``plan`` in order (resuming from ``checkpoint``); one :class:`StepResult` per step.

    Args:
        inputs: named starting structures that steps may start from.
        calc: any ASE calculator.
        coordinates: the coordinates steps set targets for (by index) and whose values are reported.
        plan: the series.
        fixed: coordinates held at their targets in every step (set the targets).
        checkpoint: where completed steps are stored; those already there are not recomputed.
        on_step: called as ``on_step(index, result)`` after each step (also for resumed ones).
        progress: show a progress bar (tqdm) on stderr.
        **optimize_options: passed to :func:`mlcalc.workflows.optimize` (backend, fmax, steps, ...).
    """
    template = next(iter(inputs.values()))
    results: list[StepResult] = []
    done = checkpoint.steps if checkpoint is not None else []
    bar = _progress_bar(len(plan), description) if progress else None
    try:
        for index, step in enumerate(plan):
            if index < len(done):
                result = StepResult.from_record(step, done[index], template)
            else:
                start = inputs[step.start] if isinstance(step.start, str) else results[step.start].atoms
                held = [coordinates[i].with_target(target) for i, target in step.targets.items()]
                outcome = optimize_unchecked(start, calc, [*held, *fixed], **optimize_options)
                near = [step.targets.get(i) for i in range(len(coordinates))]
                result = StepResult(
                    step=step,
                    energy=outcome.energy,
                    fmax=outcome.fmax,
                    values=measured_values(outcome.atoms, coordinates, near),
                    max_constraint_error=outcome.max_constraint_error,
                    converged=outcome.converged,
                    iterations=outcome.steps,
                    message=outcome.message,
                    atoms=outcome.atoms,
                )
                if checkpoint is not None:
                    checkpoint.append(result.record())
            results.append(result)
            if on_step is not None:
                on_step(index, result)
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(f"E={result.energy:.6f} eV" + ("" if result.converged else " NOT CONVERGED"))
    finally:
        if bar is not None:
            bar.close()
    return results


def _progress_bar(total: int, description: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description or None, unit="opt", leave=True)
