"""The hippynn adapter: exported HIP-NN models equal hippynn's own ASE calculator and run without hippynn."""

from __future__ import annotations

import importlib.metadata
import os

import numpy as np
import pytest
import torch
from ase import Atoms, units
from ase.build import molecule
from family_checks import assert_openmm_parity, assert_parity, evaluate, run_without
from family_structures import HCNO_STRUCTURES as STRUCTURES
from family_structures import diamond, molecular_box

# hippynn would otherwise try to compile its custom CUDA/numba kernels at import; the pure-PyTorch
# kernels are hippynn's reference implementation.
os.environ.setdefault("HIPPYNN_USE_CUSTOM_KERNELS", "False")
hippynn = pytest.importorskip("hippynn")
# hippynn warns about distances below its sensitivities' range; random test weights put atoms there.
pytestmark = pytest.mark.filterwarnings("ignore:Provided distances are underneath sensitivity range")
pytest.importorskip("mlcalc_hippynn")

import mlcalc  # noqa: E402
import mlcalc.plugins  # noqa: E402
from mlcalc.cli import main  # noqa: E402
from mlcalc.errors import FamilyVersionError, PluginError, UnsupportedElementError  # noqa: E402

# float64: the same operations in the same order as hippynn, on pair lists in a different order.
# Relative to the energy's magnitude and to the largest force/stress component.
# Measured: energy <= 3e-16, forces <= 2e-15, stress <= 1e-15.
FLOAT64 = {"energy": 1e-12, "forces": 1e-11, "stress": 1e-11}
# float32 export against hippynn in float64. Measured: energy <= 2e-7, forces <= 2e-6, stress <= 2e-6.
FLOAT32 = {"energy": 2e-6, "forces": 3e-5, "stress": 3e-5}

NETWORKS = {
    # hippynn's defaults: residual blocks, inverse sensitivities, softplus, one-hot energy read-out.
    "default": dict(network=dict(n_features=16), energy={}, energy_unit=None),
    # Residual blocks that change width (size-adjust layers), Gaussian ('linear') sensitivities, no
    # read-out of the one-hot features, energies in eV.
    "resized, linear, eV": dict(
        network=dict(n_features=[12, 10], sensitivity_type="linear"),
        energy=dict(first_is_interacting=True),
        energy_unit="eV",
    ),
    # Plain layers (no residual blocks) with tanh.
    "plain, tanh": dict(
        network=dict(n_features=14, resnet=False, activation=torch.nn.Tanh), energy={}, energy_unit=None
    ),
}


def hipnn_model(network: dict, energy: dict, seed: int = 0):
    """A HIP-NN GraphModule (H, C, N, O; 2 interaction layers; hard cutoff 5 Å), random weights, and its
    HEnergy node."""
    from hippynn.graphs import GraphModule, inputs, networks, targets

    torch.manual_seed(seed)
    species = inputs.SpeciesNode(db_name="Z")
    positions = inputs.PositionsNode(db_name="R")
    kwargs = dict(
        possible_species=[0, 1, 6, 7, 8],
        n_sensitivities=12,
        dist_soft_min=0.85,
        dist_soft_max=4.0,
        dist_hard_max=5.0,
        n_interaction_layers=2,
        n_atom_layers=2,
    )
    if isinstance(network.get("n_features"), list):
        kwargs.pop("n_interaction_layers")
    net = networks.Hipnn("HIPNN", (species, positions), module_kwargs={**kwargs, **network})
    henergy = targets.HEnergyNode("HEnergy", net, module_kwargs=energy)
    henergy.mol_energy.db_name = "T"  # the training target's name, as hippynn's training scripts set it
    return GraphModule([species, positions], [henergy.mol_energy]).double(), henergy


def reference_calculator(model, energy_unit):
    """hippynn's own ASE calculator for a (re)loaded GraphModule, in float64."""
    from hippynn.interfaces.ase_interface import calculator_from_model

    calc = calculator_from_model(model, en_unit=units.kcal / units.mol if energy_unit is None else 1.0)
    calc.to(torch.float64)
    return calc


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """``exported(name)``: a HIP-NN model saved with torch.save and loaded back, hippynn's calculator for
    it and the model's export (each built once per module)."""
    cache = {}

    def build(name: str):
        if name not in cache:
            config = NETWORKS[name]
            folder = tmp_path_factory.mktemp("hippynn")
            model, _ = hipnn_model(config["network"], config["energy"])
            torch.save(model, folder / "model.pt")
            loaded = torch.load(folder / "model.pt", weights_only=False)
            path = folder / "hipnn-mlcalc.pt"
            metadata = mlcalc.plugins.export("hippynn", folder / "model.pt", path, energy_unit=config["energy_unit"])
            cache[name] = loaded, reference_calculator(loaded, config["energy_unit"]), path, metadata
        return cache[name]

    return build


