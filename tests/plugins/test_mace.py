"""The mace adapter: exported MACE models equal mace's own ASE calculator and run without mace or e3nn."""

from __future__ import annotations

import importlib.metadata

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule
from family_checks import assert_openmm_parity, assert_parity, evaluate, run_without
from family_structures import HCNO_STRUCTURES as STRUCTURES
from family_structures import diamond, molecular_box

# Importing mace sets TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 for the whole process (e3nn 0.4 needs it to
# load its own constants with torch >= 2.6).
mace = pytest.importorskip("mace")
pytest.importorskip("mlcalc_mace")
# e3nn's tracing and TorchScript warn about their own code; mace about missing GPU kernels.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::torch.jit.TracerWarning")

import mlcalc  # noqa: E402
import mlcalc.plugins  # noqa: E402
from mlcalc.cli import main  # noqa: E402
from mlcalc.errors import FamilyVersionError, PluginError, UnsupportedElementError  # noqa: E402

# float64: MACE's own modules on the same edges; only the order of the message and energy sums
# differs. Relative to the energy's magnitude and to the largest force/stress component.
# Measured: energy <= 3e-16, forces <= 3e-14, stress <= 3e-14, per-atom energies <= 3e-16.
FLOAT64 = {"energy": 1e-13, "forces": 1e-11, "stress": 1e-11}
# float32 export against mace in float64: tensor products and radial MLPs in float32, forces from
# cancelling sums. Measured: energy <= 8e-8, forces <= 3e-5, stress <= 4e-5.
FLOAT32 = {"energy": 1e-6, "forces": 1e-4, "stress": 1e-4}

SPECIES = [1, 6, 7, 8]
E0S = [-13.6, -1029.0, -1484.0, -2041.0]  # eV, the size of DFT isolated-atom energies


def mace_model(kind: str, seed: int = 0) -> torch.nn.Module:
    """A small random MACE (H, C, N, O; 2 interactions; r_max 5 Å) in float64.

    ``"scaleshift"``: ScaleShiftMACE with residual interactions, ZBL repulsion, max_ell 2, correlation 3
    (the foundation models' architecture). ``"multihead"``: plain MACE with non-residual first layer,
    Agnesi distance transform, two read-out heads with their own E0s.
    """
    from e3nn import o3
    from mace import modules

    torch.manual_seed(seed)
    common = dict(
        r_max=5.0,
        num_bessel=6,
        num_polynomial_cutoff=5,
        num_interactions=2,
        num_elements=len(SPECIES),
        atomic_numbers=SPECIES,
        MLP_irreps=o3.Irreps("8x0e"),
        gate=torch.nn.functional.silu,
        avg_num_neighbors=6.0,
        radial_MLP=[16, 16],
    )
    residual = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
    if kind == "scaleshift":
        model = modules.ScaleShiftMACE(
            atomic_inter_scale=1.7,
            atomic_inter_shift=-0.2,
            max_ell=2,
            correlation=3,
            hidden_irreps=o3.Irreps("8x0e+8x1o"),
            interaction_cls=residual,
            interaction_cls_first=residual,
            atomic_energies=np.array(E0S),
            pair_repulsion=True,
            **common,
        )
    else:
        model = modules.MACE(
            max_ell=1,
            correlation=2,
            hidden_irreps=o3.Irreps("8x0e+8x1o"),
            interaction_cls=residual,
            interaction_cls_first=modules.interaction_classes["RealAgnosticInteractionBlock"],
            atomic_energies=np.array([E0S, [e + 1.0 for e in E0S]]),
            heads=["pt_head", "Default"],
            distance_transform="Agnesi",
            **common,
        )
    return model.double().eval()


def reference_calculator(model: torch.nn.Module, head: str | None = None):
    """mace's own ASE calculator, in float64."""
    from mace.calculators import MACECalculator

    kwargs = {} if head is None else {"head": head}
    return MACECalculator(models=model, default_dtype="float64", **kwargs)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """``exported(kind)``: a MACE model saved with torch.save and loaded back, mace's calculator for it
    and the model's export (each built once per module)."""
    cache = {}

    def build(kind: str):
        if kind not in cache:
            folder = tmp_path_factory.mktemp("mace")
            torch.save(mace_model(kind), folder / "model.model")
            loaded = torch.load(folder / "model.model", weights_only=False)
            path = folder / "mace-mlcalc.pt"
            metadata = mlcalc.plugins.export("mace", folder / "model.model", path)
            cache[kind] = loaded, reference_calculator(loaded), path, metadata
        return cache[kind]

    return build


@pytest.fixture(params=["scaleshift", "multihead"])
def model(request, exported):
    return exported(request.param)


@pytest.fixture
def scaleshift(exported):
    return exported("scaleshift")


@pytest.mark.parametrize("name", sorted(STRUCTURES))
def test_equals_mace_calculator(model, name):
    _, reference, path, _ = model
    assert_parity(STRUCTURES[name](), mlcalc.MLCalculator(str(path)), reference, FLOAT64)


def test_per_atom_energies_are_node_energies_with_e0s(model):
    _, reference, path, _ = model
    atoms = molecular_box()
    found = atoms.copy()
    found.calc = mlcalc.MLCalculator(str(path))
    atoms.calc = reference
    expected = atoms.get_potential_energies()
    assert np.abs(found.get_potential_energies() - expected).max() <= 1e-13 * np.abs(expected).max()


