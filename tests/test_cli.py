"""The README's main job and the examples run as written."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.io import read

import mlcalc
from mlcalc.cli import main
from mlcalc.units import EV_TO_KCAL_MOL

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_demo_runs_both_engines_and_they_agree(tmp_path, capsys):
    """The main job cut short (4 scan points, 3 NEB images, 0.1 ps of MD): its printed numbers are those of its
    tables, GFN2-xTB's own butane profile has its known shape, the water box stays water and OpenMM and ASE give
    the same energy for the same file; then ``--argon``, the Lennard-Jones check against ASE's own LJ."""
    output = tmp_path / "demo"
    short = ["--scan-step", "90", "--neb-images", "3", "--md-ps", "0.1"]
    assert main(["demo", "--output", str(output), *short]) == 0
    out, err = capsys.readouterr()
    # each stage is announced when it starts and shows live progress bars (stderr) while it runs
    for stage in ("[1/3]", "[2/3]", "[3/3]"):
        assert out.count(stage) == 2, stage
    assert "relaxed scan" in err and "NEB" in err and "water NPT" in err
    assert re.search(r"^report: (.+)$", out, re.M).group(1) == str((output / "report.md").resolve())
    summary = json.loads((output / "summary.json").read_text())

    scan = list(csv.DictReader((output / "butane-torsion.csv").open()))
    assert [float(row["angle_deg"]) for row in scan] == [180.0, 90.0, 0.0, -90.0]
    demo, xtb = (np.array([float(row[key]) for row in scan]) for key in ("demo_kcal_mol", "gfn2_xtb_relaxed_kcal_mol"))
    rmse = np.sqrt(np.mean((demo - xtb) ** 2))
    # the CSV holds 10 significant digits: ≤ 2.5e-10 kcal/mol per value of ≤ 5 kcal/mol, ≤ 5e-10 in the RMSE
    assert summary["butane_torsion"]["rmse_vs_gfn2_xtb_relaxed_scan_kcal_mol"] == pytest.approx(rmse, abs=1e-9)
    printed = float(re.search(r"RMSE ([0-9.]+) kcal/mol vs GFN2-xTB's relaxed scan", out).group(1))
    assert printed == pytest.approx(rmse, abs=0.006)
    assert xtb.argmax() == 2 and 3.0 < xtb[2] < 8.0  # eclipsed 0° highest (GFN2-xTB: 5.0 kcal/mol)
    assert all(row["demo_converged"] == row["gfn2_xtb_converged"] == "true" for row in scan)

    # the demo is a committee: each relative energy carries the spread of the members' relative energies,
    # recomputed here from the scan's structures through the ASE calculator (scan.extxyz keeps positions to
    # 1e-8 Å: ≤ 1e-8 eV per member energy, ≤ 1e-7 relative in spreads of ≥ 0.01 kcal/mol)
    calc = mlcalc.MLCalculator("demo")
    members = np.array(
        [calc.get_property("energy_committee", a) for a in read(output / "torsion/demo/scan.extxyz", ":")]
    )
    spread = (members - members[0]).std(axis=1) * EV_TO_KCAL_MOL
    listed = np.array([float(row["demo_uncertainty_kcal_mol"]) for row in scan])
    assert listed[0] == 0.0 and np.all(listed[1:] > 0) and listed == pytest.approx(spread, rel=1e-6)
    printed = float(re.search(r"committee spread of the demo's relative energies at most ([0-9.]+)", out).group(1))
    assert printed == pytest.approx(spread.max(), abs=0.006)

    band = list(csv.DictReader((output / "butane-neb.csv").open()))
    assert len(band) == 3 + 2
    neb = summary["butane_neb"]
    top = max(range(len(band)), key=lambda n: float(band[n]["demo_kcal_mol"]))
    assert neb["barrier_demo_uncertainty_kcal_mol"] == pytest.approx(float(band[top]["demo_uncertainty_kcal_mol"]))
    printed = re.search(r"barrier ([0-9.]+) ± ([0-9.]+) kcal/mol", out)
    assert float(printed.group(1)) == pytest.approx(neb["barrier_demo_kcal_mol"], abs=0.006)
    assert float(printed.group(2)) == pytest.approx(neb["barrier_demo_uncertainty_kcal_mol"], abs=0.006)
    assert "## Reliability: committee spread" in (output / "report.md").read_text()
    assert neb["barrier_demo_kcal_mol"] == pytest.approx(max(float(row["demo_kcal_mol"]) for row in band), rel=1e-9)
    assert 1.5 < neb["barrier_gfn2_xtb_neb_kcal_mol"] < 4.0  # measured 2.6
    assert abs(float(band[-1]["demo_dihedral_deg"])) == pytest.approx(65.0, abs=10.0)  # the band ends gauche

    water = summary["water_npt"]
    assert water["waters"] == 32 and len((output / "water-npt.csv").read_text().splitlines()) == 1 + 2
    assert water["relative_difference"] < 1e-12
    assert 0.7 < water["mean_density_second_half_g_cm3"] < 1.2 and water["longest_OH_A"] < 1.3
    # the report says whether the density settled, and puts experiment beside it and beside the barrier
    report = (output / "report.md").read_text()
    settled = "equilibrated" if water["density_equilibrated"] else "NOT equilibrated"
    assert f"g/cm³ ({settled}; experiment 0.997)" in report
    assert "experimental ≈ 3.3 kcal/mol" in report
    relative = float(re.search(r"relative difference ([0-9.e+-]+)", out).group(1))
    assert relative < 1e-12
    for part in ("butane_torsion", "butane_neb", "water_npt"):
        assert 0.0 < summary[part]["non_hierarchicality_max"] < 1.0
    for name in ("report.md", "butane-torsion.png", "butane-neb.png", "water-npt.png", "torsion/gfn2-xtb/scan.csv"):
        assert (output / name).stat().st_size > 0

    assert main(["demo", "--argon", "--output", str(tmp_path / "argon"), "--steps", "200"]) == 0
    out = capsys.readouterr().out
    assert "converged=True" in out
    differences = [float(x) for x in re.findall(r"\|Δ\w+\| = ([0-9.e+-]+)", out)]
    assert len(differences) == 3 and max(differences) < 1e-12
    relative = float(re.search(r"relative difference ([0-9.e+-]+)", out).group(1))
    assert relative < 1e-12
    for name in ("argon-lj.pt", "argon-fcc-relaxed.extxyz", "argon-npt.csv", "argon-liquid.pdb"):
        assert (tmp_path / "argon" / name).stat().st_size > 0


