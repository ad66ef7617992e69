"""mlcalc.batch and ``mlcalc batch`` on a LocalCluster of 2 worker processes: results equal serial runs
exactly, a killed worker's task is retried and finishes, a killed client's batch finishes on rerun without
redoing finished tasks, a failing input is reported while the others complete."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from ase.build import molecule
from ase.io import write

import mlcalc
from mlcalc.batch import BatchDirectoryError, Task, local_client, run, tasks_from_file
from mlcalc.batch.store import RESULT_FILE, check_directory
from mlcalc.batch.tasks import fingerprint, task_id
from mlcalc.cli import main
from mlcalc.workflows import Dihedral, relaxed_scan

REPOSITORY = Path(__file__).resolve().parents[1]
SCREENING = REPOSITORY / "examples" / "screening"
GRID = [180.0, 120.0, 60.0]  # degrees: three constrained optimisations per scan


@pytest.fixture(scope="module")
def client():
    """Two single-threaded worker processes, shared by the tests of this module."""
    with local_client(workers=2, threads=1) as client:
        yield client
        client.cluster.close()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("inputs")
    paths = {}
    for name, atoms in (
        ("butane", molecule("trans-butane")),
        ("pentane", _pentane()),
        ("chlorobutane", _chlorobutane()),
    ):
        paths[name] = directory / f"{name}.xyz"
        write(paths[name], atoms)
    paths["broken"] = directory / "broken.xyz"
    paths["broken"].write_text("this is not a structure\n")
    return paths


def _pentane():
    from ase.io import read

    return read(SCREENING / "inputs" / "pentane.xyz")


def _chlorobutane():
    """Butane with a chlorine for a hydrogen: an element the demo potential refuses (on the worker)."""
    atoms = molecule("trans-butane")
    symbols = atoms.get_chemical_symbols()
    symbols[symbols.index("H")] = "Cl"
    atoms.set_chemical_symbols(symbols)
    return atoms


def scan_task(path: Path, **settings) -> Task:
    return Task("scan", path, {"dihedral": "0,1,2,3", "grid": GRID, **settings}, device="cpu")


def committee_energies(atoms) -> np.ndarray:
    """The demo committee's member energies for ``atoms``, eV, through the ASE calculator."""
    calc = mlcalc.MLCalculator("demo", device="cpu")
    return np.asarray(calc.get_property("energy_committee", atoms.copy()))


def serial_scan(path: Path, grid=GRID, **options):
    """The same scan in this process, one torch thread as on the workers."""
    from ase.io import read

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        calc = mlcalc.MLCalculator("demo", device="cpu")
        return relaxed_scan(read(path), calc, Dihedral(0, 1, 2, 3), grid, **options)
    finally:
        torch.set_num_threads(threads)


def stored_points(directory: Path) -> list[dict]:
    """The checkpointed points of a scan directory (energies and positions at full precision)."""
    steps = sorted((directory / "checkpoint").glob("step-*.json"))
    return [json.loads(step.read_text()) for step in steps]


def assert_equal_to_serial(directory: Path, serial, exact: bool = True) -> None:
    """The scan in ``directory`` equals ``serial``: exactly (float64, same code, one thread each), or
    to 1e-10 for a resumed scan (a workflow resumed from its checkpoint differs from an uninterrupted
    run by ~1e-14 Å in positions, with or without Dask: measured with relaxed_scan alone)."""
    points = stored_points(directory)
    assert len(points) == len(serial.points)
    table = json.loads((directory / "scan.json").read_text())
    energies = [p["energy_eV"] for p in table["points"]]
    for stored, point, energy in zip(points, serial.points, energies):
        if exact:
            assert stored["energy"] == energy == point.energy
            assert stored["positions"] == point.atoms.positions.tolist()
        else:
            assert stored["energy"] == energy == pytest.approx(point.energy, rel=0, abs=1e-10)
            assert np.abs(np.array(stored["positions"]) - point.atoms.positions).max() < 1e-10


