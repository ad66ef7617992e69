"""The openmm-ml plugin: MLPotential("mlcalc", model=...) against mlcalc.openmm, MLCalculator and OpenMM's MM forces."""

from __future__ import annotations

import inspect
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import openmm
import pytest
from ase import Atoms
from openmm import app, unit
from openmm_implementations import IMPLEMENTATIONS, needs_openmmtorch
from structures import ALL, unwrap
from test_mixed import argon_mm_system, energy_kj
from test_openmm import evaluate, topology_of

import mlcalc
from mlcalc.openmm import create_mixed_system, create_system
from mlcalc.openmm.openmmml_plugin import MLCalcPotentialImplFactory
from mlcalc.units import EV_PER_KJ_PER_MOL

openmmml = pytest.importorskip("openmmml")

TRIALANINE = Path(__file__).parents[1] / "examples" / "trialanine.pdb"
PYTHON_FORCE = getattr(openmm, "PythonForce", None)


def close(found: tuple[float, np.ndarray], expected: tuple[float, np.ndarray], rtol: float = 1e-10) -> None:
    (e1, f1), (e2, f2) = found, expected
    assert abs(e1 - e2) <= rtol * abs(e2)
    assert np.abs(f1 - f2).max() <= rtol * np.abs(f2).max()


def test_the_entry_point_registers_the_factory():
    (entry,) = entry_points(group="openmmml.potentials", name="mlcalc")
    assert entry.load() is MLCalcPotentialImplFactory, "reinstall mlcalc (pip install -e .) to register it"
    assert isinstance(openmmml.MLPotential._implFactories["mlcalc"], MLCalcPotentialImplFactory)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_create_system_equals_mlcalc_and_the_calculator(lj_path, implementation):
    """Whole-system ML, periodic, unwrapped positions: openmm-ml's System, mlcalc's and ASE's numbers agree."""
    atoms = unwrap(ALL["large_fcc"](), seed=4)
    topology = topology_of(atoms)
    system = openmmml.MLPotential("mlcalc", model=lj_path).createSystem(topology, implementation=implementation)
    forces = [type(f).__name__ for f in system.getForces()]
    assert forces[-1] == "CMMotionRemover" and len(forces) == 2
    if implementation == "python":
        assert isinstance(system.getForce(0), PYTHON_FORCE)
    found = evaluate(system, atoms, "Reference")
    close(found, evaluate(create_system(topology, lj_path, implementation=implementation), atoms, "Reference"), 1e-13)
    atoms.calc = mlcalc.MLCalculator(lj_path)
    close(found, (atoms.get_potential_energy(), atoms.get_forces()))  # eV and eV/Å, from OpenMM's kJ/mol and nm


def test_create_system_equals_openmm_nonbonded(lj_truncated_path):
    """Truncated LJ through openmm-ml and through OpenMM's NonbondedForce (CutoffPeriodic, float64 Reference)."""
    atoms = unwrap(ALL["large_fcc"](), seed=8)
    system = openmmml.MLPotential("mlcalc", model=lj_truncated_path).createSystem(topology_of(atoms))
    close(evaluate(system, atoms, "Reference"), evaluate(argon_mm_system(atoms, []), atoms, "Reference"))


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("interpolate", [False, True])
def test_mixed_system_with_ml_equal_to_the_mm_terms_is_the_mm_system(lj_truncated_path, implementation, interpolate):
    """Half of an LJ fluid ML with the same truncated LJ: createMixedSystem's energy and forces are the pure MM
    ones (NonbondedForce), and equal create_mixed_system's."""
    atoms = unwrap(ALL["large_fcc"](), seed=3)
    topology = topology_of(atoms)
    ml_atoms = list(range(1, len(atoms), 2))
    mm = argon_mm_system(atoms, ml_atoms)
    potential = openmmml.MLPotential("mlcalc", model=lj_truncated_path, implementation=implementation)
    mixed = potential.createMixedSystem(topology, mm, ml_atoms, interpolate=interpolate)
    found = evaluate(mixed, atoms, "Reference")
    close(found, evaluate(mm, atoms, "Reference"))
    ours = create_mixed_system(topology, mm, ml_atoms, lj_truncated_path, implementation=implementation)
    close(found, evaluate(ours, atoms, "Reference"))


