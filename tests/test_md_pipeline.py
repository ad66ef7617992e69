"""mlcalc md: stages, checkpoints, a killed-and-resumed run against an uninterrupted one, the command line."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import MDAnalysis
import numpy as np
import pytest
from ase.build import bulk
from openmm import app, unit

from mlcalc.cli import main
from mlcalc.md.config import MDConfig
from mlcalc.md.pipeline import Run

TRIALANINE = Path(__file__).parents[1] / "examples" / "trialanine.pdb"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def write_argon(path: Path, a: float = 5.9, repeat: int = 3) -> Path:
    """108 argon atoms on an fcc lattice (expanded towards the liquid's density) as a periodic PDB."""
    atoms = bulk("Ar", "fcc", a=a, cubic=True).repeat(repeat)
    topology = app.Topology()
    chain = topology.addChain()
    for k in range(len(atoms)):
        topology.addAtom("AR", app.element.argon, topology.addResidue("AR", chain, id=str(k + 1)))
    topology.setPeriodicBoxVectors(atoms.cell.array / 10 * unit.nanometer)
    with open(path, "w") as stream:
        app.PDBFile.writeFile(topology, atoms.positions / 10 * unit.nanometer, stream)
    return path


def argon_config(argon, output: Path) -> MDConfig:
    structure, potential = argon
    return MDConfig(
        structure=str(structure),
        potential=str(potential),
        output=str(output),
        mode="ml",
        solvate=False,
        add_hydrogens=False,
        temperature=90.0,
        timestep_fs=10.0,
        barostat_interval=5,
        minimize_iterations=20,
        nvt=0.2,
        npt=0.2,
        production=1.0,
        trajectory_interval=0.05,
        state_interval=0.05,
        checkpoint_interval=0.15,
        platform="Reference",
    )


KILLER = """
import os, signal, sys
import torch
torch.set_num_threads(1)
from mlcalc.md.config import MDConfig
from mlcalc.md.pipeline import Run

class Kill:
    '''SIGKILL the process after step {step}: frames and rows after the last checkpoint are on disk.'''
    def describeNextReport(self, simulation):
        return ({step} - simulation.currentStep, False, False, False, False)
    def report(self, simulation, state):
        os.kill(os.getpid(), signal.SIGKILL)

enter = Run._enter
def enter_and_arm(self, stage):
    enter(self, stage)
    if stage.name == "production":
        self.simulation.reporters.append(Kill())
Run._enter = enter_and_arm
Run.start(MDConfig.from_file(sys.argv[1])).run(progress=False)
"""


def test_killed_and_resumed_run_equals_an_uninterrupted_one(argon, tmp_path):
    whole = Run.start(argon_config(argon, tmp_path / "whole"))
    whole.run(progress=False)

    config = argon_config(argon, tmp_path / "killed")
    config.save(tmp_path / "killed.json")
    # Killed at step 92: production started at step 40, last checkpoint at 90, frames up to step 90 on disk
    # (and state rows), then a kill after step 92 has been integrated.
    script = textwrap.dedent(KILLER.format(step=92))
    process = subprocess.run([sys.executable, "-c", script, str(tmp_path / "killed.json")], capture_output=True)
    assert process.returncode == -9, process.stderr.decode()[-2000:]
    assert not (tmp_path / "killed" / "final.pdb").exists()
    resumed = Run.resume(tmp_path / "killed")
    assert resumed.simulation.currentStep == 90
    resumed.run(progress=False)

    trajectories = []
    for run in ("whole", "killed"):
        universe = MDAnalysis.Universe(str(tmp_path / run / "start.pdb"), str(tmp_path / run / "trajectory.dcd"))
        times = np.array([ts.time for ts in universe.trajectory])
        trajectories.append((times, np.array([universe.atoms.positions.copy() for _ in universe.trajectory])))
    (times, frames), (resumed_times, resumed_frames) = trajectories
    assert len(frames) == len(resumed_frames) == 20  # 1 ps of production, a frame every 0.05 ps
    np.testing.assert_allclose(np.diff(resumed_times), 0.05, rtol=1e-5)  # continuous time, no repeats
    np.testing.assert_allclose(resumed_times, times, rtol=1e-6)
    # Up to the checkpoint (step 90, frame 10) the kept frames are the uninterrupted run's, bit for bit. After
    # it the runs differ: an OpenMM checkpoint restores the integrator's random state but not the barostat's
    # adapted trial-volume size (measured: identical without a barostat or before its first adaptation).
    assert np.array_equal(frames[:10], resumed_frames[:10])
    assert np.abs(frames[10:] - resumed_frames[10:]).max() > 0
    rows = [np.loadtxt(tmp_path / run / "state.csv", delimiter=",", skiprows=1) for run in ("whole", "killed")]
    for row in rows:
        assert np.array_equal(row[:, 0], np.arange(5, 141, 5))  # steps of NVT, NPT and production, each once
        np.testing.assert_allclose(row[:, 1], row[:, 0] * 0.01, rtol=1e-12)  # time, ps
    np.testing.assert_array_equal(rows[0][:18, :8], rows[1][:18, :8])  # to step 90; not the speed column
    volume = rows[0][:, 6]
    assert np.all(volume[:4] == volume[0]), "the box changed during NVT"
    assert len(set(volume[4:])) > 1, "the barostat never moved the box during NPT and production"


def test_a_directory_holds_one_run(argon, tmp_path):
    config = argon_config(argon, tmp_path / "run")
    config.production = config.npt = config.nvt = 0.0
    Run.start(config).run(progress=False)
    assert (tmp_path / "run" / "final.pdb").exists()
    with pytest.raises(FileExistsError, match="--resume"):
        Run.start(config)


def test_command_line_and_analyze(argon, tmp_path, capsys):
    """mlcalc md with a config file and an option over it, then mlcalc analyze on the trajectory."""
    config = argon_config(argon, tmp_path / "cli")
    config.save(tmp_path / "md.json")
    assert main(["md", "--config", str(tmp_path / "md.json"), "--production", "0.3", "--quiet"]) == 0
    universe = MDAnalysis.Universe(str(tmp_path / "cli" / "start.pdb"), str(tmp_path / "cli" / "trajectory.dcd"))
    assert len(universe.trajectory) == 6
    assert (
        main(
            [
                "analyze",
                str(tmp_path / "cli" / "start.pdb"),
                str(tmp_path / "cli" / "trajectory.dcd"),
                "--select",
                "index 0-9",
                "--output",
                str(tmp_path / "analysis"),
                "--no-plots",
            ]
        )
        == 0
    )
    assert (tmp_path / "analysis" / "rmsf.csv").read_text().count("\n") == 11


def test_config_errors(tmp_path):
    with pytest.raises(ValueError, match="mode must be one of"):
        MDConfig(structure="x.pdb", potential="p.pt", mode="qmmm")
    (tmp_path / "bad.json").write_text('{"structure": "x.pdb", "potential": "p.pt", "temprature": 300}')
    with pytest.raises(ValueError, match=r"unknown MD settings \['temprature'\]"):
        MDConfig.from_file(tmp_path / "bad.json")


@pytest.fixture(scope="module")
def argon_committee(argon, tmp_path_factory):
    """The argon PDB and a committee of three truncated Lennard-Jones argons (sigma +1 %, epsilon -3 % apart):
    along the short run below, from a minimised lattice heating to 90 K, the spread grows from 0.01 to 0.13 eV."""
    import mlcalc

    structure, _ = argon
    path = tmp_path_factory.mktemp("committee") / "argon-committee.pt"
    members = [
        mlcalc.models.LennardJones(
            sigma=3.405 * (1 + 0.01 * k), epsilon=0.0103 * (1 - 0.03 * k), cutoff=7.0, shift=False
        )
        for k in range(3)
    ]
    mlcalc.export(members, path)
    return structure, path


def committee_config(argon_committee, output: Path) -> MDConfig:
    """NVT 20 steps, production 60 steps of 10 fs; state rows every 5 steps, checkpoints every 15 and at 20."""
    config = argon_config(argon_committee, output)
    config.npt, config.production = 0.0, 0.6
    return config


def _uncertainty_rows(directory: Path) -> np.ndarray:
    return np.loadtxt(directory / "uncertainty.csv", delimiter=",", skiprows=1, ndmin=2)


@pytest.fixture(scope="module")
def spread(argon_committee, tmp_path_factory) -> dict[int, float]:
    """The committee's energy spread (eV) at every 5th step of the run of :func:`committee_config`, run
    without stopping. The thresholds below are set from it: the trajectory, and so the spread, differs
    between OpenMM versions and forces (0.0999 eV at step 25 in one stack, 0.118 in another)."""
    directory = tmp_path_factory.mktemp("spread") / "run"
    config = committee_config(argon_committee, directory)
    config.max_uncertainty = 1e6
    Run.start(config).run(progress=False)
    rows = _uncertainty_rows(directory)
    return {int(step): float(value) for step, value in zip(rows[:, 0], rows[:, 2])}


def _between(low: float, high: float) -> float:
    """A threshold strictly between ``low`` and ``high`` (eV), short enough to print exactly with ``:g``."""
    assert low < high, f"the test needs the spread to grow here, from {low} to {high} eV"
    threshold = float(f"{(low + high) / 2:.4g}")
    assert low < threshold < high
    return threshold


def test_run_stops_above_max_uncertainty_and_resumes_with_a_higher_one(argon_committee, spread, tmp_path, capsys):
    import json

    from mlcalc.errors import UncertaintyExceededError

    committee_config(argon_committee, tmp_path / "run").save(tmp_path / "md.json")
    # A threshold above the spread up to step 20 (a checkpoint) and below it at step 25: the run stops there.
    limit = _between(max(v for step, v in spread.items() if step <= 20), spread[25])
    assert main(["md", "--config", str(tmp_path / "md.json"), "--max-uncertainty", f"{limit:g}", "--quiet"]) == 1
    error = capsys.readouterr().err
    assert f"spread reached {spread[25]:.4g} eV at step 25" in error
    assert f"above max_uncertainty = {limit:g} eV" in error
    assert f"mlcalc md --resume {tmp_path / 'run'} --max-uncertainty" in error
    assert "Traceback" not in error
    run = tmp_path / "run"
    rows = _uncertainty_rows(run)
    assert list(rows[:, 0]) == [5, 10, 15, 20, 25]  # the row that stopped it is the last
    assert rows[-1, 2] > limit and np.all(rows[:-1, 2] <= limit)
    np.testing.assert_array_equal(rows[:, 2], [spread[step] for step in (5, 10, 15, 20, 25)])
    assert json.loads((run / "checkpoint.json").read_text())["step"] == 20  # the last one below the threshold
    assert [p.name for p in run.glob("checkpoint-*.chk")] == ["checkpoint-000000000020.chk"]
    assert not (run / "final.pdb").exists()

    low = float(f"{spread[20] / 2:.4g}")
    with pytest.raises(UncertaintyExceededError, match=f"at step 20, above max_uncertainty = {low:g} eV"):
        Run.resume(run, max_uncertainty=low)  # the checkpoint itself is above it: refused, nothing changed
    assert json.loads((run / "config.json").read_text())["max_uncertainty"] == limit
    assert main(["md", "--resume", str(run), "--max-uncertainty", "1.0", "--quiet"]) == 0
    assert json.loads((run / "config.json").read_text())["max_uncertainty"] == 1.0
    resumed = _uncertainty_rows(run)
    assert list(resumed[:, 0]) == list(range(5, 81, 5))  # each step once: the stopping row was cut and rewritten
    assert np.array_equal(resumed[:4], rows[:4])
    np.testing.assert_allclose(resumed[4, 2], rows[4, 2], rtol=1e-9)  # the same step again from the checkpoint
    state = np.loadtxt(run / "state.csv", delimiter=",", skiprows=1)
    assert list(state[:, 0]) == list(range(5, 81, 5))


def test_interrupted_run_keeps_each_uncertainty_row_once(argon_committee, tmp_path):
    config = committee_config(argon_committee, tmp_path / "run")
    config.max_uncertainty = 1.0
    run = Run.start(config)
    with pytest.raises(KeyboardInterrupt):  # after step 40; the last checkpoint is at step 30
        run.run(progress=False, stop_requested=lambda: run.simulation.currentStep >= 40)
    assert list(_uncertainty_rows(tmp_path / "run")[:, 0]) == list(range(5, 41, 5))
    resumed = Run.resume(tmp_path / "run")
    assert resumed.simulation.currentStep == 30
    assert list(_uncertainty_rows(tmp_path / "run")[:, 0]) == list(range(5, 31, 5))
    resumed.run(progress=False)
    rows = _uncertainty_rows(tmp_path / "run")
    assert list(rows[:, 0]) == list(range(5, 81, 5))
    np.testing.assert_allclose(rows[:, 1], rows[:, 0] * 0.01, rtol=1e-9)


def test_checkpoint_between_rows_is_checked_against_max_uncertainty(argon_committee, spread, tmp_path):
    from mlcalc.errors import UncertaintyExceededError

    config = committee_config(argon_committee, tmp_path / "run")
    # rows at 10, 20; a checkpoint at 15, where the spread first passes the threshold
    config.state_interval, config.max_uncertainty = 0.1, _between(max(spread[5], spread[10]), spread[15])
    config.production = 0.0
    run = Run.start(config)
    with pytest.raises(
        UncertaintyExceededError,
        match=f"at step 15, above max_uncertainty = {config.max_uncertainty:g} eV .checked before writing a checkpoint",
    ):
        run.run(progress=False)
    assert run.checkpoint_step == 0
    assert list(_uncertainty_rows(tmp_path / "run")[:, 0]) == [10]


def test_max_uncertainty_needs_a_committee(argon, tmp_path):
    from mlcalc.errors import ContractError

    config = argon_config(argon, tmp_path / "single")
    config.max_uncertainty = 0.1
    with pytest.raises(ContractError, match="needs a committee potential, but .* is a single model"):
        Run.start(config)
    assert not (tmp_path / "single" / "config.json").exists()
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="max_uncertainty"):
            MDConfig(structure="x.pdb", potential="p.pt", max_uncertainty=bad)
