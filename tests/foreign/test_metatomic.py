"""metatomic models (random toy models written against metatomic's ``ModelInterface`` and saved by its own
``AtomisticModel.save``, see make_metatomic.py), imported by ``mlcalc.foreign`` and checked against
metatomic's own ASE calculator (``metatomic_ase.MetatomicCalculator``) on a bulk alloy, a triclinic cell
narrower than twice the cutoff, a slab with vacuum, a molecule in a box and a free molecule; in float64
and float32, in other units (nm, kJ/mol) and with total energies only; several structures in one call;
then in OpenMM (both forces) and in a fresh process where metatomic's Python packages cannot be imported.
Bad files are refused.

Runs in the "sevennet" stack of ``scripts/test-stacks``; skipped where metatomic-torch is not installed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings
import zipfile
from pathlib import Path

import numpy as np
import openmm
import pytest
from ase import Atoms
from foreign_structures import structures
from openmm import unit
from openmm_implementations import IMPLEMENTATIONS
from test_openmm import topology_of

import mlcalc
import mlcalc.foreign
from mlcalc.errors import FamilyVersionError, PluginError
from mlcalc.openmm import create_system
from mlcalc.units import EV_PER_KJ_PER_MOL

metatomic_ase = pytest.importorskip("metatomic_ase", reason="metatomic-torch / metatomic-ase are not installed")
make_metatomic = pytest.importorskip("make_metatomic", reason="metatomic-torch is not installed")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

KJ_PER_NM = unit.kilojoule_per_mole / unit.nanometer
#: name: make_metatomic.save options. The default model has a full list (4 Å, strict) and a half list
#: (3 Å, not strict): mlcalc's graph (4 Å, full) gives both.
MODELS = {
    "float64": {},
    "nm kJ/mol totals": {"length_unit": "nm", "energy_unit": "kJ/mol", "per_atom": False},
    "float32": {"dtype": "float32"},
}
# Largest difference relative to the largest reference value of each property. float64: both sides
# evaluate the same operations on the same pairs in another order (measured ≤ 1.2e-15, stress; also in nm
# and kJ/mol); float32: the same in single precision (measured: energies 2e-7, forces 1.4e-6, stress 6e-7).
FLOAT64 = {"energy": 1e-12, "energies": 1e-12, "forces": 1e-12, "stress": 1e-12}
FLOAT32 = {"energy": 1e-5, "energies": 1e-5, "forces": 1e-5, "stress": 1e-5}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """Each model: (metatomic's saved file, the mlcalc file imported from it)."""
    folder = tmp_path_factory.mktemp("metatomic")
    out = {}
    for name, options in MODELS.items():
        stem = name.replace(" ", "-").replace("/", "")
        source = save(folder / f"{stem}-source.pt", **options)
        imported = folder / f"{stem}.pt"
        metadata = mlcalc.foreign.import_torchscript(source, imported)
        assert metadata.extra["foreign_format"] == "metatomic" and metadata.extra["family_version"] == "0.1.19"
        assert metadata.cutoff == pytest.approx(4.0, rel=1e-14) and list(metadata.species) == [1, 6, 8, 13, 29]
        assert metadata.dtype == options.get("dtype", "float64") and metadata.energy_unit == "eV"
        assert metadata.extra["neighbor_lists"] == "full, 4 Å, strict; half, 3 Å"
        assert metadata.authors == ("mlcalc tests",) and metadata.references == ("https://example.org/toy",)
        out[name] = source, imported
    return out


def save(path: Path, **options) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return make_metatomic.save(path, **options)


def reference(path: Path):
    return metatomic_ase.MetatomicCalculator(str(path), device="cpu")


def evaluate(atoms: Atoms, calc, energies: bool = True) -> dict[str, np.ndarray]:
    atoms = atoms.copy()
    atoms.calc = calc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # metatomic's "stress ... not periodic in all directions" (the slab)
        out = {"energy": np.array(atoms.get_potential_energy()), "forces": atoms.get_forces()}
        if energies:
            out["energies"] = atoms.get_potential_energies()
        if atoms.cell.volume > 0:  # the slab's too: both give the virial over the cell's volume
            out["stress"] = atoms.get_stress()
    return out


def differences(found: dict, expected: dict) -> dict[str, float]:
    return {
        key: float(np.abs(found[key] - expected[key]).max() / max(np.abs(expected[key]).max(), 1e-30))
        for key in expected
    }


@pytest.mark.parametrize("model", list(MODELS))
def test_imported_file_equals_metatomics_own_calculator(models, model):
    source, imported = models[model]
    theirs = reference(source)
    ours = mlcalc.MLCalculator(str(imported), device="cpu")
    tolerance = FLOAT32 if MODELS[model].get("dtype") == "float32" else FLOAT64
    per_atom = MODELS[model].get("per_atom", True)  # metatomic's calculator gives no energies for totals only
    for name, atoms in structures().items():
        measured = differences(evaluate(atoms, ours, per_atom), evaluate(atoms, theirs, per_atom))
        for key, value in measured.items():
            assert value <= tolerance[key], f"{name}, {key}: relative difference {value:.3g} > {tolerance[key]:.3g}"
    if not per_atom:  # each structure's total, spread evenly over its atoms
        atoms = structures()["bulk alloy"]
        found = evaluate(atoms, ours)
        assert np.allclose(found["energies"], found["energy"] / len(atoms), rtol=1e-14, atol=0)


def test_structures_in_one_call_equal_one_at_a_time(models):
    _, imported = models["float64"]
    potential = mlcalc.load(imported, device="cpu")
    images = list(structures().values())
    together = potential.evaluate(images)
    for atoms, found in zip(images, together):
        alone = potential.evaluate(atoms)[0]
        for key in ("energy", "energies", "forces"):
            assert np.abs(np.asarray(found[key]) - np.asarray(alone[key])).max() <= 1e-12 * np.abs(alone[key]).max()


def test_an_energy_variant_is_imported_on_request(models, tmp_path):
    source, imported = models["float64"]
    metadata = mlcalc.foreign.import_torchscript(source, tmp_path / "scaled.pt", options={"variant": "scaled"})
    assert metadata.extra["energy_output"] == "energy/scaled"
    atoms = structures()["small triclinic"]
    scaled = evaluate(atoms, mlcalc.MLCalculator(str(tmp_path / "scaled.pt"), device="cpu"))
    plain = evaluate(atoms, mlcalc.MLCalculator(str(imported), device="cpu"))
    assert max(differences({k: v / 2 for k, v in scaled.items()}, plain).values()) <= 1e-14
    with pytest.raises(PluginError, match=r"no 'energy/nope' output; its energy outputs are .*variant=NAME"):
        mlcalc.foreign.import_torchscript(source, tmp_path / "x.pt", options={"variant": "nope"})


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_openmm_forces_equal_metatomics_calculator(models, implementation):
    """Energy (kJ/mol) and forces (kJ/mol/nm) in OpenMM are metatomic's own, converted."""
    source, imported = models["nm kJ/mol totals"]
    atoms = structures()["bulk alloy"]
    system = create_system(topology_of(atoms), imported, implementation=implementation, remove_cm_motion=False)
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(atoms.positions / 10)
    state = context.getState(getEnergy=True, getForces=True)
    expected = evaluate(atoms, reference(source), energies=False)
    energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    assert energy == pytest.approx(float(expected["energy"]) / EV_PER_KJ_PER_MOL, rel=1e-10)
    forces = state.getForces(asNumpy=True).value_in_unit(KJ_PER_NM)
    expected_forces = expected["forces"] / EV_PER_KJ_PER_MOL * 10
    assert np.abs(forces - expected_forces).max() <= 1e-10 * np.abs(expected_forces).max()


_FRESH = """
import importlib.abc, importlib.metadata, json, sys
sys.path.insert(0, {root!r})
HIDDEN = ["metatomic", "metatomic_ase", "metatensor", "metatensor_torch", "vesin", "vesin_torch"]

class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {{name!r}} (hidden by the test)", name=name)
        return None

sys.meta_path.insert(0, Hide())
if {absent!r}:  # as if metatomic-torch and metatensor-torch were not installed
    distribution = importlib.metadata.distribution
    def hidden(name):
        if name in ("metatomic-torch", "metatensor-torch"):
            raise importlib.metadata.PackageNotFoundError(name)
        return distribution(name)
    importlib.metadata.distribution = hidden
from ase.io import read
import mlcalc
atoms = read({structure!r})
try:
    atoms.calc = mlcalc.MLCalculator({path!r}, device="cpu")
    out = {{"energy": atoms.get_potential_energy(), "forces": atoms.get_forces().tolist()}}
except Exception as exc:
    out = {{"error": type(exc).__name__ + ": " + str(exc)}}
out["leaked"] = sorted(m for m in sys.modules if m.split(".")[0] in HIDDEN)
print(json.dumps(out))
"""


def run_fresh(path: Path, atoms: Atoms, tmp_path: Path, absent: bool = False) -> dict:
    """Energy and forces of the file (or the error) in a fresh Python process where metatomic's, metatensor's
    and vesin's Python packages cannot be imported (``absent``: nor metatomic-torch's distribution found)."""
    structure = tmp_path / "structure.traj"
    atoms.write(structure)
    root = str(Path(mlcalc.__file__).parents[1])  # this very mlcalc
    code = textwrap.dedent(_FRESH).format(root=root, absent=absent, structure=str(structure), path=str(path))
    result = subprocess.run([sys.executable, "-s", "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_imported_file_runs_where_metatomics_python_packages_cannot_be_imported(models, tmp_path):
    _, imported = models["float64"]
    atoms = structures()["bulk alloy"]
    found = run_fresh(imported, atoms, tmp_path)
    assert "error" not in found, found["error"]
    assert found["leaked"] == []
    expected = evaluate(atoms, mlcalc.MLCalculator(str(imported), device="cpu"))
    assert abs(found["energy"] - expected["energy"]) <= 1e-12 * abs(expected["energy"])
    assert np.abs(np.array(found["forces"]) - expected["forces"]).max() <= 1e-12 * np.abs(expected["forces"]).max()


def test_loading_without_metatomics_libraries_names_the_fix(models, tmp_path):
    _, imported = models["float64"]
    found = run_fresh(imported, structures()["molecule"], tmp_path, absent=True)
    assert found["error"].startswith("PluginError: ")
    assert "holds a metatomic model" in found["error"] and "`pip install metatomic-torch==0.1.19`" in found["error"]


def edited(source: Path, target: Path, **changes) -> Path:
    """A copy of the archive ``source`` with its extra files changed (a value of ``None`` removes one)."""
    with zipfile.ZipFile(source) as archive, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as copy:
        prefix = archive.namelist()[0].split("/")[0]
        for item in archive.infolist():
            name = item.filename.split("/extra/", 1)[1] if "/extra/" in item.filename else None
            if name not in changes:
                copy.writestr(item, archive.read(item))
        for name, value in changes.items():
            if value is not None:
                copy.writestr(f"{prefix}/extra/{name}", value)
    return target


def test_bad_files_are_refused(models, tmp_path):
    source, _ = models["float64"]
    out = tmp_path / "out.pt"
    importing = mlcalc.foreign.import_torchscript
    with pytest.raises(PluginError, match=r"lacks the metadata \['model-metadata'\].*save it again with metatomic"):
        importing(edited(source, tmp_path / "a.pt", **{"model-metadata": None}), out)
    with pytest.raises(PluginError, match=r"contradicts itself: extensions must be a JSON list.*found list and list"):
        importing(edited(source, tmp_path / "b.pt", **{"model-metadata": "[1]"}), out)
    with pytest.raises(PluginError, match=r"extensions or model-metadata are not JSON"):
        importing(edited(source, tmp_path / "c.pt", extensions="featomic"), out)
    extension = json.dumps([{"name": "featomic_torch", "path": "/x/libfeatomic_torch.so"}])
    with pytest.raises(PluginError, match=r"needs the TorchScript extensions \['featomic_torch'\]"):
        importing(edited(source, tmp_path / "d.pt", extensions=extension), out)
    legacy = {"metatomic-version": None, "metatensor-version": "0.5.0"}
    with pytest.raises(PluginError, match=r"metatensor-torch 0\.5\.0's atomistic module.*supported: models saved by"):
        importing(edited(source, tmp_path / "e.pt", **legacy), out)
    newer = edited(source, tmp_path / "f.pt", **{"metatomic-version": "0.2.0"})
    with pytest.raises(FamilyVersionError, match=r"metatomic 0\.2\.0.*checked with metatomic >=0\.1\.19,<0\.2"):
        importing(newer, out)
    with pytest.warns(UserWarning, match="importing anyway"):
        importing(newer, tmp_path / "newer.pt", allow_untested_version=True)
    with pytest.raises(PluginError, match=r"float64 file.*mlcalc does not convert a foreign file to float32"):
        importing(source, out, dtype="float32")
    with pytest.raises(PluginError, match=r"is not a NequIP file.*leave out the kind"):
        importing(source, out, "nequip-torchscript")
    with pytest.raises(PluginError, match=r"the metatomic import has no option\(s\) \['head'\]; its options: variant"):
        importing(source, out, options={"head": "x"})
    assert not out.exists()


@pytest.mark.parametrize(
    "options, problem",
    [
        ({"needs_masses": True}, r"requests the inputs \['mass'\], which mlcalc does not give"),
        ({"devices": ["cuda"]}, r"runs on \['cuda'\] only; mlcalc checks every file it writes on the CPU"),
        ({"outputs": ["mlcalc::charges"]}, r"no energy output \(its outputs: \['mlcalc::charges'\]\)"),
        ({"energy_unit": ""}, r"'energy' output's unit is not set \(empty\).*supported: any unit metatomic"),
        ({"types": [1, 6, 300]}, r"atomic_types \[1, 6, 300\] are not distinct atomic numbers"),
        ({"interaction_range": 2.0}, r"contradicts itself: its interaction_range 2\.0 angstrom is shorter than"),
    ],
)
def test_models_mlcalc_cannot_honour_are_refused(tmp_path, options, problem):
    source = save(tmp_path / "source.pt", **options)
    with pytest.raises(PluginError, match=problem):
        mlcalc.foreign.import_torchscript(source, tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()


@pytest.mark.cuda
def test_a_model_for_the_cpu_only_says_so_when_run_on_cuda(tmp_path):
    source = save(tmp_path / "source.pt", devices=["cpu"])
    metadata = mlcalc.foreign.import_torchscript(source, tmp_path / "out.pt")
    assert metadata.extra["supported_devices"] == "cpu"
    atoms = structures()["molecule"]
    atoms.calc = mlcalc.MLCalculator(str(tmp_path / "out.pt"), device="cuda")
    with pytest.raises(Exception, match="this metatomic model runs on cpu only, not on cuda"):
        atoms.get_potential_energy()
