"""What the engines add on top of the exported module: ASE calculator, OpenMM ML force, batched NEB.

Each measurement compares an engine path with the bare TorchScript module (``compute``: forward
and backward) on the same input, in the same process, so the ratios share the machine's state. The
bare module runs on the executor plan of the engine it is compared with: the plain plan
(:func:`mlcalc.torchscript.unoptimized`) for the engines that run in Python (the ASE calculator, the
PythonForce), the optimised plan for openmm-torch's TorchForce, which calls the module from C++.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Union

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from common import argon_box, argon_molecule, paired_times, water_box

import mlcalc
from mlcalc.data import resolve_potential_path
from mlcalc.torchscript import unoptimized
from mlcalc.units import ANGSTROM_PER_NM

SKIN = 1.0  # Å, Verlet skin of the MLCalculator(skin=...) timing: the 1e-4 Å moves always reuse the list


def export_lj(directory: Path) -> Path:
    """The Lennard-Jones argon potential of the benchmarks (σ 3.405 Å, ε 0.0103 eV, cutoff 8.5 Å)."""
    path = directory / "lj-argon.pt"
    mlcalc.export(mlcalc.models.LennardJones(sigma=3.405, epsilon=0.0103, cutoff=8.5), path)
    return path


def _bare_compute(potential: mlcalc.Potential, atoms: Atoms, virial: bool, plain: bool) -> Callable[[], object]:
    """``module.compute`` (forces, and virial when the calculator would ask for stress) on ``atoms``, on
    the plain plan (``plain``) or the optimised one."""
    args = (
        torch.tensor(atoms.numbers),
        torch.tensor(atoms.positions, dtype=potential.dtype),
        torch.tensor(atoms.cell.array, dtype=potential.dtype),
        torch.tensor(atoms.pbc),
        None,
    )
    if not plain:
        return lambda: potential.module.compute(*args, True, virial)

    def call() -> object:
        with unoptimized():
            return potential.module.compute(*args, True, virial)

    return call


def ase_overhead(path: Path, atoms: Atoms, label: str) -> dict:
    """``MLCalculator.get_forces`` on a changed structure (energy, forces, stress when periodic)
    against the bare module's ``compute`` on a changed input: both move every atom by the same kind
    of random step (1e-4 Å) before each call, the bare call in place in a tensor sharing its memory.
    Also timed: ASE's protocol around a bare module call (the floor), and the calculator with a
    Verlet skin (candidates reused, so it can beat the bare call, which builds its graph each time)."""
    calc = mlcalc.MLCalculator(path, device="cpu")
    rng = np.random.default_rng(0)

    def moved_get_forces(calculator: Calculator):
        """``get_forces`` through ``calculator`` on its own copy of ``atoms``, every atom moved first."""
        moving = atoms.copy()
        moving.calc = calculator

        def call() -> None:
            moving.positions += rng.normal(scale=1e-4, size=moving.positions.shape)
            moving.get_forces()

        return call

    periodic = bool(atoms.pbc.any()) and abs(atoms.cell.volume) > 0
    if calc.potential.dtype != torch.float64:
        raise ValueError("the bare call below shares float64 positions with the module: use a float64 potential")
    positions = atoms.positions.astype(np.float64)
    module_inputs = (
        torch.tensor(atoms.numbers),
        torch.from_numpy(positions),
        torch.tensor(atoms.cell.array),
        torch.tensor(atoms.pbc),
        None,
    )
    module = calc.potential.module

    def bare_call() -> None:
        positions[:] += rng.normal(scale=1e-4, size=positions.shape)
        with unoptimized():  # the calculator's plan
            module.compute(*module_inputs, True, periodic)

    skin_calc = mlcalc.MLCalculator(path, device="cpu", skin=SKIN)
    calls = {
        "bare": bare_call,
        "calculator": moved_get_forces(calc),
        "floor": moved_get_forces(_ProtocolFloor(module, periodic)),
        "skin": moved_get_forces(skin_calc),
    }
    t = paired_times(calls, repeats=100, budget_s=30.0)
    return {
        "system": label,
        "n_atoms": len(atoms),
        "potential": calc.potential.name,
        "bare_compute": t["bare"],
        "calculator_get_forces": t["calculator"],
        "ratio": t["calculator"]["min_s"] / t["bare"]["min_s"],
        "ratio_of_medians": t["calculator"]["median_s"] / t["bare"]["median_s"],
        "ase_protocol_floor_ratio": t["floor"]["min_s"] / t["bare"]["min_s"],
        "calculator_with_skin": t["skin"],
        "skin_angstrom": SKIN,
        "skin_ratio": t["skin"]["min_s"] / t["bare"]["min_s"],
        "skin_builds_reuses": [skin_calc.neighbor_builds, skin_calc.neighbor_reuses],
        "target": "<= 1.10",
    }


class _ProtocolFloor(Calculator):
    """The least an ASE calculator can do per call: ASE's own check, atoms copy and property cache
    around one module call, no unit handling or input checks. What ASE's protocol costs by itself."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, module: torch.jit.ScriptModule, virial: bool):
        super().__init__()
        self.module = module
        self.virial = virial

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        a = self.atoms
        with unoptimized():
            out = self.module.compute(
                torch.from_numpy(a.numbers),
                torch.from_numpy(a.positions),
                torch.from_numpy(a.cell.array),
                torch.from_numpy(a.pbc),
                None,
                True,
                self.virial,
            )
        self.results = {"energy": float(out["energy"]), "forces": out["forces"].numpy()}


