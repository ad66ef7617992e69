"""A committee's energy spread in the workflows: scans, NEBs (and paths, which share the profile code)
record it with every structure, in their tables and checkpoints, and draw it as a band; a single model
leaves no column and no stale value."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from ase.build import molecule
from reference_parameters import CUTOFF, EPSILON, SIGMA
from test_workflows_neb import lj7_endpoints

import mlcalc
from mlcalc.models import LennardJones
from mlcalc.models.hipnn import HIPNN
from mlcalc.workflows import Dihedral, relaxed_scan
from mlcalc.workflows.neb import make_band, run_neb
from mlcalc.workflows.output import energy_uncertainty

BUTANE_CCCC = Dihedral(0, 1, 2, 3)


def _spread_at(path, atoms) -> float:
    """The committee's energy spread (eV) at ``atoms``, evaluated afresh."""
    fresh = atoms.copy()
    fresh.calc = mlcalc.MLCalculator(path)
    return fresh.calc.get_property("energy_uncertainty", fresh)


def _column(csv_path, name) -> list[float]:
    with open(csv_path, newline="") as stream:
        return [float(row[name]) for row in csv.DictReader(stream)]


@pytest.fixture(scope="module")
def hipnn_committee(tmp_path_factory):
    members = []
    for seed in range(3):
        torch.manual_seed(seed)
        members.append(HIPNN(n_features=8, n_sensitivities=6, cutoff=4.0))
    path = tmp_path_factory.mktemp("committee") / "hipnn-committee.pt"
    mlcalc.export(members, path)
    return path


def test_scan_tables_checkpoint_and_plot_carry_the_spread(hipnn_committee, tmp_path):
    butane = molecule("trans-butane")
    options = dict(fmax=0.05, steps=60, output=tmp_path)
    scan = relaxed_scan(butane, mlcalc.MLCalculator(hipnn_committee), BUTANE_CCCC, [180.0, 150.0, 120.0], **options)
    expected = [_spread_at(hipnn_committee, p.atoms) for p in scan.points]
    np.testing.assert_allclose(scan.uncertainties, expected, rtol=1e-12)
    np.testing.assert_allclose(_column(tmp_path / "scan.csv", "energy_uncertainty_eV"), expected, rtol=1e-9)
    assert (tmp_path / "scan.png").stat().st_size > 0
    resumed = relaxed_scan(butane, mlcalc.MLCalculator(hipnn_committee), BUTANE_CCCC, [180.0, 150.0, 120.0], **options)
    assert [energy_uncertainty(p.atoms) for p in resumed.points] == [energy_uncertainty(p.atoms) for p in scan.points]


def test_a_single_model_leaves_no_column_and_no_stale_value(tmp_path):
    torch.manual_seed(0)
    model = HIPNN(n_features=8, n_sensitivities=6, cutoff=4.0)
    with torch.no_grad():  # a gentle surface: the random model's forces would pull butane apart
        for head in model.heads:
            head.weight.mul_(1e-3)
    single = tmp_path / "hipnn.pt"
    mlcalc.export(model, single)
    butane = molecule("trans-butane")
    butane.info["energy_uncertainty"] = 99.0  # e.g. read from an earlier committee run's extxyz
    scan = relaxed_scan(butane, mlcalc.MLCalculator(single), BUTANE_CCCC, [180.0, 150.0], fmax=0.05, output=tmp_path)
    assert scan.uncertainties is None
    assert all("energy_uncertainty" not in p.atoms.info for p in scan.points)
    with open(tmp_path / "scan.csv", newline="") as stream:
        assert "energy_uncertainty_eV" not in next(csv.reader(stream))


def test_neb_tables_and_plot_carry_the_spread(tmp_path):
    members = [
        LennardJones(sigma=SIGMA * (1 + 0.01 * k), epsilon=EPSILON * (1 - 0.02 * k), cutoff=CUTOFF) for k in range(3)
    ]
    path = tmp_path / "lj-committee.pt"
    mlcalc.export(members, path)
    initial, final = lj7_endpoints()
    band = make_band(initial, final, 3)
    result = run_neb(band, mlcalc.MLCalculator(path), fmax=0.05, steps=200, output=tmp_path / "neb")
    expected = [_spread_at(path, image) for image in result.images]
    np.testing.assert_allclose(result.uncertainties, expected, rtol=1e-12)
    np.testing.assert_allclose(_column(tmp_path / "neb" / "neb.csv", "energy_uncertainty_eV"), expected, rtol=1e-9)
    assert (tmp_path / "neb" / "neb.png").stat().st_size > 0
    assert min(expected) > 0
