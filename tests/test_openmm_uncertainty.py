"""The committee's energy spread along an OpenMM run: the reporter's rows equal the ASE calculator on the
same positions, and a run stops with a clear error when the spread passes the threshold."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from reference_parameters import CUTOFF, EPSILON, SIGMA

import mlcalc
from mlcalc.errors import ContractError, UncertaintyExceededError
from mlcalc.models import LennardJones
from mlcalc.units import EV_PER_KJ_PER_MOL

openmm = pytest.importorskip("openmm")
from openmm import app, unit  # noqa: E402

from mlcalc.openmm import UncertaintyReporter, create_system  # noqa: E402


@pytest.fixture(scope="module")
def argon(tmp_path_factory):
    """Liquid argon (examples/argon-liquid.pdb) and a committee of three Lennard-Jones argons."""
    folder = tmp_path_factory.mktemp("argon")
    members = [
        LennardJones(sigma=SIGMA * (1 + 0.01 * k), epsilon=EPSILON * (1 - 0.03 * k), cutoff=CUTOFF) for k in range(3)
    ]
    mlcalc.export(members, folder / "committee.pt")
    pdb = app.PDBFile(str(Path(__file__).parents[1] / "examples" / "argon-liquid.pdb"))
    return folder / "committee.pt", pdb


def _simulation(path, pdb):
    system = create_system(pdb.topology, path, implementation="python")
    integrator = openmm.LangevinMiddleIntegrator(90 * unit.kelvin, 1 / unit.picosecond, 5 * unit.femtosecond)
    integrator.setRandomNumberSeed(1)
    simulation = app.Simulation(pdb.topology, system, integrator, openmm.Platform.getPlatformByName("Reference"))
    simulation.context.setPositions(pdb.positions)
    return simulation


def test_rows_equal_the_calculator_on_the_same_positions(argon, tmp_path):
    path, pdb = argon
    simulation = _simulation(path, pdb)
    reporter = UncertaintyReporter(tmp_path / "uncertainty.csv", 5, path, pdb.topology)
    simulation.reporters.append(reporter)
    frames = []

    class Positions:  # records the positions the reporter saw, at the same steps
        def describeNextReport(self, simulation):  # noqa: N802
            return {"steps": 5 - simulation.currentStep % 5, "periodic": False, "include": ["positions"]}

        def report(self, simulation, state):
            box = state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.angstrom)
            positions = state.getPositions(asNumpy=True).value_in_unit(unit.angstrom)
            frames.append(Atoms(numbers=[18] * len(positions), positions=positions, cell=box, pbc=True))

    simulation.reporters.append(Positions())
    simulation.step(15)
    reporter.close()
    with open(tmp_path / "uncertainty.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [int(r["step"]) for r in rows] == [5, 10, 15]
    calc = mlcalc.MLCalculator(path)
    expected = [calc.get_property("energy_uncertainty", atoms) for atoms in frames]
    np.testing.assert_allclose([float(r["energy_uncertainty_eV"]) for r in rows], expected, rtol=1e-12)
    np.testing.assert_allclose(
        [float(r["energy_uncertainty_kJ_mol"]) for r in rows], np.array(expected) / EV_PER_KJ_PER_MOL
    )


def test_run_stops_above_the_threshold(argon, tmp_path):
    path, pdb = argon
    simulation = _simulation(path, pdb)
    reporter = UncertaintyReporter(tmp_path / "u.csv", 2, path, pdb.topology, max_uncertainty=1e-6)
    simulation.reporters.append(reporter)
    with pytest.raises(
        UncertaintyExceededError, match=r"spread reached .* eV at step 2 .* above max_uncertainty = 1e-06 eV"
    ):
        simulation.step(10)
    assert simulation.currentStep == 2
    reporter.close()
    assert len((tmp_path / "u.csv").read_text().splitlines()) == 2  # header and the row that stopped it


def test_single_model_is_refused(lj_path, argon):
    _, pdb = argon
    with pytest.raises(ContractError, match="single model: it has no energy spread"):
        UncertaintyReporter("unused.csv", 10, lj_path, pdb.topology)