def test_float32_export_within_float32_round_off(scaleshift, tmp_path):
    model, reference, _, _ = scaleshift
    modules_before = [type(m) for m in model.modules()]
    path = tmp_path / "mace32.pt"
    metadata = mlcalc.plugins.export("mace", model, path, dtype="float32")
    assert metadata.dtype == "float32"
    # The adapter converts and compiles a copy: the user's model (here also the reference's) is unchanged.
    assert [type(m) for m in model.modules()] == modules_before
    assert {p.dtype for p in model.parameters()} == {torch.float64}
    for name in ("organic cluster", "sheared diamond"):
        assert_parity(STRUCTURES[name](), mlcalc.MLCalculator(str(path)), reference, FLOAT32)


def test_metadata(model):
    _, _, _, metadata = model
    assert metadata.species == tuple(SPECIES)
    assert (metadata.cutoff, metadata.length_unit, metadata.energy_unit) == (5.0, "angstrom", "eV")
    assert metadata.extra["family"] == "mace" and metadata.extra["family_version"] == mace.__version__
    assert metadata.extra["head"] == "Default"


def test_other_head_on_the_command_line(exported, tmp_path, capsys):
    """A multi-head model exports the head asked for, with that head's E0s and read-out."""
    model, _, _, _ = exported("multihead")
    torch.save(model, tmp_path / "my.model")
    out = tmp_path / "pt_head.pt"
    assert main(["export", "--from", "mace", str(tmp_path / "my.model"), str(out), "--option", "head=pt_head"]) == 0
    assert "species H C N O" in capsys.readouterr().out
    assert mlcalc.load(str(out)).metadata.extra["head"] == "pt_head"
    assert_parity(diamond(), mlcalc.MLCalculator(str(out)), reference_calculator(model, "pt_head"), FLOAT64)
    with pytest.raises(PluginError, match=r"no head 'nope'.*\['pt_head', 'Default'\]"):
        mlcalc.plugins.export("mace", model, tmp_path / "x.pt", head="nope")


def test_openmm_torchforce_equals_mlcalculator(scaleshift):
    """One periodic structure: OpenMM's first evaluations of a MACE graph take seconds (TorchScript
    optimises it); open structures take the same path through the TorchForce."""
    _, _, path, _ = scaleshift
    assert_openmm_parity(path, diamond())


def test_runs_where_mace_and_e3nn_are_not_installed(scaleshift, tmp_path):
    _, _, path, _ = scaleshift
    atoms = molecular_box()
    found = run_without(path, atoms, ["mace", "e3nn", "mlcalc_mace"], tmp_path)
    expected = evaluate(atoms, mlcalc.MLCalculator(str(path)))
    assert abs(found["energy"] - expected["energy"]) <= 1e-12 * abs(expected["energy"])
    assert np.abs(found["forces"] - expected["forces"]).max() <= 1e-12 * np.abs(expected["forces"]).max()


def test_unsupported_element_is_refused(scaleshift):
    _, _, path, _ = scaleshift
    atoms = molecule("CH3CH2OH") + Atoms("S", positions=[[4.0, 0, 0]])
    atoms.calc = mlcalc.MLCalculator(str(path))
    with pytest.raises(UnsupportedElementError, match="S \\(Z=16\\)"):
        atoms.get_potential_energy()


def test_models_of_other_kinds_and_families_are_refused(scaleshift, tmp_path):
    model, _, _, _ = scaleshift
    with pytest.raises(PluginError, match="MACE and ScaleShiftMACE.*another family"):
        mlcalc.plugins.export("mace", mlcalc.models.LennardJones(3.4, 0.01, 8.0), tmp_path / "x.pt")
    torch.save(model.state_dict(), tmp_path / "state.pt")
    with pytest.raises(PluginError, match="holds a dictionary"):
        mlcalc.plugins.export("mace", tmp_path / "state.pt", tmp_path / "x.pt")
    (tmp_path / "text.model").write_text("not a checkpoint")
    with pytest.raises(PluginError, match="could not be read with torch.load"):
        mlcalc.plugins.export("mace", tmp_path / "text.model", tmp_path / "x.pt")
    with pytest.raises(PluginError, match="TorchScript-compiled MACE"):
        mlcalc.plugins.export("mace", torch.jit.script(mlcalc.models.LennardJones(3.4, 0.01, 8.0)), tmp_path / "x.pt")
    with pytest.raises(PluginError, match="no option"):
        mlcalc.plugins.export("mace", model, tmp_path / "x.pt", species="H,C")
    assert not (tmp_path / "x.pt").exists()


def test_untested_mace_version_is_refused(scaleshift, tmp_path, monkeypatch):
    model, _, _, _ = scaleshift
    installed = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda p: "0.3.17" if p == "mace-torch" else installed(p))
    with pytest.raises(FamilyVersionError, match=r"mace-torch 0\.3\.17 is installed.*mace-torch==0\.3\.16"):
        mlcalc.plugins.export("mace", model, tmp_path / "x.pt")


def test_export_raises_no_torchscript_deprecation_notice(tmp_path):
    """The adapter's e3nn compilation traces, saves and loads TorchScript for mlcalc: torch >= 2.11's notice
    about it is silenced there, as at mlcalc's own calls (the user's model building still warns)."""
    import re
    import warnings

    from mlcalc.torchscript import DEPRECATION_MESSAGE

    torch.save(mace_model("scaleshift"), tmp_path / "model.model")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mlcalc.plugins.export("mace", tmp_path / "model.model", tmp_path / "out.pt")
    assert [str(w.message) for w in caught if re.search(DEPRECATION_MESSAGE, str(w.message))] == []