@pytest.mark.parametrize("interpolate", [False, True])
def test_mixed_system_whose_box_is_only_on_the_system(lj_truncated_path, interpolate):
    """The Topology has no box, the MM System does (as in many scripts): the ML force is periodic, or, where
    openmm-ml builds it in an empty System (interpolate=True), mlcalc asks for periodic= instead of guessing."""
    atoms = unwrap(ALL["large_fcc"](), seed=3)
    topology = topology_of(atoms)
    topology.setPeriodicBoxVectors(None)
    ml_atoms = list(range(1, len(atoms), 2))
    mm = argon_mm_system(atoms, ml_atoms)
    potential = openmmml.MLPotential("mlcalc", model=lj_truncated_path)
    if interpolate:
        with pytest.raises(ValueError, match=r"pass periodic=True \(or False\) to createMixedSystem"):
            potential.createMixedSystem(topology, mm, ml_atoms, interpolate=True)
        mixed = potential.createMixedSystem(topology, mm, ml_atoms, interpolate=True, periodic=True)
    else:
        mixed = potential.createMixedSystem(topology, mm, ml_atoms)
    close(evaluate(mixed, atoms, "Reference"), evaluate(mm, atoms, "Reference"))


@pytest.fixture(scope="module")
def vacuum_trialanine():
    """Trialanine with amber14 without cutoff: openmm-ml's internal nonbonded energy (plain Coulomb and LJ) is exact."""
    pdb = app.PDBFile(str(TRIALANINE))
    system = app.ForceField("amber14-all.xml").createSystem(pdb.topology, nonbondedMethod=app.NoCutoff)
    return pdb.topology, pdb.positions, system


#: openmm-ml >= 1.8 caps bonds cut by the ML region with hydrogen link atoms (virtual sites added at the end).
LINK_ATOMS = "returnInfo" in inspect.signature(openmmml.MLPotential.createMixedSystem).parameters


@pytest.mark.filterwarnings("ignore:the ML region is bonded covalently")
def test_mixed_system_ml_part_equals_the_calculator(vacuum_trialanine, morse_path):
    """The ML force (force group 1) of createMixedSystem equals MLCalculator on the ML atoms (and, with
    openmm-ml >= 1.8, its link-atom caps where it places them); without link atoms (1.7) both force groups
    equal create_mixed_system's."""
    topology, positions, system = vacuum_trialanine
    ml_atoms = [a.index for a in topology.atoms() if a.residue.index > 0]  # residues 2 and 3
    potential = openmmml.MLPotential("mlcalc", model=morse_path)
    if LINK_ATOMS:
        info = potential.createMixedSystem(topology, system, ml_atoms, forceGroup=1, returnInfo=True)
        mixed, mixed_topology = info["system"], info["topology"]
    else:
        mixed, mixed_topology = potential.createMixedSystem(topology, system, ml_atoms, forceGroup=1), topology
    n = topology.getNumAtoms()
    caps = list(range(n, mixed.getNumParticles()))
    assert len(caps) == (1 if LINK_ATOMS else 0), "residue 1 - residue 2 is the one bond the ML region cuts"
    xyz = site_positions(mixed, positions)
    ml_energy, ml_forces = group_energy(mixed, xyz, 1)
    numbers = [a.element.atomic_number for a in mixed_topology.atoms()]
    calc_atoms = Atoms([numbers[i] for i in ml_atoms + caps], positions=xyz[ml_atoms + caps] * 10)  # nm -> Å
    calc_atoms.calc = mlcalc.MLCalculator(morse_path)
    expected_energy = calc_atoms.get_potential_energy() / EV_PER_KJ_PER_MOL
    assert abs(ml_energy - expected_energy) <= 1e-10 * abs(expected_energy)
    # OpenMM moves a virtual site's force onto the atoms that place it: compare the other atoms' forces.
    placing = {mixed.getVirtualSite(i).getParticle(k) for i in caps for k in range(2)}
    kept = [k for k, i in enumerate(ml_atoms) if i not in placing]
    expected_forces = calc_atoms.get_forces()[kept] / (EV_PER_KJ_PER_MOL / 10)  # eV/Å -> kJ/mol/nm
    found_forces = ml_forces[[ml_atoms[k] for k in kept]]
    assert np.abs(found_forces - expected_forces).max() <= 1e-10 * np.abs(expected_forces).max()
    if not LINK_ATOMS:  # 1.8's embedding treats the MM terms at a capped bond its own way (17 kJ/mol here)
        ours = create_mixed_system(topology, system, ml_atoms, morse_path, force_group=1)
        for group in (0, 1):
            close(group_energy(mixed, positions, group), group_energy(ours, positions, group), 1e-12)


