"""Relaxed scans (1D and 2D) of dihedrals, or of any internal coordinate, with any ASE calculator.

At each grid point the scanned coordinate(s) are held at the point's value and every other degree of
freedom is optimised, starting from the previous point's structure (in 2D the grid is walked in a
serpentine so that neighbours follow each other). With ``both_directions`` the grid is walked back
again from the end, which exposes hysteresis (a point relaxing into another conformer on the way back).

Atom indices are 0-based. Outputs in ``output`` (written atomically after every point, so a killed scan
leaves consistent files and resumes from its last completed point):

- ``scan.csv``/``scan.json``: per point the target and measured values, energy (eV), relative energy
  (eV, kcal/mol, to the lowest converged point), converged flag, fmax (eV/Å), optimiser iterations;
- ``scan.extxyz``: the optimised structures with their energies and forces;
- ``scan.png``: the profile (1D) or the energy map (2D), written when the scan finishes;
- ``checkpoint/``: what resuming needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional, Sequence, Union

import numpy as np
from ase import Atoms
from ase.calculators.calculator import BaseCalculator
from ase.optimize.optimize import Optimizer

from mlcalc.files import PathLike, write_csv_atomic, write_json_atomic
from mlcalc.units import EV_TO_KCAL_MOL
from mlcalc.workflows.fragments import check_dihedrals_in_one_molecule, check_no_clash
from mlcalc.workflows.internal import Dihedral, InternalCoordinate, check_coordinates, resolve_targets
from mlcalc.workflows.output import Checkpoint, calculator_fingerprint, structure_fingerprint, write_images_atomic
from mlcalc.workflows.plotting import plot_scan
from mlcalc.workflows.profile import uncertainties_of, with_uncertainty
from mlcalc.workflows.series import Step, StepResult, run_series

#: Default dihedral grid: 0°, 10°, …, 350° (Hedelius's ephedrine scan, TrIP thesis, BYU 2024).
DEFAULT_GRID_DEG = tuple(float(x) for x in range(0, 360, 10))

Coordinates = Union[InternalCoordinate, Sequence[InternalCoordinate]]


@dataclass
class ScanResult:
    """Outcome of :func:`relaxed_scan`: one :class:`~mlcalc.workflows.series.StepResult` per point."""

    coordinates: list[InternalCoordinate]
    points: list[StepResult]
    output: Optional[Path] = None
    #: Why the scan ended before its last point (``on_error="stop"``): the error of the first point it
    #: could not compute. ``None`` when every point was run.
    stopped: Optional[str] = None

    @property
    def complete(self) -> bool:
        """True when every point of the grid was run (converged or not)."""
        return self.stopped is None

    @property
    def converged(self) -> bool:
        """True when every point converged."""
        return all(p.converged for p in self.points)

    @property
    def unconverged(self) -> list[int]:
        """Indices of the points that did not converge."""
        return [n for n, p in enumerate(self.points) if not p.converged]

    @property
    def energies(self) -> np.ndarray:
        """Energies in eV, in the order the points were visited."""
        return np.array([p.energy for p in self.points])

    @property
    def relative_energies(self) -> np.ndarray:
        """Energies relative to the lowest converged point (to the lowest point if none converged), eV."""
        return relative_to_lowest(self.energies, [p.converged for p in self.points])

    @property
    def targets(self) -> np.ndarray:
        """Target values, shape [points, coordinates] (degrees or Å)."""
        values = [[p.step.targets[i] for i in range(len(self.coordinates))] for p in self.points]
        return np.array(values, dtype=float).reshape(len(self.points), len(self.coordinates))

    @property
    def images(self) -> list[Atoms]:
        """The optimised structures, with energies, forces and the point's data in ``info``."""
        return [_image(p, n, self.coordinates) for n, p in enumerate(self.points)]

    @property
    def uncertainties(self) -> Optional[np.ndarray]:
        """A committee's energy spread at each point, eV; ``None`` unless every point has one."""
        return uncertainties_of([p.atoms for p in self.points])

    def rows(self) -> list[dict]:
        """Table rows (see :func:`table_columns`)."""
        rows = [
            _row(n, p, self.coordinates, rel) for n, (p, rel) in enumerate(zip(self.points, self.relative_energies))
        ]
        return with_uncertainty(rows, self.uncertainties)

    def write_tables(self, directory: PathLike) -> None:
        """Write ``scan.csv`` and ``scan.json`` into ``directory``."""
        directory = Path(directory)
        rows = self.rows()
        spread_column = ["energy_uncertainty_eV"] if rows and "energy_uncertainty_eV" in rows[0] else []
        columns = table_columns(self.coordinates) + spread_column
        write_csv_atomic(directory / "scan.csv", columns, rows, digits=10)
        write_json_atomic(
            directory / "scan.json",
            {
                "coordinates": [c.name for c in self.coordinates],
                "units": {"angle": "degree", "distance": "angstrom", "energy": "eV"},
                "converged": self.converged,
                "stopped": self.stopped,
                "points": rows,
            },
        )

    def write(self, directory: PathLike) -> Path:
        """Write ``scan.csv``, ``scan.json``, ``scan.extxyz`` and ``scan.png`` (when there are points)
        into ``directory``."""
        self.write_tables(directory)
        write_images_atomic(Path(directory) / "scan.extxyz", self.images)
        if self.points:
            spread = self.uncertainties
            plot_scan(
                self.targets,
                self.relative_energies * EV_TO_KCAL_MOL,
                [p.converged for p in self.points],
                [p.step.tag for p in self.points],
                [c.axis_label for c in self.coordinates],
                Path(directory) / "scan.png",
                degrees=self.coordinates[0].unit == "deg",
                uncertainty_kcal_mol=None if spread is None else spread * EV_TO_KCAL_MOL,
            )
        return Path(directory)


