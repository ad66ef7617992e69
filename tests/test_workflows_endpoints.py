"""Barrier paths and NEBs start from minima, climb to the saddle point, and refuse clashes and
"dihedrals" across molecules. References: endpoints relaxed by ASE's own BFGS, and the saddle point
found by Sella (an independent saddle-point optimiser) from the climbing image."""

from __future__ import annotations

import numpy as np
import pytest
import sella
from ase import Atoms
from ase.build import molecule
from ase.optimize import BFGS

import mlcalc
from mlcalc.errors import InvalidStructureError
from mlcalc.units import EV_TO_KCAL_MOL
from mlcalc.workflows import (
    Dihedral,
    InternalCoordinateError,
    dihedral_path,
    make_band,
    optimize,
    prepare_endpoint,
    relaxed_scan,
    run_neb,
)

CCCC = Dihedral(0, 1, 2, 3)

# butane with the demo potential: thousands of small evaluations, faster on one torch thread
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def calc() -> mlcalc.MLCalculator:
    return mlcalc.MLCalculator("demo", dtype="float64", device="cpu")


def relaxed_by_ase(atoms: Atoms, calc) -> Atoms:
    atoms = atoms.copy()
    atoms.calc = calc
    assert BFGS(atoms, logfile=None).run(fmax=1e-4, steps=500)
    atoms.calc = None
    return atoms


@pytest.fixture(scope="module")
def butane(calc) -> tuple[Atoms, Atoms, Atoms]:
    """ASE's unrelaxed trans-butane, and anti and gauche butane relaxed by ASE's BFGS to 1e-4 eV/Å."""
    raw = molecule("trans-butane")
    anti = relaxed_by_ase(raw, calc)
    gauche = relaxed_by_ase(optimize(anti, calc, [CCCC.with_target(65.0)]).atoms, calc)
    return raw, anti, gauche


def test_path_from_an_unrelaxed_endpoint_measures_the_barrier_from_the_minimum(calc, butane):
    raw, anti, gauche = butane
    reference = dihedral_path(anti, gauche, calc, CCCC, 7, backend="ase")
    path = dihedral_path(raw, gauche, calc, CCCC, 7, backend="ase")
    # endpoints relaxed to fmax 0.01 (ours) and 1e-4 eV/Å (ASE): their energies differ by < 1e-4 eV
    assert path.barrier * EV_TO_KCAL_MOL == pytest.approx(reference.barrier * EV_TO_KCAL_MOL, abs=0.01)
    raw.calc = calc
    unrelaxed_barrier = (path.energies.max() - raw.get_potential_energy()) * EV_TO_KCAL_MOL
    assert unrelaxed_barrier < path.barrier * EV_TO_KCAL_MOL - 0.1  # what the path reported before
    start = path.images[0]
    assert start.info["relaxation_eV"] == pytest.approx(reference.energies[0] - raw.get_potential_energy(), abs=1e-4)
    assert 0 < start.info["relaxation_rmsd_A"] < 0.1
    assert path.images[-1].info["relaxation_eV"] == 0.0  # already a minimum: used as given
    with pytest.raises(InvalidStructureError, match=r"initial structure is not a minimum.*Relax it first"):
        dihedral_path(raw, gauche, calc, CCCC, 7, backend="ase", relax_endpoints=False)


def test_neb_climbing_image_reaches_sellas_saddle_point_by_default(calc, butane):
    raw, anti, gauche = butane
    neb = run_neb(make_band(raw, gauche, 5), calc)  # the initial endpoint relaxed inside run_neb
    assert neb.converged and neb.fmax <= 0.01
    assert neb.images[0].info["relaxation_eV"] < -1e-3
    top = int(np.argmax(neb.energies))
    saddle = neb.images[top].copy()
    saddle.calc = calc
    assert sella.Sella(saddle, internal=True, logfile=None).run(fmax=1e-4, steps=200)
    anti.calc = calc
    sella_barrier = (saddle.get_potential_energy() - anti.get_potential_energy()) * EV_TO_KCAL_MOL
    # measured: 0.0011 kcal/mol apart at fmax 0.01; 0.1 kcal/mol at the old default 0.05
    assert neb.barrier * EV_TO_KCAL_MOL == pytest.approx(sella_barrier, abs=0.005)
    with pytest.raises(InvalidStructureError, match=r"initial structure is not a minimum.*Relax it first"):
        run_neb(make_band(raw, gauche, 3), calc, relax_endpoints=False)


