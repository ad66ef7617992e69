"""The last-layer committee of HIP-NN (mlcalc.models.last_layer): one file whose energy is the base model's
and whose spread is that of its members, checked against each member exported as a HIP-NN file of its own
and evaluated one by one (NumPy's mean and standard deviation of their outputs); bad offsets are refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule

import mlcalc
from mlcalc.models.hipnn import HIPNN
from mlcalc.models.last_layer import LastLayerCommittee

MEMBERS = 4


def _offsets(model: HIPNN, members: int, seed: int = 3) -> list[torch.Tensor]:
    """Centred random offsets of the size a trained committee has (0.01–0.1 of the heads)."""
    generator = torch.Generator().manual_seed(seed)
    shapes = [(members, model.n_species), (members, len(model.heads), model.heads[0].weight.shape[1]), (members, 2)]
    drawn = [0.05 * torch.randn(shape, generator=generator, dtype=torch.float64) for shape in shapes]
    return [t - t.mean(dim=0) for t in drawn]


def _structures() -> dict[str, Atoms]:
    water = Atoms(
        "OH2OH2",
        positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0], [2.0, 1.6, 0.3], [2.9, 1.7, 0.1], [1.8, 2.5, 0.6]],
        cell=[[4.0, 0, 0], [0.5, 3.8, 0], [0.3, 0.4, 3.6]],  # triclinic, narrower than twice the cutoff
        pbc=True,
    )
    return {"ethanol": molecule("CH3CH2OH"), "periodic water": water}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    torch.manual_seed(0)
    model = HIPNN(n_features=8, n_sensitivities=6, cutoff=4.0).double()
    committee = LastLayerCommittee(model, *_offsets(model, MEMBERS))
    folder = tmp_path_factory.mktemp("last-layer")
    metadata = mlcalc.export(committee, folder / "committee.pt")
    mlcalc.export(model, folder / "base.pt")
    for m in range(MEMBERS):
        mlcalc.export(committee.member(m), folder / f"member{m}.pt")
    return folder, metadata


def _evaluate(path, atoms: Atoms) -> dict:
    atoms = atoms.copy()
    atoms.calc = calc = mlcalc.MLCalculator(path)
    out = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces()}
    if atoms.pbc.any():
        out["stress"] = atoms.get_stress()
    if "forces_uncertainty" in calc.implemented_properties:
        out["forces_uncertainty"] = calc.get_property("forces_uncertainty", atoms)
        out["energy_uncertainty"] = calc.results["energy_uncertainty"]
        out["energy_committee"] = calc.results["energy_committee"]
    return out


@pytest.mark.parametrize("name", list(_structures()))
def test_mean_and_spread_of_the_member_files(files, name):
    folder, metadata = files
    atoms = _structures()[name]
    assert metadata.committee == MEMBERS
    committee = _evaluate(folder / "committee.pt", atoms)
    members = [_evaluate(folder / f"member{m}.pt", atoms) for m in range(MEMBERS)]
    energies = np.array([m["energy"] for m in members])
    forces = np.array([m["forces"] for m in members])
    # float64 round-off of sums over a few hundred terms: 1e-12 relative is tight and safe.
    assert committee["energy"] == pytest.approx(energies.mean(), rel=1e-12)
    np.testing.assert_allclose(committee["energy_committee"], energies, rtol=1e-12)
    np.testing.assert_allclose(committee["forces"], forces.mean(axis=0), rtol=1e-12, atol=1e-12)
    assert committee["energy_uncertainty"] == pytest.approx(energies.std(), rel=1e-9)
    spread = np.sqrt(((forces - forces.mean(axis=0)) ** 2).sum(axis=2).mean(axis=0))
    np.testing.assert_allclose(committee["forces_uncertainty"], spread, rtol=1e-9, atol=1e-12)
    if "stress" in committee:
        stresses = np.array([m["stress"] for m in members])
        np.testing.assert_allclose(committee["stress"], stresses.mean(axis=0), rtol=1e-12, atol=1e-12)
    assert committee["energy_uncertainty"] > 1e-3  # the members differ


def test_the_mean_is_the_base_model(files):
    folder, _ = files
    for atoms in _structures().values():
        committee, base = _evaluate(folder / "committee.pt", atoms), _evaluate(folder / "base.pt", atoms)
        assert committee["energy"] == pytest.approx(base["energy"], rel=1e-14)
        np.testing.assert_allclose(committee["forces"], base["forces"], rtol=1e-13, atol=1e-14)


def test_offsets_must_be_centred_and_fit_the_model():
    model = HIPNN(n_features=8, n_sensitivities=6, cutoff=4.0).double()
    good = _offsets(model, MEMBERS)
    shifted = [good[0] + 0.01, good[1], good[2]]
    with pytest.raises(ValueError, match="mean over members"):
        LastLayerCommittee(model, *shifted)
    with pytest.raises(ValueError, match="head_weight_offsets has shape"):
        LastLayerCommittee(model, good[0], good[1][:, :, :4], good[2])
    with pytest.raises(ValueError, match="at least two members"):
        LastLayerCommittee(model, *[t[:1] - t[:1] for t in good])
