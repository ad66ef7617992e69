"""ML/MM (create_mixed_system) and the PythonForce fallback, against OpenMM's own MM forces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openmm
import pytest
from openmm import app, unit
from openmm_implementations import IMPLEMENTATIONS, needs_openmmtorch
from reference_parameters import CUTOFF, EPSILON, SIGMA
from structures import ALL, unwrap
from test_openmm import evaluate, topology_of

import mlcalc
from mlcalc.errors import InvalidStructureError, UnsupportedElementError
from mlcalc.openmm import create_force, create_mixed_system, create_system
from mlcalc.units import EV_PER_KJ_PER_MOL

TRIALANINE = Path(__file__).parents[1] / "examples" / "trialanine.pdb"
KJ = unit.kilojoule_per_mole


def argon_mm_system(atoms, neon: list[int]) -> openmm.System:
    """Truncated LJ through NonbondedForce (argon sigma/epsilon for every atom, 'neon' only by name)."""
    system = openmm.System()
    system.setDefaultPeriodicBoxVectors(*[openmm.Vec3(*row / 10) for row in atoms.cell.array])
    nonbonded = openmm.NonbondedForce()
    nonbonded.setNonbondedMethod(openmm.NonbondedForce.CutoffPeriodic)
    nonbonded.setCutoffDistance(CUTOFF / 10)
    nonbonded.setUseDispersionCorrection(False)
    for _ in atoms:
        system.addParticle(39.95)
        nonbonded.addParticle(0.0, SIGMA / 10, EPSILON / EV_PER_KJ_PER_MOL)
    system.addForce(nonbonded)
    return system


def energy_kj(system: openmm.System, positions, box=None, parameters=None) -> tuple[float, np.ndarray]:
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    if box is not None:
        context.setPeriodicBoxVectors(*box)
    context.setPositions(positions)
    for name, value in (parameters or {}).items():
        context.setParameter(name, value)
    state = context.getState(getEnergy=True, getForces=True)
    return state.getPotentialEnergy().value_in_unit(KJ), state.getForces(asNumpy=True).value_in_unit(
        KJ / unit.nanometer
    )


@pytest.mark.parametrize("topology_box", [True, False])
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_ml_equal_to_mm_terms_gives_the_mm_energy(lj_truncated_path, implementation, topology_box):
    """Half of an LJ fluid ML (truncated LJ equal to the NonbondedForce it replaces): the mixed system's
    energy and forces equal the pure-MM ones, also interpolated at lambda 0, 1/2 and 1. The ML force
    is periodic because the MM System is, also when only the System holds the box (not the Topology)."""
    atoms = unwrap(ALL["large_fcc"](), seed=3)
    topology = topology_of(atoms)
    if not topology_box:
        topology.setPeriodicBoxVectors(None)
    ml_atoms = list(range(1, len(atoms), 2))
    mm = argon_mm_system(atoms, ml_atoms)
    expected = evaluate(mm, atoms, "Reference")
    mixed = create_mixed_system(topology, mm, ml_atoms, lj_truncated_path, implementation=implementation)
    assert mm.getNumForces() == 1, "create_mixed_system modified its input"
    found = evaluate(mixed, atoms, "Reference")
    # Same float64 sums in another order: 1e-10 relative.
    assert abs(found[0] - expected[0]) <= 1e-10 * abs(expected[0])
    assert np.abs(found[1] - expected[1]).max() <= 1e-10 * np.abs(expected[1]).max()
    interpolated = create_mixed_system(
        topology, mm, ml_atoms, lj_truncated_path, interpolate=True, implementation=implementation
    )
    for value in (0.0, 0.5, 1.0):
        e, f = energy_kj(
            interpolated,
            atoms.positions / 10,
            box=[openmm.Vec3(*row / 10) for row in atoms.cell.array],
            parameters={"lambda_interpolate": value},
        )
        assert abs(e * EV_PER_KJ_PER_MOL - expected[0]) <= 1e-10 * abs(expected[0])


@pytest.fixture(scope="module")
def solvated_trialanine():
    """Trialanine with amber14 in a small TIP3P-FB box, PME, bonds to hydrogen constrained."""
    pdb = app.PDBFile(str(TRIALANINE))
    forcefield = app.ForceField("amber14-all.xml", "amber14/tip3pfb.xml")
    modeller = app.Modeller(pdb.topology, pdb.positions)
    modeller.addSolvent(forcefield, padding=0.5 * unit.nanometer)
    system = forcefield.createSystem(
        modeller.topology, nonbondedMethod=app.PME, nonbondedCutoff=0.7 * unit.nanometer, constraints=app.HBonds
    )
    solute = [atom.index for atom in modeller.topology.atoms() if atom.residue.name != "HOH"]
    return modeller.topology, modeller.positions, system, solute


def test_interpolation_at_zero_is_the_mm_system(solvated_trialanine, morse_path):
    """With a potential unlike amber (Morse), lambda_interpolate=0 still gives the all-MM energy: the
    removed bonded terms, 1-4 exceptions, PME direct space and exclusion corrections are all restored."""
    topology, positions, system, solute = solvated_trialanine
    expected, expected_forces = energy_kj(system, positions)
    mixed = create_mixed_system(topology, system, solute, morse_path, interpolate=True)
    at_zero, forces = energy_kj(mixed, positions, parameters={"lambda_interpolate": 0.0})
    # PME reciprocal space is identical in both; the rest are float64 sums of ~1e4 kJ/mol terms.
    assert at_zero == pytest.approx(expected, rel=1e-9, abs=1e-6)
    assert np.abs(forces - expected_forces).max() < 1e-6
    ml_only = create_mixed_system(topology, system, solute, morse_path)
    at_one, _ = energy_kj(mixed, positions, parameters={"lambda_interpolate": 1.0})
    assert at_one == pytest.approx(energy_kj(ml_only, positions)[0], rel=1e-12)
    assert abs(at_one - expected) > 1.0, "the ML potential should differ from amber here"
    removed = [f for f in ml_only.getForces() if isinstance(f, openmm.HarmonicBondForce)][0]
    assert removed.getNumBonds() == 0, "the solute's bonds (the only unconstrained ones) are ML now"


def test_selection_splitting_a_constrained_bond(solvated_trialanine, lj_path):
    topology, _, system, solute = solvated_trialanine
    heavy = [i for i in solute if list(topology.atoms())[i].element is not app.element.hydrogen]
    with pytest.raises(InvalidStructureError, match="splits .* constrained bond"):
        create_mixed_system(topology, system, heavy, lj_path)


def test_unsupported_elements_in_the_ml_region(solvated_trialanine, tmp_path):
    topology, _, system, solute = solvated_trialanine
    path = tmp_path / "argon-only.pt"
    mlcalc.export(mlcalc.models.LennardJones(sigma=SIGMA, epsilon=EPSILON, cutoff=CUTOFF, species=[18]), path)
    with pytest.raises(UnsupportedElementError, match=r"atomic numbers \[1, 6, 7, 8\]"):
        create_mixed_system(topology, system, solute, path)


@needs_openmmtorch
@pytest.mark.parametrize("subset", [False, True])
def test_pythonforce_equals_torchforce(lj, subset):
    atoms = unwrap(openmm_skewed(), seed=2)
    ml = list(range(3, len(atoms))) if subset else None
    forces = {}
    for implementation in ("torch", "python"):
        system = openmm.System()
        system.setDefaultPeriodicBoxVectors(*[openmm.Vec3(*row / 10) for row in atoms.cell.array])
        for _ in atoms:
            system.addParticle(39.95)
        system.addForce(create_force(lj, atoms.numbers, atoms=ml, periodic=True, implementation=implementation))
        forces[implementation] = evaluate(system, atoms, "Reference")
    (e1, f1), (e2, f2) = forces["torch"], forces["python"]
    # The same module on the same float64 positions: equal to round-off of the unit conversions.
    assert abs(e1 - e2) <= 1e-12 * abs(e1)
    assert np.abs(f1 - f2).max() <= 1e-12 * np.abs(f1).max()
    if subset:
        assert np.abs(f2[:3]).max() == 0.0


def openmm_skewed():
    from test_openmm import openmm_reduced

    return openmm_reduced(ALL["skewed_box"]())


def test_pythonforce_system_serialises_and_copies(lj):
    """OpenMM pickles a PythonForce's function to copy and serialise it; the copy computes the same."""
    atoms = ALL["small_fcc"]()
    system = create_system(topology_of(atoms), lj, implementation="python", remove_cm_motion=False)
    copy = openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(system))
    (e1, f1), (e2, f2) = evaluate(copy, atoms, "Reference"), evaluate(system, atoms, "Reference")
    assert e1 == e2 and np.array_equal(f1, f2)