def relative_to_lowest(energies: np.ndarray, converged: Sequence[bool]) -> np.ndarray:
    """``energies`` minus the lowest converged one (the lowest of all if none converged)."""
    energies = np.asarray(energies, dtype=float)
    if energies.size == 0:
        return energies
    mask = np.asarray(converged, dtype=bool)
    reference = energies[mask].min() if mask.any() else energies.min()
    return energies - reference


def _label(coordinate: InternalCoordinate) -> tuple[str, str]:
    return ("distance", "A") if coordinate.unit == "Å" else ("angle", "deg")


def table_columns(coordinates: Sequence[InternalCoordinate]) -> list[str]:
    """CSV columns: ``point, direction``, target and measured value of each coordinate (``angle_deg`` and
    ``measured_angle_deg``; numbered in 2D), ``energy_eV, relative_eV, relative_kcal_mol, converged,
    fmax_eV_per_A, iterations``."""
    targets, measured = [], []
    for n, coordinate in enumerate(coordinates):
        kind, unit = _label(coordinate)
        suffix = "" if len(coordinates) == 1 else str(n + 1)
        targets.append(f"{kind}{suffix}_{unit}")
        measured.append(f"measured_{kind}{suffix}_{unit}")
    return [
        "point",
        "direction",
        *targets,
        *measured,
        "energy_eV",
        "relative_eV",
        "relative_kcal_mol",
        "converged",
        "fmax_eV_per_A",
        "iterations",
    ]


def _row(n: int, point: StepResult, coordinates: Sequence[InternalCoordinate], relative: float) -> dict:
    columns = table_columns(coordinates)
    k = len(coordinates)
    row = {"point": n, "direction": point.step.tag}
    for i in range(k):
        row[columns[2 + i]] = point.step.targets[i]
        row[columns[2 + k + i]] = point.values[i]
    row.update(
        energy_eV=point.energy,
        relative_eV=relative,
        relative_kcal_mol=relative * EV_TO_KCAL_MOL,
        converged=point.converged,
        fmax_eV_per_A=point.fmax,
        iterations=point.iterations,
    )
    return row


def _image(point: StepResult, n: int, coordinates: Sequence[InternalCoordinate]) -> Atoms:
    atoms = point.atoms.copy()
    atoms.calc = point.atoms.calc
    atoms.info.update(
        point=n,
        direction=point.step.tag,
        targets=np.array([point.step.targets[i] for i in range(len(coordinates))]),
        converged=point.converged,
        fmax=point.fmax,
    )
    return atoms


