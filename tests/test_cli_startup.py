"""``mlcalc --help``, every ``mlcalc COMMAND --help`` and ``mlcalc --version`` load no heavy package
(torch, OpenMM, MDAnalysis, matplotlib, SciPy, ASE): numpy at most."""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys

import pytest

import mlcalc
import mlcalc.commands
from mlcalc.cli import main

HEAVY = ("torch", "openmm", "MDAnalysis", "matplotlib", "scipy", "ase")

#: Runs the command line in a fresh interpreter and prints the heavy modules it loaded, as JSON.
SCRIPT = """
import json, sys
from mlcalc.cli import main
for argv in {argvs!r}:
    try:
        main(argv)
    except SystemExit:
        pass
print(json.dumps(sorted(name for name in {heavy!r} if name in sys.modules)))
"""


def loaded_by(*argvs: list[str]) -> tuple[list[str], str]:
    """The heavy modules a fresh interpreter holds after ``main(argv)`` for each ``argv``, and its stdout."""
    script = SCRIPT.format(argvs=list(argvs), heavy=HEAVY)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    *output, loaded = done.stdout.splitlines()
    return json.loads(loaded), "\n".join(output)


def command_names() -> list[str]:
    """Every module of mlcalc.commands that registers a command (a new file is a new command)."""
    infos = pkgutil.iter_modules(mlcalc.commands.__path__)
    return sorted(i.name for i in infos if hasattr(importlib.import_module(f"mlcalc.commands.{i.name}"), "register"))


def test_every_command_is_found():
    assert {"analyze", "demo", "export", "info", "md", "neb", "opt", "path", "scan"} <= set(command_names())


def test_help_of_every_command_loads_no_heavy_package():
    loaded, output = loaded_by(["--help"], *[[name, "--help"] for name in command_names()])
    assert loaded == []
    for name in command_names():
        assert f"usage: mlcalc {name}" in output


def test_version_names_mlcalc_and_loads_no_heavy_package():
    loaded, output = loaded_by(["--version"])
    assert loaded == []
    assert output.startswith(f"mlcalc {mlcalc.__version__} (Python ")


def test_importing_the_submodule_export_keeps_the_function():
    code = "import mlcalc.export, mlcalc; print(mlcalc.export.__module__, type(mlcalc.export).__name__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["mlcalc.export", "function"]


def test_lazy_package_keeps_its_public_names():
    for name in mlcalc.__all__:
        assert getattr(mlcalc, name) is not None
    assert callable(mlcalc.export) and mlcalc.export.__module__ == "mlcalc.export"
    assert set(mlcalc.__all__) <= set(dir(mlcalc))
    from mlcalc import MLCalculator, Potential, load, models  # noqa: F401

    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        mlcalc.nonexistent  # noqa: B018


def test_errors_load_no_heavy_package():
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import json, sys, mlcalc.errors; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(loaded) == []


def test_analyze_default_selection_is_the_report_s():
    pytest.importorskip("MDAnalysis")
    from mlcalc.analysis.report import DEFAULT_SELECTION
    from mlcalc.commands.analyze import DEFAULT_SELECTION as COMMAND_DEFAULT

    assert COMMAND_DEFAULT == DEFAULT_SELECTION


def test_bad_thread_count_is_a_usage_error(capsys):
    with pytest.raises(SystemExit):
        main(["--threads", "0", "info", "demo"])
    assert "--threads: must be a positive whole number, got 0" in capsys.readouterr().err
