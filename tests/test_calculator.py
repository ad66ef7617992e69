"""MLCalculator: derivatives, invariances, caching, batching, ASE optimisers, filters and MD, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError
from ase.calculators.lj import LennardJones as AseLennardJones
from ase.calculators.morse import MorsePotential as AseMorse
from ase.filters import FrechetCellFilter
from ase.md.verlet import VelocityVerlet
from ase.optimize import (
    BFGS,
    FIRE,
    FIRE2,
    LBFGS,
    RFO,
    BFGSLineSearch,
    GoodOldQuasiNewton,
    GPMin,
    LBFGSLineSearch,
    MDMin,
    ODE12r,
)
from ase.optimize.precon import Exp, PreconFIRE, PreconLBFGS
from ase.units import fs
from reference_parameters import CUTOFF, EPSILON, MORSE, SIGMA
from scipy.spatial.transform import Rotation
from structures import ALL, unwrap

import mlcalc
from mlcalc.workflows.band import BandCalculator, ImageCalculator


def calculated(atoms: Atoms, potential) -> Atoms:
    atoms = atoms.copy()
    atoms.calc = mlcalc.MLCalculator(potential)
    return atoms


# --- derivatives ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["skewed_box", "cluster", "slab", "small_fcc"])
def test_forces_are_minus_the_energy_gradient(morse, name):
    """Central differences, h = 1e-4 Å: truncation error h²/6·|E'''| ~ 1e-10 eV/Å, far below 1e-7."""
    atoms = calculated(ALL[name](), morse)
    forces = atoms.get_forces()
    rng = np.random.default_rng(0)
    h = 1e-4
    for atom in rng.choice(len(atoms), size=min(6, len(atoms)), replace=False):
        for axis in range(3):
            displaced = []
            for sign in (+1, -1):
                moved = atoms.copy()
                moved.calc = atoms.calc
                moved.positions[atom, axis] += sign * h
                displaced.append(moved.get_potential_energy())
            numeric = -(displaced[0] - displaced[1]) / (2 * h)
            assert forces[atom, axis] == pytest.approx(numeric, abs=1e-7 * max(1.0, np.abs(forces).max()))


@pytest.mark.parametrize("name", ["skewed_box", "small_fcc", "primitive_fcc", "slab"])
def test_stress_is_the_strain_derivative(morse, name):
    """σ_ab = (1/V) ∂E/∂ε_ab, with a symmetric strain applied to cell and atoms together."""
    atoms = calculated(ALL[name](), morse)
    stress = atoms.get_stress(voigt=False)
    volume = atoms.get_volume()
    h = 1e-5
    for a, b in [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]:
        energies = []
        for sign in (+1, -1):
            strain = np.eye(3)
            strain[a, b] += sign * h / (2 if a != b else 1)
            strain[b, a] += sign * h / 2 if a != b else 0
            strained = atoms.copy()
            strained.calc = atoms.calc
            strained.set_cell(atoms.cell.array @ strain, scale_atoms=True)
            energies.append(strained.get_potential_energy())
        numeric = (energies[0] - energies[1]) / (2 * h) / volume
        assert stress[a, b] == pytest.approx(numeric, abs=1e-8 * max(1e-3, np.abs(stress).max()))


# --- invariances ---------------------------------------------------------------------------


def results(atoms: Atoms) -> dict:
    out = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces()}
    if atoms.cell.rank == 3:
        out["stress"] = atoms.get_stress()
    return out


def assert_same_results(a: dict, b: dict, tol: float = 1e-12):
    for key in a:
        scale = max(np.abs(a[key]).max(), 1e-3)
        assert np.abs(np.asarray(a[key]) - np.asarray(b[key])).max() <= tol * scale, key


@pytest.mark.parametrize("name", sorted(ALL))
def test_translating_and_wrapping_change_nothing(lj, name):
    atoms = calculated(ALL[name](), lj)
    reference = results(atoms)
    shifted = atoms.copy()
    shifted.calc = atoms.calc
    shifted.positions += [13.7, -4.2, 8.9]
    assert_same_results(reference, results(shifted))
    if atoms.pbc.any():
        for moved in (unwrap(atoms, seed=3, reach=5), atoms.copy()):
            moved.wrap()
            moved.calc = atoms.calc
            assert_same_results(reference, results(moved))


def test_rotating_a_molecule_rotates_the_forces(lj):
    atoms = calculated(ALL["cluster"](), lj)
    rotation = Rotation.from_euler("xyz", [30, 50, -70], degrees=True).as_matrix()
    rotated = atoms.copy()
    rotated.calc = atoms.calc
    rotated.positions = atoms.positions @ rotation.T
    assert rotated.get_potential_energy() == pytest.approx(atoms.get_potential_energy(), rel=1e-12)
    np.testing.assert_allclose(rotated.get_forces(), atoms.get_forces() @ rotation.T, atol=1e-12)


# --- caching and batching ------------------------------------------------------------------


def test_one_model_call_serves_every_property(lj_path, monkeypatch):
    calc = mlcalc.MLCalculator(lj_path, device="cpu")
    calls = []
    evaluate = calc.potential.evaluate
    monkeypatch.setattr(calc.potential, "evaluate", lambda *a, **k: calls.append(1) or evaluate(*a, **k))
    atoms = ALL["small_fcc"]()
    atoms.calc = calc
    for _ in range(2):
        atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress(), atoms.get_potential_energies()
    assert len(calls) == 1
    atoms.positions[0, 0] += 0.01
    atoms.get_forces(), atoms.get_potential_energy()
    assert len(calls) == 2


@pytest.mark.parametrize("holder", ["calculator", "neb image"])
@pytest.mark.parametrize("repeat", [1, 4])  # 96 and 6,144 coordinates: both sides of the bytes comparison's size
def test_check_state_reports_what_ase_reports(lj, repeat, holder):
    """The exact comparison (of the calculator and of a band's image calculator) finds the changes
    ASE's own check finds, down to one ulp of one coordinate."""
    atoms = ALL["small_fcc"]().repeat(repeat)
    calc = mlcalc.MLCalculator(lj)
    if holder == "calculator":
        calc.calculate(atoms)
    else:
        image = atoms.copy()
        BandCalculator(calc, [image])
        image.get_forces()
        calc = image.calc
        assert isinstance(calc, ImageCalculator) and not calc.is_stale(atoms)
    changes = {
        "nothing": lambda a: None,
        "one ulp": lambda a: a.positions.__setitem__((3, 1), np.nextafter(a.positions[3, 1], np.inf)),
        "numbers": lambda a: a.numbers.__setitem__(0, 36),
        "cell": lambda a: a.set_cell(a.cell.array * 1.01),
        "pbc": lambda a: a.set_pbc([True, True, False]),
        "charges": lambda a: a.set_initial_charges(np.full(len(a), 0.5)),
    }
    for label, change in changes.items():
        changed = atoms.copy()
        change(changed)
        expected = Calculator.check_state(calc, changed, tol=0.0)
        assert sorted(calc.check_state(changed)) == sorted(expected), label
        assert bool(expected) == (label != "nothing"), label


def test_calculate_called_directly_uses_and_keeps_a_copy_of_the_atoms_it_is_given(lj):
    """Without Calculator.calculate underneath: a direct call still evaluates the atoms it is given
    (not the last ones), keeps its own copy, and works with ASE's ``use_cache=False``."""
    first, second = ALL["small_fcc"](), ALL["large_fcc"]()
    calc = mlcalc.MLCalculator(lj)
    calc.calculate(first)
    calc.calculate(second)
    assert calc.results["energy"] == lj.evaluate(second)[0]["energy"]
    assert calc.atoms is not second and len(calc.atoms) == len(second)
    second.positions[0] += 0.1  # the caller's atoms change; the calculator's copy does not
    calc.calculate()  # atoms=None: the kept copy
    assert calc.results["energy"] == lj.evaluate(ALL["large_fcc"]())[0]["energy"]
    uncached = mlcalc.MLCalculator(lj, use_cache=False)
    assert uncached.get_potential_energy(first) == lj.evaluate(first)[0]["energy"]
    assert uncached.get_potential_energy(second) == lj.evaluate(second)[0]["energy"]


def test_batch_equals_one_at_a_time(lj_path):
    calc = mlcalc.MLCalculator(lj_path, device="cpu")
    images = [ALL[name]() for name in sorted(ALL)]
    batch = calc.calculate_batch(images)
    for atoms, result in zip(images, batch):
        atoms.calc = calc
        assert result["energy"] == pytest.approx(atoms.get_potential_energy(), rel=1e-13)
        np.testing.assert_allclose(result["forces"], atoms.get_forces(), atol=1e-14)
        np.testing.assert_allclose(result["energies"], atoms.get_potential_energies(), atol=1e-14)
        if atoms.cell.rank == 3:
            np.testing.assert_allclose(result["stress"], atoms.get_stress(), atol=1e-16)
        else:
            assert "stress" not in result


def test_no_stress_without_a_cell(lj):
    atoms = calculated(ALL["cluster"](), lj)
    with pytest.raises(PropertyNotImplementedError):
        atoms.get_stress()


# --- ASE optimisers, filters and MD --------------------------------------------------------


def lj_cluster() -> Atoms:
    """13 argon atoms, open boundaries, in a box (the preconditioners want a cell)."""
    atoms = ALL["cluster"]()[:13]
    atoms.rattle(0.15, seed=11)
    atoms.set_cell([30.0, 30.0, 30.0])
    atoms.center()
    return atoms


OPTIMIZERS = [
    BFGS,
    LBFGS,
    FIRE,
    FIRE2,
    MDMin,
    BFGSLineSearch,
    LBFGSLineSearch,
    GoodOldQuasiNewton,
    GPMin,
    ODE12r,
    RFO,
    PreconLBFGS,
    PreconFIRE,
]


@pytest.mark.parametrize("optimizer", OPTIMIZERS, ids=lambda o: o.__name__)
def test_every_ase_optimizer_follows_the_ase_reference_path(lj, optimizer):
    """The same optimiser from the same start takes the same steps with our file as with ASE's LJ."""
    ends = []
    for calculator in (mlcalc.MLCalculator(lj), AseLennardJones(sigma=SIGMA, epsilon=EPSILON, rc=CUTOFF)):
        atoms = lj_cluster()
        atoms.calc = calculator
        kwargs = {"precon": Exp()} if optimizer in (PreconLBFGS, PreconFIRE) else {}
        opt = optimizer(atoms, logfile=None, **kwargs)
        assert opt.run(fmax=1e-3, steps=300)
        ends.append((opt.nsteps, atoms.get_potential_energy(), atoms.positions.copy()))
    assert ends[0][0] == ends[1][0]
    assert ends[0][1] == pytest.approx(ends[1][1], rel=1e-9)
    np.testing.assert_allclose(ends[0][2], ends[1][2], atol=1e-6)


@pytest.mark.parametrize("name", ["primitive_fcc", "small_fcc"])
def test_cell_relaxation_with_frechet_cell_filter(lj, name):
    """Relaxing a small periodic crystal (all periodic images) gives ASE's lattice constant."""
    volumes = []
    for calculator in (mlcalc.MLCalculator(lj), AseLennardJones(sigma=SIGMA, epsilon=EPSILON, rc=CUTOFF)):
        atoms = ALL[name]()
        atoms.set_cell(atoms.cell.array * 1.03, scale_atoms=True)
        atoms.calc = calculator
        assert BFGS(FrechetCellFilter(atoms), logfile=None).run(fmax=1e-6, steps=500)
        assert np.abs(atoms.get_stress()).max() < 1e-6
        volumes.append(atoms.get_volume() / len(atoms))
    assert volumes[0] == pytest.approx(volumes[1], rel=1e-9)


@pytest.mark.slow
def test_velocity_verlet_trajectory_equals_ase_and_conserves_energy(morse):
    trajectories = []
    for calculator in (mlcalc.MLCalculator(morse), AseMorse(**MORSE)):
        atoms = ALL["small_fcc"](rattle=0.3, seed=5)
        atoms.calc = calculator
        dyn = VelocityVerlet(atoms, timestep=5 * fs)
        totals = []
        for _ in range(40):
            dyn.run(5)
            totals.append(atoms.get_total_energy())
        trajectories.append(atoms.positions.copy())
        drift = np.ptp(totals) / len(atoms)
        assert drift < 1e-4, f"total energy drifts by {drift:.2e} eV/atom"
    np.testing.assert_allclose(trajectories[0], trajectories[1], atol=1e-8)


# --- bad input -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def argon_only(tmp_path_factory):
    path = tmp_path_factory.mktemp("ar") / "ar.pt"
    mlcalc.export(mlcalc.models.LennardJones(sigma=SIGMA, epsilon=EPSILON, cutoff=CUTOFF, species=[18, 36]), path)
    return mlcalc.MLCalculator(path, device="cpu")


def test_unsupported_element_is_named_with_the_supported_ones(argon_only):
    atoms = Atoms("ArFeAr", positions=[[0, 0, 0], [4, 0, 0], [8, 0, 0]])
    atoms.calc = argon_only
    with pytest.raises(
        mlcalc.UnsupportedElementError, match=r"does not support Fe \(Z=26\) at atoms \[1\]; it supports Ar, Kr"
    ):
        atoms.get_potential_energy()


def test_nan_positions(argon_only):
    atoms = Atoms("Ar3", positions=[[0, 0, 0], [4, np.nan, 0], [8, 0, np.inf]])
    atoms.calc = argon_only
    with pytest.raises(mlcalc.InvalidStructureError, match=r"positions of atoms \[1, 2\] are NaN or infinite"):
        atoms.get_forces()


@pytest.mark.parametrize(
    "cell, pbc, message",
    [
        (np.zeros((3, 3)), True, "cell vector 0 is zero but the structure is periodic along it"),
        ([[5, 0, 0], [0, 5, 0], [5, 5, 0]], True, "zero volume"),
        ([[5, 0, 0], [0, 5, 0], [0, 0, np.nan]], True, "NaN or infinite"),
    ],
)
def test_bad_cells(argon_only, cell, pbc, message):
    atoms = Atoms("Ar2", positions=[[0, 0, 0], [3.5, 0, 0]], cell=cell, pbc=pbc)
    atoms.calc = argon_only
    with pytest.raises(mlcalc.InvalidStructureError, match=message):
        atoms.get_potential_energy()


def test_the_module_itself_refuses_bad_input(lj):
    """Code that calls the TorchScript file directly (not through Python checks) gets errors too."""
    module = lj.module
    positions = torch.tensor([[0.0, 0, 0], [3.5, 0, 0]], dtype=torch.float64)
    cell, pbc = torch.zeros(3, 3, dtype=torch.float64), torch.zeros(3, dtype=torch.bool)
    with pytest.raises(torch.jit.Error, match="positions of atoms \\[1\\] are NaN"):
        module(torch.tensor([18, 18]), positions * torch.tensor([[1.0], [np.nan]]), cell, pbc)
    with pytest.raises(torch.jit.Error, match="atomic numbers must lie in 0..118"):
        module(torch.tensor([18, 200]), positions, cell, pbc)
    with pytest.raises(torch.jit.Error, match="batch must be non-decreasing"):
        module(torch.tensor([18, 18]), positions, cell.expand(2, 3, 3), pbc.expand(2, 3), torch.tensor([1, 0]))


def test_the_module_names_unsupported_atomic_numbers(argon_only):
    positions = torch.tensor([[0.0, 0, 0], [3.5, 0, 0]], dtype=torch.float64)
    with pytest.raises(
        torch.jit.Error, match="atomic numbers \\[26\\] are not supported by this potential; it supports \\[18, 36\\]"
    ):
        argon_only.potential.module(
            torch.tensor([18, 26]), positions, torch.zeros(3, 3), torch.zeros(3, dtype=torch.bool)
        )


def test_calculator_accepts_a_potential_and_converts_a_copy(lj):
    calc = mlcalc.MLCalculator(lj, dtype="float32")
    assert calc.potential.dtype == torch.float32 and lj.dtype == torch.float64
    assert all(t.dtype == torch.float64 for t in lj.module.buffers() if t.is_floating_point())
    assert mlcalc.MLCalculator(lj).potential is lj


def test_errors_in_a_batch_name_the_atoms_of_their_structure(argon_only):
    """The checks that name the problem run after the module refuses a batch: the atom indices
    are those of the structure at fault, not of the batch."""
    good = Atoms("Ar2", positions=[[0, 0, 0], [3.5, 0, 0]])
    bad = Atoms("Ar3", positions=[[0, 0, 0], [4, np.nan, 0], [8, 0, 0]])
    with pytest.raises(mlcalc.InvalidStructureError, match=r"positions of atoms \[1\] are NaN"):
        argon_only.calculate_batch([good, bad])


def test_read_only_and_strided_inputs_are_accepted(argon_only):
    atoms = Atoms("Ar3", positions=[[0, 0, 0], [3.7, 0, 0], [0, 3.8, 0]])
    expected = argon_only.potential.evaluate(atoms)[0]
    positions = np.asfortranarray(atoms.positions)
    positions.flags.writeable = False
    numbers = atoms.numbers.copy()
    numbers.flags.writeable = False
    found = argon_only.potential.evaluate_arrays(numbers, positions, np.zeros((1, 3, 3)), np.zeros((1, 3), bool))
    # (TorchScript optimises during the first calls: the last bit may differ between them.)
    assert found["energy"][0] == pytest.approx(expected["energy"], rel=1e-14)
    np.testing.assert_allclose(found["forces"], expected["forces"], rtol=1e-13)


def test_several_cells_need_a_batch_array(argon_only):
    with pytest.raises(ValueError, match="2 cells need the batch array"):
        argon_only.potential.evaluate_arrays([18, 18], np.zeros((2, 3)), np.zeros((2, 3, 3)), np.zeros((2, 3), bool))


def test_coincident_atoms_are_named_instead_of_a_nan_energy():
    """Two atoms at one position give NaN energy and forces in the model: an error names them."""
    molecule = Atoms("H2O", positions=[[0, 0, 0], [0, 0.76, 0.59], [0, 0.76, 0.59]])
    molecule.calc = mlcalc.MLCalculator("demo", device="cpu")
    with pytest.raises(mlcalc.InvalidStructureError, match=r"atoms 1 and 2 \(0.0e\+00 Å apart\) are at the same"):
        molecule.get_potential_energy()
    fine = Atoms("H2O", positions=[[0, 0, 0], [0, 0.76, 0.59], [0, -0.76, 0.59]])
    with pytest.raises(mlcalc.InvalidStructureError, match=r"atoms 4 and 5 .* in structure 1"):
        molecule.calc.calculate_batch([fine, molecule])
    assert np.isfinite(molecule.calc.calculate_batch([fine])[0]["energy"])


@pytest.mark.parametrize("offset", [1e2, 1e4, 1e6])
def test_float32_is_translation_invariant(offset):
    """A float32 file far from the origin: the energy and forces are those at the origin to float32 round-off
    (positions were cast before the graph was built: 1.9 % energy error at 1e6 Å)."""
    molecule = Atoms(
        "CH4",
        positions=[[0, 0, 0], [0.63, 0.63, 0.63], [-0.63, -0.63, 0.63], [-0.63, 0.63, -0.63], [0.63, -0.63, -0.63]],
    )
    calc = mlcalc.MLCalculator("demo", device="cpu", dtype="float32")
    reference = calc.calculate_batch([molecule])[0]
    moved = molecule.copy()
    moved.positions += offset * np.array([1.0, -0.7, 0.3])
    found = calc.calculate_batch([molecule, moved])[1]  # batched: the shift is per structure
    assert abs(found["energy"] - reference["energy"]) <= 2e-6 * abs(reference["energy"])
    assert np.abs(found["forces"] - reference["forces"]).max() <= 2e-5 * np.abs(reference["forces"]).max()
    moved.calc = calc
    assert abs(moved.get_potential_energy() - reference["energy"]) <= 2e-6 * abs(reference["energy"])


def test_parameters_say_which_potential_made_a_number_in_ase_trajectories_and_databases(lj_path, tmp_path):
    """ASE's own tooling keeps ``todict()``: a trajectory and an ``ase db`` row read back name the potential
    file, its SHA-256, dtype and device."""
    import hashlib

    from ase.db import connect
    from ase.io import Trajectory, read

    calc = mlcalc.MLCalculator(lj_path, dtype="float32", device="cpu", skin=0.5)
    expected = {
        "potential": str(lj_path),
        "name": "lennard-jones",
        "sha256": hashlib.sha256(Path(lj_path).read_bytes()).hexdigest(),
        "dtype": "float32",
        "device": "cpu",
        "skin": 0.5,
    }
    assert calc.todict() == expected and calc.parameters == expected
    assert repr(calc) == f"MLCalculator({str(lj_path)!r}, dtype='float32', device='cpu', skin=0.5)"
    atoms = Atoms("Ar3", positions=[[0, 0, 0], [3.8, 0, 0], [0, 3.8, 0]])
    atoms.calc = calc
    atoms.get_potential_energy()
    with Trajectory(tmp_path / "run.traj", "w") as trajectory:
        trajectory.write(atoms)
    assert read(tmp_path / "run.traj").calc.parameters == expected
    database = connect(tmp_path / "run.db")
    database.write(atoms)
    row = database.get(id=1)
    assert row.calculator == "mlcalculator" and row.calculator_parameters == expected
    with pytest.raises(TypeError):
        mlcalc.MLCalculator(lj_path, "cpu")  # options are keyword-only