def test_mm_water_with_virtual_sites_around_an_ml_solute(morse_path):
    """TIP4P-Ew's extra particles (M, no element) stay MM: the ML/MM System builds, and at
    lambda_interpolate=0 it is OpenMM's all-MM System to round-off. (Every Topology atom used to need an
    element, so such water could not be used at all.)"""
    pdb = app.PDBFile(str(TRIALANINE))
    forcefield = app.ForceField("amber14-all.xml", "amber14/tip4pew.xml")
    modeller = app.Modeller(pdb.topology, pdb.positions)
    modeller.addSolvent(forcefield, model="tip4pew", padding=0.5 * unit.nanometer)
    assert any(atom.element is None for atom in modeller.topology.atoms())
    system = forcefield.createSystem(modeller.topology, nonbondedMethod=app.PME, nonbondedCutoff=0.7 * unit.nanometer)
    solute = [atom.index for atom in modeller.topology.atoms() if atom.residue.name != "HOH"]
    mixed = create_mixed_system(modeller.topology, system, solute, morse_path, interpolate=True)
    expected, _ = energy_kj(system, modeller.positions)
    at_zero, _ = energy_kj(mixed, modeller.positions, parameters={"lambda_interpolate": 0.0})
    assert at_zero == pytest.approx(expected, rel=1e-9, abs=1e-6)
    with pytest.raises(
        InvalidStructureError, match=r"ML atom \d+ \(\w+ in residue HOH .*has no element.*leave them out of atoms="
    ):
        create_mixed_system(modeller.topology, system, list(range(system.getNumParticles())), morse_path)
