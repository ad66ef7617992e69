"""Reference potentials against ASE's calculators and OpenMM's NonbondedForce (float64, ~1e-10)."""

from __future__ import annotations

import numpy as np
import openmm
import pytest
from ase.calculators.lj import LennardJones as AseLennardJones
from ase.calculators.morse import MorsePotential as AseMorse
from openmm import unit
from reference_parameters import CUTOFF, EPSILON, MORSE, SIGMA
from structures import ALL, unwrap

import mlcalc
from mlcalc.units import EV_PER_KJ_PER_MOL

# float64 round-off on sums of a few thousand pair terms: ~1e-13; 1e-10 leaves room and still
# catches any physics difference (a missing image, a wrong shift, a factor in the stress).
RTOL = 1e-10


# Natural scales of argon-like LJ/Morse quantities (ε, ε/σ, ε/σ³): the floor of the relative
# comparison, so that a force that vanishes by symmetry (exactly 0 here, 1e-17 in ASE) passes.
SCALES = {"energy": EPSILON, "energies": EPSILON, "forces": EPSILON / SIGMA, "stress": EPSILON / SIGMA**3}


def assert_close(found, expected, name, rtol=RTOL):
    found, expected = np.asarray(found), np.asarray(expected)
    scale = max(np.abs(expected).max(), SCALES[name])
    assert np.abs(found - expected).max() <= rtol * scale, f"{name}: max diff {np.abs(found - expected).max():.3e}"


def compare_with_ase(potential, reference_calculator, atoms):
    ours = atoms.copy()
    ours.calc = mlcalc.MLCalculator(potential)
    ref = atoms.copy()
    ref.calc = reference_calculator
    assert_close(ours.get_potential_energy(), ref.get_potential_energy(), "energy")
    assert_close(ours.get_potential_energies(), ref.get_potential_energies(), "energies")
    assert_close(ours.get_forces(), ref.get_forces(), "forces")
    if atoms.cell.rank == 3:
        assert_close(ours.get_stress(), ref.get_stress(), "stress")


@pytest.mark.parametrize("name", sorted(ALL))
def test_lennard_jones_equals_ase(lj, name):
    compare_with_ase(lj, AseLennardJones(sigma=SIGMA, epsilon=EPSILON, rc=CUTOFF), ALL[name]())


@pytest.mark.parametrize("name", sorted(ALL))
def test_morse_equals_ase(morse, name):
    compare_with_ase(morse, AseMorse(**MORSE), ALL[name]())


def test_unwrapped_positions_give_the_same_numbers(lj):
    compare_with_ase(lj, AseLennardJones(sigma=SIGMA, epsilon=EPSILON, rc=CUTOFF), unwrap(ALL["skewed_box"](), seed=5))


def nonbonded_reference(atoms, periodic: bool) -> tuple[float, np.ndarray]:
    """Energy (eV) and forces (eV/Å) of OpenMM's own truncated LJ on the Reference platform (float64)."""
    system = openmm.System()
    force = openmm.NonbondedForce()
    force.setNonbondedMethod(
        openmm.NonbondedForce.CutoffPeriodic if periodic else openmm.NonbondedForce.CutoffNonPeriodic
    )
    force.setCutoffDistance(CUTOFF / 10)
    force.setUseSwitchingFunction(False)
    force.setUseDispersionCorrection(False)
    for _ in atoms:
        system.addParticle(39.948)
        force.addParticle(0.0, SIGMA / 10, EPSILON / EV_PER_KJ_PER_MOL)
    system.addForce(force)
    if periodic:
        system.setDefaultPeriodicBoxVectors(*[openmm.Vec3(*row / 10) for row in atoms.cell.array])
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(atoms.positions / 10)
    state = context.getState(getEnergy=True, getForces=True)
    energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) * EV_PER_KJ_PER_MOL
    forces = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
    return energy, forces * EV_PER_KJ_PER_MOL / 10


@pytest.mark.parametrize("name, periodic", [("large_fcc", True), ("cluster", False)])
def test_truncated_lennard_jones_equals_openmm_nonbonded(lj_truncated_path, name, periodic):
    atoms = unwrap(ALL[name](), seed=2) if periodic else ALL[name]()
    energy, forces = nonbonded_reference(atoms, periodic)
    atoms.calc = mlcalc.MLCalculator(lj_truncated_path, device="cpu")
    assert_close(atoms.get_potential_energy(), energy, "energy")
    assert_close(atoms.get_forces(), forces, "forces")


def test_shift_changes_energy_by_the_cutoff_offset(lj, lj_truncated_path):
    """shift=True adds -u(rc) per pair and nothing to the forces."""
    atoms = ALL["large_fcc"]()
    shifted = lj.evaluate(atoms)[0]
    truncated = mlcalc.load(lj_truncated_path, device="cpu").evaluate(atoms)[0]
    pairs = len(mlcalc.neighbor_list(atoms, CUTOFF)[0]) / 2
    u_rc = 4 * EPSILON * ((SIGMA / CUTOFF) ** 12 - (SIGMA / CUTOFF) ** 6)
    assert_close(shifted["energy"], truncated["energy"] - pairs * u_rc, "energy")
    assert_close(shifted["forces"], truncated["forces"], "forces")


def test_reference_models_carry_their_metadata(tmp_path):
    metadata = mlcalc.export(mlcalc.models.Morse(**MORSE), tmp_path / "m.pt")
    assert metadata.cutoff == pytest.approx(MORSE["rcut2"] * MORSE["r0"])
    assert (metadata.length_unit, metadata.energy_unit) == ("angstrom", "eV")
    metadata = mlcalc.export(mlcalc.models.LennardJones(sigma=2.0, species=[18, 36]), tmp_path / "lj.pt")
    assert metadata.cutoff == 6.0 and metadata.species == (18, 36)


@pytest.mark.parametrize("kwargs", [dict(sigma=0.0), dict(epsilon=-1.0), dict(cutoff=-2.0)])
def test_lennard_jones_rejects_bad_parameters(kwargs):
    with pytest.raises(ValueError):
        mlcalc.models.LennardJones(**kwargs)
