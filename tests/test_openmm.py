"""mlcalc.openmm: TorchForce and PythonForce numbers equal MLCalculator's and OpenMM's NonbondedForce's."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import openmm
import pytest
import torch
from ase import Atoms
from openmm import app, unit
from openmm_implementations import IMPLEMENTATIONS, OPENMMTORCH_MISSING, needs_openmmtorch
from reference_parameters import CUTOFF, EPSILON, SIGMA
from structures import ALL, unwrap

import mlcalc
from mlcalc.openmm import create_force, create_system, default_implementation, implementation_of
from mlcalc.units import EV_PER_KJ_PER_MOL

PLATFORMS = ["Reference", "CPU"]
KJ_PER_NM = unit.kilojoule_per_mole / unit.nanometer

# 256-atom systems evaluated over and over (the barostat test: 34 s with two threads, 7 s with one, measured)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def openmm_reduced(atoms: Atoms) -> Atoms:
    """The same lattice in OpenMM's reduced form (a along x, b in the xy plane, |b_x| <= a_x/2, ...)."""
    a, b, c = atoms.cell.array
    b = b - np.round(b[0] / a[0]) * a
    c = c - np.round(c[1] / b[1]) * b
    c = c - np.round(c[0] / a[0]) * a
    reduced = atoms.copy()
    reduced.set_cell([a, b, c], scale_atoms=False)
    return reduced


def topology_of(atoms: Atoms) -> app.Topology:
    topology = app.Topology()
    chain = topology.addChain()
    for z in atoms.numbers:
        topology.addAtom("X", app.element.Element.getByAtomicNumber(int(z)), topology.addResidue("X", chain))
    if atoms.pbc.all():
        topology.setPeriodicBoxVectors(atoms.cell.array / 10 * unit.nanometer)
    return topology


def evaluate(system: openmm.System, atoms: Atoms, platform: str, groups: int = -1) -> tuple[float, np.ndarray]:
    """Energy (eV) and forces (eV/Å) of ``system`` at ``atoms``'s positions."""
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName(platform))
    if atoms.pbc.all():
        context.setPeriodicBoxVectors(*[openmm.Vec3(*row / 10) for row in atoms.cell.array])
    context.setPositions(atoms.positions / 10)
    state = context.getState(getEnergy=True, getForces=True, groups=groups)
    energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) * EV_PER_KJ_PER_MOL
    return energy, state.getForces(asNumpy=True).value_in_unit(KJ_PER_NM) * EV_PER_KJ_PER_MOL / 10


def ase_reference(potential, atoms: Atoms) -> tuple[float, np.ndarray]:
    result = potential.evaluate(atoms)[0]
    return result["energy"], result["forces"]


def assert_same(found, expected, rtol=1e-10):
    (e1, f1), (e2, f2) = found, expected
    assert abs(e1 - e2) <= rtol * max(abs(e2), EPSILON)
    assert np.abs(f1 - f2).max() <= rtol * max(np.abs(f2).max(), EPSILON / SIGMA)


