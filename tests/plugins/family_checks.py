"""Checks shared by the model-family adapter tests: parity with a reference ASE calculator, with
OpenMM, and a run in a fresh process where the family package cannot be imported."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import openmm
from ase import Atoms
from ase.calculators.calculator import Calculator
from openmm import app, unit

import mlcalc
from mlcalc.openmm import create_system
from mlcalc.units import EV_PER_KJ_PER_MOL

KJ_PER_NM = unit.kilojoule_per_mole / unit.nanometer


def evaluate(atoms: Atoms, calc: Calculator) -> dict[str, np.ndarray]:
    """Energy (eV), forces (eV/Å) and, for periodic structures, Voigt stress (eV/Å³) of ``calc``."""
    atoms = atoms.copy()
    atoms.calc = calc
    out = {"energy": np.array(atoms.get_potential_energy()), "forces": atoms.get_forces()}
    if atoms.pbc.all():
        out["stress"] = atoms.get_stress()
    return out


def differences(found: dict, expected: dict) -> dict[str, float]:
    """Largest difference of each property, relative to the largest reference value of that property
    (for the energy: to its magnitude)."""
    assert found.keys() == expected.keys()
    return {
        key: float(np.abs(found[key] - expected[key]).max() / max(np.abs(expected[key]).max(), 1e-30))
        for key in expected
    }


def assert_parity(atoms: Atoms, calc: Calculator, reference: Calculator, rtol: dict[str, float]) -> dict:
    """``calc`` gives ``reference``'s energy, forces and stress within ``rtol`` (relative, see
    :func:`differences`); returns the measured differences."""
    found, expected = evaluate(atoms, calc), evaluate(atoms, reference)
    measured = differences(found, expected)
    for key, value in measured.items():
        assert value <= rtol[key], f"{key}: relative difference {value:.3g} > {rtol[key]:.3g}"
    return measured


def openmm_energy_forces(path: Path, atoms: Atoms) -> tuple[float, np.ndarray]:
    """Energy (eV) and forces (eV/Å) of the file through an openmm-torch TorchForce (Reference platform)."""
    topology = app.Topology()
    chain = topology.addChain()
    for z in atoms.numbers:
        topology.addAtom("X", app.element.Element.getByAtomicNumber(int(z)), topology.addResidue("X", chain))
    if atoms.pbc.all():
        topology.setPeriodicBoxVectors(atoms.cell.array / 10 * unit.nanometer)
    system = create_system(topology, str(path), remove_cm_motion=False)
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    if atoms.pbc.all():
        context.setPeriodicBoxVectors(*[openmm.Vec3(*row / 10) for row in atoms.cell.array])
    context.setPositions(atoms.positions / 10)
    state = context.getState(getEnergy=True, getForces=True)
    energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) * EV_PER_KJ_PER_MOL
    return energy, state.getForces(asNumpy=True).value_in_unit(KJ_PER_NM) * EV_PER_KJ_PER_MOL / 10


def assert_openmm_parity(path: Path, atoms: Atoms, rtol: float = 1e-10) -> float:
    """The TorchForce's energy and forces equal MLCalculator's after unit conversion (nm, kJ/mol):
    only the unit conversions' rounding separates them. Returns the largest relative difference."""
    energy, forces = openmm_energy_forces(path, atoms)
    expected = evaluate(atoms, mlcalc.MLCalculator(str(path)))
    measured = differences(
        {"energy": np.array(energy), "forces": forces}, {k: expected[k] for k in ("energy", "forces")}
    )
    assert max(measured.values()) <= rtol, measured
    return max(measured.values())


_HIDDEN_RUN = """
import importlib.abc, json, sys
HIDDEN = {hidden!r}

class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {{name!r}} (hidden by the test)", name=name)
        return None

sys.meta_path.insert(0, Hide())
import numpy as np
from ase.io import read
import mlcalc
atoms = read({structure!r})
atoms.calc = mlcalc.MLCalculator({path!r})
out = {{"energy": atoms.get_potential_energy(), "forces": atoms.get_forces().tolist()}}
leaked = sorted(m for m in sys.modules if m.split(".")[0] in HIDDEN)
assert not leaked, leaked
print(json.dumps(out))
"""


def run_without(path: Path, atoms: Atoms, hidden: list[str], tmp_path: Path) -> dict:
    """Energy and forces of the file in a fresh, isolated (``-I``) Python process in which the
    ``hidden`` top-level packages cannot be imported, as if they were not installed."""
    structure = tmp_path / "structure.traj"
    atoms.write(structure)
    code = textwrap.dedent(_HIDDEN_RUN).format(hidden=list(hidden), structure=str(structure), path=str(path))
    result = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    return {"energy": np.array(out["energy"]), "forces": np.array(out["forces"])}