def test_task_settings_are_canonical(inputs):
    """Defaults filled in and one spelling of indices: the same task has the same id; changed settings a new one."""
    given = scan_task(inputs["butane"])
    explicit = Task("scan", inputs["butane"], {"dihedral": [0, 1, 2, 3], "grid": GRID, "fmax": 0.01}, device="cpu")
    other = scan_task(inputs["butane"], fmax=0.02)
    ids = [task_id(t, fingerprint(t)) for t in (given, explicit, other)]
    assert ids[0] == ids[1] != ids[2]
    assert ids[0].startswith("butane-scan-")
    with pytest.raises(ValueError, match="unknown scan settings"):
        Task("scan", inputs["butane"], {"dihedral": "0,1,2,3", "fmaxx": 0.1})
    with pytest.raises(ValueError, match="needs the settings"):
        Task("scan", inputs["butane"], {})


def test_directory_of_another_task_is_refused(tmp_path, inputs):
    task = scan_task(inputs["butane"])
    record = fingerprint(task)
    (tmp_path / RESULT_FILE).write_text(json.dumps({"fingerprint": {**record, "dtype": "float32"}}))
    with pytest.raises(BatchDirectoryError, match="differs in: dtype"):
        check_directory(tmp_path, record)


def test_screening_file_reads(tmp_path):
    tasks, options = tasks_from_file(SCREENING / "screening.toml")
    assert [Path(t.structure).name for t in tasks] == [
        "butane.xyz",
        "pentane.xyz",
        "ethylene-glycol.xyz",
        "azobenzene.xyz",
    ]
    assert all(t.settings["fmax"] == 0.01 for t in tasks)
    assert tasks[3].settings["dihedral"] == [[3, 6, 7, 8]] and tasks[3].settings["step"] == -30.0
    assert options["output"] == "screening"


def test_batch_equals_serial_and_isolates_failures(tmp_path, client, inputs):
    tasks = [
        scan_task(inputs["butane"]),
        scan_task(inputs["pentane"]),
        scan_task(inputs["chlorobutane"]),  # fails on the worker: Cl
        scan_task(inputs["broken"]),  # fails before it is sent: unreadable
    ]
    result = run(tasks, tmp_path, client)
    assert [row["status"] for row in result] == ["done", "done", "failed", "failed"]
    assert "UnsupportedElementError" in result[2]["error"] or "Cl" in result[2]["error"]
    assert "StructureFileError" in result[3]["error"]
    for row in result.failed:
        error = json.loads((Path(row["directory"]) / "error.json").read_text())
        assert error["type"] and error["message"]
    for row, name in zip(result, ("butane", "pentane")):
        assert_equal_to_serial(Path(row["directory"]), serial_scan(inputs[name]))
        serial = serial_scan(inputs[name])
        top = float(serial.relative_energies.max())
        assert row["barrier_eV"] == top and row["converged"] is True
        assert row["non_hierarchicality_max"] > 0  # the demo is a HIP-NN
        # the demo is a committee: the spread of its members' own barriers, lowest point to highest
        members = [committee_energies(p.atoms) for p in serial.points]
        lowest, highest = int(np.argmin(serial.energies)), int(np.argmax(serial.energies))
        spread = float(np.std(members[highest] - members[lowest]))
        assert spread > 0 and row["barrier_uncertainty_eV"] == pytest.approx(spread, rel=1e-9, abs=1e-12)
    with open(tmp_path / "summary.csv", newline="") as stream:
        table = list(csv.DictReader(stream))
    assert [row["task"] for row in table] == [row["task"] for row in result]
    assert (tmp_path / "barriers.png").stat().st_size > 0

    # rerun: finished tasks are skipped (result.json untouched), failed ones run again
    stamps = {row["task"]: (Path(row["directory"]) / RESULT_FILE).stat().st_mtime_ns for row in result.rows[:2]}
    again = run(tasks, tmp_path, client)
    assert [row["cached"] for row in again] == [True, True, False, False]
    assert [row["status"] for row in again] == ["done", "done", "failed", "failed"]
    for task, stamp in stamps.items():
        assert (tmp_path / task / RESULT_FILE).stat().st_mtime_ns == stamp