@pytest.fixture(params=sorted(NETWORKS))
def hip(request, exported):
    return exported(request.param)


@pytest.fixture
def default_hip(exported):
    return exported("default")


@pytest.mark.parametrize("name", sorted(STRUCTURES))
def test_equals_hippynn_ase_calculator(hip, name):
    _, reference, path, _ = hip
    assert_parity(STRUCTURES[name](), mlcalc.MLCalculator(str(path)), reference, FLOAT64)


def test_float32_export_within_float32_round_off(default_hip, tmp_path):
    model, reference, _, metadata = default_hip
    path = tmp_path / "hip32.pt"
    mlcalc.plugins.export("hippynn", model, path, dtype="float32", energy_unit=metadata.energy_unit)
    for name in ("organic cluster", "sheared diamond"):
        assert_parity(STRUCTURES[name](), mlcalc.MLCalculator(str(path)), reference, FLOAT32)


def test_metadata(hip):
    _, _, _, metadata = hip
    assert metadata.species == (1, 6, 7, 8)
    assert (metadata.cutoff, metadata.length_unit) == (5.0, "angstrom")
    assert metadata.energy_unit in ("kcal/mol", "eV")
    assert metadata.extra["family"] == "hippynn" and metadata.extra["family_version"] == hippynn.__version__


@pytest.mark.parametrize("name", ["organic cluster", "sheared diamond"])
def test_openmm_torchforce_equals_mlcalculator(default_hip, name):
    _, _, path, _ = default_hip
    assert_openmm_parity(path, STRUCTURES[name]())


def test_runs_where_hippynn_is_not_installed(default_hip, tmp_path):
    _, _, path, _ = default_hip
    atoms = molecular_box()
    found = run_without(path, atoms, ["hippynn", "mlcalc_hippynn"], tmp_path)
    expected = evaluate(atoms, mlcalc.MLCalculator(str(path)))
    assert abs(found["energy"] - expected["energy"]) <= 1e-12 * abs(expected["energy"])
    assert np.abs(found["forces"] - expected["forces"]).max() <= 1e-12 * np.abs(expected["forces"]).max()


def test_experiment_directory_and_command_line(tmp_path, capsys):
    """hippynn's experiment files (the structure file and the best model's state dict), converted on the
    command line."""
    from hippynn.experiment.assembly import assemble_for_training
    from hippynn.experiment.serialization import create_structure_file
    from hippynn.graphs import loss

    model, henergy = hipnn_model(NETWORKS["default"]["network"], {}, seed=1)
    mse = loss.MSELoss.of_node(henergy)
    training_modules, _ = assemble_for_training(mse, {"MSE": mse})
    create_structure_file(training_modules, None, None, str(tmp_path / "experiment_structure.pt"))
    with torch.no_grad():
        for parameter in training_modules.model.parameters():
            if parameter.is_floating_point():  # hippynn keeps its species set as an integer parameter
                parameter.add_(0.01)  # "training": the state dict differs from the structure file's weights
    torch.save(training_modules.model.state_dict(), tmp_path / "best_model.pt")
    out = tmp_path / "out.pt"
    assert main(["export", "--from", "hippynn", str(tmp_path), str(out), "--energy-unit", "kcal/mol"]) == 0
    assert "species H C N O" in capsys.readouterr().out
    reference = reference_calculator(training_modules.model.double(), None)
    assert_parity(diamond(), mlcalc.MLCalculator(str(out)), reference, FLOAT64)


def hippynn_henergy(model, structures: list[Atoms]) -> dict[str, np.ndarray]:
    """hippynn's own ``HEnergy`` outputs for molecules (open boundaries) in one hippynn batch (padded
    with species 0), from its GraphModule in float64: the cumulative per-molecule sums ``energy_terms``
    [B, n_orders], ``hierarchicality`` [B], ``mol_hier`` [B] and ``atom_energies`` [N]."""
    from hippynn.graphs import GraphModule, find_relatives
    from hippynn.graphs.nodes.tags import Energies

    (henergy,) = find_relatives(model.nodes_to_compute, Energies)
    names = ("energy_terms", "hierarchicality", "mol_hier", "atom_energies")
    graph = GraphModule(model.input_nodes, [getattr(henergy, name) for name in names])
    width = max(len(atoms) for atoms in structures)
    inputs = {"Z": torch.zeros((len(structures), width), dtype=torch.long)}
    inputs["R"] = torch.zeros((len(structures), width, 3), dtype=torch.float64)
    for b, atoms in enumerate(structures):
        inputs["Z"][b, : len(atoms)] = torch.as_tensor(atoms.numbers)
        inputs["R"][b, : len(atoms)] = torch.as_tensor(atoms.positions)
    with torch.no_grad():
        terms, hier, mol_hier, atom_energies = graph(*(inputs[node.db_name] for node in graph.input_nodes))
    return {
        "energy_terms": torch.cat(terms, dim=1).numpy(),
        "hierarchicality": hier.reshape(-1).numpy(),
        "mol_hier": mol_hier.reshape(-1).numpy(),
        "atom_energies": atom_energies.reshape(-1).numpy(),
    }


