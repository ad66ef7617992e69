"""OpenMM wraps ML molecules whole: the positions an ML System (whole-system or ML/MM) gives with
``enforcePeriodicBox=True`` are those OpenMM itself gives for the all-MM System of the same Topology,
whose bonds and constraints tell it the molecules. Without mlcalc's zero-energy bond force OpenMM
wrapped every ML atom on its own and solutes came out split across the box."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openmm
import pytest
from openmm import app, unit

from mlcalc.openmm import create_mixed_system, create_system
from mlcalc.openmm.molecules import MOLECULES_FORCE_NAME

TRIALANINE = Path(__file__).parents[1] / "examples" / "trialanine.pdb"
FORCEFIELD = ("amber14-all.xml", "amber14/tip3pfb.xml")


def wrapped(system: openmm.System, positions: np.ndarray) -> tuple[np.ndarray, float]:
    """Positions (nm) as OpenMM wraps them into the box, and the potential energy (kJ/mol)."""
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    state = context.getState(getPositions=True, getEnergy=True, enforcePeriodicBox=True)
    return (
        state.getPositions(asNumpy=True).value_in_unit(unit.nanometer),
        state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole),
    )


def straddling(topology: app.Topology, positions, atoms: list[int]) -> np.ndarray:
    """``positions`` (nm) shifted so that the first of ``atoms`` sits 0.05 nm inside the box's x face:
    the molecule it belongs to crosses the boundary."""
    xyz = np.asarray(positions.value_in_unit(unit.nanometer))
    box_x = topology.getPeriodicBoxVectors()[0][0].value_in_unit(unit.nanometer)
    return xyz + np.array([box_x - 0.05 - xyz[atoms[0], 0], 0.0, 0.0])


def longest_bond(topology: app.Topology, xyz: np.ndarray, atoms: set[int]) -> float:
    """Longest bond (nm) between ``atoms``, measured without the minimum image."""
    return max(
        float(np.linalg.norm(xyz[a.index] - xyz[b.index]))
        for a, b in topology.bonds()
        if a.index in atoms and b.index in atoms
    )


@pytest.fixture(scope="module")
def solvated_trialanine():
    pdb = app.PDBFile(str(TRIALANINE))
    forcefield = app.ForceField(*FORCEFIELD)
    modeller = app.Modeller(pdb.topology, pdb.positions)
    modeller.addSolvent(forcefield, padding=0.5 * unit.nanometer)
    mm = forcefield.createSystem(
        modeller.topology, nonbondedMethod=app.PME, nonbondedCutoff=0.7 * unit.nanometer, constraints=app.HBonds
    )
    solute = [atom.index for atom in modeller.topology.atoms() if atom.residue.name != "HOH"]
    return modeller.topology, modeller.positions, mm, solute


def test_whole_system_ml_wraps_molecules_as_openmm_wraps_the_mm_system(solvated_trialanine):
    topology, positions, mm, solute = solvated_trialanine
    xyz = straddling(topology, positions, solute)
    ml = create_system(topology, "demo")
    assert [f.getName() for f in ml.getForces()][-1] == MOLECULES_FORCE_NAME
    ml_xyz, _ = wrapped(ml, xyz)
    mm_xyz, _ = wrapped(mm, xyz)
    np.testing.assert_array_equal(ml_xyz, mm_xyz)
    assert longest_bond(topology, ml_xyz, set(solute)) < 0.2  # whole, not split across the 2.4 nm box


def test_ml_region_of_a_mixed_system_stays_whole(solvated_trialanine, morse_path):
    topology, positions, mm, solute = solvated_trialanine
    xyz = straddling(topology, positions, solute)
    mm_xyz, _ = wrapped(mm, xyz)
    for interpolate in (False, True):
        mixed = create_mixed_system(topology, mm, solute, morse_path, interpolate=interpolate)
        mixed_xyz, energy = wrapped(mixed, xyz)
        np.testing.assert_array_equal(mixed_xyz, mm_xyz)
        # the bond force adds nothing: the same System without it has the same energy
        bare = create_mixed_system(topology, mm, solute, morse_path, interpolate=interpolate)
        index = [f.getName() for f in bare.getForces()].index(MOLECULES_FORCE_NAME)
        bare.removeForce(index)
        bare_xyz, bare_energy = wrapped(bare, xyz)
        assert bare_energy == energy
        if not interpolate:  # (interpolating, the CustomCVForce's MM bond terms already mark the molecule)
            assert longest_bond(topology, bare_xyz, set(solute)) > 1.0, "split without the bond force"


def test_no_bond_force_without_a_box_or_without_bonds():
    def names(system: openmm.System) -> list[str]:
        return [force.getName() for force in system.getForces()]

    pdb = app.PDBFile(str(TRIALANINE))
    assert MOLECULES_FORCE_NAME not in names(create_system(pdb.topology, "demo"))
    bare = app.Topology()
    residue = bare.addResidue("WAT", bare.addChain())
    for name, element in (("O", app.element.oxygen), ("H1", app.element.hydrogen), ("H2", app.element.hydrogen)):
        bare.addAtom(name, element, residue)
    bare.setPeriodicBoxVectors(np.eye(3) * 1.2 * unit.nanometer)
    assert MOLECULES_FORCE_NAME not in names(create_system(bare, "demo"))
