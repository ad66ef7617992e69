"""The torchani adapter: exported ANI models equal TorchANI's own ASE calculator and run without TorchANI."""

from __future__ import annotations

import importlib.metadata
import os

import family_structures
import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule
from family_checks import assert_openmm_parity, assert_parity, evaluate, run_without

os.environ.setdefault("TORCHANI_NO_WARN_EXTENSIONS", "1")  # no CUDA extensions here, by design
torchani = pytest.importorskip("torchani")
pytest.importorskip("mlcalc_torchani")

import mlcalc  # noqa: E402
import mlcalc.plugins  # noqa: E402
from mlcalc.cli import main  # noqa: E402
from mlcalc.errors import FamilyVersionError, PluginError, UnsupportedElementError  # noqa: E402

# float64 export and TorchANI compute the same sums in a different order: round-off only. The energy is
# compared with its magnitude (~1e4 eV here: float64 spacing ~2e-12 eV), forces and stress with their
# largest component. Measured: energy <= 1e-16, forces <= 2e-14, stress <= 2e-14.
FLOAT64 = {"energy": 1e-13, "forces": 1e-11, "stress": 1e-11}
# float32: ~1e-7 relative per operation through 7 network layers and AEV sums of ~100 terms.
# Measured: energy <= 2e-7, forces <= 5e-6, stress <= 2e-5 (relative to the largest component).
FLOAT32 = {"energy": 1e-6, "forces": 3e-5, "stress": 1e-4}


def ani2x_architecture(seed: int = 0, ensemble_size: int = 2) -> torch.nn.Module:
    """ANI-2x's architecture (7 elements, cosine cutoffs 5.1/3.5 Å, 1008 AEV features), random weights."""
    from torchani.arch import Assembler
    from torchani.utils import SYMBOLS_2X

    torch.manual_seed(seed)
    assembler = Assembler()
    assembler.set_symbols(SYMBOLS_2X)
    assembler.set_global_cutoff_fn("cosine")
    assembler.set_aev_computer(radial="ani2x", angular="ani2x", strategy="pyaev")
    assembler.set_atomic_networks(ctor="ani2x")
    assembler.set_neighborlist("all_pairs")
    assembler.set_gsaes_as_self_energies("wb97x-631gd")
    return assembler.assemble(ensemble_size).double()


def organic_cluster() -> Atoms:
    """Five molecules holding all seven ANI-2x elements, close enough for intermolecular angular terms."""
    return family_structures.organic_cluster(["CH3CH2OH", "CH3Cl", "NH3", "HF", "SH2"], spacing=3.2, stagger=0.7)


def molecular_box() -> Atoms:
    """The organic cluster in a 17.5 × 9 × 9.5 Å box, unwrapped."""
    return family_structures.molecular_box(organic_cluster(), [17.5, 9.0, 9.5])


STRUCTURES = family_structures.structure_set(organic_cluster, molecular_box)
diamond = family_structures.diamond


@pytest.fixture(scope="module")
def ani(tmp_path_factory):
    """A random ANI-2x-architecture ensemble saved with torch.save, and its export (float64)."""
    folder = tmp_path_factory.mktemp("torchani")
    model = ani2x_architecture()
    torch.save(model, folder / "ani.pt")
    path = folder / "ani-mlcalc.pt"
    metadata = mlcalc.plugins.export("torchani", folder / "ani.pt", path)
    return model, path, metadata


@pytest.mark.parametrize("name", sorted(STRUCTURES))
def test_equals_torchani_ase_calculator(ani, name):
    model, path, _ = ani
    assert_parity(STRUCTURES[name](), mlcalc.MLCalculator(str(path)), model.ase(), FLOAT64)


def test_float32_export_within_float32_round_off(ani, tmp_path):
    model, _, _ = ani
    path = tmp_path / "ani32.pt"
    metadata = mlcalc.plugins.export("torchani", model, path, dtype="float32")
    assert metadata.dtype == "float32"
    for name in ("organic cluster", "sheared diamond"):
        assert_parity(STRUCTURES[name](), mlcalc.MLCalculator(str(path)), model.ase(), FLOAT32)


def test_metadata(ani):
    _, _, metadata = ani
    assert metadata.species == (1, 6, 7, 8, 9, 16, 17)
    assert (metadata.cutoff, metadata.length_unit, metadata.energy_unit) == (5.1, "angstrom", "hartree")
    assert metadata.extra["family"] == "torchani" and metadata.extra["family_version"] == torchani.__version__
    assert metadata.extra["angular_cutoff"] == 3.5 and metadata.extra["ensemble_size"] == 2


@pytest.mark.parametrize("name", ["organic cluster", "sheared diamond"])
def test_openmm_torchforce_equals_mlcalculator(ani, name):
    _, path, _ = ani
    assert_openmm_parity(path, STRUCTURES[name]())


def test_runs_where_torchani_is_not_installed(ani, tmp_path):
    _, path, _ = ani
    atoms = molecular_box()
    found = run_without(path, atoms, ["torchani", "mlcalc_torchani"], tmp_path)
    expected = evaluate(atoms, mlcalc.MLCalculator(str(path)))
    assert abs(found["energy"] - expected["energy"]) <= 1e-12 * abs(expected["energy"])
    assert np.abs(found["forces"] - expected["forces"]).max() <= 1e-12 * np.abs(expected["forces"]).max()


