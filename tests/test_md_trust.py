"""mlcalc md refuses to lose or fake data: blown-up runs stop before writing bad states, checkpoints are verified
on resume, a changed potential or lost rows are refused, and impossible settings are refused up front."""

from __future__ import annotations

import json
import math
import re
import signal
import subprocess
import sys
import textwrap
import warnings

import MDAnalysis
import numpy as np
import openmm
import pytest
from openmm import unit
from test_md_pipeline import KILLER, argon_config

import mlcalc
from mlcalc.cli import main
from mlcalc.errors import InvalidStructureError
from mlcalc.md.checkpoints import MANIFEST, CheckpointError
from mlcalc.md.config import MDConfig
from mlcalc.md.guard import SimulationBlewUpError
from mlcalc.md.pipeline import STATE, Run

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def exploding_config(argon, output) -> MDConfig:
    """80 fs steps: liquid argon at 90 K explodes within 100 steps (measured: step 75 through the PythonForce,
    step 25 through the TorchForce; chaotic, so the tests read the step from the message)."""
    config = argon_config(argon, output)
    config.timestep_fs = 80.0
    config.nvt, config.npt, config.production = 1.6, 1.6, 4.8  # steps 0-20, 20-40, 40-100
    config.trajectory_interval = config.state_interval = 0.4  # every 5 steps
    config.checkpoint_interval = 1.2  # every 15 steps, and at the end of each stage
    return config


def state_rows(directory) -> np.ndarray:
    return np.loadtxt(directory / STATE, delimiter=",", skiprows=1, ndmin=2)


def test_a_run_that_blows_up_stops_before_writing_the_bad_state(argon, tmp_path):
    config = exploding_config(argon, tmp_path / "run")
    run = Run.start(config)
    with pytest.raises(SimulationBlewUpError, match=r"blew up at step \d+ .* above max_temperature = 450 K") as error:
        run.run(progress=False)
    bad = int(re.search(r"blew up at step (\d+)", str(error.value)).group(1))
    good = bad - 5  # the guard checks every report step (every 5): the one before was good
    checkpoint = max(step for step in (15, 20, 30, 40, 45, 60, 75, 90) if step < bad)
    assert any(f"(step {checkpoint}) is good" in note and "--resume" in note for note in error.value.__notes__)
    rows = state_rows(tmp_path / "run")
    assert list(rows[:, 0]) == list(range(5, good + 1, 5))  # every report up to the last good one, none after
    assert np.isfinite(rows).all() and rows[:, 5].max() < 450.0  # temperature column
    frames = len(range(45, good + 1, 5))  # production from step 40, a frame every 5 steps
    if frames:
        universe = MDAnalysis.Universe(str(tmp_path / "run" / "start.pdb"), str(tmp_path / "run" / "trajectory.dcd"))
        assert len(universe.trajectory) == frames
        assert all(np.isfinite(ts.positions).all() for ts in universe.trajectory)
    else:
        assert not (tmp_path / "run" / "trajectory.dcd").exists()
    assert json.loads((tmp_path / "run" / MANIFEST).read_text())["step"] == checkpoint
    # The checkpoint kept is the good one: it resumes with a finite, plausible state.
    resumed = Run.resume(tmp_path / "run")
    state = resumed.simulation.context.getState(getEnergy=True)
    assert resumed.simulation.currentStep == checkpoint and math.isfinite(state.getPotentialEnergy()._value)
    assert len(state_rows(tmp_path / "run")) == checkpoint // 5
    # Continue from the good checkpoint with an eighth of the time step: the run completes, its time
    # continuous across the change (steps are counted in 10 fs from there).
    resumed = Run.resume(tmp_path / "run", timestep_fs=10.0)
    assert resumed.simulation.currentStep == checkpoint * 8 and resumed.config.timestep_fs == 10.0
    resumed.run(progress=False)
    rows = state_rows(tmp_path / "run")
    np.testing.assert_allclose(rows[:, 1], 0.4 * np.arange(1, 21), rtol=1e-9)  # time, ps: every 0.4 ps to 8 ps
    assert np.isfinite(rows).all() and rows[:, 5].max() < 450.0
    universe = MDAnalysis.Universe(str(tmp_path / "run" / "start.pdb"), str(tmp_path / "run" / "trajectory.dcd"))
    times = np.array([ts.time for ts in universe.trajectory])
    np.testing.assert_allclose(times, times[0] + 0.4 * np.arange(12), rtol=1e-5)  # 4.8 ps of production
    assert json.loads((tmp_path / "run" / "config.json").read_text())["timestep_fs"] == 10.0