STRUCTURES = {
    "large_fcc (unwrapped)": lambda: unwrap(ALL["large_fcc"](), seed=4),
    "small_fcc (all images)": lambda: ALL["small_fcc"](),
    "skewed_box (triclinic)": lambda: unwrap(openmm_reduced(ALL["skewed_box"]()), seed=6),
    "cluster (no box)": lambda: ALL["cluster"](),
}


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("name", sorted(STRUCTURES))
def test_ml_force_equals_mlcalculator(lj, name, platform, implementation):
    atoms = STRUCTURES[name]()
    system = create_system(topology_of(atoms), lj, remove_cm_motion=False, implementation=implementation)
    assert_same(evaluate(system, atoms, platform), ase_reference(lj, atoms))


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("platform", PLATFORMS)
def test_ml_force_equals_openmm_nonbonded(lj_truncated_path, platform, implementation):
    """Truncated LJ through the file and through NonbondedForce, side by side in one System.
    NonbondedForce runs in float64 only on Reference; its CPU kernel is single precision."""
    atoms = unwrap(ALL["large_fcc"](), seed=8)
    system = create_system(topology_of(atoms), lj_truncated_path, remove_cm_motion=False, implementation=implementation)
    nonbonded = openmm.NonbondedForce()
    nonbonded.setNonbondedMethod(openmm.NonbondedForce.CutoffPeriodic)
    nonbonded.setCutoffDistance(CUTOFF / 10)
    nonbonded.setUseSwitchingFunction(False)
    nonbonded.setUseDispersionCorrection(False)
    for _ in atoms:
        nonbonded.addParticle(0.0, SIGMA / 10, EPSILON / EV_PER_KJ_PER_MOL)
    nonbonded.setForceGroup(1)
    system.addForce(nonbonded)
    rtol = 1e-10 if platform == "Reference" else 1e-5
    assert_same(evaluate(system, atoms, platform, groups={0}), evaluate(system, atoms, platform, groups={1}), rtol)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("platform", PLATFORMS)
def test_ml_subset_of_a_larger_system(lj, platform, implementation):
    """ML/MM: the module picks its atoms out of all N particles; the others feel nothing from it."""
    cluster = ALL["cluster"]()
    others = Atoms("Ne8", positions=np.random.default_rng(1).uniform(-30, 30, (8, 3)))
    everything = others + cluster  # ML atoms are not the first ones
    ml_atoms = list(range(len(others), len(everything)))
    system = openmm.System()
    for _ in everything:
        system.addParticle(20.0)
    force = create_force(lj, everything.numbers, atoms=ml_atoms, periodic=False, implementation=implementation)
    if implementation == "torch":
        # from the file's compute, not openmm-torch's backward over parameters
        assert force.getOutputsForces()
    system.addForce(force)
    energy, forces = evaluate(system, everything, platform)
    reference = ase_reference(lj, cluster)
    assert_same((energy, forces[ml_atoms]), reference)
    assert np.abs(forces[: len(others)]).max() == 0.0


@pytest.mark.slow
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("platform", PLATFORMS)
def test_npt_with_monte_carlo_barostat(lj, platform, implementation):
    """After barostat moves the box and the molecules, the engines still agree on the new state."""
    atoms = ALL["large_fcc"](rattle=0.2)
    topology = topology_of(atoms)
    system = create_system(topology, lj, implementation=implementation)
    system.addForce(openmm.MonteCarloBarostat(2000 * unit.bar, 120 * unit.kelvin, 1))
    integrator = openmm.LangevinMiddleIntegrator(120 * unit.kelvin, 5 / unit.picosecond, 5 * unit.femtosecond)
    integrator.setRandomNumberSeed(3)
    simulation = app.Simulation(topology, system, integrator, openmm.Platform.getPlatformByName(platform))
    simulation.context.setPositions(atoms.positions / 10)
    simulation.context.setVelocitiesToTemperature(120 * unit.kelvin, 5)
    simulation.step(30)
    state = simulation.context.getState(getEnergy=True, getForces=True, getPositions=True)
    box = np.array(state.getPeriodicBoxVectors().value_in_unit(unit.angstrom))
    assert not np.allclose(box, atoms.cell.array), "the barostat never changed the box"
    frame = Atoms(
        atoms.numbers, positions=state.getPositions(asNumpy=True).value_in_unit(unit.angstrom), cell=box, pbc=True
    )
    energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) * EV_PER_KJ_PER_MOL
    forces = state.getForces(asNumpy=True).value_in_unit(KJ_PER_NM) * EV_PER_KJ_PER_MOL / 10
    assert_same((energy, forces), ase_reference(lj, frame))