def test_command_line_export(ani, tmp_path, capsys):
    model, _, _ = ani
    torch.save(model, tmp_path / "ani.pt")
    assert main(["export", "--from", "torchani", str(tmp_path / "ani.pt"), str(tmp_path / "out.pt")]) == 0
    assert "species H C N O F S Cl" in capsys.readouterr().out
    assert_parity(diamond(), mlcalc.MLCalculator(str(tmp_path / "out.pt")), model.ase(), FLOAT64)


def test_unsupported_element_is_refused(ani):
    _, path, _ = ani
    atoms = molecule("CH3CH2OH") + Atoms("Ar", positions=[[4.0, 0, 0]])
    atoms.calc = mlcalc.MLCalculator(str(path))
    with pytest.raises(UnsupportedElementError, match="Ar \\(Z=18\\)"):
        atoms.get_potential_energy()


def test_model_of_another_family_is_refused(tmp_path):
    with pytest.raises(PluginError, match="torchani.arch.ANI models.*another family"):
        mlcalc.plugins.export("torchani", mlcalc.models.LennardJones(3.4, 0.01, 8.0), tmp_path / "x.pt")
    torch.save(ani2x_architecture(ensemble_size=1).state_dict(), tmp_path / "state.pt")
    with pytest.raises(PluginError, match="holds a dictionary"):
        mlcalc.plugins.export("torchani", tmp_path / "state.pt", tmp_path / "x.pt")
    (tmp_path / "text.pt").write_text("not a checkpoint")
    with pytest.raises(PluginError, match="could not be read with torch.load"):
        mlcalc.plugins.export("torchani", tmp_path / "text.pt", tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()


def test_model_with_extra_potentials_is_refused(tmp_path):
    from torchani.arch import simple_ani

    model = simple_ani(("H", "C"), "wb97x-631gd", repulsion=True, strategy="pyaev")
    with pytest.raises(PluginError, match=r"repulsion_xtb.*set_enabled"):
        mlcalc.plugins.export("torchani", model, tmp_path / "x.pt")


def test_untested_torchani_version_is_refused(ani, tmp_path, monkeypatch):
    model, _, _ = ani
    installed = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda p: "3.0.0" if p == "torchani" else installed(p))
    with pytest.raises(FamilyVersionError, match=r"torchani 3\.0\.0 is installed.*torchani>=2\.9,<2\.10"):
        mlcalc.plugins.export("torchani", model, tmp_path / "x.pt")
    with pytest.warns(UserWarning, match="converting anyway"):
        metadata = mlcalc.plugins.export("torchani", model, tmp_path / "x.pt", allow_untested_version=True)
    assert metadata.extra["family_version"] == "3.0.0"


def test_ensemble_is_a_committee_with_torchanis_spread(ani):
    """An ensemble exports as a committee: its energy spread is the standard deviation (ddof 0) of TorchANI's
    own member energies (``ensemble_values=True``) and its force spread that of TorchANI's ``members_forces``."""
    from ase.units import Hartree

    model, path, metadata = ani
    assert metadata.committee == len(model) == 2
    atoms = organic_cluster()
    calc = mlcalc.MLCalculator(str(path))
    atoms.calc = calc
    species = torch.tensor(atoms.numbers).unsqueeze(0)
    coordinates = torch.tensor(atoms.positions).unsqueeze(0)
    members = model((species, coordinates), ensemble_values=True).energies.detach().numpy().ravel() * Hartree
    forces = model.members_forces((species, coordinates)).forces.detach().numpy()[:, 0] * Hartree  # [M, N, 3]
    assert calc.get_property("energy_uncertainty", atoms) == pytest.approx(np.std(members), rel=1e-10)
    np.testing.assert_allclose(calc.get_property("energy_committee", atoms), members, rtol=1e-13)
    spread = np.sqrt(np.var(forces, axis=0).sum(axis=1))
    np.testing.assert_allclose(calc.get_property("forces_uncertainty", atoms), spread, rtol=1e-9, atol=1e-12)


def test_ensemble_mean_only_on_request(ani, tmp_path):
    model, _, _ = ani
    metadata = mlcalc.plugins.export("torchani", model, tmp_path / "mean.pt", committee=False)
    assert metadata.committee == 0
    atoms = organic_cluster()
    atoms.calc = mlcalc.MLCalculator(str(tmp_path / "mean.pt"))
    assert "energy_uncertainty" not in atoms.calc.implemented_properties
    assert_parity(atoms, atoms.calc, model.ase(), FLOAT64)


def test_committee_option_from_the_command_line(ani, tmp_path, capsys):
    model, _, _ = ani
    torch.save(model, tmp_path / "ani.pt")
    for value, members in (("false", 0), ("yes", 2)):
        out = tmp_path / f"{value}.pt"
        assert (
            main(["export", "--from", "torchani", str(tmp_path / "ani.pt"), str(out), "--option", f"committee={value}"])
            == 0
        )
        assert mlcalc.load(out).metadata.committee == members
    with pytest.raises(PluginError, match="option committee is true or false"):
        mlcalc.plugins.export("torchani", model, tmp_path / "x.pt", committee="maybe")
