"""The schnetpack adapter: exported SchNet/PaiNN models equal SchNetPack's own ASE calculator and run
without SchNetPack."""

from __future__ import annotations

import importlib.metadata
import importlib.util

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule
from family_checks import assert_openmm_parity, assert_parity, evaluate, run_without
from family_structures import HCNO_STRUCTURES as STRUCTURES
from family_structures import diamond, molecular_box

if importlib.util.find_spec("schnetpack") is None:
    pytest.skip("schnetpack is not installed", allow_module_level=True)
mlcalc_schnetpack = pytest.importorskip("mlcalc_schnetpack")
spk = mlcalc_schnetpack.import_schnetpack()  # a plain `import schnetpack` fails with torch 2.9
pytestmark = pytest.mark.filterwarnings("ignore:Environment variable TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")

import mlcalc  # noqa: E402
import mlcalc.plugins  # noqa: E402
from mlcalc.cli import main  # noqa: E402
from mlcalc.errors import FamilyVersionError, PluginError, UnsupportedElementError  # noqa: E402

# float64: SchNetPack's own representation modules on the same pairs; only the order of the pair and
# atom sums differs. Relative to the energy's magnitude and to the largest force/stress component.
# Measured: energy <= 3e-16, forces <= 2e-15, stress <= 3e-14.
FLOAT64 = {"energy": 1e-13, "forces": 1e-11, "stress": 1e-11}
# float32 export against SchNetPack in float64. Measured: energy <= 1e-7, forces <= 3e-6, stress <= 7e-6.
FLOAT32 = {"energy": 1e-6, "forces": 3e-5, "stress": 5e-5}

SPECIES = "H,C,N,O"
CUTOFF = 5.0


def representation(kind: str) -> torch.nn.Module:
    """SchNet (Gaussian basis, cosine cutoff, shifted softplus) or PaiNN (Bessel basis, mollifier
    cutoff, SiLU), 2 interactions, 16 features."""
    if kind == "SchNet":
        basis = spk.nn.GaussianRBF(n_rbf=12, cutoff=CUTOFF)
        return spk.representation.SchNet(16, 2, radial_basis=basis, cutoff_fn=spk.nn.CosineCutoff(CUTOFF))
    basis = spk.nn.BesselRBF(n_rbf=12, cutoff=CUTOFF)
    return spk.representation.PaiNN(16, 2, radial_basis=basis, cutoff_fn=spk.nn.MollifierCutoff(CUTOFF))


def offsets(mean: float = -60.0, atomrefs: bool = True) -> torch.nn.Module:
    """AddOffsets of the energy: a mean per atom and random single-atom references (kcal/mol)."""
    module = spk.transform.AddOffsets("energy", add_mean=True, add_atomrefs=atomrefs)
    module.mean = torch.tensor([mean])  # set as the datamodule would: the constructor cannot take tensors
    if atomrefs:
        module.atomref = -100 * torch.rand(100)
    return module


def nnp(kind: str, seed: int = 0, outputs: tuple = (), postprocessors: tuple = ()) -> torch.nn.Module:
    """A NeuralNetworkPotential as SchNetPack's md17 recipe builds it, with a ScaleProperty of the
    energy before the forces, random weights, float32 (SchNetPack's training dtype)."""
    torch.manual_seed(seed)
    return spk.model.NeuralNetworkPotential(
        representation=representation(kind),
        input_modules=[spk.atomistic.PairwiseDistances()],
        output_modules=[
            spk.atomistic.Atomwise(n_in=16, output_key="energy"),
            spk.transform.ScaleProperty("energy", scale=torch.tensor([3.0])),
            spk.atomistic.Forces(energy_key="energy", force_key="forces"),
            *outputs,
        ],
        postprocessors=list(postprocessors) or [spk.transform.CastTo64(), offsets()],
    )


def reference_calculator(path):
    """SchNetPack's own ASE calculator (kcal/mol, Å), in float64, with stress."""
    from schnetpack.interfaces import SpkCalculator

    # SpkCalculator reads the file with torch.load's default, weights_only=True since torch 2.6, which
    # refuses pickled models: let it load the model, as SchNetPack expects.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
        return SpkCalculator(
            str(path),
            neighbor_list=spk.transform.ASENeighborList(cutoff=CUTOFF),
            energy_unit="kcal/mol",
            dtype=torch.float64,
            stress_key="stress",
        )


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """``exported(kind)``: a model saved with torch.save, SchNetPack's calculator for that file and the
    file's float64 export (each built once per module)."""
    cache = {}

    def build(kind: str):
        if kind not in cache:
            folder = tmp_path_factory.mktemp("schnetpack")
            torch.save(nnp(kind), folder / "best_model")
            path = folder / "spk-mlcalc.pt"
            metadata = mlcalc.plugins.export(
                "schnetpack", folder / "best_model", path, dtype="float64", species=SPECIES
            )
            cache[kind] = folder / "best_model", reference_calculator(folder / "best_model"), path, metadata
        return cache[kind]

    return build


@pytest.fixture(params=["SchNet", "PaiNN"])
def model(request, exported):
    return exported(request.param)


@pytest.fixture
def schnet(exported):
    return exported("SchNet")