#: Most points a scan grid may have per coordinate (0.1° steps over a full turn).
MAX_GRID_POINTS = 3601


def scan_grid(
    atoms: Atoms, coordinate: InternalCoordinate, grid: Union[Sequence[float], np.ndarray, None]
) -> list[float]:
    """The grid to visit: ``grid`` as given, or for a dihedral 0°–350° by 10° started at the point
    nearest to its current value (so the first step is small)."""
    if grid is not None:
        values = [float(v) for v in np.atleast_1d(np.asarray(grid, dtype=float))]
        unit = "°" if coordinate.unit == "deg" else " Å"
        if not values:
            raise ValueError(f"the grid of {coordinate.name} is empty: give the values to visit (in{unit})")
        if len(values) > MAX_GRID_POINTS:
            raise ValueError(
                f"the grid of {coordinate.name} has {len(values)} points, more than {MAX_GRID_POINTS}, each a "
                f"constrained optimisation: give a coarser grid"
            )
        bad = [v for v in values if not np.isfinite(v)]
        if bad:
            raise ValueError(f"the grid of {coordinate.name} holds {bad[:3]}: give finite values (in{unit})")
        return values
    if not isinstance(coordinate, Dihedral):
        raise ValueError(f"give the grid of {coordinate.name} (only dihedrals have a default, 0-360° by 10°)")
    current = coordinate.value(atoms)
    distance = [abs((v - current + 180.0) % 360.0 - 180.0) for v in DEFAULT_GRID_DEG]
    first = int(np.argmin(distance))
    return list(DEFAULT_GRID_DEG[first:] + DEFAULT_GRID_DEG[:first])


def scan_steps(grids: Sequence[Sequence[float]], both_directions: bool) -> list[Step]:
    """The visiting order: the grid (2D: a serpentine over the second coordinate), then back again."""
    if len(grids) == 1:
        targets = [{0: v} for v in grids[0]]
    else:
        targets = []
        for a, v1 in enumerate(grids[0]):
            inner = grids[1] if a % 2 == 0 else list(reversed(grids[1]))
            targets.extend({0: v1, 1: v2} for v2 in inner)
    order = [(t, "forward") for t in targets]
    if both_directions:
        order += [(t, "backward") for t in reversed(targets)]
    return [Step(targets=t, start="input" if n == 0 else n - 1, tag=tag) for n, (t, tag) in enumerate(order)]