def clashing(atoms: Atoms, i: int, j: int, distance: float) -> Atoms:
    """A copy with atom ``i`` moved to ``distance`` Å from atom ``j`` along their line."""
    atoms = atoms.copy()
    bond = atoms.positions[j] - atoms.positions[i]
    atoms.positions[i] = atoms.positions[j] - bond / np.linalg.norm(bond) * distance
    return atoms


@pytest.mark.parametrize("relax", [True, False])
def test_a_clashing_endpoint_is_refused_naming_the_atoms(calc, butane, relax):
    _, anti, gauche = butane
    clash = clashing(anti, 4, 5, 0.46)
    message = r"initial structure has 1 clash.*atoms 4 \(H\) and 5 \(H\) 0\.460 Å apart.*fix the structure"
    with pytest.raises(InvalidStructureError, match=message):
        dihedral_path(clash, gauche, calc, CCCC, 3, backend="ase", relax_endpoints=relax)
    with pytest.raises(InvalidStructureError, match=message):
        run_neb(make_band(clash, gauche, 3), calc, relax_endpoints=relax)


def test_clashes_are_refused_in_optimisations_and_scans_but_short_real_bonds_are_not(calc, butane):
    _, anti, _ = butane
    clash = clashing(anti, 0, 1, 0.8)  # C-C at 0.8 Å: below 0.6 × 2 × 0.76 Å
    with pytest.raises(InvalidStructureError, match=r"starting structure has 1 clash.*atoms 0 \(C\) and 1 \(C\)"):
        optimize(clash, calc)
    with pytest.raises(InvalidStructureError, match="starting structure has 1 clash"):
        relaxed_scan(clash, calc, CCCC, grid=[180.0, 170.0])
    for name in ("H2", "C2H2", "N2", "CO"):  # the shortest bonds there are: not clashes
        prepare_endpoint(molecule(name), calc=_zero_force_calculator(), name="initial")


def _zero_force_calculator():
    from ase.calculators.calculator import Calculator, all_changes

    class Zero(Calculator):
        implemented_properties = ["energy", "forces"]

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            self.results = {"energy": 0.0, "forces": np.zeros((len(self.atoms), 3))}

    return Zero()


def two_ethanes(separation: float = 4.0) -> Atoms:
    first = molecule("C2H6")
    second = first.copy()
    second.translate([separation, 0.0, 0.0])
    return first + second


@pytest.mark.parametrize("workflow", ["optimize", "scan", "path"])
def test_a_dihedral_across_two_molecules_is_refused(calc, workflow):
    dimer = two_ethanes()
    across = Dihedral(2, 0, 8, 10)  # H-C of the first ethane, C-H of the second
    message = r"dihedral 2-0-8-10 joins atoms of 2 different molecules \(atoms 2, 0 \| 8, 10.*one molecule"
    with pytest.raises(InternalCoordinateError, match=message):
        if workflow == "optimize":
            optimize(dimer, calc, [across.with_target(30.0)])
        elif workflow == "scan":
            relaxed_scan(dimer, calc, across, grid=[0.0, 10.0])
        else:
            dihedral_path(dimer, dimer, calc, across, 3)


def test_dihedrals_within_one_molecule_of_several_and_of_single_atoms_are_allowed(calc):
    dimer = two_ethanes()
    within = Dihedral(2, 0, 1, 5)  # H-C-C-H of the first ethane
    result = optimize(dimer, calc, [within.with_target(within.value(dimer) + 20.0)], fmax=0.05)
    assert abs(result.constraint_errors).max() < 1e-6
    argon = Atoms("Ar4", positions=[[0, 0, 0], [3.8, 0, 0], [3.8, 3.8, 0], [3.8, 3.8, 3.8]])
    from mlcalc.workflows.fragments import check_dihedrals_in_one_molecule

    check_dihedrals_in_one_molecule(argon, [Dihedral(0, 1, 2, 3)])  # atoms, not molecules: nothing to refuse


def test_endpoints_with_atoms_of_one_element_in_another_order(calc, butane):
    """Swapping two hydrogens on different carbons keeps the elements in order but not the bonds: a
    dihedral-driven path refuses it, an NEB (which may be a reaction) warns."""
    _, anti, gauche = butane
    order = list(range(len(gauche)))
    order[4], order[13] = 13, 4
    with pytest.raises(InvalidStructureError, match=r"bonded differently \(only in the initial structure .*order"):
        dihedral_path(anti, gauche[order], calc, CCCC, 3)
    with pytest.warns(UserWarning, match=r"bonded differently .* put them in the initial's order"):
        make_band(anti, gauche[order], 3)
