"""A loaded potential computes no gradients of its parameters (issue 22): they are frozen at load, in
every engine path, and its results equal, bit for bit, those of the same module with trainable
parameters (which TorchScript makes compute a weight gradient per layer at every call)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule

import mlcalc
from mlcalc.models.hipnn import HIPNN
from mlcalc.openmm.pythonforce import PotentialComputation
from mlcalc.openmm.region import ml_region
from mlcalc.openmm.torchforce import TorchForceModule


def parameters_requiring_grad(module: torch.nn.Module) -> list[str]:
    return [name for name, parameter in module.named_parameters() if parameter.requires_grad]


def trainable(potential: mlcalc.Potential) -> mlcalc.Potential:
    """A copy of ``potential`` whose parameters require gradients, as the exported module's do."""
    copy = potential.to()
    for parameter in copy.module.parameters():
        parameter.requires_grad_(True)
    return copy


def solvated() -> Atoms:
    """Acetamide and two waters in a periodic 7.5 Å box, some atoms outside it (unwrapped)."""
    atoms = molecule("CH3CONH2") + molecule("H2O") + molecule("H2O")
    atoms.positions[-6:-3] += [3.0, 2.5, 0.5]
    atoms.positions[-3:] += [-2.5, -2.0, 2.8]
    atoms.set_cell([7.5, 7.5, 7.5])
    atoms.pbc = True
    atoms.positions[0] += [7.5, 0.0, 0.0]
    return atoms


@pytest.fixture(scope="module")
def demo() -> mlcalc.Potential:
    return mlcalc.load("demo", device="cpu")


def test_loaded_potential_has_no_parameter_requiring_grad(demo):
    assert len(list(demo.module.parameters())) > 0
    assert parameters_requiring_grad(demo.module) == []
    assert parameters_requiring_grad(demo.to(dtype="float32").module) == []
    assert parameters_requiring_grad(mlcalc.MLCalculator("demo", device="cpu").potential.module) == []


def test_openmm_forces_have_no_parameter_requiring_grad(demo):
    computation = PotentialComputation(ml_region(demo.to(), [8, 1, 1], None, False, None), torch.device("cpu"))
    assert parameters_requiring_grad(computation.module) == []
    # OpenMM pickles the PythonForce's function and evaluates an unpickled copy.
    assert parameters_requiring_grad(pickle.loads(pickle.dumps(computation)).module) == []
    # A function pickled with a trainable module (by an mlcalc before the freeze) is frozen when unpickled.
    for parameter in computation.module.parameters():
        parameter.requires_grad_(True)
    assert parameters_requiring_grad(pickle.loads(pickle.dumps(computation)).module) == []
    # The TorchForce's module (scripted and handed to openmm-torch) wraps the Potential's frozen module.
    wrapper = TorchForceModule(demo.module, [8, 1, 1], None, 10.0, 96.5, torch.float64)
    assert parameters_requiring_grad(mlcalc.torchscript.script(wrapper)) == []


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_results_equal_those_of_trainable_parameters(demo, dtype):
    frozen = mlcalc.MLCalculator(demo, dtype=dtype)
    reference = mlcalc.MLCalculator(trainable(frozen.potential))
    assert parameters_requiring_grad(frozen.potential.module) == []
    assert parameters_requiring_grad(reference.potential.module) != []
    rng = np.random.default_rng(0)
    structures = [molecule("CH3CH2OH"), solvated()]
    # Several calls: TorchScript optimises a graph for its inputs' requires_grad after the first runs.
    for _ in range(4):
        for atoms in structures:
            atoms.positions += rng.normal(0.0, 0.02, atoms.positions.shape)
        batches = frozen.calculate_batch(structures), reference.calculate_batch(structures)
        for found, expected in zip(*batches):
            assert found.keys() == expected.keys()
            for key in found:
                assert np.array_equal(found[key], expected[key]), key
        for atoms in structures:  # one structure at a time, as ASE asks
            frozen.calculate(atoms)
            reference.calculate(atoms)
            found, expected = frozen.results, reference.results
            assert found.keys() == expected.keys() and {"energy", "energies", "forces"} <= found.keys()
            assert ("stress" in found) == bool(atoms.pbc.any())
            for key in found:
                assert np.array_equal(found[key], expected[key]), key


def test_export_leaves_the_model_trainable(tmp_path):
    """Training code exports the model it trains: export copies it and does not freeze it."""
    model = HIPNN(n_features=8, n_interactions=1, n_sensitivities=4)
    mlcalc.export(model, tmp_path / "hipnn.pt")
    assert all(parameter.requires_grad for parameter in model.parameters())
    assert parameters_requiring_grad(mlcalc.load(tmp_path / "hipnn.pt", device="cpu").module) == []
