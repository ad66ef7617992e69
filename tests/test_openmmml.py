"""The openmm-ml plugin: MLPotential("mlcalc", model=...) against mlcalc.openmm, MLCalculator and OpenMM's MM forces."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import openmm
import pytest
from ase import Atoms
from openmm import app, unit
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


@pytest.mark.parametrize("implementation", ["torch", "python"])
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


def test_mixed_system_with_ml_equal_to_the_mm_terms_is_the_mm_system(lj_truncated_path):
    """Half of an LJ fluid ML with the same truncated LJ: createMixedSystem's energy and forces are the pure MM
    ones (NonbondedForce), and equal create_mixed_system's."""
    atoms = unwrap(ALL["large_fcc"](), seed=3)
    topology = topology_of(atoms)
    ml_atoms = list(range(1, len(atoms), 2))
    mm = argon_mm_system(atoms, ml_atoms)
    potential = openmmml.MLPotential("mlcalc", model=lj_truncated_path)
    for implementation in ("torch", "python"):
        mixed = potential.createMixedSystem(topology, mm, ml_atoms, implementation=implementation)
        found = evaluate(mixed, atoms, "Reference")
        close(found, evaluate(mm, atoms, "Reference"))
        close(found, evaluate(create_mixed_system(topology, mm, ml_atoms, lj_truncated_path), atoms, "Reference"))


@pytest.fixture(scope="module")
def vacuum_trialanine():
    """Trialanine with amber14 without cutoff: openmm-ml's internal nonbonded energy (plain Coulomb and LJ) is exact."""
    pdb = app.PDBFile(str(TRIALANINE))
    system = app.ForceField("amber14-all.xml").createSystem(pdb.topology, nonbondedMethod=app.NoCutoff)
    return pdb.topology, pdb.positions, system


@pytest.mark.filterwarnings("ignore:the ML region is bonded covalently")
def test_mixed_system_ml_part_equals_the_calculator(vacuum_trialanine, morse_path):
    """The ML force (force group 1) of createMixedSystem equals MLCalculator on the ML atoms, the rest (group 0)
    equals create_mixed_system's MM part, and the whole equals create_mixed_system."""
    topology, positions, system = vacuum_trialanine
    ml_atoms = [a.index for a in topology.atoms() if a.residue.index > 0]  # residues 2 and 3
    mixed = openmmml.MLPotential("mlcalc", model=morse_path).createMixedSystem(topology, system, ml_atoms, forceGroup=1)
    ours = create_mixed_system(topology, system, ml_atoms, morse_path, force_group=1)
    xyz = positions.value_in_unit(unit.angstrom)
    peptide = Atoms([a.element.atomic_number for a in topology.atoms()], positions=xyz)
    for group in (0, 1):
        close(group_energy(mixed, positions, group), group_energy(ours, positions, group), 1e-12)
    ml_energy, ml_forces = group_energy(mixed, positions, 1)
    calc_atoms = peptide[ml_atoms]
    calc_atoms.calc = mlcalc.MLCalculator(morse_path)
    expected_forces = np.zeros((len(peptide), 3))
    expected_forces[ml_atoms] = calc_atoms.get_forces() / (EV_PER_KJ_PER_MOL / 10)  # eV/Å -> kJ/mol/nm
    close((ml_energy, ml_forces), (calc_atoms.get_potential_energy() / EV_PER_KJ_PER_MOL, expected_forces))


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
    interpolated = potential.createMixedSystem(topology, system, ml_atoms, interpolate=True)
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


def test_options_and_errors(lj_path, tmp_path):
    topology = topology_of(ALL["small_fcc"]())
    python = openmmml.MLPotential("mlcalc", model=mlcalc.load(lj_path), implementation="python")
    assert isinstance(python.createSystem(topology).getForce(0), PYTHON_FORCE)
    assert not isinstance(python.createSystem(topology, implementation="torch").getForce(0), PYTHON_FORCE)
    with pytest.raises(TypeError, match="needs model="):
        openmmml.MLPotential("mlcalc")
    with pytest.raises(TypeError, match=r"does not take \['precision'\]"):
        openmmml.MLPotential("mlcalc", model=lj_path).createSystem(topology, precision="double")
    argon_only = tmp_path / "argon-only.pt"
    mlcalc.export(mlcalc.models.LennardJones(sigma=3.405, epsilon=0.0103, cutoff=8.5, species=[18]), argon_only)
    hydrogen = topology_of(Atoms("H2", positions=[[0, 0, 0], [0, 0, 1]]))
    with pytest.raises(mlcalc.UnsupportedElementError, match=r"does not support atomic numbers \[1\]"):
        openmmml.MLPotential("mlcalc", model=argon_only).createSystem(hydrogen)