def test_units_of_the_model_do_not_matter(tmp_path, lj):
    """A model written in nm and kJ/mol gives OpenMM the same numbers as one in Å and eV."""
    path = tmp_path / "lj-nm.pt"
    model = mlcalc.models.LennardJones(sigma=SIGMA / 10, epsilon=EPSILON / EV_PER_KJ_PER_MOL, cutoff=CUTOFF / 10)
    mlcalc.export(model, path, length_unit="nm", energy_unit="kJ/mol")
    atoms = ALL["small_fcc"]()
    found = evaluate(create_system(topology_of(atoms), path), atoms, "Reference")
    assert_same(found, ase_reference(lj, atoms), rtol=1e-12)


def test_float32_inside_openmm(lj):
    atoms = ALL["skewed_box"]()
    atoms = openmm_reduced(atoms)
    found = evaluate(create_system(topology_of(atoms), lj, dtype="float32"), atoms, "CPU")
    assert_same(found, ase_reference(lj, atoms), rtol=1e-5)


def water_topology() -> tuple[app.Topology, np.ndarray]:
    topology = app.Topology()
    residue = topology.addResidue("HOH", topology.addChain())
    o = topology.addAtom("O", app.element.oxygen, residue)
    h1 = topology.addAtom("H1", app.element.hydrogen, residue)
    h2 = topology.addAtom("H2", app.element.hydrogen, residue)
    topology.addBond(o, h1)
    topology.addBond(o, h2)
    topology.setPeriodicBoxVectors(np.eye(3) * 2.0 * unit.nanometer)
    return topology, np.array([[0.0, 0.0, 0.0], [0.0957, 0.0, 0.0], [-0.024, 0.0927, 0.0]])


def test_create_system_masses_box_constraints(lj):
    topology, positions = water_topology()
    system = create_system(topology, lj, positions=positions * unit.nanometer, constraints=app.HBonds)
    masses = [system.getParticleMass(i).value_in_unit(unit.dalton) for i in range(3)]
    assert masses == pytest.approx([15.999, 1.008, 1.008], abs=1e-3)
    box = [v.value_in_unit(unit.nanometer) for v in system.getDefaultPeriodicBoxVectors()]
    assert np.allclose(np.array(box), np.eye(3) * 2.0)
    assert system.getNumConstraints() == 2
    _, _, length = system.getConstraintParameters(1)
    assert length.value_in_unit(unit.nanometer) == pytest.approx(np.linalg.norm(positions[2]))
    ml_force, remover, molecules = system.getForces()
    assert isinstance(remover, openmm.CMMotionRemover)
    assert molecules.getName() == "mlcalc:molecules" and molecules.getNumBonds() == 2  # keeps the water whole
    chosen = default_implementation()
    assert chosen == ("torch" if OPENMMTORCH_MISSING is None else "python")
    assert implementation_of(ml_force) == chosen
    assert ml_force.getName() == f"mlcalc:lennard-jones:{'TorchForce' if chosen == 'torch' else 'PythonForce'}"
    assert ml_force.usesPeriodicBoundaryConditions()


def test_hydrogen_mass_repartitioning(lj):
    topology, _ = water_topology()
    system = create_system(topology, lj, hydrogen_mass=3.0 * unit.dalton)
    masses = [system.getParticleMass(i).value_in_unit(unit.dalton) for i in range(3)]
    water = sum(a.element.mass.value_in_unit(unit.dalton) for a in topology.atoms())
    assert masses[1:] == [3.0, 3.0] and sum(masses) == pytest.approx(water, rel=1e-12)


def test_create_system_errors(lj):
    topology, positions = water_topology()
    with pytest.raises(ValueError, match="constraints need positions"):
        create_system(topology, lj, constraints=app.HBonds)
    with pytest.raises(ValueError, match="HBonds or openmm.app.AllBonds"):
        create_system(topology, lj, positions=positions, constraints="hbonds")
    topology.addAtom("EP", None, next(topology.residues()))
    with pytest.raises(mlcalc.InvalidStructureError, match="atom 3 \\(EP in residue HOH 1\\) has no element"):
        create_system(topology, lj)