def mlcalc_hierarchy(potential, structures: list[Atoms]) -> dict[str, torch.Tensor]:
    """The file's outputs for the structures in one batch (the file's energy unit)."""
    batch = np.repeat(np.arange(len(structures)), [len(atoms) for atoms in structures])
    with torch.no_grad():
        return potential.module.forward(
            torch.as_tensor(np.concatenate([atoms.numbers for atoms in structures])),
            torch.as_tensor(np.concatenate([atoms.positions for atoms in structures])),
            torch.zeros((len(structures), 3, 3), dtype=torch.float64),
            torch.zeros((len(structures), 3), dtype=torch.bool),
            torch.as_tensor(batch),
        )


def test_hierarchical_energies_are_hippynn_henergy_terms(hip):
    """Per-order energies equal hippynn's HEnergy terms; mlcalc's non-hierarchicality R from them."""
    from hippynn.graphs import find_relatives
    from hippynn.graphs.nodes.tags import Energies

    from mlcalc.models.hipnn import non_hierarchicality, structure_non_hierarchicality

    model, _, path, _ = hip
    structures = [STRUCTURES["organic cluster"](), molecule("CH3CONH2")]
    potential = mlcalc.load(path, device="cpu")
    out = mlcalc_hierarchy(potential, structures)
    terms = out["hierarchical_energies"]
    (henergy,) = find_relatives(model.nodes_to_compute, Energies)
    n_orders = henergy.torch_module.n_terms  # one-hot read-out + interaction blocks, or blocks only
    assert terms.shape == (sum(map(len, structures)), n_orders)
    assert torch.equal(terms.sum(dim=1), out["energies"])  # energies are this sum, bit for bit
    batch = torch.repeat_interleave(torch.arange(len(structures)), torch.tensor([len(a) for a in structures]))
    per_order = torch.zeros((len(structures), n_orders), dtype=terms.dtype).index_add(0, batch, terms).numpy()

    reference = hippynn_henergy(model, structures)
    cumulative = reference["energy_terms"]  # hippynn's partial sums E^0, E^0 + E^1, ...
    hippynn_per_order = np.diff(cumulative, axis=1, prepend=0.0)
    scale = np.abs(hippynn_per_order).max(axis=1, keepdims=True)
    # Measured: <= 5e-16 (cumulative and per order, of the molecule's largest term), atom energies <= 3e-16.
    assert np.abs(np.cumsum(per_order, axis=1) - cumulative).max() <= 1e-12 * scale.min()
    assert (np.abs(per_order - hippynn_per_order) <= 1e-12 * scale).all()
    atom_energies = out["energies"].numpy()
    assert np.abs(atom_energies - reference["atom_energies"]).max() <= 1e-12 * np.abs(atom_energies).max()

    # hippynn's own hierarchicality measures, recomputed in NumPy from mlcalc's per-atom terms: squares of
    # per-atom terms, ratios of consecutive orders summed over orders (mlcalc_hippynn.model's docstring).
    squares = terms.numpy() ** 2
    ratios = squares[:, 1:] / (squares[:, 1:] + squares[:, :-1])
    starts = np.cumsum([0] + [len(a) for a in structures])
    molecules = [slice(a, b) for a, b in zip(starts[:-1], starts[1:])]
    atom_hier = np.array([ratios[m].sum() for m in molecules])
    mol_hier = np.array([(squares[m, 1:].sum(0) / (squares[m, 1:] + squares[m, :-1]).sum(0)).sum() for m in molecules])
    # Measured: <= 4e-16 relative (R below too).
    np.testing.assert_allclose(atom_hier, reference["hierarchicality"], rtol=1e-12, atol=0)
    np.testing.assert_allclose(mol_hier, reference["mol_hier"], rtol=1e-12, atol=0)

    # mlcalc's R = sum_{n>=1} (E^n)^2 / sum_n (E^n)^2 against NumPy from hippynn's per-order energies.
    expected = (hippynn_per_order[:, 1:] ** 2).sum(axis=1) / (hippynn_per_order**2).sum(axis=1)
    found = non_hierarchicality(terms, batch, len(structures)).numpy()
    np.testing.assert_allclose(found, expected, rtol=1e-12, atol=0)
    single = [structure_non_hierarchicality(potential, atoms) for atoms in structures]
    np.testing.assert_allclose(single, expected, rtol=1e-12, atol=0)


