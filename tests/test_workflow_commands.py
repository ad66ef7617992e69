"""``mlcalc opt``, ``scan``, ``path`` and ``neb`` as a user runs them, and their errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule
from ase.io import read, write

from mlcalc.cli import main
from mlcalc.workflows.errors import StructureFileError


@pytest.fixture(scope="module")
def butane(tmp_path_factory):
    path = tmp_path_factory.mktemp("inputs") / "butane.xyz"
    write(path, molecule("trans-butane"))
    return path


def test_opt_holds_a_dihedral_exactly(butane, tmp_path, capsys):
    args = ["opt", str(butane), "--potential", "demo", "--dihedral", "0,1,2,3=75", "--fmax", "0.01"]
    args += ["-o", str(tmp_path)]
    code = main(args)
    assert code == 0, capsys.readouterr().out
    result = read(tmp_path / "optimized.extxyz")
    assert abs(result.get_dihedral(0, 1, 2, 3) - 75.0) < 1e-6
    summary = json.loads((tmp_path / "optimized.json").read_text())
    assert summary["converged"] and summary["fmax_eV_per_A"] <= 0.01
    assert summary["constraints"] == ["dihedral 0-1-2-3"]
    assert "converged" in capsys.readouterr().out


def test_opt_that_cannot_converge_exits_with_2(butane, tmp_path, capsys):
    assert main(["opt", str(butane), "--potential", "demo", "--steps", "1", "--fmax", "1e-6", "-o", str(tmp_path)]) == 3
    assert "did not converge" in capsys.readouterr().out
    assert json.loads((tmp_path / "optimized.json").read_text())["converged"] is False


def test_scan_writes_the_grid_and_resumes(butane, tmp_path, capsys):
    args = ["scan", str(butane), "--potential", "demo", "--dihedral", "0,1,2,3", "--start", "180", "--stop", "120"]
    args += ["--step", "-30", "--fmax", "0.01", "--quiet", "-o", str(tmp_path)]
    assert main(args) == 0
    table = json.loads((tmp_path / "scan.json").read_text())
    assert [p["angle_deg"] for p in table["points"]] == [180.0, 150.0, 120.0]
    for image, target in zip(read(tmp_path / "scan.extxyz", ":"), (180.0, 150.0, 120.0)):
        assert abs((image.get_dihedral(0, 1, 2, 3) - target + 180) % 360 - 180) < 1e-6
    first = (tmp_path / "scan.csv").read_text()
    assert main(args) == 0  # everything is in the checkpoint: the same table again
    assert (tmp_path / "scan.csv").read_text() == first
    assert "3 points" in capsys.readouterr().out


def test_path_and_neb_from_its_band(butane, tmp_path, capsys):
    gauche = tmp_path / "gauche.xyz"
    assert main(["opt", str(butane), "--potential", "demo", "--dihedral", "0,1,2,3=70", "-o", str(tmp_path / "g")]) == 0
    write(gauche, read(tmp_path / "g" / "optimized.extxyz"))
    path_args = ["path", str(butane), str(gauche), "--potential", "demo", "--guide", "0,1,2,3", "--intermediates", "3"]
    assert main([*path_args, "--backend", "ase", "--quiet", "-o", str(tmp_path / "path")]) == 0
    summary = json.loads((tmp_path / "path" / "path.json").read_text())
    assert len(summary["images"]) == 5 and summary["barrier_eV"] >= 0
    band = tmp_path / "path" / "path.extxyz"
    assert main(["neb", "--band", str(band), "--potential", "demo", "--fmax", "0.1", "-o", str(tmp_path / "neb")]) == 0
    neb = json.loads((tmp_path / "neb" / "neb.json").read_text())
    assert neb["calculator_calls"] <= neb["band_evaluations"]  # one batched model call per band evaluation
    out = capsys.readouterr().out
    assert "barrier" in out and "model calls" in out
    assert "FIRE:" in out  # the optimiser's log, one line per step, unless --quiet


@pytest.mark.parametrize(
    "options, message",
    [
        (["--dihedral", "0,1,1,3"], "repeats an atom"),
        (["--dihedral", "0,1,2"], "needs 4 atom indices"),
        (["--dihedral", "a,b,c,d"], "cannot read --dihedral"),
        (["--dihedral", "0,1,2,-3"], "cannot be negative"),
    ],
)
def test_malformed_coordinates_are_usage_errors(butane, tmp_path, capsys, options, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["opt", str(butane), "--potential", "demo", *options, "-o", str(tmp_path)])
    assert exit_info.value.code == 2  # argparse's usage error
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "options, message",
    [
        (["--dihedral", "0,1,2,99"], "atom index 99 is out of range for a structure of 14 atoms; indices are 0-based"),
        (["--angle", "0,1,2=179.9"], "within"),
        (["--dihedral", "0,1,2,3=60", "--dihedral", "3,2,1,0"], "given twice"),
    ],
)
def test_coordinates_that_do_not_fit_the_structure_are_named(butane, tmp_path, capsys, options, message):
    assert main(["opt", str(butane), "--potential", "demo", *options, "-o", str(tmp_path)]) == 1
    assert message in capsys.readouterr().err


def test_a_scan_that_fails_says_where(tmp_path, capsys):
    """The demo knows no sulfur: the first point's evaluation fails, and the error says which point."""
    structure = tmp_path / "h2s2.xyz"
    write(structure, Atoms("HSSH", positions=[[-0.9, 1.0, 0.3], [0.0, 1.0, -0.5], [0.0, -1.0, -0.5], [0.9, -1.0, 0.3]]))
    assert main(["scan", str(structure), "--potential", "demo", "--dihedral", "0,1,2,3", "-o", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "mlcalc scan: error:" in err and "does not support S (Z=16)" in err
    assert "\n  relaxed_scan stopped at point 1 of 36 (dihedral 0-1-2-3 = " in err and "with 0 points done" in err


def test_collinear_atoms_make_a_dihedral_undefined(tmp_path, capsys):
    structure = tmp_path / "co2-water.xyz"
    co2 = molecule("CO2")  # O=C=O is linear
    water = molecule("H2O")
    water.translate([0.0, 3.0, 0.0])
    write(structure, co2 + water)
    carbon = int(np.flatnonzero(co2.numbers == 6)[0])
    oxygens = [int(i) for i in np.flatnonzero(co2.numbers == 8)]
    dihedral = f"{oxygens[0]},{carbon},{oxygens[1]},{len(co2)}"
    assert main(["scan", str(structure), "--potential", "demo", "--dihedral", dihedral, "-o", str(tmp_path)]) == 1
    assert "collinear" in capsys.readouterr().err


def test_unreadable_and_missing_files(tmp_path, capsys):
    bad = tmp_path / "bad.xyz"
    bad.write_text("this is not a structure\n")
    assert main(["opt", str(bad), "--potential", "demo", "-o", str(tmp_path)]) == 1
    assert "cannot read" in capsys.readouterr().err
    assert main(["opt", str(tmp_path / "missing.xyz"), "--potential", "demo", "-o", str(tmp_path)]) == 1
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize(
    "options, message",
    [
        (["--step", "0"], "--step must be a non-zero angle in degrees, got 0"),
        (["--step", "nan"], "--step must be a non-zero angle in degrees, got nan"),
        (["--step", "1e-9"], "makes a grid of 3.6e"),
        (["--start", "0", "--stop", "90", "--step", "0.001"], "makes a grid of 9e"),
        (["--start", "0"], "give both --start and --stop"),
    ],
)
def test_impossible_scan_grids_are_refused(butane, tmp_path, capsys, options, message):
    """--step 0 raised a bare ZeroDivisionError and --step 1e-9 built a billion-point grid (and hung)."""
    args = ["scan", str(butane), "--potential", "demo", "--dihedral", "0,1,2,3", *options, "-o", str(tmp_path)]
    assert main(args) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "checkpoint").exists()


def test_command_line_conventions(tmp_path, capsys):
    """--model is the old spelling of --potential (with a notice); -T shows the traceback; exit 3 means
    "did not converge", 1 an explained error, 2 a usage error."""
    butane = tmp_path / "butane.xyz"
    write(butane, molecule("trans-butane"))
    assert main(["opt", str(butane), "--model", "demo", "--fmax", "0.05", "-o", str(tmp_path / "a")]) == 0
    assert "--model is now --potential" in capsys.readouterr().err
    missing = ["opt", str(tmp_path / "missing.xyz"), "--potential", "demo", "-o", str(tmp_path / "b")]
    assert main(missing) == 1
    with pytest.raises(StructureFileError, match="does not exist"):
        main(["-T", *missing])
    with pytest.raises(SystemExit) as usage:
        main(["opt", str(butane)])
    assert usage.value.code == 2