def test_resume_shortens_the_time_step_only_by_whole_divisions(argon, tmp_path):
    config = argon_config(argon, tmp_path / "run")
    config.nvt, config.npt, config.production = 0.2, 0.0, 0.0
    Run.start(config).run(progress=False)  # 10 fs, ends at step 20 (0.2 ps)
    with pytest.raises(ValueError, match=r"can shorten the time step \(10 fs now\) but not lengthen it"):
        Run.resume(tmp_path / "run", timestep_fs=20.0)
    with pytest.raises(ValueError, match=r"not a whole number of 3 fs steps"):
        Run.resume(tmp_path / "run", timestep_fs=3.0)
    with pytest.raises(ValueError, match=r"_interval = 0.05 ps is 12.5 time steps of 4 fs"):
        Run.resume(tmp_path / "run", timestep_fs=4.0)


def test_command_line_reports_a_blow_up_in_one_message(argon, tmp_path, capsys):
    exploding_config(argon, tmp_path / "cli").save(tmp_path / "md.json")
    assert main(["md", "--config", str(tmp_path / "md.json"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert re.search(r"error: the simulation blew up at step \d+", err) and "Traceback" not in err
    assert f"mlcalc md --resume {tmp_path / 'cli'}" in err


@pytest.fixture
def finished(argon, tmp_path):
    """A short run, complete: its directory."""
    config = argon_config(argon, tmp_path / "done")
    config.nvt = config.npt = 0.1
    config.production = 0.3
    Run.start(config).run(progress=False)
    return tmp_path / "done"


def checkpoint_file(directory):
    return directory / json.loads((directory / MANIFEST).read_text())["file"]


@pytest.mark.parametrize("keep", [0, 100, 4000])
def test_a_truncated_checkpoint_is_refused(finished, keep):
    path = checkpoint_file(finished)
    path.write_bytes(path.read_bytes()[:keep])
    with pytest.raises(CheckpointError, match=rf"{path.name} is damaged \({keep} bytes.*--restart"):
        Run.resume(finished)


def test_a_missing_checkpoint_or_manifest_beside_outputs_is_refused(finished):
    checkpoint_file(finished).unlink()
    with pytest.raises(CheckpointError, match=r"named in checkpoint.json is missing.*--restart"):
        Run.resume(finished)
    (finished / MANIFEST).unlink()
    with pytest.raises(CheckpointError, match=r"has no checkpoint.json: the run cannot be resumed safely"):
        Run.resume(finished)
    restarted = Run.restart(finished)  # the way out the message names
    assert restarted.simulation.currentStep == 0 and not (finished / STATE).exists()


def test_lost_state_rows_are_refused(finished):
    lines = (finished / STATE).read_text().splitlines(keepends=True)
    (finished / STATE).write_text("".join(lines[:3] + lines[5:]))  # two rows lost in the middle
    with pytest.raises(CheckpointError, match=r"rows were lost"):
        Run.resume(finished)


def test_a_changed_potential_is_refused(finished, tmp_path):
    config = json.loads((finished / "config.json").read_text())
    mlcalc.export(mlcalc.models.LennardJones(sigma=3.5, epsilon=0.0103, cutoff=7.0, shift=False), config["potential"])
    with pytest.raises(CheckpointError, match=rf"made with {config['potential']} of SHA-256 .* two potential versions"):
        Run.resume(finished)


def test_a_changed_config_or_start_structure_is_refused(finished):
    config = json.loads((finished / "config.json").read_text())
    (finished / "config.json").write_text(json.dumps({**config, "temperature": 120.0}))
    with pytest.raises(CheckpointError, match=r"config.json of SHA-256 .* two config.json versions"):
        Run.resume(finished)
    (finished / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")  # as written
    Run.resume(finished)  # the original bytes: accepted
    start = finished / "start.pdb"
    start.write_text(start.read_text().replace("AR", "Ar", 1))
    with pytest.raises(CheckpointError, match=r"start.pdb of SHA-256"):
        Run.resume(finished)


def test_resume_refuses_new_settings(finished, capsys):
    assert main(["md", "--resume", str(finished), "--temperature", "100", "--quiet"]) == 1
    assert "but ['temperature'] were given too" in capsys.readouterr().err


def test_settings_that_cannot_be_honoured_are_refused(argon, tmp_path):
    with pytest.raises(ValueError, match=r"state_interval = 0.0075 ps is 1.5 time steps of 5 fs"):
        MDConfig(structure="x.pdb", potential="p.pt", timestep_fs=5.0, state_interval=0.0075)
    with pytest.raises(ValueError, match=r"max_temperature \(200 K\) must exceed temperature \(300 K\)"):
        MDConfig(structure="x.pdb", potential="p.pt", max_temperature=200.0)
    structure, potential = argon
    cluster = tmp_path / "cluster.pdb"
    cluster.write_text("\n".join(line for line in structure.read_text().splitlines() if not line.startswith("CRYST1")))
    config = argon_config((cluster, potential), tmp_path / "npt")
    with pytest.raises(InvalidStructureError, match=r"no periodic box, so the NPT stage \(npt = 0.2 ps\)"):
        Run.start(config)


KILL_DURING_MANIFEST = """
import os, signal
import mlcalc.md.checkpoints as checkpoints
write = checkpoints.write_text_atomic
def write_then_die(path, text):
    # SIGKILL when the manifest of step {step} is about to be written: its checkpoint file is on disk.
    if '"step": {step},' in text:
        os.kill(os.getpid(), signal.SIGKILL)
    return write(path, text)
checkpoints.write_text_atomic = write_then_die
"""

KILL_DURING_CHECKPOINT_FILE = """
import os, signal
import mlcalc.md.checkpoints as checkpoints
write = checkpoints.write_atomic
def die_halfway(path, writer):
    # SIGKILL halfway through writing the checkpoint file of step {step} (its temporary file).
    if path.name == "checkpoint-{step:012d}.chk":
        def half(tmp):
            writer(tmp)
            os.truncate(tmp, os.path.getsize(tmp) // 2)
            os.kill(os.getpid(), signal.SIGKILL)
        return write(path, half)
    return write(path, writer)
checkpoints.write_atomic = die_halfway
"""

RUN_PROCESS = """
import sys, torch
torch.set_num_threads(1)
from mlcalc.md.config import MDConfig
from mlcalc.md.pipeline import Run
if sys.argv[1].endswith(".json"):
    Run.start(MDConfig.from_file(sys.argv[1])).run(progress=False)
else:
    Run.resume(sys.argv[1]).run(progress=False)
"""


@pytest.fixture(scope="module")
def uninterrupted(argon, tmp_path_factory):
    """The argon run of argon_config, uninterrupted: its frame times and state rows."""
    directory = tmp_path_factory.mktemp("whole") / "run"
    Run.start(argon_config(argon, directory)).run(progress=False)
    return frame_times(directory), state_rows(directory)


def frame_times(directory) -> np.ndarray:
    universe = MDAnalysis.Universe(str(directory / "start.pdb"), str(directory / "trajectory.dcd"))
    return np.array([ts.time for ts in universe.trajectory])


def assert_same_outputs(directory, uninterrupted, exact_rows: int) -> None:
    """The frames and rows of the uninterrupted run, none repeated or lost, the first ``exact_rows`` bit for bit
    (after a checkpoint the runs differ: the barostat's adapted trial volume is not in OpenMM's checkpoint)."""
    times, rows = uninterrupted
    np.testing.assert_allclose(frame_times(directory), times, rtol=1e-6)
    found = state_rows(directory)
    np.testing.assert_array_equal(found[:, 0], rows[:, 0])
    np.testing.assert_array_equal(found[:exact_rows, :8], rows[:exact_rows, :8])
    assert len(list(directory.glob("checkpoint-*.chk"))) == 1 and not list(directory.glob(".checkpoint-*"))


@pytest.mark.slow
@pytest.mark.parametrize(
    "prelude",
    ["", KILL_DURING_MANIFEST, KILL_DURING_CHECKPOINT_FILE],
    ids=["after step 77", "before the manifest of step 90", "halfway through the checkpoint file of step 90"],
)
def test_sigkill_at_a_step_or_in_a_checkpoint_write(argon, tmp_path, uninterrupted, prelude):
    """Each resumes from the last checkpoint whose manifest was written (step 75) to the uninterrupted outputs."""
    config = argon_config(argon, tmp_path / "killed")
    config.save(tmp_path / "killed.json")
    killer = textwrap.dedent(KILLER.format(step=10**6 if prelude else 77))
    script = textwrap.dedent(prelude.format(step=90)) + killer
    process = subprocess.run([sys.executable, "-c", script, str(tmp_path / "killed.json")], capture_output=True)
    assert process.returncode == -9, process.stderr.decode()[-2000:]
    resumed = Run.resume(tmp_path / "killed")
    assert resumed.simulation.currentStep == 75
    resumed.run(progress=False)
    assert_same_outputs(tmp_path / "killed", uninterrupted, exact_rows=15)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sigkill_at_random_moments(argon, tmp_path, uninterrupted, seed):
    """SIGKILL twice after random (seeded) delays, wherever the run is (preparing, minimising, stepping,
    writing), then resume: the outputs are still the uninterrupted run's frames and rows."""
    config = argon_config(argon, tmp_path / "killed")
    config.save(tmp_path / "killed.json")
    directory = tmp_path / "killed"
    rng = np.random.default_rng(seed)
    for _ in range(2):
        argument = directory if (directory / "config.json").exists() else tmp_path / "killed.json"
        process = subprocess.Popen([sys.executable, "-c", RUN_PROCESS, str(argument)], stderr=subprocess.PIPE)
        try:
            process.wait(timeout=rng.uniform(2.0, 6.0))
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
        assert process.returncode in (0, -9), process.stderr.read().decode()[-2000:]
    if (directory / "config.json").exists():
        Run.resume(directory).run(progress=False)
    else:
        Run.start(config).run(progress=False)
    assert_same_outputs(directory, uninterrupted, exact_rows=0)


def test_temperature_of_the_guard_matches_openmm(argon, tmp_path):
    """The guard's temperature uses OpenMM's degrees of freedom (its StateDataReporter's number)."""
    from mlcalc.md.guard import BOLTZMANN_KJ_PER_MOL_K, degrees_of_freedom

    run = Run.start(argon_config(argon, tmp_path / "t"))
    run.simulation.context.setVelocitiesToTemperature(90 * unit.kelvin, 3)
    state = run.simulation.context.getState(getEnergy=True)
    reporter = openmm.app.StateDataReporter(sys.stdout, 1, temperature=True)
    reporter._initializeConstants(run.simulation)
    expected = (2 * state.getKineticEnergy() / (reporter._dof * unit.MOLAR_GAS_CONSTANT_R)).value_in_unit(unit.kelvin)
    found = 2 * state.getKineticEnergy()._value / (degrees_of_freedom(run.system) * BOLTZMANN_KJ_PER_MOL_K)
    assert found == pytest.approx(expected, rel=1e-12)


def test_no_hydrogens_on_a_structure_without_them_warns(tmp_path):
    from pathlib import Path

    from mlcalc.md.pipeline import prepare

    trialanine = Path(__file__).parents[1] / "examples" / "trialanine.pdb"
    heavy = tmp_path / "heavy.pdb"
    heavy.write_text("\n".join(line for line in trialanine.read_text().splitlines() if line[76:78].strip() != "H"))
    config = MDConfig(structure=str(heavy), potential="p.pt", mode="ml", solvate=False, add_hydrogens=False, npt=0)
    with pytest.warns(UserWarning, match=r"has carbon but no hydrogen atoms, and hydrogens are not added"):
        prepare(config)
    config = MDConfig(structure=str(trialanine), potential="p.pt", mode="ml", solvate=False, add_hydrogens=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prepare(config)  # the hydrogens are there: no warning


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a CUDA GPU")
def test_a_missing_gpu_is_one_line(argon, tmp_path, capsys):
    """--platform CUDA and --device cuda without a GPU: one error line each, no traceback."""
    argon_config(argon, tmp_path / "gpu").save(tmp_path / "md.json")
    assert main(["md", "--config", str(tmp_path / "md.json"), "--platform", "CUDA", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "error: OpenMM has no CUDA platform here (available: " in err and "Traceback" not in err
    structure, potential = argon
    options = ["--potential", str(potential), "--device", "cuda", "-o", str(tmp_path / "o")]
    assert main(["opt", str(structure), *options]) == 1
    err = capsys.readouterr().err
    assert "error: device cuda was asked for but torch sees no CUDA GPU; use device='cpu'" in err


def test_analyze_before_production_says_why_there_is_no_trajectory(argon, tmp_path, capsys):
    config = argon_config(argon, tmp_path / "early")
    config.production = 0.0
    Run.start(config).run(progress=False)
    early = tmp_path / "early"
    assert main(["analyze", str(early / "start.pdb"), str(early / "trajectory.dcd"), "--output", str(tmp_path)]) == 1
    assert "production stage has not written a frame yet" in capsys.readouterr().err


def test_ctrl_c_prints_the_resume_command_and_the_run_resumes(argon, tmp_path):
    import signal
    import time

    config = argon_config(argon, tmp_path / "int")
    config.production = 20.0  # long enough to be interrupted
    config.save(tmp_path / "md.json")
    code = f"import sys; from mlcalc.cli import main; sys.exit(main(['md', '--config', {str(tmp_path / 'md.json')!r}]))"
    process = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    state = tmp_path / "int" / STATE
    deadline = time.monotonic() + 120
    while not (state.exists() and state.read_text().count("\n") > 30) and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err[-2000:]
    assert "mlcalc md: interrupted at step" in err and f"mlcalc md --resume {tmp_path / 'int'}" in err
    assert "Traceback" not in err
    resumed = Run.resume(tmp_path / "int")  # the files are consistent: it resumes from the last checkpoint
    assert resumed.simulation.currentStep == resumed.checkpoint_step > 0


def test_a_run_killed_before_its_first_row_still_gets_its_header(argon, tmp_path):
    """Found by the random SIGKILL test: killed after the reporters opened state.csv and the DCD but before
    their first report, the resumed run appended rows to an empty file without the header (a reader lost the
    first row), and an empty DCD stopped the resume ("not a DCD file")."""
    directory = tmp_path / "early"
    run = Run.start(argon_config(argon, directory))
    run.simulation.context.setVelocitiesToTemperature(90 * unit.kelvin, 1)
    run.checkpoint()
    run._enter(run.stages[-1])  # the reporters open their files, as in a run killed before its first report
    assert (directory / STATE).stat().st_size == 0 and (directory / "trajectory.dcd").stat().st_size == 0
    del run
    Run.resume(directory).run(progress=False)
    assert (directory / STATE).read_text().startswith('#"Step"')
    assert list(state_rows(directory)[:, 0]) == list(range(5, 141, 5))
    assert len(frame_times(directory)) == 20