@pytest.mark.slow
def test_examples_run(tmp_path, monkeypatch):
    """Every ``examples/*.py`` with ``simulation.step(1000)`` cut to 200 steps, and every ``examples/*.toml`` through
    ``mlcalc md`` cut to 0.02 ps per stage. ``examples/tools/`` (scripts that rebuild the examples' inputs, with
    RDKit) is not run: they would rewrite the shipped files."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"}
    outputs = {}
    for script in sorted((ROOT / "examples").glob("*.py")):
        copy = script.parent / f".test-{script.name}"  # beside the example: it reads its neighbours
        copy.write_text(script.read_text().replace("simulation.step(1000)", "simulation.step(200)"))
        try:
            result = subprocess.run([sys.executable, str(copy)], cwd=tmp_path, env=env, capture_output=True, text=True)
        finally:
            copy.unlink()
        assert result.returncode == 0, f"{script.name}:\n{result.stderr}"
        outputs[script.name] = result.stdout
    assert re.search(r"a = 5\.2\d+ Å", outputs["ase_relax.py"])
    assert len(re.findall(r"converged=True", outputs["butane_scan.py"])) == 7  # 180° to -180° by 60°
    assert re.search(r"driven path \d+\.\d+ kcal/mol, climbing-image NEB \d+\.\d+ kcal/mol", outputs["butane_scan.py"])
    assert len((tmp_path / "npt.csv").read_text().splitlines()) == 1 + 2  # header and reports at steps 100, 200
    assert re.search(r"^33 ML atoms \(.+\), \d{3,} atoms in all$", outputs["trialanine_mlmm.py"], re.M)
    density = float(re.search(r"density after 200 steps: ([0-9.]+) g/cm\^3", outputs["trialanine_mlmm.py"]).group(1))
    assert 0.85 < density < 1.05  # Modeller's TIP3P box around the peptide (measured 0.89), 0.2 ps into NPT
    assert len((tmp_path / "trialanine-npt.csv").read_text().splitlines()) == 1 + 2
    monkeypatch.chdir(ROOT)  # the configs name their structure relative to the repository root
    for config in sorted((ROOT / "examples").glob("*.toml")):
        output = tmp_path / config.stem
        short = ["--nvt", "0.02", "--npt", "0.02", "--production", "0.02", "--trajectory-interval", "0.01"]
        assert main(["md", "--config", str(config), "--output", str(output), *short, "--state-interval", "0.01"]) == 0
        assert (output / "final.pdb").stat().st_size > 0 and len((output / "state.csv").read_text().splitlines()) > 1