@pytest.fixture(scope="module")
def argon_only(tmp_path_factory):
    path = tmp_path_factory.mktemp("ar") / "ar.pt"
    mlcalc.export(mlcalc.models.LennardJones(sigma=SIGMA, epsilon=EPSILON, cutoff=CUTOFF, species=[18]), path)
    return mlcalc.load(path, device="cpu")


def test_create_force_errors(argon_only):
    with pytest.raises(
        mlcalc.UnsupportedElementError,
        match="does not support atomic numbers \\[8\\] \\(particles \\[1\\]\\); it supports Ar",
    ):
        create_force(argon_only, [18, 8, 18], periodic=False)
    with pytest.raises(IndexError, match="ML atom indices \\[3\\] are outside the system's 0..2"):
        create_force(argon_only, [18, 18, 18], atoms=[0, 3], periodic=False)
    with pytest.raises(ValueError, match="ML atom indices \\[1\\] are repeated"):
        create_force(argon_only, [18, 18, 18], atoms=[1, 1], periodic=False)
    with pytest.raises(ValueError, match="atoms is empty"):
        create_force(argon_only, [18, 18, 18], atoms=[], periodic=False)
    # unsupported atoms outside the ML set are fine
    assert create_force(argon_only, [8, 18], atoms=[1], periodic=False) is not None


@needs_openmmtorch
def test_importing_openmm_before_torch_still_finds_the_torch_kernels(lj_path, tmp_path):
    """openmm loads its plugins at import; openmm-torch's need torch's CUDA libraries loaded first."""
    script = tmp_path / "script.py"
    script.write_text(
        "import openmm\n"
        "import mlcalc.openmm\n"
        "system = openmm.System()\n"
        "system.addParticle(40.0)\n"
        "system.addParticle(40.0)\n"
        f"system.addForce(mlcalc.openmm.create_force({str(lj_path)!r}, [18, 18], periodic=False, "
        "implementation='torch'))\n"
        "context = openmm.Context(system, openmm.VerletIntegrator(0.001))\n"
        "context.setPositions([[0, 0, 0], [0.4, 0, 0]])\n"
        "print(context.getState(getEnergy=True).getPotentialEnergy())\n"
    )
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "kJ/mol" in result.stdout


@pytest.mark.cuda
def test_cuda_platform(lj):
    if "CUDA" not in [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]:
        pytest.skip("OpenMM has no CUDA platform here")
    for name in sorted(STRUCTURES):
        atoms = STRUCTURES[name]()
        found = evaluate(create_system(topology_of(atoms), lj, remove_cm_motion=False), atoms, "CUDA")
        # The CUDA platform hands positions over in float32 (mixed precision): ~1e-6 relative.
        assert_same(found, ase_reference(lj, atoms), rtol=1e-5)
    assert torch.cuda.is_available()


def test_periodicity_must_be_given_with_atomic_numbers(lj):
    """A bare list of atomic numbers says nothing about the box: no silent non-periodic default."""
    with pytest.raises(ValueError, match=r"periodic= is required with a list of atomic numbers"):
        create_force(lj, [18, 18])


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_periodic_force_added_to_a_system_built_by_hand(lj, implementation):
    """A periodic box built by hand (no Topology) with periodic=True equals ASE's minimum-image energy."""
    atoms = unwrap(ALL["large_fcc"](), seed=5)
    system = openmm.System()
    system.setDefaultPeriodicBoxVectors(*[openmm.Vec3(*row / 10) for row in atoms.cell.array])
    for _ in atoms:
        system.addParticle(39.95)
    system.addForce(create_force(lj, atoms.numbers, periodic=True, implementation=implementation))
    assert_same(evaluate(system, atoms, "Reference"), ase_reference(lj, atoms))


