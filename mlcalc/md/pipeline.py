"""minimise → NVT → NPT → production, with checkpoints, resume and atomic outputs.

Files in the output directory:

- ``config.json``: the run's :class:`MDConfig`; ``start.pdb``: the prepared, solvated structure
  (the topology for MDAnalysis); both written once, atomically.
- ``checkpoint.chk`` (OpenMM checkpoint: positions, velocities, box, step, time, random state),
  replaced atomically every ``checkpoint_interval`` and at the end of each stage.
- ``state.csv`` (every MD stage) and ``trajectory.dcd``/``.xtc`` (production): appended by
  OpenMM's reporters. Resuming cuts them back to the checkpoint's step first, so a killed and
  resumed run has exactly the frames and rows of an uninterrupted one.
- ``final.pdb``: the last structure, written atomically when the run completes.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import openmm
from openmm import app, unit

from mlcalc.md.config import MDConfig
from mlcalc.md.files import write_atomic
from mlcalc.md.systems import barostat, build_system
from mlcalc.md.trajectory import truncate_state_data, truncate_trajectory
from mlcalc.openmm.platforms import choose_platform

CONFIG = "config.json"
START = "start.pdb"
CHECKPOINT = "checkpoint.chk"
STATE = "state.csv"
FINAL = "final.pdb"


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
        self.stages = stages(config, periodic)
        self.system = build_system(config, topology, positions)
        self.barostat = barostat(self.system)
        self.trajectory_path = self.directory / f"trajectory.{config.trajectory_format}"
        self.trajectory_steps = config.interval_steps(config.trajectory_interval)
        self.state_steps = config.interval_steps(config.state_interval)
        self.checkpoint_steps = config.interval_steps(config.checkpoint_interval)
        integrator = openmm.LangevinMiddleIntegrator(
            config.temperature * unit.kelvin, config.friction / unit.picosecond, config.timestep_ps * unit.picosecond
        )
        integrator.setRandomNumberSeed(config.seed)
        if self.barostat is not None:
            self.barostat.setRandomNumberSeed(config.seed)
        platform, properties = choose_platform(config.platform)
        self.simulation = app.Simulation(topology, self.system, integrator, platform, properties)
        self.minimized = False

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
    def resume(cls, directory: Path) -> "Run":
        """Reopen a run from its directory and its last checkpoint (or from the start if it never reached one)."""
        directory = Path(directory)
        if not (directory / CONFIG).exists():
            raise FileNotFoundError(f"{directory} holds no run ({CONFIG} missing)")
        config = MDConfig.from_dict(json.loads((directory / CONFIG).read_text()))
        start = app.PDBFile(str(directory / START))
        run = cls(config, directory, start.topology, start.positions)
        checkpoint = directory / CHECKPOINT
        if checkpoint.exists():
            run.simulation.loadCheckpoint(str(checkpoint))
            run.minimized = True
        else:
            run.simulation.context.setPositions(start.positions)
        step = run.simulation.currentStep
        truncate_trajectory(run.trajectory_path, run.frames_at(step))
        truncate_state_data(directory / STATE, step)
        return run

    @property
    def total_steps(self) -> int:
        return self.stages[-1].last

    def frames_at(self, step: int) -> int:
        """Production frames the trajectory holds after ``step``: one every ``trajectory_steps`` steps."""
        first = self.stages[-1].first
        return max(0, step // self.trajectory_steps - first // self.trajectory_steps) if step > first else 0

    def checkpoint(self) -> None:
        write_atomic(
            self.directory / CHECKPOINT, lambda tmp: tmp.write_bytes(self.simulation.context.createCheckpoint())
        )

    def run(self, progress: bool = True) -> None:
        """Run (or continue) every stage to the end, then write ``final.pdb``."""
        simulation = self.simulation
        if not self.minimized:
            if self.config.minimize_iterations >= 0:
                simulation.minimizeEnergy(maxIterations=self.config.minimize_iterations)
            simulation.context.setVelocitiesToTemperature(self.config.temperature * unit.kelvin, self.config.seed)
            self.checkpoint()
            self.minimized = True
        bar = _progress_bar(self.total_steps, simulation.currentStep, progress)
        for stage in self.stages:
            if simulation.currentStep >= stage.last:
                continue
            self._enter(stage)
            while simulation.currentStep < stage.last:
                next_checkpoint = (simulation.currentStep // self.checkpoint_steps + 1) * self.checkpoint_steps
                steps = min(next_checkpoint, stage.last) - simulation.currentStep
                simulation.step(steps)
                self.checkpoint()
                if bar is not None:
                    bar.update(steps)
            simulation.reporters.clear()
        if bar is not None:
            bar.close()
        state = simulation.context.getState(getPositions=True, enforcePeriodicBox=True)
        _write_pdb(self.directory / FINAL, self.topology, state.getPositions(), state.getPeriodicBoxVectors())

    def _enter(self, stage: Stage) -> None:
        """Barostat on or off, and the reporters of ``stage`` (appending to existing files)."""
        simulation = self.simulation
        if self.barostat is not None:
            frequency = self.config.barostat_interval if stage.barostat else 0
            if self.barostat.getFrequency() != frequency:
                self.barostat.setFrequency(frequency)
                simulation.context.reinitialize(preserveState=True)
        simulation.reporters.clear()
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