def relaxed_scan(
    atoms: Atoms,
    calc: BaseCalculator,
    coordinates: Coordinates,
    grid: Union[Sequence, np.ndarray, None] = None,
    *,
    fixed: Sequence[InternalCoordinate] = (),
    both_directions: bool = False,
    backend: str = "ase",
    fmax: float = 0.01,
    steps: int = 500,
    optimizer: Union[str, type[Optimizer]] = "BFGS",
    output: Optional[PathLike] = None,
    resume: bool = True,
    progress: bool = False,
    on_error: Literal["raise", "stop"] = "raise",
) -> ScanResult:
    """Relaxed scan of one or two internal coordinates (usually dihedrals).

    Args:
        atoms: the starting structure (not modified); 0-based indices refer to it.
        calc: any ASE calculator.
        coordinates: a :class:`Dihedral` (or ``Angle``/``Distance``), or a list of two for a 2D scan.
        grid: the values to visit, degrees or Å; a list of two lists in 2D. Default for each dihedral:
            0°–350° by 10°, starting at the value nearest to the structure's.
        fixed: other coordinates held at their targets (or their starting values) at every point.
        both_directions: after the grid, walk it back again from the end.
        backend, fmax, steps, optimizer: as for :func:`mlcalc.workflows.optimize` (fmax in eV/Å).
        output: directory for the tables, structures, plot and checkpoint (``None``: nothing written,
            no resuming).
        resume: continue from the checkpoint in ``output`` when there is one.
        progress: show a progress bar.
        on_error: what a point that raises (the calculator fails, the optimiser turns an angle of the
            scanned dihedral linear) does: ``"raise"`` re-raises its error, noting how many points were
            done; ``"stop"`` ends the scan there and returns the points done, with the error in
            ``stopped`` (and in ``scan.json``). With ``output``, they are in its checkpoint either way.

    Returns:
        A :class:`ScanResult`. Points that did not converge are flagged (``converged``,
        ``unconverged``), never dropped.
    """
    if on_error not in ("raise", "stop"):
        raise ValueError(f'on_error must be "raise" or "stop", got {on_error!r}')
    coordinates = [coordinates] if isinstance(coordinates, InternalCoordinate) else list(coordinates)
    if len(coordinates) not in (1, 2):
        raise ValueError(f"a scan runs over one or two coordinates, got {len(coordinates)}")
    if any(c.target is not None for c in coordinates):
        raise ValueError("scanned coordinates take their values from the grid: leave their target unset")
    fixed = resolve_targets(atoms, list(fixed))
    check_coordinates(atoms, [*coordinates, *fixed])
    check_dihedrals_in_one_molecule(atoms, [*coordinates, *fixed])
    check_no_clash(atoms, "starting")
    if len(coordinates) == 1:
        grids = [scan_grid(atoms, coordinates[0], grid)]
    else:
        given = [None, None] if grid is None else list(grid)
        if len(given) != 2:
            raise ValueError("a 2D scan needs a grid for each coordinate: grid=[values1, values2]")
        grids = [scan_grid(atoms, c, g) for c, g in zip(coordinates, given)]
    plan = scan_steps(grids, both_directions)
    options = dict(backend=backend, fmax=fmax, steps=steps, optimizer=optimizer)
    checkpoint = None
    if output is not None:
        parameters = parameters_record("relaxed_scan", atoms, calc, coordinates, fixed, plan, options)
        checkpoint = Checkpoint(Path(output) / "checkpoint", parameters, resume=resume)

    done: list[StepResult] = []

    def record(index: int, result: StepResult) -> None:
        # a point counts as done once its tables are written, so a failed write is reported as that
        # point's failure (and ``plan[len(done)]`` below always exists)
        if output is not None:  # the tables after every point; structures and plot at the end
            ScanResult(coordinates, [*done, result]).write_tables(output)
        done.append(result)

    stopped = None
    try:
        points = run_series(
            {"input": atoms},
            calc,
            coordinates,
            plan,
            fixed=fixed,
            checkpoint=checkpoint,
            on_step=record,
            progress=progress,
            description="relaxed scan",
            **options,
        )
    except Exception as exc:  # any calculator's failure, whatever its type
        targets = ", ".join(coordinates[i].at(value) for i, value in plan[len(done)].targets.items())
        where = f"point {len(done) + 1} of {len(plan)} ({targets})"
        if on_error == "raise":
            kept = (
                f"they are in {output} (tables and checkpoint)"
                if output is not None
                else 'on_error="stop" returns them, output= keeps them on disk'
            )
            note = f"relaxed_scan stopped at {where}, with {len(done)} points done"
            exc.add_note(note + (f": {kept}" if done else ""))
            raise
        points, stopped = done, f"{where}: {type(exc).__name__}: {exc}"
    result = ScanResult(coordinates, points, Path(output) if output is not None else None, stopped)
    if output is not None:
        result.write(output)
    return result


def parameters_record(
    workflow: str,
    atoms: Atoms,
    calc: BaseCalculator,
    coordinates: Sequence[InternalCoordinate],
    fixed: Sequence[InternalCoordinate],
    plan: Sequence[Step],
    options: dict,
) -> dict:
    """What identifies a run in its checkpoint."""
    optimizer = options.get("optimizer")
    return {
        "workflow": workflow,
        "structure": structure_fingerprint(atoms),
        "calculator": calculator_fingerprint(calc),
        "coordinates": [repr(c) for c in coordinates],
        "fixed": [repr(c) for c in fixed],
        "steps": [[{str(k): v for k, v in s.targets.items()}, s.start, s.tag] for s in plan],
        "options": {
            **options,
            "optimizer": optimizer if isinstance(optimizer, str) else getattr(optimizer, "__name__", ""),
        },
    }