def test_asking_for_the_torchforce_without_openmm_torch_names_the_extra(lj):
    if OPENMMTORCH_MISSING is None:
        pytest.skip("openmm-torch imports here: the TorchForce is built")
    with pytest.raises(ImportError, match=r'pip install "mlcalc\[openmm-torch\]".*implementation="python"'):
        create_force(lj, [18, 18], periodic=False, implementation="torch")


def test_the_pythonforce_does_not_import_openmm_torch(lj_path):
    """Choosing the PythonForce runs none of openmm-torch's import side effects (its plugin reloads)."""
    code = (
        "import sys, mlcalc.openmm\n"
        f"force = mlcalc.openmm.create_force({str(lj_path)!r}, [18, 18], periodic=False, implementation='python')\n"
        "assert mlcalc.openmm.implementation_of(force) == 'python'\n"
        "print('openmmtorch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_checkpoint_round_trip(lj, implementation):
    """A Context checkpoint of a System with the ML force restores the exact state and energy."""
    atoms = ALL["large_fcc"](rattle=0.1)
    topology = topology_of(atoms)
    system = create_system(topology, lj, implementation=implementation)
    system.addForce(openmm.MonteCarloBarostat(100 * unit.bar, 100 * unit.kelvin, 2))
    integrator = openmm.LangevinMiddleIntegrator(100 * unit.kelvin, 1 / unit.picosecond, 5 * unit.femtosecond)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(atoms.positions / 10)
    integrator.step(4)
    checkpoint = context.createCheckpoint()
    before = context.getState(getEnergy=True, getPositions=True)
    integrator.step(4)
    context.loadCheckpoint(checkpoint)
    after = context.getState(getEnergy=True, getPositions=True)
    assert after.getPotentialEnergy() == before.getPotentialEnergy()
    assert np.array_equal(after.getPositions(asNumpy=True)._value, before.getPositions(asNumpy=True)._value)


def test_bad_implementation(lj):
    with pytest.raises(ValueError, match="implementation must be 'torch'.*'python'.*or None"):
        create_force(lj, [18], periodic=False, implementation="jax")


@pytest.mark.cuda
def test_pythonforce_runs_the_model_on_cuda(lj):
    atoms = ALL["small_fcc"]()
    system = create_system(topology_of(atoms), lj, implementation="python", device="cuda", remove_cm_motion=False)
    assert_same(evaluate(system, atoms, "Reference"), ase_reference(lj, atoms), rtol=1e-10)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_a_periodic_force_refuses_a_box_nobody_set(lj, implementation):
    """periodic=True in a System whose box was never set would run in OpenMM's default 2 nm box: refused.
    A Topology with a 2 nm box confirms that box, and then it runs, equal to ASE."""
    atoms = ALL["cluster"]()
    atoms.positions -= atoms.positions.min(axis=0)  # inside a 2 nm box
    system = openmm.System()
    for _ in atoms:
        system.addParticle(39.95)
    system.addForce(create_force(lj, atoms.numbers, periodic=True, implementation=implementation))
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(atoms.positions / 10)
    with pytest.raises(openmm.OpenMMException, match="OpenMM's default 2 nm cube, the box of a System whose box"):
        context.getState(getEnergy=True)
    confirmed = atoms.copy()
    confirmed.cell, confirmed.pbc = np.eye(3) * 20.0, True
    system = create_system(topology_of(confirmed), lj, implementation=implementation, remove_cm_motion=False)
    assert_same(evaluate(system, confirmed, "Reference"), ase_reference(lj, confirmed))


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_float32_far_from_the_origin_inside_openmm(lj, implementation):
    """Both forces take positions relative to the first ML atom before casting to float32."""
    atoms = ALL["cluster"]()
    moved = atoms.copy()
    moved.positions += [3e4, -2e4, 1e4]
    system = create_system(topology_of(atoms), lj, dtype="float32", implementation=implementation)
    assert_same(evaluate(system, moved, "Reference"), evaluate(system, atoms, "Reference"), rtol=1e-5)
    assert_same(evaluate(system, moved, "Reference"), ase_reference(lj, atoms), rtol=1e-5)