@pytest.mark.parametrize("name", sorted(STRUCTURES))
def test_equals_schnetpack_ase_calculator(model, name):
    _, reference, path, _ = model
    assert_parity(STRUCTURES[name](), mlcalc.MLCalculator(str(path)), reference, FLOAT64)


def test_float32_export_within_float32_round_off(model, tmp_path):
    source, reference, _, _ = model
    path = tmp_path / "spk32.pt"
    metadata = mlcalc.plugins.export("schnetpack", source, path, species=SPECIES)
    assert metadata.dtype == "float32"  # the model's own dtype
    for name in ("organic cluster", "sheared diamond"):
        assert_parity(STRUCTURES[name](), mlcalc.MLCalculator(str(path)), reference, FLOAT32)


def test_metadata(model):
    _, _, _, metadata = model
    assert metadata.species == (1, 6, 7, 8)
    assert (metadata.cutoff, metadata.length_unit, metadata.energy_unit) == (CUTOFF, "angstrom", "kcal/mol")
    assert metadata.extra["family"] == "schnetpack"
    assert metadata.extra["family_version"] == importlib.metadata.version("schnetpack")
    assert metadata.extra["representation"] in ("SchNet", "PaiNN")


@pytest.mark.parametrize("name", ["organic cluster", "sheared diamond"])
def test_openmm_torchforce_equals_mlcalculator(schnet, name):
    _, _, path, _ = schnet
    assert_openmm_parity(path, STRUCTURES[name]())


def test_runs_where_schnetpack_is_not_installed(exported, tmp_path):
    _, _, path, _ = exported("PaiNN")
    atoms = molecular_box()
    found = run_without(path, atoms, ["schnetpack", "mlcalc_schnetpack"], tmp_path)
    expected = evaluate(atoms, mlcalc.MLCalculator(str(path)))
    assert abs(found["energy"] - expected["energy"]) <= 1e-12 * abs(expected["energy"])
    assert np.abs(found["forces"] - expected["forces"]).max() <= 1e-12 * np.abs(expected["forces"]).max()


def test_command_line_export(schnet, tmp_path, capsys):
    source, reference, _, _ = schnet
    out = tmp_path / "out.pt"
    command = ["export", "--from", "schnetpack", str(source), str(out), "--dtype", "float64"]
    assert main(command + ["--option", f"species={SPECIES}", "--energy-unit", "kcal/mol"]) == 0
    assert "species H C N O, kcal/mol, float64" in capsys.readouterr().out
    assert_parity(diamond(), mlcalc.MLCalculator(str(out)), reference, FLOAT64)


def test_unsupported_element_is_refused(schnet):
    _, _, path, _ = schnet
    atoms = molecule("CH3CH2OH") + Atoms("S", positions=[[4.0, 0, 0]])
    atoms.calc = mlcalc.MLCalculator(str(path))
    with pytest.raises(UnsupportedElementError, match="S \\(Z=16\\)"):
        atoms.get_potential_energy()


def test_species_must_be_named(tmp_path):
    model = nnp("SchNet")
    with pytest.raises(PluginError, match="do not record the elements.*--option species=H,C,O"):
        mlcalc.plugins.export("schnetpack", model, tmp_path / "x.pt")
    with pytest.raises(PluginError, match="'Xx' is not an element"):
        mlcalc.plugins.export("schnetpack", model, tmp_path / "x.pt", species="H,Xx")
    assert not (tmp_path / "x.pt").exists()


def test_unsupported_models_are_refused(tmp_path):
    def refused(model, match):
        with pytest.raises(PluginError, match=match):
            mlcalc.plugins.export("schnetpack", model, tmp_path / "x.pt", species=SPECIES)

    so3net = nnp("SchNet")
    so3net.representation = spk.representation.SO3net(
        16, 1, lmax=1, radial_basis=spk.nn.GaussianRBF(4, CUTOFF), cutoff_fn=spk.nn.CosineCutoff(CUTOFF)
    )
    refused(so3net, "SchNet and PaiNN representations; this model uses SO3net")
    refused(nnp("SchNet", outputs=(spk.atomistic.DipoleMoment(16),)), "also has the output module DipoleMoment")
    refused(
        nnp("SchNet", postprocessors=(spk.transform.ScaleProperty("energy", scale=torch.tensor([2.0])),)),
        "scales SchNetPack's energy but not its forces",
    )
    intensive = spk.transform.AddOffsets("energy", add_mean=True, is_extensive=False)
    refused(nnp("SchNet", postprocessors=(intensive,)), "is_extensive=False")
    refused(mlcalc.models.LennardJones(3.4, 0.01, 8.0), "NeuralNetworkPotential models.*another family")
    torch.save(nnp("SchNet").state_dict(), tmp_path / "state.pt")
    refused(tmp_path / "state.pt", "holds a dictionary")
    (tmp_path / "text.pt").write_text("not a checkpoint")
    refused(tmp_path / "text.pt", "could not be read with torch.load")
    assert not (tmp_path / "x.pt").exists()


def test_untested_schnetpack_version_is_refused(tmp_path, monkeypatch):
    installed = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda p: "2.1.1" if p == "schnetpack" else installed(p))
    with pytest.raises(FamilyVersionError, match=r"schnetpack 2\.1\.1 is installed.*schnetpack>=2\.0\.4,<2\.1"):
        mlcalc.plugins.export("schnetpack", nnp("SchNet"), tmp_path / "x.pt", species=SPECIES)
