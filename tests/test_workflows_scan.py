"""Relaxed dihedral scans of butane with GFN2-xTB (tblite): both back-ends, resuming, 2D, outputs."""

from __future__ import annotations

import json
from typing import Optional

import numpy as np
import pytest
from ase.build import molecule
from tblite.ase import TBLite
from threadpoolctl import threadpool_limits

from mlcalc.units import EV_TO_KCAL_MOL
from mlcalc.workflows.errors import CheckpointError
from mlcalc.workflows.internal import Dihedral
from mlcalc.workflows.scan import relaxed_scan

CCCC = Dihedral(0, 1, 2, 3)


@pytest.fixture(autouse=True, scope="module")
def one_openmp_thread():
    """tblite's OpenMP reductions sum in a thread-dependent order (forces differ by ~1e-15 between
    runs with two threads); one thread makes a killed-and-resumed scan bit-identical to a full one."""
    with threadpool_limits(1, user_api="openmp"):
        yield


class StatelessGFN2(TBLite):
    """GFN2-xTB whose result depends on the structure alone, which a bit-identical resume needs.

    tblite starts each SCF from the previous structure's wavefunction, and ``cache_api=False`` does not
    stop it with ASE >= 3.27 (ASE no longer calls ``reset()`` on a change, the hook tblite clears it
    in): the energy then depends on the order of evaluation by ~1e-8 eV. Resetting before each
    calculation restores the superposition-of-atomic-densities start every time.
    """

    def __init__(self, **kwargs):
        super().__init__(method="GFN2-xTB", verbosity=0, cache_api=False, **kwargs)

    def calculate(self, *args, **kwargs):
        self.reset()
        super().calculate(*args, **kwargs)


def gfn2(**kwargs) -> TBLite:
    return StatelessGFN2(**kwargs)


@pytest.mark.slow
def test_butane_scan_same_profile_from_both_backends_with_exact_dihedrals(tmp_path):
    atoms = molecule("trans-butane")
    scans = {
        backend: relaxed_scan(atoms, gfn2(), CCCC, backend=backend, fmax=2e-3, output=tmp_path / backend)
        for backend in ("ase", "scipy")
    }
    for backend, scan in scans.items():
        assert scan.converged, (backend, scan.unconverged)
        targets = scan.targets[:, 0]
        assert sorted(targets) == list(np.arange(0.0, 360.0, 10.0))  # the default grid, every point
        measured = np.array([p.values[0] for p in scan.points])
        assert np.abs(measured - targets).max() < 1e-6 * 180 / np.pi  # 1e-6 rad
        assert max(p.max_constraint_error for p in scan.points) < 1e-6
        for image, target in zip(scan.images, targets):  # the written structures hold the same dihedral
            assert abs((image.get_dihedral(0, 1, 2, 3) - target + 180) % 360 - 180) < 1e-6
    ase, scipy = (scans[b].energies * EV_TO_KCAL_MOL for b in ("ase", "scipy"))
    # fmax 2e-3 eV/Å leaves an energy error ~F²/2k ≪ 0.01 kcal/mol at each point (measured 3e-4)
    assert np.abs(ase - scipy).max() < 0.01
    relative = scans["ase"].relative_energies * EV_TO_KCAL_MOL
    by_angle = dict(zip(scans["ase"].targets[:, 0], relative))
    # GFN2-xTB butane: anti is the minimum, syn (0°) the highest point, gauche at ±60°
    assert by_angle[180.0] == pytest.approx(0.0, abs=1e-12)
    assert max(relative) == by_angle[0.0] and by_angle[0.0] > by_angle[120.0] > by_angle[60.0] > 0
    for name in ("scan.csv", "scan.json", "scan.extxyz", "scan.png"):
        assert (tmp_path / "ase" / name).stat().st_size > 0


class Killed(Exception):
    pass


class Counting(StatelessGFN2):
    """GFN2-xTB that counts its evaluations and, given ``die_after``, dies on the next one, like a job
    killed mid-scan. One class for both roles: a resumed run must use the calculator of the first."""

    def __init__(self, die_after: Optional[int] = None):
        super().__init__()
        self.calls = 0
        self.die_after = die_after

    def calculate(self, *args, **kwargs):
        if self.die_after is not None and self.calls >= self.die_after:
            raise Killed
        self.calls += 1
        super().calculate(*args, **kwargs)


