"""The README's main job and the examples run as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mlcalc.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_demo_runs_both_engines_and_they_agree(tmp_path, capsys):
    assert main(["demo", "--output", str(tmp_path), "--steps", "200"]) == 0
    out = capsys.readouterr().out
    assert "converged=True" in out
    differences = [float(x) for x in re.findall(r"\|Δ\w+\| = ([0-9.e+-]+)", out)]
    assert len(differences) == 3 and max(differences) < 1e-12
    relative = float(re.search(r"relative difference ([0-9.e+-]+)", out).group(1))
    assert relative < 1e-12
    for name in ("argon-lj.pt", "argon-fcc-relaxed.extxyz", "argon-npt.csv", "argon-liquid.pdb"):
        assert (tmp_path / name).stat().st_size > 0


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
