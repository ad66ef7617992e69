"""Constrained optimisation: the FixInternals net-force/torque trap in a periodic solvent box, exact
constraints in periodic cells with both back-ends, and honest non-convergence reports."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms, units
from ase.build import molecule
from ase.calculators.lj import LennardJones
from ase.constraints import FixAtoms, FixInternals
from structures import small_fcc
from tblite.ase import TBLite

from mlcalc.workflows.constraints import FixInternalCoordinates, max_force
from mlcalc.workflows.errors import ConstraintNotHeldError, InternalCoordinateError, NotConvergedError
from mlcalc.workflows.internal import Dihedral, Distance
from mlcalc.workflows.optimize import optimize

BUTANE = [0, 1, 2, 3]  # C-C-C-C; atoms 0-13 are butane, 14-37 eight waters


def solvated_butane() -> Atoms:
    """Butane and eight waters in a 9 Å periodic cube (38 atoms), butane straddling the boundary."""
    rng = np.random.default_rng(1)
    atoms = molecule("trans-butane")
    atoms.cell = [9.0, 9.0, 9.0]
    atoms.pbc = True
    atoms.center()
    for corner in [(1, 1, 1), (1, 1, 7.5), (1, 7.5, 1), (7.5, 1, 1), (7.5, 7.5, 1), (7.5, 1, 7.5), (1, 7.5, 7.5)]:
        water = molecule("H2O")
        water.rotate(rng.uniform(0, 360), rng.normal(size=3))
        water.translate(corner)
        atoms += water
    water = molecule("H2O")
    water.translate((7.5, 7.5, 7.5))
    atoms += water
    atoms.translate([4.0, 0.0, 0.0])  # the molecule crosses the cell boundary
    atoms.wrap()
    return atoms


@pytest.fixture(scope="module")
def solvated():
    atoms = solvated_butane()
    atoms.calc = TBLite(method="GFN2-xTB", verbosity=0)
    forces = atoms.get_forces()  # one periodic GFN2-xTB evaluation (~1.5 s)
    return atoms, forces


def test_fixinternals_trap_and_our_projection_in_a_periodic_solvent_box(solvated):
    atoms, raw = solvated
    target = atoms.get_dihedral(*BUTANE, mic=True)
    solvent = np.arange(14, len(atoms))
    # The trap: ASE's FixInternals also removes the net force and torque of the whole box, so the
    # forces on the waters change although no water is constrained.
    ase_forces = raw.copy()
    FixInternals(dihedrals_deg=[[target, BUTANE]], mic=True).adjust_forces(atoms, ase_forces)
    assert np.abs(ase_forces[solvent] - raw[solvent]).max() > 1e-3
    # Ours: forces on unconstrained atoms keep their exact bits.
    ours = raw.copy()
    FixInternalCoordinates([Dihedral(*BUTANE, target=target)], mic=True).adjust_forces(atoms, ours)
    unconstrained = np.setdiff1d(np.arange(len(atoms)), BUTANE)
    np.testing.assert_array_equal(ours[unconstrained], raw[unconstrained])
    # On the dihedral's atoms: the force minus its component along the dihedral's gradient, with the
    # gradient from central finite differences of ASE's own get_dihedral (minimum image).
    gradient = np.zeros((len(atoms), 3))
    h = 1e-5
    for i in BUTANE:
        for k in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[i, k] += h
            minus.positions[i, k] -= h
            change = (plus.get_dihedral(*BUTANE, mic=True) - minus.get_dihedral(*BUTANE, mic=True) + 180) % 360 - 180
            gradient[i, k] = change / (2 * h)
    unit = gradient.ravel() / np.linalg.norm(gradient)
    expected = raw.ravel() - unit * (unit @ raw.ravel())
    np.testing.assert_allclose(ours.ravel(), expected, atol=1e-9)  # finite-difference error ~1e-10 × |F|


def argon_chain(atoms: Atoms) -> list[int]:
    """Four atoms i-j-k-l of a periodic argon box, each a nearest neighbour of the next, not collinear."""
    distances = atoms.get_all_distances(mic=True)
    chain = [0]
    while len(chain) < 4:
        candidates = [n for n in np.argsort(distances[chain[-1]]) if n not in chain][:12]
        for n in candidates:
            trial = chain + [int(n)]
            if len(trial) < 3 or 30 < atoms.get_angle(*trial[-3:], mic=True) < 150:
                chain = trial
                break
    return chain


@pytest.mark.parametrize("backend", ["ase", "scipy"])
def test_periodic_constrained_optimisation_reaches_exact_constraints(backend):
    """A dihedral and a distance held in a periodic box of 32 Lennard-Jones atoms (ASE's calculator,
    smooth cutoff; cell narrower than twice the cutoff): the constraints are met to 1e-6 and every
    unconstrained atom's *true* force, not a projected one, is below fmax, so the rest of the box is
    really relaxed."""
    atoms = small_fcc(rattle=0.1, seed=4)
    chain = argon_chain(atoms)
    far = int(np.argmax(atoms.get_all_distances(mic=True)[chain[0]]))
    atoms.set_constraint(FixAtoms(indices=[far]))
    dihedral = Dihedral(*chain, target=atoms.get_dihedral(*chain, mic=True) + 12.0)
    distance = Distance(chain[0], chain[1], target=atoms.get_distance(chain[0], chain[1], mic=True) + 0.1)
    calc = LennardJones(sigma=3.405, epsilon=119.8 * units.kB, rc=8.5, smooth=True)
    result = optimize(atoms, calc, [dihedral, distance], backend=backend, fmax=1e-3, steps=500)
    assert result.converged, result.message
    assert result.max_constraint_error < 1e-6
    final = result.atoms
    assert abs(final.get_dihedral(*chain, mic=True) - dihedral.target) < 1e-6 * 180 / np.pi
    assert abs(final.get_distance(chain[0], chain[1], mic=True) - distance.target) < 1e-6
    np.testing.assert_array_equal(final.positions[far], atoms.positions[far])
    true_forces = final.get_forces(apply_constraint=False)
    free = np.setdiff1d(np.arange(len(atoms)), chain + [far])
    assert max_force(true_forces[free]) <= 1e-3
    assert result.fmax <= 1e-3


def test_unconverged_optimisation_is_reported_not_hidden():
    atoms = molecule("trans-butane")
    atoms.rattle(0.1, seed=1)
    calc = TBLite(method="GFN2-xTB", verbosity=0)
    result = optimize(atoms, calc, [Dihedral(0, 1, 2, 3, target=100.0)], fmax=1e-4, steps=3)
    assert not result.converged
    assert "did not converge in 3 steps" in result.message and "fmax" in result.message
    with pytest.raises(NotConvergedError, match="did not converge"):
        result.raise_if_not_converged()


def test_constraints_that_cannot_be_met_are_named_not_a_bare_ase_error():
    atoms = Atoms("H3", positions=[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 1.0, 0.0]])
    # |0-2| = 3 Å with |0-1| = |1-2| = 1 Å breaks the triangle inequality: ASE's correction cannot converge
    held = [Distance(0, 1).with_target(1.0), Distance(1, 2).with_target(1.0), Distance(0, 2).with_target(3.0)]
    atoms.set_constraint(FixInternalCoordinates(held))
    with pytest.raises(ConstraintNotHeldError, match=r"distance 0-2 = 3 Å\) cannot be met .* smaller steps"):
        atoms.set_positions(atoms.positions + 0.01)
    with pytest.raises(NotConvergedError, match="from the starting structure .* smaller steps"):
        optimize(Atoms("H3", positions=atoms.positions), LennardJones(), held)


def test_fixed_atom_inside_a_constraint_is_refused():
    atoms = molecule("trans-butane")
    atoms.set_constraint(FixAtoms(indices=[2]))
    with pytest.raises(InternalCoordinateError, match="atom 2 is held by FixAtoms"):
        optimize(atoms, TBLite(method="GFN2-xTB", verbosity=0), [Dihedral(0, 1, 2, 3, target=60.0)])
