"""minimise → NVT → NPT → production, with checkpoints, resume and atomic outputs.

Files in the output directory:

- ``config.json``: the run's :class:`MDConfig`; ``start.pdb``: the prepared, solvated structure
  (the topology for MDAnalysis); both written once, atomically.
- ``checkpoint-<step>.chk`` (OpenMM checkpoint: positions, velocities, box, step, time, random state)
  and ``checkpoint.json``, its manifest (size, SHA-256, step, the SHA-256 of the run's inputs): a new
  checkpoint every ``checkpoint_interval`` and at the end of each stage, verified before the manifest
  names it and the old one goes (:mod:`mlcalc.md.checkpoints`).
- ``state.csv`` (every MD stage) and ``trajectory.dcd``/``.xtc`` (production): appended by
  OpenMM's reporters. Resuming cuts them back to the checkpoint's step first, so a killed and
  resumed run has exactly the frames and rows of an uninterrupted one; rows missing before that step
  are refused.
- ``uncertainty.csv`` (with ``max_uncertainty``, a committee potential only): the committee's energy
  spread at every ``state.csv`` step (:class:`mlcalc.openmm.UncertaintyReporter`), cut back on resume
  like ``state.csv``. A report above ``max_uncertainty`` stops the run with
  :class:`~mlcalc.errors.UncertaintyExceededError` (its row is the file's last); every checkpoint is
  checked against the threshold before it is written, so the last checkpoint stays the last state
  below it.
- ``final.pdb``: the last structure, written atomically when the run completes.

Every step at which something is written is checked first (:mod:`mlcalc.md.guard`): a run that blew
up stops with :class:`~mlcalc.md.guard.SimulationBlewUpError` and its files end at the last good state.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import openmm
from openmm import app, unit

from mlcalc.data import resolve_potential_path
from mlcalc.errors import ContractError, InvalidStructureError, UncertaintyExceededError
from mlcalc.files import file_sha256, write_atomic
from mlcalc.md.checkpoints import MANIFEST, CheckpointError, read_checkpoint, write_checkpoint
from mlcalc.md.config import MDConfig
from mlcalc.md.guard import SimulationBlewUpError, StateGuard, check_state, degrees_of_freedom
from mlcalc.md.systems import barostat, build_system
from mlcalc.md.trajectory import truncate_state_data, truncate_trajectory
from mlcalc.openmm.platforms import choose_platform
from mlcalc.openmm.uncertainty import UncertaintyReporter
from mlcalc.potential import read_metadata
from mlcalc.units import ANGSTROM_PER_NM

CONFIG = "config.json"
START = "start.pdb"
STATE = "state.csv"
FINAL = "final.pdb"
UNCERTAINTY = "uncertainty.csv"

#: The most steps between two looks at the progress bar and at a stop request.
STEPS_PER_CALL = 100


@dataclass
class Stage:
    name: str
    first: int  # global step at which the stage starts
    last: int  # global step at which it ends
    barostat: bool


def stages(config: MDConfig, periodic: bool) -> list[Stage]:
    lengths = [("nvt", config.nvt, False), ("npt", config.npt, periodic), ("production", config.production, periodic)]
    result, step = [], 0
    for name, picoseconds, pressure in lengths:
        steps = config.steps(picoseconds)
        result.append(Stage(name, step, step + steps, pressure))
        step += steps
    return result


def prepare(config: MDConfig) -> tuple[app.Topology, list]:
    """Read, protonate and solvate the structure as ``config`` says (no files written)."""
    from mlcalc.md.prepare import add_hydrogens, check_templates, read_structure, solvate

    topology, positions = read_structure(config.structure)
    forcefield = app.ForceField(*config.forcefield)
    elements = {atom.element for atom in topology.atoms()}
    if not config.add_hydrogens and app.element.hydrogen not in elements and app.element.carbon in elements:
        warnings.warn(
            f"{config.structure} has carbon but no hydrogen atoms, and hydrogens are not added (--no-hydrogens / "
            "add_hydrogens=False): the potential will see a molecule without its hydrogens. Drop --no-hydrogens "
            "unless that is what you mean",
            stacklevel=2,
        )
    if config.add_hydrogens:
        topology, positions = add_hydrogens(
            topology, positions, forcefield if config.mode == "mlmm" else None, config.ph
        )
    if config.solvate:
        topology, positions = solvate(
            topology,
            positions,
            forcefield,
            config.water_model,
            config.box_shape,
            config.padding,
            config.n_waters,
            config.ionic_strength,
        )
    if config.mode == "mlmm":
        check_templates(topology, forcefield, config.forcefield)
    return topology, positions


class Run:
    """An MD run in ``directory``: :meth:`start` a new one or :meth:`resume` a stopped one, then :meth:`run`."""

    def __init__(self, config: MDConfig, directory: Path, topology: app.Topology, positions):
        self.config = config
        self.directory = Path(directory)
        self.topology = topology
        self.positions = positions
        periodic = topology.getPeriodicBoxVectors() is not None
        if not periodic and config.npt > 0:
            raise InvalidStructureError(
                f"the structure has no periodic box, so the NPT stage (npt = {config.npt:g} ps) cannot control the "
                "pressure: solvate it (drop --no-solvate), give the structure a box (a PDB CRYST1 record), or set "
                "npt to 0 (the run is then NVT throughout)"
            )
        self.stages = stages(config, periodic)
        self.potential_path = resolve_potential_path(config.potential)
        self._check_committee(config.max_uncertainty)
        self.system = build_system(config, topology, positions)
        self.dof = degrees_of_freedom(self.system)
        self.barostat = barostat(self.system)
        self.trajectory_path = self.directory / f"trajectory.{config.trajectory_format}"
        self.trajectory_steps = config.interval_steps(config.trajectory_interval)
        self.state_steps = config.interval_steps(config.state_interval)
        self.checkpoint_steps = config.interval_steps(config.checkpoint_interval)
        # Every step at which a row, a frame or a checkpoint is written is a multiple of this one.
        self.guard_steps = math.gcd(self.state_steps, self.trajectory_steps, self.checkpoint_steps)
        integrator = openmm.LangevinMiddleIntegrator(
            config.temperature * unit.kelvin, config.friction / unit.picosecond, config.timestep_ps * unit.picosecond
        )
        integrator.setRandomNumberSeed(config.seed)
        if self.barostat is not None:
            self.barostat.setRandomNumberSeed(config.seed)
        platform, properties = choose_platform(config.platform)
        self.simulation = app.Simulation(topology, self.system, integrator, platform, properties)
        self.minimized = False
        self.checkpoint_step: Optional[int] = None  # of the last checkpoint written or loaded
        self._inputs: Optional[dict[str, str]] = None
        self._uncertainty: Optional[UncertaintyReporter] = None  # open while run() runs, with max_uncertainty

    def _check_committee(self, max_uncertainty: Optional[float]) -> None:
        """Refuse ``max_uncertainty`` with a single-model potential (it has no spread), before anything runs."""
        if max_uncertainty is not None and not read_metadata(self.potential_path).committee:
            raise ContractError(
                f"max_uncertainty = {max_uncertainty:g} eV needs a committee potential, but {self.config.potential} "
                "is a single model: it has no energy spread to compare with the threshold. Export a committee "
                "(mlcalc.export([model1, model2, ...], path)) and run with it, or drop --max-uncertainty"
            )

    @classmethod
    def start(cls, config: MDConfig, directory: Optional[Path] = None) -> "Run":
        """Prepare the structure and write ``config.json`` and ``start.pdb`` into a new directory."""
        directory = Path(directory or config.output)
        if (directory / CONFIG).exists():
            raise FileExistsError(
                f"{directory} already holds a run: resume it (mlcalc md --resume {directory}) "
                "or choose another output directory"
            )
        topology, positions = prepare(config)
        run = cls(config, directory, topology, positions)  # refuses bad input before anything is written
        _write_pdb(directory / START, topology, positions)
        run.simulation.context.setPositions(positions)
        config.save(directory / CONFIG)
        return run

    @classmethod
    def resume(
        cls, directory: Path, timestep_fs: Optional[float] = None, max_uncertainty: Optional[float] = None
    ) -> "Run":
        """Reopen a run from its directory and its last verified checkpoint (or from the start if it never
        wrote anything). Refuses a missing or damaged checkpoint beside existing outputs, changed inputs,
        and outputs that lack rows or frames before the checkpoint.

        ``timestep_fs`` continues with a shorter time step (after a blow-up, say): the checkpoint's time
        must be a whole number of the new steps, and stage lengths and intervals stay in ps. Steps are
        then counted in the new time step (``state.csv``'s step column jumps there; its time column runs on).

        ``max_uncertainty`` (eV) continues a run that has a threshold with another one (after it stopped
        above the old one, say); a run started without one cannot gain one on resume (its
        ``uncertainty.csv`` would lack the rows before), restart it instead.
        """
        run, start = cls._reopen(directory)
        directory = run.directory
        if max_uncertainty is not None and run.config.max_uncertainty is None:
            raise ValueError(
                f"the run in {directory} was started without max_uncertainty, so {UNCERTAINTY} lacks its first "
                f"rows and --resume cannot add a threshold: run it again from the start with it: mlcalc md "
                f"--restart {directory} --max-uncertainty {max_uncertainty:g}"
            )
        changes = {
            name: value
            for name, value in (("timestep_fs", timestep_fs), ("max_uncertainty", max_uncertainty))
            if value is not None
        }
        nothing_written = not ((directory / MANIFEST).exists() or run._outputs())
        if nothing_written and changes:
            return cls.restart(directory, **changes)
        data = b""
        if not nothing_written:
            record, data = read_checkpoint(directory, run.inputs(), run.input_files())
            run.simulation.context.loadCheckpoint(data)
            if run.simulation.currentStep != record.step:
                raise CheckpointError(
                    f"{directory / record.file} holds step {run.simulation.currentStep}, its manifest says "
                    f"{record.step}; start again with mlcalc md --restart {directory}"
                )
            run.minimized = True
            run.checkpoint_step = record.step
        else:  # killed before its first checkpoint
            run.simulation.context.setPositions(start.positions)
        step = run.simulation.currentStep
        truncate_trajectory(run.trajectory_path, run.frames_at(step))
        tables = [STATE] + ([UNCERTAINTY] if run.config.max_uncertainty is not None else [])
        for table in tables:
            rows = truncate_state_data(directory / table, step)
            if rows != step // run.state_steps:
                raise CheckpointError(
                    f"{directory / table} holds {rows} rows up to step {step}, but the run wrote "
                    f"{step // run.state_steps}: rows were lost; start again with mlcalc md --restart {directory}"
                )
        if max_uncertainty is not None and max_uncertainty != run.config.max_uncertainty:
            run._with_threshold(max_uncertainty)
        if timestep_fs is not None and timestep_fs != run.config.timestep_fs:
            return run._with_shorter_timestep(timestep_fs, start, data)
        return run

    def _with_threshold(self, max_uncertainty: float) -> None:
        """Continue with ``max_uncertainty`` (eV): saved to ``config.json``, and the checkpoint written again
        (checked against the new threshold) so that its manifest names the new config."""
        previous = self.config
        self.config = dataclasses.replace(previous, max_uncertainty=max_uncertainty)  # checks the number
        try:
            # Checked before config.json changes: a refused threshold leaves the run as it was.
            self._check_spread(self.simulation.context.getState(getPositions=True))
            self.config.save(self.directory / CONFIG)
            self._inputs = None
            self.checkpoint()
        except BaseException:
            self.config = previous
            raise
        finally:
            if self._uncertainty is not None:  # opened by the check; run() opens it again
                self._uncertainty.close()
                self._uncertainty = None

    def _with_shorter_timestep(self, timestep_fs: float, start: app.PDBFile, checkpoint: bytes) -> "Run":
        """This run from its checkpoint, continued with ``timestep_fs`` (see :meth:`resume`)."""
        old = self.config.timestep_fs
        if timestep_fs > old:
            raise ValueError(
                f"--resume can shorten the time step ({old:g} fs now) but not lengthen it; run again from the start "
                f"with mlcalc md --restart {self.directory} --timestep-fs {timestep_fs:g}"
            )
        steps = self.simulation.currentStep * old / timestep_fs
        if abs(steps - round(steps)) > 1e-6:
            raise ValueError(
                f"the checkpoint is at {self.simulation.currentStep * old * 1e-3:g} ps, not a whole number of "
                f"{timestep_fs:g} fs steps: choose a time step that divides {old:g} fs (e.g. {old / 2:g})"
            )
        config = dataclasses.replace(self.config, timestep_fs=timestep_fs)  # checks the intervals in the new steps
        run = Run(config, self.directory, start.topology, start.positions)
        run.simulation.context.loadCheckpoint(checkpoint)
        run.simulation.context.setStepCount(round(steps))  # the integrator keeps the new step size
        run.minimized = True
        config.save(self.directory / CONFIG)
        run.checkpoint()  # the manifest names the new config at once
        return run

    @classmethod
    def restart(cls, directory: Path, **changes) -> "Run":
        """Start the run in ``directory`` again from its first step and start structure, with its config
        and ``changes`` to it (e.g. ``timestep_fs=0.25``, saved to ``config.json``); its checkpoints,
        tables, trajectory and final structure are deleted."""
        run, start = cls._reopen(directory, changes)
        run.config.save(run.directory / CONFIG)
        for path in run._outputs():
            path.unlink()
        (run.directory / MANIFEST).unlink(missing_ok=True)
        run.simulation.context.setPositions(start.positions)
        return run

    @classmethod
    def _reopen(cls, directory: Path, changes: Optional[dict] = None) -> tuple["Run", app.PDBFile]:
        directory = Path(directory)
        if not (directory / CONFIG).exists():
            raise FileNotFoundError(
                f"{directory} holds no run ({CONFIG} missing): give the output directory of an mlcalc md run, or "
                "start a new run (mlcalc md STRUCTURE --potential FILE, or --config FILE)"
            )
        config = MDConfig.from_dict({**json.loads((directory / CONFIG).read_text()), **(changes or {})})
        start = app.PDBFile(str(directory / START))
        return cls(config, directory, start.topology, start.positions), start

    def input_files(self) -> dict[str, Path]:
        """What the run computes from: the potential file, its config and its start structure."""
        return {"potential": self.potential_path, CONFIG: self.directory / CONFIG, START: self.directory / START}

    def inputs(self) -> dict[str, str]:
        """SHA-256 of each of :meth:`input_files`, read once per process (at the first checkpoint of a new run,
        on resume), so that every checkpoint records the inputs the run really started from."""
        if self._inputs is None:
            self._inputs = {key: file_sha256(path) for key, path in self.input_files().items()}
        return self._inputs

    def _outputs(self) -> list[Path]:
        """The files a run writes as it goes (not its config, start structure or manifest)."""
        found = [self.directory / STATE, self.directory / UNCERTAINTY, self.trajectory_path, self.directory / FINAL]
        return [path for path in found if path.exists()] + sorted(self.directory.glob("checkpoint-*.chk"))

    @property
    def total_steps(self) -> int:
        return self.stages[-1].last

    def frames_at(self, step: int) -> int:
        """Production frames the trajectory holds after ``step``: one every ``trajectory_steps`` steps."""
        first = self.stages[-1].first
        return max(0, step // self.trajectory_steps - first // self.trajectory_steps) if step > first else 0

    def checkpoint(self) -> None:
        """Check the current state (:func:`~mlcalc.md.guard.check_state`, and the committee's spread against
        ``max_uncertainty``), then write it as the checkpoint."""
        context = self.simulation.context
        watch = self.config.max_uncertainty is not None
        state = context.getState(getEnergy=True, getPositions=watch)
        check_state(state, self.dof, self.config.temperature_limit, "before writing a checkpoint")
        if watch:
            self._check_spread(state)
        write_checkpoint(self.directory, context.createCheckpoint(), self.simulation.currentStep, self.inputs())
        self.checkpoint_step = self.simulation.currentStep

    def _check_spread(self, state: openmm.State) -> None:
        """Raise :class:`UncertaintyExceededError` when the committee's energy spread (eV) on ``state``'s
        positions passes ``max_uncertainty`` (the reporter's check, for a checkpoint between its rows)."""
        limit = self.config.max_uncertainty
        reporter = self._uncertainty or self._open_uncertainty()
        region = reporter.region
        positions = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer) * ANGSTROM_PER_NM
        if region.indices is not None:
            positions = positions[region.indices]
        cell = np.zeros((3, 3))
        if region.periodic:
            cell = state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer) * ANGSTROM_PER_NM
        out = region.potential.evaluate_arrays(
            np.asarray(region.atomic_numbers), positions, cell, np.full(3, region.periodic), forces=False, stress=False
        )
        sigma = float(out["energy_uncertainty"][0])
        if limit is not None and sigma > limit:
            step = self.simulation.currentStep
            raise UncertaintyExceededError(
                f"the committee's energy spread reached {sigma:.4g} eV at step {step}, above max_uncertainty = "
                f"{limit:g} eV (checked before writing a checkpoint, which was not written): the simulation left the "
                "region the potential was trained for"
            )

    def _open_uncertainty(self) -> UncertaintyReporter:
        """The reporter of ``uncertainty.csv`` (appending to a file a resumed run kept)."""
        path = self.directory / UNCERTAINTY
        atoms = None
        if self.config.mode == "mlmm":
            from mlcalc.md.prepare import select_atoms

            atoms = select_atoms(self.topology, self.config.ml_selection)
        self._uncertainty = UncertaintyReporter(
            path,
            self.state_steps,
            self.potential_path,
            self.topology,
            atoms,
            periodic=self.system.usesPeriodicBoundaryConditions(),
            max_uncertainty=self.config.max_uncertainty,
            append=path.exists(),
        )
        return self._uncertainty

    def run(self, progress: bool = True, stop_requested: Callable[[], bool] = lambda: False) -> None:
        """Run (or continue) every stage to the end, then write ``final.pdb``.

        ``stop_requested`` is asked every :data:`STEPS_PER_CALL` steps at most; when it answers yes the run
        raises ``KeyboardInterrupt`` between steps, its files as consistent as after a kill (the command
        line's Ctrl-C: a signal that lands inside OpenMM's C++ code, in a PythonForce's call, say, would
        surface as an ``OpenMMException`` instead)."""
        simulation = self.simulation
        if self.config.max_uncertainty is not None and self._uncertainty is None:
            self._open_uncertainty()
        bar = None
        try:
            if not self.minimized:
                if self.config.minimize_iterations >= 0:
                    simulation.minimizeEnergy(maxIterations=self.config.minimize_iterations)
                simulation.context.setVelocitiesToTemperature(self.config.temperature * unit.kelvin, self.config.seed)
                self.checkpoint()
                self.minimized = True
            bar = _progress_bar(self.total_steps, simulation.currentStep, progress)
            self._run_stages(bar, stop_requested)
        except SimulationBlewUpError as exc:
            if self.checkpoint_step is not None:
                exc.add_note(
                    f"{self.directory}: the outputs end at the last good state; the last checkpoint (step "
                    f"{self.checkpoint_step}) is good: mlcalc md --resume {self.directory} --timestep-fs "
                    f"{self.config.timestep_fs / 2:g} continues from it with half the time step"
                )
            raise
        except UncertaintyExceededError as exc:
            if self.checkpoint_step is None:
                exc.add_note(
                    f"{self.directory}: no checkpoint was written: the minimised start structure is already above "
                    "the threshold. Label structures like it and retrain, or run again with a higher threshold: "
                    f"mlcalc md --restart {self.directory} --max-uncertainty EV"
                )
            else:
                exc.add_note(
                    f"{self.directory}: {UNCERTAINTY} records the spread up to there; the last checkpoint (step "
                    f"{self.checkpoint_step}) is below the threshold. Label the latest frames (mlcalc select) and "
                    f"retrain, or continue with a higher threshold: mlcalc md --resume {self.directory} "
                    "--max-uncertainty EV"
                )
            raise
        finally:
            if bar is not None:
                bar.close()
            if self._uncertainty is not None:
                self._uncertainty.close()
                self._uncertainty = None
        state = simulation.context.getState(getPositions=True, enforcePeriodicBox=True)
        _write_pdb(self.directory / FINAL, self.topology, state.getPositions(), state.getPeriodicBoxVectors())

    def _run_stages(self, bar, stop_requested: Callable[[], bool]) -> None:
        simulation = self.simulation
        for stage in self.stages:
            if simulation.currentStep >= stage.last:
                continue
            self._enter(stage)
            while simulation.currentStep < stage.last:
                next_checkpoint = (simulation.currentStep // self.checkpoint_steps + 1) * self.checkpoint_steps
                next_report = (simulation.currentStep // self.guard_steps + 1) * self.guard_steps
                ahead = simulation.currentStep + STEPS_PER_CALL
                steps = min(next_report, next_checkpoint, stage.last, ahead) - simulation.currentStep
                simulation.step(steps)
                if simulation.currentStep in (next_checkpoint, stage.last):
                    self.checkpoint()
                if bar is not None:
                    _advance(bar, steps, self.config.timestep_fs)
                if stop_requested():
                    raise KeyboardInterrupt
            simulation.reporters.clear()

    def _enter(self, stage: Stage) -> None:
        """Barostat on or off, and the reporters of ``stage`` (appending to existing files)."""
        simulation = self.simulation
        if self.barostat is not None:
            frequency = self.config.barostat_interval if stage.barostat else 0
            if self.barostat.getFrequency() != frequency:
                self.barostat.setFrequency(frequency)
                simulation.context.reinitialize(preserveState=True)
        simulation.reporters.clear()
        # First, so that it checks a step before any other reporter writes it.
        simulation.reporters.append(StateGuard(self.guard_steps, self.dof, self.config.temperature_limit))
        if self._uncertainty is not None:  # before state.csv's reporter: a row above the threshold stops the step
            simulation.reporters.append(self._uncertainty)
        state = self.directory / STATE
        simulation.reporters.append(
            app.StateDataReporter(
                str(state),
                self.state_steps,
                step=True,
                time=True,
                potentialEnergy=True,
                kineticEnergy=True,
                totalEnergy=True,
                temperature=True,
                volume=True,
                density=True,
                speed=True,
                append=state.exists(),
            )
        )
        if stage.name == "production":
            reporter = app.XTCReporter if self.config.trajectory_format == "xtc" else app.DCDReporter
            append = self.trajectory_path.exists() and self.frames_at(simulation.currentStep) > 0
            simulation.reporters.append(reporter(str(self.trajectory_path), self.trajectory_steps, append=append))


def _progress_bar(total: int, done: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=done, unit="step", file=sys.stderr, dynamic_ncols=True, smoothing=0.1)


def _advance(bar, steps: int, timestep_fs: float) -> None:
    """Move the bar by ``steps`` and show the speed in ns/day (at least every :data:`STEPS_PER_CALL` steps)."""
    bar.update(steps)
    rate = bar.format_dict.get("rate")  # steps/s, smoothed
    if rate:
        bar.set_postfix_str(f"{rate * timestep_fs * 1e-6 * 86400:.3g} ns/day", refresh=False)


def _write_pdb(path: Path, topology: app.Topology, positions, box=None) -> None:
    if box is not None:
        topology = _with_box(topology, box)

    def write(tmp: Path) -> None:
        with open(tmp, "w") as stream:
            app.PDBFile.writeFile(topology, positions, stream, keepIds=True)

    write_atomic(path, write)


def _with_box(topology: app.Topology, box) -> app.Topology:
    import copy

    copied = copy.deepcopy(topology)
    copied.setPeriodicBoxVectors(box)
    return copied


def run(config: MDConfig, progress: bool = True) -> Run:
    """Start and run an MD run into ``config.output``; returns the finished :class:`Run`."""
    md = Run.start(config)
    md.run(progress=progress)
    return md


def resume(directory: Path, progress: bool = True) -> Run:
    """Continue the run in ``directory`` from its last checkpoint to the end."""
    md = Run.resume(directory)
    md.run(progress=progress)
    return md
