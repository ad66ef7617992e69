"""SevenNet-0, the pretrained model the ``sevenn`` wheel ships, deployed with sevenn's own tool for
LAMMPS, imported by mlcalc and checked against ``SevenNetCalculator`` on real structures; then run where
sevenn cannot be imported, in OpenMM (both forces), in an ASE cell relaxation and in OpenMM NPT MD.

Runs in the "sevennet" stack of ``scripts/test-stacks`` (sevenn needs e3nn >= 0.5, which the MACE
adapter's mace-torch excludes); skipped where sevenn is not installed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import openmm
import pytest
from ase import Atoms
from ase.build import bulk, fcc111, molecule
from ase.filters import FrechetCellFilter
from ase.optimize import BFGS
from openmm import unit
from openmm_implementations import IMPLEMENTATIONS
from test_openmm import topology_of

import mlcalc
import mlcalc.foreign
from mlcalc.openmm import create_system
from mlcalc.units import EV_PER_KJ_PER_MOL

sevenn_calculator = pytest.importorskip("sevenn.calculator", reason="SevenNet (sevenn) is not installed")
# structures of 2-64 atoms: a second torch thread only contends on a shared 2-core machine (MD ran 30x slower)
pytestmark = pytest.mark.usefixtures("one_torch_thread")

KJ_PER_NM = unit.kilojoule_per_mole / unit.nanometer
# float32 round-off: energies are sums of ~100 float32 terms (relative 1e-7 each, measured 9e-8); forces
# sum ~50 edge gradients of up to ~2 eV/Å (measured ≤ 9e-6 eV/Å); stresses ≤ 8e-8 eV/Å³ measured.
ENERGY_RTOL = 5e-7
FORCE_ATOL = 5e-5  # eV/Å
STRESS_ATOL = 1e-6  # eV/Å³


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> Path:
    """SevenNet-0 deployed by ``sevenn get_model 7net-0`` (sevenn's own tool), imported by mlcalc."""
    directory = tmp_path_factory.mktemp("sevennet")
    deploy = Path(sys.executable).with_name("sevenn")
    subprocess.run([str(deploy), "get_model", "7net-0", "-o", "deployed"], cwd=directory, check=True)
    metadata = mlcalc.foreign.import_torchscript(directory / "deployed.pt", directory / "sevennet-0.pt")
    assert metadata.cutoff == 5.0 and len(metadata.species) == 89 and metadata.dtype == "float32"
    return directory / "sevennet-0.pt"


@pytest.fixture(scope="module")
def reference():
    return sevenn_calculator.SevenNetCalculator("7net-0", device="cpu")


def structures() -> dict[str, Atoms]:
    rng = np.random.default_rng(0)
    silicon = bulk("Si", "diamond", a=5.43, cubic=True) * (2, 2, 2)
    silicon.rattle(0.05, seed=1)
    salt = bulk("NaCl", "rocksalt", a=5.64, cubic=True)
    salt.rattle(0.05, seed=2)
    # the 2-atom primitive cell, skewed: every vector (3.8 Å) shorter than twice the 5 Å cutoff
    small = bulk("Si", "diamond", a=5.43)
    small.set_cell(small.cell.array @ (np.eye(3) + rng.normal(0.0, 0.05, (3, 3))), scale_atoms=True)
    small.rattle(0.03, seed=3)
    slab = fcc111("Al", size=(2, 2, 3), vacuum=7.5)  # periodic in x and y, vacuum along z
    slab.rattle(0.03, seed=4)
    methanol = molecule("CH3OH")
    methanol.center(vacuum=6.0)
    methanol.pbc = True
    return {"silicon": silicon, "rock salt": salt, "small triclinic": small, "slab": slab, "molecule in box": methanol}


@pytest.mark.parametrize("name", list(structures()))
def test_imported_file_equals_sevennets_own_calculator(imported, reference, name):
    atoms = structures()[name]
    ours, theirs = atoms.copy(), atoms.copy()
    ours.calc, theirs.calc = mlcalc.MLCalculator(imported, device="cpu"), reference
    assert ours.get_potential_energy() == pytest.approx(theirs.get_potential_energy(), rel=ENERGY_RTOL)
    np.testing.assert_allclose(ours.get_forces(), theirs.get_forces(), rtol=0, atol=FORCE_ATOL)
    np.testing.assert_allclose(ours.get_stress(), theirs.get_stress(), rtol=0, atol=STRESS_ATOL)


def test_imported_file_runs_where_sevenn_and_e3nn_cannot_be_imported(imported, reference):
    atoms = structures()["rock salt"]
    atoms.calc = reference
    expected = atoms.get_potential_energy()
    script = (
        "import sys; sys.modules['sevenn'] = None; sys.modules['e3nn'] = None\n"
        "import mlcalc; from ase.build import bulk\n"
        f"atoms = bulk('NaCl', 'rocksalt', a=5.64, cubic=True); atoms.rattle(0.05, seed=2)\n"
        f"atoms.calc = mlcalc.MLCalculator({str(imported)!r}, device='cpu')\n"
        "print(repr(atoms.get_potential_energy()))\n"
        "import importlib.util\n"
        "assert 'sevenn' not in {m.split('.')[0] for m, v in sys.modules.items() if v is not None}\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert float(result.stdout.strip().splitlines()[-1]) == pytest.approx(expected, rel=ENERGY_RTOL)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_openmm_forces_equal_the_ase_calculator(imported, implementation):
    atoms = bulk("NaCl", "rocksalt", a=5.64, cubic=True) * (2, 2, 2)  # 11.3 Å: more than twice the cutoff
    atoms.rattle(0.05, seed=5)
    system = create_system(topology_of(atoms), imported, implementation=implementation)
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(atoms.positions / 10)
    state = context.getState(getEnergy=True, getForces=True)
    atoms.calc = mlcalc.MLCalculator(imported, device="cpu")
    energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) * EV_PER_KJ_PER_MOL
    assert energy == pytest.approx(atoms.get_potential_energy(), rel=ENERGY_RTOL)
    forces = state.getForces(asNumpy=True).value_in_unit(KJ_PER_NM) * EV_PER_KJ_PER_MOL / 10
    np.testing.assert_allclose(forces, atoms.get_forces(), rtol=0, atol=FORCE_ATOL)


def test_cell_relaxation_equals_the_one_with_sevennets_calculator(imported, reference):
    """ASE's FrechetCellFilter and BFGS relax a strained silicon cell to the same lattice with both."""
    cells = []
    for calc in (mlcalc.MLCalculator(imported, device="cpu"), reference):
        atoms = bulk("Si", "diamond", a=5.60)
        atoms.calc = calc
        assert BFGS(FrechetCellFilter(atoms), logfile=None).run(fmax=1e-3, steps=200)
        cells.append(atoms.cell.cellpar())
    assert 5.0 < cells[0][0] * np.sqrt(2) < 5.8  # a relaxed diamond lattice (primitive vector × √2)
    np.testing.assert_allclose(cells[0], cells[1], rtol=0, atol=1e-3)  # Å and degrees


def test_npt_md_of_a_crystal_in_openmm(imported):
    """100 steps of NPT (Langevin, a Monte Carlo move every 10 steps) of the 8-atom cubic silicon cell at
    300 K, a box narrower than twice the cutoff: the run is stable, the volume stays within 5 % (the
    expected fluctuation is ~1.6 %), and the last state's energy is the ASE calculator's."""
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    system = create_system(topology_of(atoms), imported)
    barostat = openmm.MonteCarloBarostat(1.0 * unit.bar, 300 * unit.kelvin, 10)
    barostat.setRandomNumberSeed(3)
    system.addForce(barostat)
    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 5 / unit.picosecond, 1 * unit.femtosecond)
    integrator.setRandomNumberSeed(3)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(atoms.positions / 10)
    context.setVelocitiesToTemperature(300 * unit.kelvin, 3)
    volume = atoms.get_volume()
    integrator.step(100)
    state = context.getState(getEnergy=True, getPositions=True)
    box = state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.angstrom)
    assert abs(np.linalg.det(box) / volume - 1) < 0.05
    last = Atoms(atoms.numbers, positions=state.getPositions(asNumpy=True).value_in_unit(unit.angstrom), cell=box)
    last.pbc = True
    last.calc = mlcalc.MLCalculator(imported, device="cpu")
    energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) * EV_PER_KJ_PER_MOL
    assert np.isfinite(energy) and energy == pytest.approx(last.get_potential_energy(), rel=ENERGY_RTOL)