def test_compilable_export_returns_the_hierarchy(default_hip, tmp_path):
    """torch.export traces the per-order terms too (mlcalc.export(..., compilable=True))."""
    import io
    import zipfile

    from mlcalc.compiled import CHECK_SIZES, _model_inputs, example_inputs
    from mlcalc.contract import PROGRAM_FILE
    from mlcalc.module import PotentialModule

    model, _, _, metadata = default_hip
    path = tmp_path / "compilable.pt"
    recorded = mlcalc.plugins.export("hippynn", model, path, energy_unit=metadata.energy_unit, compilable=True)
    assert recorded.program
    with zipfile.ZipFile(path) as archive:
        data = archive.read(next(n for n in archive.namelist() if n.endswith(PROGRAM_FILE)))
    program = torch.export.load(io.BytesIO(data)).module()
    contract_model = mlcalc.plugins.get("hippynn").convert(model).model
    wrapper = PotentialModule(contract_model, recorded.cutoff, recorded.species).double()
    inputs = _model_inputs(wrapper, example_inputs(recorded, CHECK_SIZES, torch.float64))
    expected, found = contract_model(inputs), program(inputs)
    terms = found["hierarchical_energies"]
    assert terms.shape == expected["hierarchical_energies"].shape == (sum(CHECK_SIZES), 3)
    scale = expected["hierarchical_energies"].abs().max()  # measured: both differences 0
    assert (terms - expected["hierarchical_energies"]).abs().max() <= 1e-12 * scale
    assert (terms.sum(dim=1) - found["energies"]).abs().max() <= 1e-14 * scale


def test_unsupported_element_is_refused(default_hip):
    _, _, path, _ = default_hip
    atoms = molecule("CH3CH2OH") + Atoms("S", positions=[[4.0, 0, 0]])
    atoms.calc = mlcalc.MLCalculator(str(path))
    with pytest.raises(UnsupportedElementError, match="S \\(Z=16\\)"):
        atoms.get_potential_energy()


def test_unsupported_networks_and_other_families_are_refused(tmp_path):
    from hippynn.graphs import GraphModule, inputs, networks, targets

    species = inputs.SpeciesNode(db_name="Z")
    positions = inputs.PositionsNode(db_name="R")
    kwargs = dict(possible_species=[0, 1, 6], n_features=8, n_sensitivities=4, dist_soft_min=0.8, dist_soft_max=3.0,
                  dist_hard_max=4.0, n_interaction_layers=1, n_atom_layers=1)  # fmt: skip
    vec = networks.HipnnVec("HIPNN-TS", (species, positions), module_kwargs=kwargs)
    henergy = targets.HEnergyNode("HEnergy", vec)
    with pytest.raises(PluginError, match="HipnnVec.*not supported"):
        mlcalc.plugins.export("hippynn", GraphModule([species, positions], [henergy.mol_energy]), tmp_path / "x.pt")
    with pytest.raises(PluginError, match="GraphModule or its HEnergyNode.*another family"):
        mlcalc.plugins.export("hippynn", mlcalc.models.LennardJones(3.4, 0.01, 8.0), tmp_path / "x.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "state.pt")
    with pytest.raises(PluginError, match="holds a dictionary .* not a model"):
        mlcalc.plugins.export("hippynn", tmp_path / "state.pt", tmp_path / "x.pt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PluginError, match="without experiment_structure.pt and best_model.pt"):
        mlcalc.plugins.export("hippynn", tmp_path / "empty", tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()


def test_untested_hippynn_version_is_refused(tmp_path, monkeypatch):
    model, _ = hipnn_model(NETWORKS["default"]["network"], {})
    installed = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda p: "0.2.0" if p == "hippynn" else installed(p))
    with pytest.raises(FamilyVersionError, match=r"hippynn 0\.2\.0 is installed.*hippynn>=0\.1\.3,<0\.2"):
        mlcalc.plugins.export("hippynn", model, tmp_path / "x.pt")