def openmm_overhead(path: Path, atoms: Atoms, label: str, steps: int, platform_name: str = "CPU") -> dict:
    """Steps/s of a Verlet simulation (OpenMM ``platform_name``, the ML force ``create_system`` picks)
    against evaluations/s of the bare module's ``compute`` (forces) on the same structure; also
    OpenMM's own cost of a step, the same simulation with a trivial force in place of the ML force."""
    import openmm
    from openmm import app, unit

    import mlcalc.openmm

    topology = app.Topology()
    chain = topology.addChain()
    for number in atoms.numbers:
        element = app.element.Element.getByAtomicNumber(int(number))
        topology.addAtom(element.symbol, element, topology.addResidue("X", chain))
    periodic = bool(atoms.pbc.all())
    if periodic:
        topology.setPeriodicBoxVectors(atoms.cell.array / ANGSTROM_PER_NM * unit.nanometer)
    system = mlcalc.openmm.create_system(topology, path, remove_cm_motion=False)
    implementation = next(filter(None, map(mlcalc.openmm.implementation_of, system.getForces())))
    integrator = openmm.VerletIntegrator(0.5 * unit.femtosecond)
    platform = openmm.Platform.getPlatformByName(platform_name)
    context = openmm.Context(system, integrator, platform)
    context.setPositions(atoms.positions / ANGSTROM_PER_NM)
    integrator.step(3)
    empty_integrator = openmm.VerletIntegrator(0.5 * unit.femtosecond)
    empty_context = openmm.Context(_trivial_system(system), empty_integrator, platform)
    empty_context.setPositions(atoms.positions / ANGSTROM_PER_NM)

    potential = mlcalc.load(path, device="cpu")
    bare = _bare_compute(potential, atoms, False, plain=implementation == "python")

    def bare_steps() -> None:
        for _ in range(steps):
            bare()

    t = paired_times(
        {"openmm": lambda: integrator.step(steps), "bare": bare_steps, "empty": lambda: empty_integrator.step(steps)},
        repeats=10,
        budget_s=20.0,
        warmup=1,
    )
    steps_per_s = steps / t["openmm"]["min_s"]
    evaluations_per_s = steps / t["bare"]["min_s"]
    return {
        "system": label,
        "n_atoms": len(atoms),
        "openmm_steps_per_s": steps_per_s,
        "bare_evaluations_per_s": evaluations_per_s,
        "ratio": steps_per_s / evaluations_per_s,
        "ratio_of_medians": t["bare"]["median_s"] / t["openmm"]["median_s"],
        "openmm_step_without_torchforce_s": t["empty"]["min_s"] / steps,
        "platform": platform_name,
        "ml_force": implementation,
        "bare_plan": "plain" if implementation == "python" else "optimised",
        "platform_threads": platform.getPropertyValue(context, "Threads") if platform_name == "CPU" else "1",
        "target": ">= 0.90",
    }


