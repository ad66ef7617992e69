"""mlcalc's own TorchScript calls raise no deprecation notice; the user's own calls still do (torch >= 2.11)."""

from __future__ import annotations

import re
import warnings

import numpy as np
import openmm
import pytest
import torch
from reference_parameters import CUTOFF, EPSILON, SIGMA
from structures import ALL

import mlcalc
from mlcalc.openmm import create_system
from mlcalc.torchscript import DEPRECATION_MESSAGE

TORCH_WARNS = tuple(int(part) for part in torch.__version__.split(".")[:2]) >= (2, 11)


def torchscript_notices(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if re.search(DEPRECATION_MESSAGE, str(w.message))]


def test_export_load_and_both_engines_are_quiet(tmp_path):
    from test_openmm import evaluate, topology_of

    atoms = ALL["small_fcc"]()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = tmp_path / "lj.pt"
        mlcalc.export(mlcalc.models.LennardJones(sigma=SIGMA, epsilon=EPSILON, cutoff=CUTOFF), path)
        potential = mlcalc.load(path, device="cpu")
        atoms.calc = mlcalc.MLCalculator(potential)
        atoms.get_forces()
        mlcalc.neighbor_list(atoms, CUTOFF)
        system = create_system(topology_of(atoms), potential, implementation="python")
        copy = openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(system))  # pickles the module
        energy, _ = evaluate(copy, atoms, "Reference")
    assert np.isclose(energy, atoms.get_potential_energy(), rtol=1e-10)
    assert torchscript_notices(caught) == []


@pytest.mark.skipif(not TORCH_WARNS, reason=f"torch {torch.__version__} does not deprecate TorchScript (2.11+ does)")
def test_the_users_own_torchscript_calls_still_warn(lj_path):
    mlcalc.load(lj_path)  # mlcalc's quiet call leaves no filter behind
    with pytest.warns((DeprecationWarning, FutureWarning), match=DEPRECATION_MESSAGE):  # FutureWarning from 2.14
        torch.jit.script(torch.nn.Linear(2, 2))