def site_positions(system: openmm.System, positions) -> np.ndarray:
    """Positions (nm) of every particle of ``system``: ``positions`` and then its virtual sites, placed by OpenMM."""
    xyz = np.zeros((system.getNumParticles(), 3))
    xyz[: len(positions)] = positions.value_in_unit(unit.nanometer)
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(xyz)
    context.computeVirtualSites()
    return context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)


def group_energy(system: openmm.System, positions, group: int) -> tuple[float, np.ndarray]:
    """Energy (kJ/mol) and forces (kJ/mol/nm) of one force group on the Reference platform."""
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    state = context.getState(getEnergy=True, getForces=True, groups={group})
    kj = unit.kilojoule_per_mole
    return state.getPotentialEnergy().value_in_unit(kj), state.getForces(asNumpy=True).value_in_unit(
        kj / unit.nanometer
    )


def test_interpolation(vacuum_trialanine, morse_path):
    """interpolate=True: global parameter lambda_interpolate (default 1); 1 is the mixed System, 0 the MM System
    (exact without cutoff), and the energy is linear in it, as in create_mixed_system."""
    topology, positions, system = vacuum_trialanine
    ml_atoms = list(range(topology.getNumAtoms()))
    potential = openmmml.MLPotential("mlcalc", model=morse_path)
    interpolated = potential.createMixedSystem(topology, system, ml_atoms, interpolate=True, periodic=False)
    (cv,) = [f for f in interpolated.getForces() if isinstance(f, openmm.CustomCVForce)]
    assert [cv.getGlobalParameterName(k) for k in range(cv.getNumGlobalParameters())] == ["lambda_interpolate"]
    assert cv.getGlobalParameterDefaultValue(0) == 1.0
    mm = energy_kj(system, positions)
    ml = energy_kj(potential.createMixedSystem(topology, system, ml_atoms), positions)
    ours = create_mixed_system(topology, system, ml_atoms, morse_path, interpolate=True)
    assert abs(ml[0] - mm[0]) > 10.0, "Morse should differ from amber here"
    for value, expected in ((0.0, mm), (1.0, ml), (0.5, ((mm[0] + ml[0]) / 2, (mm[1] + ml[1]) / 2))):
        found = energy_kj(interpolated, positions, parameters={"lambda_interpolate": value})
        # openmm-ml's internal Coulomb uses 138.935456 for OpenMM's 138.93545764...: 1.2e-8 relative of the
        # peptide's internal electrostatics (measured 1.1e-6 kJ/mol at lambda 0), so 1e-7 relative of the total.
        close(found, expected, 1e-7)
        close(found, energy_kj(ours, positions, parameters={"lambda_interpolate": value}), 1e-7)


@needs_openmmtorch
def test_implementation_option(lj_path):
    topology = topology_of(ALL["small_fcc"]())
    python = openmmml.MLPotential("mlcalc", model=mlcalc.load(lj_path), implementation="python")
    assert isinstance(python.createSystem(topology).getForce(0), PYTHON_FORCE)
    assert not isinstance(python.createSystem(topology, implementation="torch").getForce(0), PYTHON_FORCE)


def test_options_and_errors(lj_path, tmp_path):
    topology = topology_of(ALL["small_fcc"]())
    assert isinstance(
        openmmml.MLPotential("mlcalc", model=lj_path, implementation="python").createSystem(topology).getForce(0),
        PYTHON_FORCE,
    )
    with pytest.raises(TypeError, match="needs model="):
        openmmml.MLPotential("mlcalc")
    with pytest.raises(TypeError, match=r"does not take \['precision'\]"):
        openmmml.MLPotential("mlcalc", model=lj_path).createSystem(topology, precision="double")
    argon_only = tmp_path / "argon-only.pt"
    mlcalc.export(mlcalc.models.LennardJones(sigma=3.405, epsilon=0.0103, cutoff=8.5, species=[18]), argon_only)
    hydrogen = topology_of(Atoms("H2", positions=[[0, 0, 0], [0, 0, 1]]))
    with pytest.raises(mlcalc.UnsupportedElementError, match=r"does not support atomic numbers \[1\]"):
        openmmml.MLPotential("mlcalc", model=argon_only).createSystem(hydrogen)