def _kill_when(directory: Path, key: str, client, points: int, killed: list) -> None:
    """SIGKILL the worker process running ``key`` once ``directory`` holds ``points`` checkpointed points."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if len(list((directory / "checkpoint").glob("step-*.json"))) >= points:
            for address, keys in client.processing().items():
                if key in keys:
                    pid = client.run(os.getpid, workers=[address])[address]
                    os.kill(pid, signal.SIGKILL)
                    killed.append((address, pid))
                    return
        time.sleep(0.05)


@pytest.mark.slow
def test_killed_worker_task_is_retried(tmp_path, client, inputs):
    """A worker killed mid-scan: Dask runs the task again on a live worker, which resumes from the scan's
    checkpoint; the result equals a serial run's."""
    grid = [float(v) for v in range(180, -181, -15)]  # 25 points
    task = scan_task(inputs["butane"], grid=grid)
    ident = task_id(task, fingerprint(task))
    killed: list = []
    killer = threading.Thread(
        target=_kill_when, args=(tmp_path / ident, f"mlcalc-batch-{ident}", client, 3, killed), daemon=True
    )
    killer.start()
    result = run([task], tmp_path, client)
    killer.join(timeout=5)
    assert killed, "the worker was not killed mid-task (the scan finished first?)"
    assert result[0]["status"] == "done"
    assert str(killed[0][1]) not in result[0]["worker"]  # finished by another process
    assert_equal_to_serial(tmp_path / ident, serial_scan(inputs["butane"], grid), exact=False)


@pytest.mark.slow
def test_killed_client_rerun_finishes(tmp_path, client, inputs):
    """``mlcalc batch`` killed (client and its LocalCluster) after its first task finished: the same command
    finishes the batch, here on the test's cluster through --scheduler, without redoing the finished task."""
    files = [str(inputs["butane"]), str(inputs["pentane"])]
    command = ["batch", "scan", *files, "--potential", "demo", "--device", "cpu", "--dihedral", "0,1,2,3"]
    command += ["--start", "180", "--stop", "60", "--step", "-60", "-o", str(tmp_path), "--quiet", "--no-plot"]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "mlcalc.cli", *command, "--workers", "1"],
        env=environment,
        start_new_session=True,  # its own process group: the LocalCluster's workers die with it
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob(f"*/{RESULT_FILE}")) and time.monotonic() < deadline:
            assert process.poll() is None, "the batch ended before it could be killed"
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    finished = {path.parent.name: path.stat().st_mtime_ns for path in tmp_path.glob(f"*/{RESULT_FILE}")}
    assert len(finished) == 1
    assert main([*command, "--scheduler", client.scheduler.address]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())["tasks"]
    assert [row["status"] for row in summary] == ["done", "done"]
    assert [row["cached"] for row in summary] == [row["task"] in finished for row in summary]
    for name, stamp in finished.items():
        assert (tmp_path / name / RESULT_FILE).stat().st_mtime_ns == stamp


def test_cli_exit_status_names_failures(tmp_path, client, inputs, capsys):
    code = main(
        ["batch", "opt", str(inputs["butane"]), str(inputs["chlorobutane"]), "--potential", "demo", "--device", "cpu"]
        + ["--dihedral", "0,1,2,3=150", "-o", str(tmp_path), "--quiet", "--scheduler", client.scheduler.address]
    )
    assert code == 1
    assert "chlorobutane-opt" in capsys.readouterr().err
    rows = json.loads((tmp_path / "summary.json").read_text())["tasks"]
    assert [row["status"] for row in rows] == ["done", "failed"]
    assert rows[0]["energy_eV"] < 0 and (Path(rows[0]["directory"]) / "optimized.extxyz").exists()