def _trivial_system(system):
    """``system``'s particles (and box) with a near-zero external force instead of its forces."""
    import openmm

    trivial = openmm.System()
    for i in range(system.getNumParticles()):
        trivial.addParticle(system.getParticleMass(i))
    trivial.setDefaultPeriodicBoxVectors(*system.getDefaultPeriodicBoxVectors())
    force = openmm.CustomExternalForce("1e-6*(x^2+y^2+z^2)")
    for i in range(system.getNumParticles()):
        force.addParticle(i, [])
    trivial.addForce(force)
    return trivial


def lj_band(n_images: int) -> list[Atoms]:
    """A linear band of ``n_images`` images of a 20-atom argon cluster, one atom moved 1.7 Å."""
    from mlcalc.workflows.neb import make_band

    initial = argon_molecule(2)[:20]
    final = initial.copy()
    final.positions[0] += [1.5, 0.8, 0.0]
    return make_band(initial, final, n_images - 2, interpolation="linear")


def peptide_band(n_images: int) -> list[Atoms]:
    """A linear band of ``n_images`` images of trialanine (33 atoms; examples/trialanine.pdb), its
    C-terminal methyl hydrogens turned 60° about their carbon."""
    from ase.io import read

    from mlcalc.workflows.neb import make_band

    initial = read(Path(__file__).resolve().parents[1] / "examples" / "trialanine.pdb")
    final = initial.copy()
    final.rotate(60.0, "z", center=initial.positions[-1])
    final.positions[:-4] = initial.positions[:-4]
    return make_band(initial, final, n_images - 2, interpolation="linear")


def neb_batching(path: Union[Path, str], images: list[Atoms]) -> dict:
    """One band evaluation of ``images`` with the potential ``path``: one ``calculate_batch`` call, and
    :class:`~mlcalc.workflows.band.BandCalculator` (what the NEB uses), against a loop with one
    calculator per image."""
    from mlcalc.workflows.band import BandCalculator

    n_images = len(images)
    initial = images[0]
    potential = mlcalc.load(path, device="cpu")
    calc = mlcalc.MLCalculator(potential)
    rng = np.random.default_rng(0)

    def moved() -> list[Atoms]:
        for image in images:
            image.positions += rng.normal(scale=1e-4, size=image.positions.shape)
        return images

    loop_images = [image.copy() for image in images]
    for image in loop_images:
        image.calc = mlcalc.MLCalculator(potential)

    def per_image_loop() -> None:
        for image in loop_images:
            image.positions += rng.normal(scale=1e-4, size=image.positions.shape)
            image.get_forces()

    band_images = [image.copy() for image in images]
    BandCalculator(calc, band_images)

    def band_calculator() -> None:
        for image in band_images:
            image.positions += rng.normal(scale=1e-4, size=image.positions.shape)
        for image in band_images:
            image.get_forces()

    t = paired_times({"loop": per_image_loop, "batch": lambda: calc.calculate_batch(moved()), "band": band_calculator})
    return {
        "n_images": n_images,
        "atoms_per_image": len(initial),
        "per_image_loop": t["loop"],
        "calculate_batch": t["batch"],
        "band_calculator": t["band"],
        "speedup_calculate_batch": t["loop"]["min_s"] / t["batch"]["min_s"],
        "speedup_band_calculator": t["loop"]["min_s"] / t["band"]["min_s"],
        "target": ">= 2",
    }


def all_overheads(directory: Path) -> dict:
    path = export_lj(directory)
    molecule, box = argon_molecule(), argon_box()
    water = water_box(108)  # 36 waters, as an open cluster: the bundled HIP-NN on a 108-atom molecule
    water.pbc = False
    water.cell[:] = 0.0
    started = time.time()
    out = {
        "ase": [
            ase_overhead(path, molecule, "argon cluster, open"),
            ase_overhead(path, box, "fcc argon, periodic"),
            ase_overhead(resolve_potential_path("demo"), water, "36-water cluster, open (bundled HIP-NN)"),
        ],
        "openmm": [
            openmm_overhead(path, molecule, "argon cluster, open", steps=200),
            openmm_overhead(path, molecule, "argon cluster, open", steps=200, platform_name="Reference"),
            openmm_overhead(path, box, "fcc argon, periodic", steps=20),
            openmm_overhead(resolve_potential_path("demo"), water, "36-water cluster, open (bundled HIP-NN)", steps=20),
        ],
        "neb": neb_batching(path, lj_band(8)),
        "neb_demo_peptide": neb_batching("demo", peptide_band(8)),
    }
    out["wall_s"] = time.time() - started
    return out
