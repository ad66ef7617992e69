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