@pytest.mark.parametrize("backend", ["ase", "scipy"])
def test_killed_scan_resumes_to_the_identical_table(tmp_path, backend):
    atoms = molecule("trans-butane")
    grid = [180.0, 150.0, 120.0, 90.0]
    options = dict(grid=grid, backend=backend, fmax=5e-3, both_directions=True)
    full = Counting()
    relaxed_scan(atoms, full, CCCC, output=tmp_path / "full", **options)
    with pytest.raises(Killed):
        relaxed_scan(atoms, Counting(die_after=full.calls // 2), CCCC, output=tmp_path / "killed", **options)
    checkpoint = tmp_path / "killed" / "checkpoint"
    completed = len(list(checkpoint.glob("step-*.json")))
    assert 0 < completed < 2 * len(grid)
    partial = (tmp_path / "killed" / "scan.csv").read_text().splitlines()
    assert len(partial) == completed + 1  # the table of the completed points, written atomically
    resumed = Counting()
    result = relaxed_scan(atoms, resumed, CCCC, output=tmp_path / "killed", **options)
    assert resumed.calls < full.calls  # the completed points were not recomputed
    assert len(result.points) == 2 * len(grid)
    for name in ("scan.csv", "scan.json"):
        assert (tmp_path / "killed" / name).read_text() == (tmp_path / "full" / name).read_text()
    # a checkpoint of another run is refused, not silently mixed in
    with pytest.raises(CheckpointError, match="checkpoint of a different run"):
        relaxed_scan(atoms, gfn2(), CCCC, output=tmp_path / "killed", **{**options, "fmax": 1e-3})


def test_a_failing_point_stops_the_scan_with_the_points_before_it(tmp_path):
    atoms = molecule("trans-butane")
    options = dict(grid=[180.0, 150.0, 120.0, 90.0], fmax=5e-3)
    reference = relaxed_scan(atoms, gfn2(), CCCC, **options)
    first_two = Counting()
    relaxed_scan(atoms, first_two, CCCC, **{**options, "grid": options["grid"][:2]})
    with pytest.raises(Killed) as raised:  # the default: the calculator's own error, with a note
        relaxed_scan(atoms, Counting(die_after=first_two.calls), CCCC, **options)
    assert raised.value.__notes__ == [
        "relaxed_scan stopped at point 3 of 4 (dihedral 0-1-2-3 = 120°), with 2 points done: "
        'on_error="stop" returns them, output= keeps them on disk'
    ]
    fails_at_third = Counting(die_after=first_two.calls)
    stopped = relaxed_scan(atoms, fails_at_third, CCCC, on_error="stop", output=tmp_path, **options)
    assert not stopped.complete and stopped.stopped.startswith("point 3 of 4 (dihedral 0-1-2-3 = 120°): Killed")
    assert [p.energy for p in stopped.points] == [p.energy for p in reference.points[:2]]
    assert reference.complete and reference.stopped is None
    written = json.loads((tmp_path / "scan.json").read_text())
    assert written["stopped"] == stopped.stopped and len(written["points"]) == 2
    nothing = relaxed_scan(atoms, Counting(die_after=0), CCCC, on_error="stop", output=tmp_path / "none", **options)
    assert nothing.points == [] and nothing.targets.shape == (0, 1)
    with pytest.raises(ValueError, match='on_error must be "raise" or "stop"'):
        relaxed_scan(atoms, gfn2(), CCCC, on_error="skip", **options)


def test_a_point_whose_tables_cannot_be_written_is_the_point_that_failed(tmp_path, monkeypatch):
    from mlcalc.workflows.scan import ScanResult

    writes = []
    original = ScanResult.write_tables

    def disk_full_at_second_point(self, directory):
        writes.append(len(self.points))
        if len(self.points) == 2:
            raise OSError("No space left on device")
        original(self, directory)

    monkeypatch.setattr(ScanResult, "write_tables", disk_full_at_second_point)
    options = dict(grid=[180.0, 150.0, 120.0], fmax=5e-3, output=tmp_path, on_error="stop")
    stopped = relaxed_scan(molecule("trans-butane"), gfn2(), CCCC, **options)
    assert len(stopped.points) == 1 and stopped.stopped.startswith("point 2 of 3 (dihedral 0-1-2-3 = 150°): OSError")
    assert writes[:2] == [1, 2]


def test_two_dimensional_scan_holds_both_dihedrals(tmp_path):
    atoms = molecule("trans-butane")
    methyl = Dihedral(5, 0, 1, 2)  # a methyl H rotor next to the backbone
    grid = [[180.0, 120.0], [atoms.get_dihedral(5, 0, 1, 2), atoms.get_dihedral(5, 0, 1, 2) + 30.0]]
    scan = relaxed_scan(atoms, gfn2(), [CCCC, methyl], grid=grid, fmax=5e-3, output=tmp_path)
    assert scan.converged and len(scan.points) == 4
    for point in scan.points:
        for value, target in zip(point.values, (point.step.targets[0], point.step.targets[1])):
            assert abs((value - target + 180) % 360 - 180) < 1e-6
    data = json.loads((tmp_path / "scan.json").read_text())
    assert data["coordinates"] == ["dihedral 0-1-2-3", "dihedral 5-0-1-2"]
    assert (tmp_path / "scan.png").stat().st_size > 0


def test_a_scan_directory_refuses_another_potential_or_dtype(tmp_path):
    """Two MLCalculators look alike by class: the checkpoint records the potential file's SHA-256 and dtype,
    so a rerun in the same directory with another file or dtype is refused, naming both."""
    import mlcalc

    atoms = molecule("trans-butane")
    options = dict(grid=[180.0, 170.0], fmax=0.05, output=tmp_path / "scan")
    relaxed_scan(atoms, mlcalc.MLCalculator("demo", device="cpu"), CCCC, **options)
    again = relaxed_scan(atoms, mlcalc.MLCalculator("demo", device="cpu"), CCCC, **options)  # same: resumes
    assert len(again.points) == 2
    lj = tmp_path / "lj.pt"
    mlcalc.export(mlcalc.models.LennardJones(sigma=3.4, epsilon=0.01, cutoff=6.0), lj)
    demo_sha = mlcalc.load("demo").fingerprint()["sha256"]
    lj_sha = mlcalc.load(lj).fingerprint()["sha256"]
    with pytest.raises(CheckpointError, match=rf"calculator: .*{demo_sha[:20]}.* in the checkpoint, .*{lj_sha[:20]}"):
        relaxed_scan(atoms, mlcalc.MLCalculator(lj, device="cpu"), CCCC, **options)
    with pytest.raises(CheckpointError, match=r'"dtype": "float64".* in the checkpoint, .*"dtype": "float32".* now'):
        relaxed_scan(atoms, mlcalc.MLCalculator("demo", device="cpu", dtype="float32"), CCCC, **options)
