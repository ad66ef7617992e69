"""mlcalc runs a potential's model on TorchScript's plain plan (issue 22): no profiling runs, no symbolic
derivatives, in every engine path that calls the module from Python; the thread's setting is restored.

TorchScript's profiling executor instruments the first call of a method (``prim::profile`` nodes) and
then runs an optimised graph with ``prim::DifferentiableGraph`` nodes; the plain plan has neither.
``torch.jit.last_executed_optimized_graph()`` is the graph of the last TorchScript call made."""

from __future__ import annotations

import numpy as np
import openmm
import pytest
import torch
from ase.build import molecule
from openmm import unit

import mlcalc
from mlcalc.models.hipnn import structure_non_hierarchicality
from mlcalc.openmm import create_force

#: Nodes only the profiling executor's plans hold.
PROFILED_PLAN_NODES = ("prim::profile", "prim::DifferentiableGraph")


def last_plan_nodes() -> list[str]:
    graph = str(torch.jit.last_executed_optimized_graph())
    return [node for node in PROFILED_PLAN_NODES if node in graph]


def ethanol_inputs() -> tuple:
    atoms = molecule("CH3CH2OH")
    return (
        torch.tensor(atoms.numbers),
        torch.tensor(atoms.positions),
        torch.zeros((1, 3, 3), dtype=torch.float64),
        torch.zeros((1, 3), dtype=torch.bool),
        None,
        True,
        False,
    )


def test_module_called_directly_takes_the_profiled_plan():
    """The control: the same file's module, called without mlcalc, is profiled and then optimised."""
    module = mlcalc.load("demo", device="cpu").script_module
    with torch.enable_grad():
        module.compute(*ethanol_inputs())
        assert "prim::profile" in last_plan_nodes()
        module.compute(*ethanol_inputs())
        assert "prim::DifferentiableGraph" in last_plan_nodes()


@pytest.mark.parametrize("skin", [0.0, 1.0])
def test_calculator_runs_the_plain_plan(skin):
    calc = mlcalc.MLCalculator("demo", device="cpu", skin=skin)
    rng = np.random.default_rng(1)
    water = molecule("H2O")
    water.set_cell([6.0, 6.0, 6.0])
    water.pbc = True
    for _ in range(3):
        for atoms in (molecule("CH3CH2OH"), water):
            atoms.positions += rng.normal(0.0, 0.02, atoms.positions.shape)
            atoms.calc = calc
            atoms.get_forces()
            if atoms.pbc.any():
                atoms.get_stress()
            assert last_plan_nodes() == []
            assert torch._C._get_graph_executor_optimize()  # the thread's setting is back
    calc.calculate_batch([molecule("CH3CH2OH"), water])
    assert last_plan_nodes() == []


def test_model_outputs_run_the_plain_plan():
    """The raw outputs behind reliability reports and HIP-NN's non-hierarchicality."""
    potential = mlcalc.load("demo", device="cpu")
    for _ in range(3):
        assert 0.0 < structure_non_hierarchicality(potential, molecule("CH3CH2OH")) < 1.0
        assert last_plan_nodes() == []
    assert torch._C._get_graph_executor_optimize()


def test_openmm_pythonforce_runs_the_plain_plan():
    atoms = molecule("CH3CH2OH")
    force = create_force("demo", list(atoms.numbers), periodic=False, implementation="python")
    system = openmm.System()
    for mass in atoms.get_masses():
        system.addParticle(mass)
    system.addForce(force)
    context = openmm.Context(system, openmm.VerletIntegrator(0.0005), openmm.Platform.getPlatformByName("Reference"))
    for k in range(3):
        context.setPositions((atoms.positions + 0.01 * k) * unit.angstrom)
        context.getState(getForces=True)
        assert last_plan_nodes() == []
    assert torch._C._get_graph_executor_optimize()
