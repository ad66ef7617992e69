"""A catalogue of bad inputs, through the Python API and the command line: each is refused with the specific error
class (or exit code), and a message that names the problem *and* the fix (docs/refusals.md).

One row per input: ``call`` does the bad thing (API), or returns the ``mlcalc`` arguments (command line, run in
process); ``error`` is the exception class it must raise, or the exit code the command must end with; ``problem``
and ``fix`` are regular expressions the message (the exception's text, or stderr) must match.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import zipfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Callable, Dict, Union
from unittest import mock

import numpy as np
import openmm
import pytest
import torch
from ase import Atoms
from ase.build import molecule
from ase.constraints import FixAtoms, FixBondLength
from ase.io import write
from openmm import app
from torch import Tensor

import mlcalc
import mlcalc.openmm
import mlcalc.threads
from mlcalc.cli import main
from mlcalc.errors import (
    ContractError,
    DeviceError,
    InvalidStructureError,
    PluginError,
    UnitError,
    UnsupportedElementError,
)
from mlcalc.md.checkpoints import CheckpointError as MDCheckpointError
from mlcalc.md.config import MDConfig
from mlcalc.md.pipeline import Run
from mlcalc.md.prepare import select_atoms
from mlcalc.plugins import load_saved_model
from mlcalc.workflows import Angle, Dihedral, Distance, dihedral_path, make_band, optimize, relaxed_scan, run_neb
from mlcalc.workflows.constraints import FixInternalCoordinates
from mlcalc.workflows.errors import CheckpointError, InternalCoordinateError
from mlcalc.workflows.internal import check_coordinates
from mlcalc.workflows.output import Checkpoint

TRIALANINE = Path(__file__).resolve().parents[1] / "examples" / "trialanine.pdb"
#: Keywords that make any contract model exportable.
DECLARED = dict(cutoff=4.0, species=[1, 8], length_unit="angstrom", energy_unit="eV")


class Inputs:
    """What the cases use, made on first use (so that ``-k`` runs only what it needs) and kept for the module.
    ``out`` is an empty directory of the running case."""

    def __init__(self, directory: Path, lj_path: Path):
        self.directory = directory
        self.lj_path = lj_path
        self.out = directory

    def file(self, name: str, text: str) -> Path:
        path = self.directory / name
        path.write_text(text)
        return path

    def truncated_lj(self) -> Path:
        """The first 5,000 bytes of the exported LJ file."""
        path = self.directory / "half.pt"
        path.write_bytes(self.lj_path.read_bytes()[:5000])
        return path

    def state_dict(self) -> Path:
        """A file of ``torch.save`` (a state dict), not of ``mlcalc.export``."""
        path = self.directory / "weights.pt"
        torch.save({"weight": torch.zeros(2)}, path)
        return path

    def lj_with_metadata(self, **changes) -> Path:
        """The exported LJ file with its metadata record changed (``None`` removes a field)."""
        path = self.directory / ("lj-" + "-".join(f"{k}-{v}" for k, v in changes.items()) + ".pt")
        with zipfile.ZipFile(self.lj_path) as source, zipfile.ZipFile(path, "w") as target:
            for item in source.infolist():
                data = source.read(item.filename)
                if item.filename.endswith("/extra/mlcalc_metadata.json"):
                    record = json.loads(data)
                    record.update(changes)
                    data = json.dumps({k: v for k, v in record.items() if v is not None}).encode()
                target.writestr(item, data)
        return path

    @cached_property
    def lj(self) -> mlcalc.Potential:
        return mlcalc.load(self.lj_path, device="cpu")

    @cached_property
    def lj_9(self) -> Path:
        """A Lennard-Jones potential with a 9 Å cutoff: wider than half the argon box of :attr:`argon`."""
        path = self.directory / "lj-9.pt"
        mlcalc.export(mlcalc.models.LennardJones(sigma=3.405, epsilon=0.0103, cutoff=9.0), path)
        return path

    @cached_property
    def demo(self) -> mlcalc.MLCalculator:
        return mlcalc.MLCalculator("demo", device="cpu")

    @cached_property
    def butane(self) -> Atoms:
        return molecule("trans-butane")  # carbons 0-3, then hydrogens

    @cached_property
    def butane_xyz(self) -> Path:
        path = self.directory / "butane.xyz"
        write(path, self.butane)
        return path

    @cached_property
    def two_waters(self) -> Atoms:
        water = molecule("H2O")  # O, H, H
        other = water.copy()
        other.translate([0.0, 0.0, 4.0])
        return water + other

    @cached_property
    def argon(self) -> tuple[Path, Path]:
        """108 argon atoms in a periodic 17.7 Å box, and a 7 Å Lennard-Jones potential."""
        from test_md_pipeline import write_argon

        potential = self.directory / "argon.pt"
        mlcalc.export(mlcalc.models.LennardJones(sigma=3.405, epsilon=0.0103, cutoff=7.0, shift=False), potential)
        return write_argon(self.directory / "argon.pdb"), potential

    def argon_config(self, output: Path, **changes) -> MDConfig:
        structure, potential = self.argon
        settings = dict(structure=str(structure), potential=str(potential), output=str(output), mode="ml")
        settings.update(solvate=False, add_hydrogens=False, temperature=90.0, timestep_fs=10.0)
        settings.update(minimize_iterations=-1, nvt=0.0, npt=0.0, production=0.02, platform="Reference")
        settings.update(trajectory_interval=0.01, state_interval=0.01, checkpoint_interval=0.02)
        settings.update(changes)
        return MDConfig(**settings)

    @cached_property
    def md_run(self) -> Path:
        """A finished two-step argon run (two frames, a checkpoint at its end)."""
        config = self.argon_config(self.directory / "md-run")
        Run.start(config).run(progress=False)
        return Path(config.output)

    def md_run_copy(self) -> Path:
        """A copy of :attr:`md_run` in ``out``, for a case to damage."""
        return Path(shutil.copytree(self.md_run, self.out / "run"))

    def argon_without_box(self) -> Path:
        structure, _ = self.argon
        lines = structure.read_text().splitlines()
        return self.file("argon-cluster.pdb", "\n".join(line for line in lines if not line.startswith("CRYST1")))


@dataclass(frozen=True)
class Case:
    """One bad input. ``error``: an exception class (API) or the exit code of ``mlcalc`` (command line)."""

    name: str
    call: Callable[[Inputs], object]
    error: Union[type[BaseException], int]
    problem: str
    fix: str


class Returns(torch.nn.Module):
    """A model returning per-atom energies (``kind="energies"``) or one way of breaking the contract."""

    def __init__(self, kind: str = "energies"):
        super().__init__()
        self.kind = kind

    def forward(self, inputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        energies = 0.0 * inputs["positions"].sum(dim=1)
        if self.kind == "nan":
            return {"energies": energies * float("nan")}
        if self.kind == "reserved":
            return {"energies": energies, "forces": inputs["positions"]}
        if self.kind == "matrix":
            return {"energies": inputs["positions"]}
        return {"energies": energies}


class TakesPositions(torch.nn.Module):
    def forward(self, positions: Tensor) -> Tensor:
        return positions.sum()


class UsesNumpy(torch.nn.Module):
    def forward(self, inputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        return {"energies": np.zeros(3)}


class Colourful(Returns):
    mlcalc_metadata = {**DECLARED, "colour": "red"}


class MixedDtypes(Returns):
    def __init__(self):
        super().__init__()
        self.weight32 = torch.nn.Parameter(torch.zeros(1, dtype=torch.float32))
        self.weight64 = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))


def lj_model() -> torch.nn.Module:
    return mlcalc.models.LennardJones(sigma=3.405, epsilon=0.0103, cutoff=8.5)


def energy(atoms: Atoms, calc) -> float:
    atoms.calc = calc
    return atoms.get_potential_energy()


def argon(positions, **kwargs) -> Atoms:
    return Atoms(f"Ar{len(positions)}", positions=positions, **kwargs)


def with_constraint(atoms: Atoms, constraint) -> Atoms:
    atoms = atoms.copy()
    atoms.set_constraint(constraint)
    return atoms


def renumbered(atoms: Atoms) -> Atoms:
    """The same molecule with its atoms in reverse order."""
    return atoms[::-1]


def swapped(atoms: Atoms, i: int, j: int) -> Atoms:
    """The same molecule with atoms ``i`` and ``j`` (of one element) exchanged in the list."""
    order = list(range(len(atoms)))
    order[i], order[j] = j, i
    return atoms[order]


def waters(n: int = 1) -> app.Topology:
    """``n`` waters (O, H, H, bonded), without a box."""
    topology = app.Topology()
    chain = topology.addChain()
    for _ in range(n):
        residue = topology.addResidue("HOH", chain)
        oxygen = topology.addAtom("O", app.element.oxygen, residue)
        for name in ("H1", "H2"):
            topology.addBond(oxygen, topology.addAtom(name, app.element.hydrogen, residue))
    return topology


def energy_in_default_box() -> float:
    """A periodic ML force from atomic numbers in a System whose box was never set."""
    system = openmm.System()
    for _ in range(3):
        system.addParticle(1.0)
    system.addForce(mlcalc.openmm.create_force("demo", [8, 1, 1], periodic=True, implementation="python"))
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(np.array([[0.0, 0.0, 0.0], [0.0957, 0.0, 0.0], [-0.024, 0.0927, 0.0]]))
    return context.getState(getEnergy=True).getPotentialEnergy()


def polarizable_system(particles: int) -> openmm.System:
    """An AMOEBA (polarizable) System, which mechanical embedding cannot split."""
    system = openmm.System()
    for _ in range(particles):
        system.addParticle(16.0)
    system.addForce(openmm.AmoebaMultipoleForce())
    return system


def constrained_waters() -> tuple[app.Topology, openmm.System]:
    """Two TIP3P-FB waters, rigid (three constraints each), and their Topology."""
    topology = waters(2)
    forcefield = app.ForceField("amber14-all.xml", "amber14/tip3pfb.xml")
    return topology, forcefield.createSystem(topology, nonbondedMethod=app.NoCutoff, constraints=app.HBonds)


def changed_config(run: Path) -> Path:
    """``run`` with another temperature in its ``config.json``."""
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "temperature": 120.0}))
    return run


def without_trajectory(run: Path) -> Path:
    """``run`` without its trajectory file."""
    (run / "trajectory.dcd").unlink()
    return run


def with_variable(name: str, value: str, call: Callable[[], object]) -> object:
    """``call()`` with the environment variable ``name`` set to ``value``."""
    with mock.patch.dict(os.environ, {name: value}):
        return call()


def opt(x: Inputs, *options: str) -> list[str]:
    """``mlcalc opt`` of butane with the demo potential and ``options``."""
    return ["opt", str(x.butane_xyz), "--potential", "demo", *options, "-o", str(x.out)]


def scan(x: Inputs, *options: str) -> list[str]:
    return ["scan", str(x.butane_xyz), "--potential", "demo", "--dihedral", "0,1,2,3", *options, "-o", str(x.out)]


def md_config(**changes) -> MDConfig:
    return MDConfig(**{"structure": "solute.pdb", "potential": "potential.pt", **changes})


POTENTIAL_FILES = [
    Case(
        "potential-missing-file",
        lambda x: mlcalc.load(x.directory / "nothing.pt"),
        FileNotFoundError,
        r"nothing\.pt does not exist, and it is not the name of a bundled potential \(demo\)",
        r"check the path, or give the name of a bundled potential",
    ),
    Case(
        "potential-directory",
        lambda x: mlcalc.load(x.directory),
        FileNotFoundError,
        r"is a directory, not a potential file",
        r"give the path of a file written by mlcalc\.export",
    ),
    Case(
        "potential-text-file",
        lambda x: mlcalc.load(x.file("notes.pt", "not a model\n")),
        ContractError,
        r"notes\.pt is not a TorchScript file \(not a zip archive\)",
        r"export models with mlcalc\.export",
    ),
    Case(
        "potential-truncated-file",
        lambda x: mlcalc.load(x.truncated_lj()),
        ContractError,
        r"half\.pt is not a TorchScript file",
        r"export models with mlcalc\.export",
    ),
    Case(
        "potential-state-dict",
        lambda x: mlcalc.load(x.state_dict()),
        ContractError,
        r"weights\.pt has no mlcalc metadata .* not written by mlcalc\.export",
        r"export the model with mlcalc\.export\(model, path, cutoff=",
    ),
    Case(
        "potential-contract-2.0",
        lambda x: mlcalc.load(x.lj_with_metadata(contract_version="2.0")),
        ContractError,
        r"contract version 2\.0 is not supported by this mlcalc \(it reads 1\.0 to 1\.\d+\)",
        r"upgrade mlcalc",
    ),
    Case(
        "potential-contract-newer-minor",
        lambda x: mlcalc.load(x.lj_with_metadata(contract_version="1.9")),
        ContractError,
        r"contract version 1\.9 is not supported",
        r"upgrade mlcalc",
    ),
    Case(
        "potential-contract-0.9",
        lambda x: mlcalc.load(x.lj_with_metadata(contract_version="0.9")),
        ContractError,
        r"contract version 0\.9 is not supported",
        r"re-export the model with this mlcalc",
    ),
    Case(
        "potential-contract-not-major-minor",
        lambda x: mlcalc.load(x.lj_with_metadata(contract_version="one")),
        ContractError,
        r"contract version 'one' is not of the form MAJOR\.MINOR",
        r"re-export the model with mlcalc\.export",
    ),
    Case(
        "potential-metadata-unknown-field",
        lambda x: mlcalc.load(x.lj_with_metadata(colour="red")),
        ContractError,
        r"metadata has unknown fields \['colour'\]",
        r"upgrade mlcalc, or re-export the model",
    ),
    Case(
        "potential-metadata-without-cutoff",
        lambda x: mlcalc.load(x.lj_with_metadata(cutoff=None)),
        ContractError,
        r"metadata lacks \['cutoff'\]",
        r"re-export it with mlcalc\.export",
    ),
    Case(
        "potential-metadata-unknown-length-unit",
        lambda x: mlcalc.load(x.lj_with_metadata(length_unit="furlong")),
        UnitError,
        r"unknown length unit 'furlong'",
        r"use one of \['angstrom', 'bohr', 'nm'\]",
    ),
    Case(
        "potential-metadata-unknown-energy-unit",
        lambda x: mlcalc.load(x.lj_with_metadata(energy_unit="Ry")),
        UnitError,
        r"unknown energy unit 'Ry'",
        r"use one of \['eV', 'hartree', 'kJ/mol', 'kcal/mol', 'meV'\]",
    ),
    Case(
        "potential-metadata-float16",
        lambda x: mlcalc.load(x.lj_with_metadata(dtype="float16")),
        ContractError,
        r"got 'float16'",
        r"dtype must be one of \('float32', 'float64'\)",
    ),
    Case(
        "potential-dtype-float16",
        lambda x: mlcalc.load(x.lj_path, device="cpu", dtype="float16"),
        ValueError,
        r"got 'float16'",
        r"dtype must be 'float32' or 'float64'",
    ),
    Case(
        "calculator-negative-skin",
        lambda x: mlcalc.MLCalculator(x.lj, skin=-1.0),
        ValueError,
        r"got -1\.0",
        r"skin is a length in Å, zero or positive",
    ),
]

PLUGINS = [
    Case(
        "plugin-unknown-family",
        lambda x: mlcalc.plugins.get("nonesuch"),
        PluginError,
        r"no mlcalc adapter for 'nonesuch' is installed",
        r"install the plugin, e\.g\. `pip install \./plugins/nonesuch`",
    ),
    Case(
        "plugin-state-dict-instead-of-a-model",
        lambda x: load_saved_model(x.state_dict(), "mace", "the MACE model"),
        PluginError,
        r"weights\.pt holds a dictionary \(a state dict or checkpoint\), not a model",
        r"build the MACE model, load the state dict into it and pass the model",
    ),
    Case(
        "plugin-missing-model-file",
        lambda x: load_saved_model(x.out / "model.pt", "mace", "the MACE model"),
        FileNotFoundError,
        r"no such file: .*model\.pt",
        r"give the path of the mace model file",
    ),
]

NO_GPU_CASES = [
    Case(
        "potential-cuda-without-gpu",
        lambda x: mlcalc.load(x.lj_path, device="cuda"),
        DeviceError,
        r"device cuda was asked for but torch sees no CUDA GPU",
        r"use device='cpu'",
    ),
    Case(
        "openmm-cuda-platform-without-gpu",
        lambda x: mlcalc.openmm.choose_platform("CUDA"),
        DeviceError,
        r"OpenMM has no CUDA platform here \(available: .*Reference",
        r"choose one of the available ones",
    ),
    Case(
        "cli-device-cuda-without-gpu",
        lambda x: opt(x, "--device", "cuda"),
        1,
        r"mlcalc opt: error: device cuda was asked for but torch sees no CUDA GPU",
        r"use device='cpu'",
    ),
]

EXPORT = [
    Case(
        "export-cutoff-below-the-models",
        lambda x: mlcalc.export(lj_model(), x.out / "lj.pt", cutoff=5.0),
        ContractError,
        r"cutoff=5 is below the 8\.5 the model declares .* drop pairs the model interacts with",
        r"Omit cutoff= to use the model's own",
    ),
    Case(
        "export-not-a-module",
        lambda x: mlcalc.export({"weight": torch.zeros(2)}, x.out / "x.pt", **DECLARED),
        ContractError,
        r"export needs a torch\.nn\.Module, got dict",
        r"pass the model itself",
    ),
    Case(
        "export-undeclared-metadata",
        lambda x: mlcalc.export(Returns(), x.out / "x.pt"),
        ContractError,
        r"the model does not declare them",
        r"export needs cutoff=\.\.\., species=\.\.\., length_unit=\.\.\., energy_unit=\.\.\.",
    ),
    Case(
        "export-unknown-length-unit",
        lambda x: mlcalc.export(Returns(), x.out / "x.pt", **{**DECLARED, "length_unit": "inch"}),
        UnitError,
        r"unknown length unit 'inch'",
        r"use one of \['angstrom', 'bohr', 'nm'\]",
    ),
    Case(
        "export-infinite-cutoff",
        lambda x: mlcalc.export(Returns(), x.out / "x.pt", **{**DECLARED, "cutoff": float("inf")}),
        ContractError,
        r"cutoff must be a positive number, got inf",
        r"give the model's cutoff radius in its length unit",
    ),
    Case(
        "export-species-zero",
        lambda x: mlcalc.export(Returns(), x.out / "x.pt", **{**DECLARED, "species": [0, 1]}),
        ContractError,
        r"species holds invalid atomic numbers \[0\]",
        r"list elements by atomic number, 1 \(H\) to 118",
    ),
    Case(
        "export-species-repeated",
        lambda x: mlcalc.export(Returns(), x.out / "x.pt", **{**DECLARED, "species": [1, 1]}),
        ContractError,
        r"species holds repeated atomic numbers \(1, 1\)",
        r"list each element once",
    ),
    Case(
        "export-dtype-float16",
        lambda x: mlcalc.export(Returns(), x.out / "x.pt", **DECLARED, dtype="float16"),
        ContractError,
        r"got 'float16'",
        r"dtype must be 'float32' or 'float64'",
    ),
    Case(
        "export-forward-signature",
        lambda x: mlcalc.export(TakesPositions(), x.out / "x.pt", **DECLARED),
        ContractError,
        r"the model's forward is `forward\(.*Tensor positions\) -> Tensor`",
        r"the contract needs `forward\(self, inputs: Dict\[str, Tensor\]\) -> Dict\[str, Tensor\]`",
    ),
    Case(
        "export-not-scriptable",
        lambda x: mlcalc.export(UsesNumpy(), x.out / "x.pt", **DECLARED),
        ContractError,
        r"could not be compiled with TorchScript",
        r"fix the code TorchScript points at",
    ),
    Case(
        "export-energies-of-wrong-shape",
        lambda x: mlcalc.export(Returns("matrix"), x.out / "x.pt", **DECLARED),
        ContractError,
        r"the model returned 'energies' of shape \[2, 3\]",
        r"the contract needs per-atom energies of shape \[2\]",
    ),
    Case(
        "export-reserved-output",
        lambda x: mlcalc.export(Returns("reserved"), x.out / "x.pt", **DECLARED),
        ContractError,
        r"the model returned 'forces', a key mlcalc reserves",
        r"rename that output",
    ),
    Case(
        "export-non-finite-energies",
        lambda x: mlcalc.export(Returns("nan"), x.out / "x.pt", **DECLARED),
        ContractError,
        r"the model returned non-finite energy on a test structure of 2 atoms",
        r"fix the model so that it gives finite energies",
    ),
    Case(
        "export-unknown-metadata-keys",
        lambda x: mlcalc.export(Colourful(), x.out / "x.pt"),
        ContractError,
        r"mlcalc_metadata has unknown keys \['colour'\]",
        r"remove or rename them \(known: .*cutoff",
    ),
    Case(
        "export-mixed-dtypes",
        lambda x: mlcalc.export(MixedDtypes(), x.out / "x.pt", **DECLARED),
        ContractError,
        r"the model mixes floating dtypes",
        r"pass dtype= to export",
    ),
]

STRUCTURES = [
    Case(
        "structure-unsupported-element",
        lambda x: energy(
            Atoms("HSSH", positions=[[-0.9, 1, 0.3], [0, 1, -0.5], [0, -1, -0.5], [0.9, -1, 0.3]]), x.demo
        ),
        UnsupportedElementError,
        r"does not support S \(Z=16\) at atoms \[1, 2\]; it supports H, C, N, O",
        r"Use a potential trained for these elements",
    ),
    Case(
        "structure-nan-position",
        lambda x: energy(argon([[0, 0, 0], [np.nan, 0, 0]]), mlcalc.MLCalculator(x.lj)),
        InvalidStructureError,
        r"positions of atoms \[1\] are NaN or infinite",
        r"check the structure",
    ),
    Case(
        "structure-infinite-position",
        lambda x: energy(argon([[0, 0, 0], [3, 0, 0], [0, -np.inf, 0]]), mlcalc.MLCalculator(x.lj)),
        InvalidStructureError,
        r"positions of atoms \[2\] are NaN or infinite",
        r"check the structure",
    ),
    Case(
        "structure-coincident-atoms",
        lambda x: energy(argon([[0, 0, 0], [3, 0, 0], [0, 3, 0], [0, 0, 0]]), mlcalc.MLCalculator(x.lj)),
        InvalidStructureError,
        r"atoms 0 and 3 \(0\.0e\+00 Å apart\) are at the same position",
        r"remove the duplicated atoms",
    ),
    Case(
        "structure-coincident-atoms-in-a-batch",
        lambda x: mlcalc.MLCalculator(x.lj).calculate_batch([argon([[0, 0, 0], [3, 0, 0]]), argon([[1, 1, 1]] * 2)]),
        InvalidStructureError,
        r"atoms 2 and 3 .* in structure 1 are at the same position",
        r"remove the duplicated atoms",
    ),
    Case(
        "structure-periodic-without-cell",
        lambda x: energy(argon([[0, 0, 0]], pbc=True), mlcalc.MLCalculator(x.lj)),
        InvalidStructureError,
        r"cell vector 0 is zero but the structure is periodic along it",
        r"set a cell or make direction 0 non-periodic",
    ),
    Case(
        "structure-mixed-pbc-zero-cell-vector",
        lambda x: energy(argon([[0, 0, 0]], cell=[5, 5, 0], pbc=[True, True, True]), mlcalc.MLCalculator(x.lj)),
        InvalidStructureError,
        r"cell vector 2 is zero but the structure is periodic along it",
        r"make direction 2 non-periodic",
    ),
    Case(
        "structure-slab-with-parallel-cell-vectors",
        lambda x: energy(
            argon([[0, 0, 0]], cell=[[5, 0, 0], [10, 0, 0], [0, 0, 0]], pbc=[True, True, False]),
            mlcalc.MLCalculator(x.lj),
        ),
        InvalidStructureError,
        r"periodic cell vectors 0 and 1 are parallel",
        r"fix the cell",
    ),
    Case(
        "structure-triclinic-cell-of-zero-volume",
        lambda x: energy(
            argon([[0, 0, 0]], cell=[[5, 0, 0], [2, 3, 0], [7, 3, 0]], pbc=True), mlcalc.MLCalculator(x.lj)
        ),
        InvalidStructureError,
        r"the periodic cell has zero volume",
        r"fix the cell or make the degenerate direction non-periodic",
    ),
    Case(
        "structure-positions-of-wrong-shape",
        lambda x: x.lj.evaluate_arrays([18, 18], np.zeros((3, 3)), np.zeros((3, 3)), [False] * 3),
        InvalidStructureError,
        r"got \(3, 3\)",
        r"positions must have shape \(2, 3\)",
    ),
    Case(
        "structure-batch-without-batch-array",
        lambda x: x.lj.evaluate_arrays([18, 18], np.eye(2, 3), np.zeros((2, 3, 3)), [[False] * 3] * 2),
        ValueError,
        r"2 cells need",
        r"need the batch array",
    ),
    Case(
        "neighbor-list-flat-triclinic-cell",
        lambda x: mlcalc.neighbor_list(
            argon([[0, 0, 0]], cell=[[3, 0, 0], [1.5, 2.6, 0], [1.5, 0.9, 0.01]], pbc=True), 8.5
        ),
        InvalidStructureError,
        r"the cell needs \d+ periodic images for cutoff 8\.5: its perpendicular widths .* are far below the cutoff",
        r"check the cell and its units",
    ),
    Case(
        "neighbor-list-negative-cutoff",
        lambda x: mlcalc.neighbor_list(argon([[0, 0, 0], [3, 0, 0]]), -1.0),
        ValueError,
        r"got -1\.0",
        r"cutoff must be a positive length in Å",
    ),
]

COORDINATES = [
    Case(
        "coordinate-repeated-atom",
        lambda x: Dihedral(0, 1, 1, 3),
        InternalCoordinateError,
        r"the dihedral 0-1-1-3 repeats an atom",
        r"a dihedral needs 4 different atoms",
    ),
    Case(
        "coordinate-too-few-indices",
        lambda x: Dihedral(0, 1, 2),
        InternalCoordinateError,
        r"got \[0, 1, 2\]",
        r"a dihedral needs 4 atom indices",
    ),
    Case(
        "coordinate-negative-index",
        lambda x: Dihedral(-1, 0, 1, 2),
        InternalCoordinateError,
        r"cannot be negative, got dihedral -1-0-1-2",
        r"the first atom is 0, the last N - 1",
    ),
    Case(
        "coordinate-non-integer-index",
        lambda x: Distance(0, 1.5),
        InternalCoordinateError,
        r"atom indices must be whole numbers, got 1\.5 in \[0, 1\.5\]",
        r"give 0-based integer indices, e.g\. Distance\(0, 1\)",
    ),
    Case(
        "coordinate-index-none",
        lambda x: Angle(0, None, 2),
        InternalCoordinateError,
        r"atom indices must be whole numbers, got None",
        r"e\.g\. Angle\(0, 1, 2\)",
    ),
    Case(
        "coordinate-index-out-of-range",
        lambda x: check_coordinates(x.butane, [Dihedral(0, 1, 2, 14)]),
        InternalCoordinateError,
        r"atom index 14 is out of range for a structure of 14 atoms",
        r"indices are 0-based \(the first atom is 0, the last 13\)",
    ),
    Case(
        "coordinate-nan-target",
        lambda x: Dihedral(0, 1, 2, 3, target=float("nan")),
        InternalCoordinateError,
        r"the target of the dihedral 0-1-2-3 is nan",
        r"give a finite value, in degrees",
    ),
    Case(
        "coordinate-linear-angle-in-a-dihedral",
        lambda x: check_coordinates(
            Atoms("C4", positions=[[0, 0, 0], [1.5, 0, 0], [3, 0, 0], [4, 1, 0]]), [Dihedral(0, 1, 2, 3)]
        ),
        InternalCoordinateError,
        r"dihedral 0-1-2-3 is undefined: atoms 0-1-2 are collinear \(angle 180\.00°",
        r"choose a dihedral whose inner angles are bent",
    ),
    Case(
        "coordinate-linear-angle",
        lambda x: check_coordinates(Atoms("CO2", positions=[[0, 0, 0], [1.2, 0, 0], [-1.2, 0, 0]]), [Angle(1, 0, 2)]),
        InternalCoordinateError,
        r"angle 1-0-2 is 180\.00°, within 2\.0° of linear",
        r"constrain a distance instead",
    ),
    Case(
        "coordinate-linear-angle-target",
        lambda x: check_coordinates(x.butane, [Angle(0, 1, 2, target=180.0)]),
        InternalCoordinateError,
        r"a target of 180\.0° is within 2\.0° of linear",
        r"constrain a distance between the outer atoms instead",
    ),
    Case(
        "coordinate-coincident-atoms",
        lambda x: check_coordinates(Atoms("H2"), [Distance(0, 1)]),
        InternalCoordinateError,
        r"distance 0-1: the two atoms coincide",
        r"remove the duplicated atom from the structure, or choose two different atoms",
    ),
    Case(
        "coordinate-negative-target-distance",
        lambda x: check_coordinates(x.butane, [Distance(0, 1, target=-1.0)]),
        InternalCoordinateError,
        r"got -1\.0 Å",
        r"a target distance must be positive",
    ),
    Case(
        "coordinate-given-twice",
        lambda x: check_coordinates(x.butane, [Dihedral(0, 1, 2, 3), Dihedral(3, 2, 1, 0)]),
        InternalCoordinateError,
        r"dihedral 3-2-1-0 is given twice",
        r"give each coordinate once",
    ),
    Case(
        "coordinate-plain-tuple",
        lambda x: check_coordinates(x.butane, [(0, 1, 2, 3)]),
        TypeError,
        r"expected Distance, Angle or Dihedral objects, got \(0, 1, 2, 3\)",
        r"wrap the atom indices, e\.g\. Dihedral\(0, 1, 2, 3\)",
    ),
    Case(
        "coordinate-constraint-without-target",
        lambda x: FixInternalCoordinates([Dihedral(0, 1, 2, 3)]),
        InternalCoordinateError,
        r"FixInternalCoordinates needs targets; dihedral 0-1-2-3 has none",
        r"give each a target=, or take the current values with .*resolve_targets",
    ),
]

WORKFLOWS = [
    Case(
        "optimize-dihedral-across-two-molecules",
        lambda x: optimize(x.two_waters, x.demo, [Dihedral(1, 0, 3, 4)]),
        InternalCoordinateError,
        r"the dihedral 1-0-3-4 joins atoms of 2 different molecules",
        r"Give four atoms of one molecule .* or constrain the distance or angle between the molecules instead",
    ),
    Case(
        "optimize-fixed-atom-in-a-constraint",
        lambda x: optimize(with_constraint(x.butane, FixAtoms([1])), x.demo, [Dihedral(0, 1, 2, 3)]),
        InternalCoordinateError,
        r"atom 1 is held by FixAtoms and is part of the constrained dihedral 0-1-2-3",
        r"release it or constrain a coordinate of free atoms",
    ),
    Case(
        "optimize-foreign-ase-constraint",
        lambda x: optimize(with_constraint(x.butane, FixBondLength(0, 1)), x.demo, []),
        InternalCoordinateError,
        r"the structure carries a FixBondLengths constraint",
        r"remove it with atoms\.set_constraint\(\)",
    ),
    Case(
        "optimize-unknown-backend",
        lambda x: optimize(x.butane, x.demo, [], backend="torch"),
        ValueError,
        r"got 'torch'",
        r"backend must be one of \('ase', 'scipy'\)",
    ),
    Case(
        "optimize-fmax-zero",
        lambda x: optimize(x.butane, x.demo, [], fmax=0.0),
        ValueError,
        r"got 0\.0, 1e-06",
        r"need fmax > 0",
    ),
    Case(
        "optimize-unknown-optimizer",
        lambda x: optimize(x.butane, x.demo, [], optimizer="Newton"),
        ValueError,
        r"got 'Newton'",
        r"optimizer must be one of \('BFGS', .*\) or an ASE Optimizer class",
    ),
    Case(
        "scan-nan-in-the-grid",
        lambda x: relaxed_scan(x.butane, x.demo, Dihedral(0, 1, 2, 3), grid=[float("nan")]),
        ValueError,
        r"the grid of dihedral 0-1-2-3 holds \[nan\]",
        r"give finite values \(in°\)",
    ),
    Case(
        "scan-grid-of-a-million-points",
        lambda x: relaxed_scan(x.butane, x.demo, Dihedral(0, 1, 2, 3), grid=np.linspace(0, 360, 10**6)),
        ValueError,
        r"has 1000000 points, more than 3601, each a constrained optimisation",
        r"give a coarser grid",
    ),
    Case(
        "scan-distance-without-grid",
        lambda x: relaxed_scan(x.butane, x.demo, Distance(0, 1)),
        ValueError,
        r"only dihedrals have a default",
        r"give the grid of distance 0-1",
    ),
    Case(
        "scan-coordinate-with-target",
        lambda x: relaxed_scan(x.butane, x.demo, Dihedral(0, 1, 2, 3, target=60.0)),
        ValueError,
        r"scanned coordinates take their values from the grid",
        r"leave their target unset",
    ),
    Case(
        "scan-2d-with-one-grid",
        lambda x: relaxed_scan(x.butane, x.demo, [Dihedral(0, 1, 2, 3), Dihedral(1, 2, 3, 10)], grid=[[0.0]]),
        ValueError,
        r"a 2D scan needs a grid for each coordinate",
        r"grid=\[values1, values2\]",
    ),
    Case(
        "scan-unknown-on-error",
        lambda x: relaxed_scan(x.butane, x.demo, Dihedral(0, 1, 2, 3), on_error="ignore"),
        ValueError,
        r"got 'ignore'",
        r'on_error must be "raise" or "stop"',
    ),
    Case(
        "path-endpoints-of-different-atoms",
        lambda x: dihedral_path(x.butane, molecule("CH4"), x.demo, Dihedral(0, 1, 2, 3), 3),
        ValueError,
        r"the initial and final structures have different atoms \(C4H10, 14 atoms; CH4, 5\)",
        r"give two structures of the same atoms in the same order",
    ),
    Case(
        "path-endpoints-in-another-order",
        lambda x: dihedral_path(x.butane, swapped(x.butane, 4, 13), x.demo, Dihedral(0, 1, 2, 3), 3),
        InvalidStructureError,
        r"the initial and final structures are bonded differently \(only in the initial structure",
        r"Put the final structure's atoms in the initial's order",
    ),
    Case(
        "path-no-intermediates",
        lambda x: dihedral_path(x.butane, x.butane, x.demo, Dihedral(0, 1, 2, 3), 0),
        ValueError,
        r"got 0",
        r"n_intermediates must be at least 1",
    ),
    Case(
        "path-guide-not-a-dihedral",
        lambda x: dihedral_path(x.butane, x.butane, x.demo, Distance(0, 1), 3),
        TypeError,
        r"the guide \(and partner\) of a dihedral-driven path",
        r"must be Dihedral objects",
    ),
    Case(
        "band-endpoints-in-another-order",
        lambda x: make_band(x.butane, renumbered(x.butane), 3),
        ValueError,
        r"atom 0 is C in the initial structure but H in the final one \(\d+ atoms differ\)",
        r"put the final structure's atoms in the initial's order",
    ),
    Case(
        "band-no-images",
        lambda x: make_band(x.butane, x.butane, 0),
        ValueError,
        r"got n_images=0",
        r"a band needs at least one interior image",
    ),
    Case(
        "band-unknown-interpolation",
        lambda x: make_band(x.butane, x.butane, 3, interpolation="spline"),
        ValueError,
        r"got 'spline'",
        r"interpolation must be one of \('idpp', 'linear'\)",
    ),
    Case(
        "neb-too-few-images",
        lambda x: run_neb([x.butane, x.butane], x.demo),
        ValueError,
        r"got 2 structures",
        r"a band needs the two endpoints and at least one image",
    ),
    Case(
        "neb-unknown-optimizer",
        lambda x: run_neb([x.butane] * 3, x.demo, optimizer="Newton"),
        ValueError,
        r"got 'Newton'",
        r"optimizer must be one of \('FIRE', .*\) or an ASE Optimizer class",
    ),
    Case(
        "checkpoint-of-a-different-run",
        lambda x: Checkpoint(x.out, {"grid": [0, 10]}) and Checkpoint(x.out, {"grid": [0, 20]}),
        CheckpointError,
        r"is the checkpoint of a different run \(grid: \[0, 10\] in the checkpoint, \[0, 20\] now\)",
        r"choose another output directory, delete the checkpoint, or run without resuming",
    ),
]

OPENMM = [
    Case(
        "openmm-numbers-without-periodic",
        lambda x: mlcalc.openmm.create_force("demo", [8, 1, 1]),
        ValueError,
        r"periodic= is required with a list of atomic numbers",
        r"Pass periodic=True .* periodic=False .* or pass the Topology instead",
    ),
    Case(
        "openmm-no-ml-atoms",
        lambda x: mlcalc.openmm.create_force("demo", waters(), atoms=[]),
        ValueError,
        r"atoms is empty",
        r"select at least one ML atom, or pass atoms=None for all",
    ),
    Case(
        "openmm-unknown-implementation",
        lambda x: mlcalc.openmm.create_force("demo", [8, 1, 1], periodic=False, implementation="cuda"),
        ValueError,
        r"got 'cuda'",
        r"implementation must be 'torch' .*, 'python' .* or None",
    ),
    Case(
        "openmm-cuda-graphs-with-the-python-force",
        lambda x: mlcalc.openmm.create_force(
            "demo", [8, 1, 1], periodic=False, implementation="python", cuda_graphs=True
        ),
        ValueError,
        r"cuda_graphs=True needs the TorchForce .* but this builds the PythonForce",
        r'install "mlcalc\[openmm-torch\]" or drop cuda_graphs',
    ),
    Case(
        "openmm-default-box",
        lambda x: energy_in_default_box(),
        openmm.OpenMMException,
        r"the periodic box is OpenMM's default 2 nm cube, the box of a System whose box was never set",
        r"set it \(system\.setDefaultPeriodicBoxVectors or context\.setPeriodicBoxVectors\)",
    ),
    Case(
        "openmm-constraints-without-bonds",
        lambda x: mlcalc.openmm.create_system(
            app.Topology(), "demo", constraints=app.HBonds, positions=np.zeros((0, 3))
        ),
        ValueError,
        r"constraints were asked for, but the topology has no bonds",
        r"add them, e\.g\. from a PDB's CONECT",
    ),
    Case(
        "openmm-constraints-split-ml-and-mm",
        lambda x: mlcalc.openmm.create_mixed_system(*constrained_waters(), [0, 1], "demo"),
        InvalidStructureError,
        r"the ML atom selection splits 2 constrained bond\(s\): atom 0 \(O of HOH 1\) with atom 2 \(H2 of HOH 1\)",
        r"select whole molecules .* or build the MM system without those constraints",
    ),
    Case(
        "openmm-polarizable-mm-system",
        lambda x: mlcalc.openmm.create_mixed_system(waters(2), polarizable_system(6), [0, 1, 2], "demo"),
        ValueError,
        r"the MM system holds a AmoebaMultipoleForce",
        r"supports fixed-charge force fields only",
    ),
    Case(
        "openmm-ml-potential-without-model",
        lambda x: __import__("openmmml").MLPotential("mlcalc"),
        TypeError,
        r"MLPotential\('mlcalc'\) needs model=",
        r"the path of an mlcalc potential file or a Potential",
    ),
    Case(
        "openmm-ml-potential-unknown-option",
        lambda x: __import__("openmmml").MLPotential("mlcalc", model="demo", colour="red"),
        TypeError,
        r"does not take \['colour'\]",
        r"it takes \['implementation', 'dtype', 'cuda_graphs', 'device', 'periodic'\]",
    ),
]

WITHOUT_OPENMM_TORCH = [
    Case(
        "openmm-torch-force-without-openmm-torch",
        lambda x: mlcalc.openmm.create_force("demo", [8, 1, 1], periodic=False, implementation="torch"),
        ImportError,
        r"the TorchForce needs openmm-torch, which cannot be imported here",
        r'pip install "mlcalc\[openmm-torch\]" .* or pass implementation="python"',
    ),
]

MD = [
    Case(
        "md-temperature-negative",
        lambda x: md_config(temperature=-5.0),
        ValueError,
        r"temperature = -5\.0 K is out of range",
        r"give a value above 0 K",
    ),
    Case(
        "md-temperature-with-a-unit",
        lambda x: md_config(temperature="300 K"),
        ValueError,
        r"temperature must be a number, in K, got '300 K'",
        r"write the number alone, in K",
    ),
    Case(
        "md-temperature-infinite",
        lambda x: md_config(temperature=float("inf")),
        ValueError,
        r"temperature is inf",
        r"give a finite number, in K",
    ),
    Case(
        "md-pressure-nan",
        lambda x: md_config(pressure=float("nan")),
        ValueError,
        r"pressure is nan",
        r"give a finite number, in bar",
    ),
    Case(
        "md-pressure-negative",
        lambda x: md_config(pressure=-1.0),
        ValueError,
        r"pressure = -1\.0 bar is out of range",
        r"give a value above 0 bar",
    ),
    Case(
        "md-timestep-zero",
        lambda x: md_config(timestep_fs=0.0),
        ValueError,
        r"timestep_fs = 0\.0 fs is out of range",
        r"give a value above 0 fs",
    ),
    Case(
        "md-friction-negative",
        lambda x: md_config(friction=-1.0),
        ValueError,
        r"friction = -1\.0 1/ps is out of range",
        r"give a value of at least 0 1/ps",
    ),
    Case(
        "md-stage-negative",
        lambda x: md_config(npt=-10.0),
        ValueError,
        r"npt = -10\.0 ps is out of range",
        r"give a value of at least 0 ps",
    ),
    Case(
        "md-barostat-interval-zero",
        lambda x: md_config(barostat_interval=0),
        ValueError,
        r"barostat_interval = 0 steps is out of range",
        r"give a value of at least 1 steps",
    ),
    Case(
        "md-padding-negative",
        lambda x: md_config(padding=-1.0),
        ValueError,
        r"padding = -1\.0 nm is out of range",
        r"give a value above 0 nm",
    ),
    Case(
        "md-padding-and-n-waters",
        lambda x: md_config(padding=1.0, n_waters=500),
        ValueError,
        r"padding = 1\.0 nm and n_waters = 500 were both given",
        r"give one of them",
    ),
    Case(
        "md-seed-not-whole",
        lambda x: md_config(seed=1.5),
        ValueError,
        r"seed = 1\.5 is not a whole number",
        r"give a whole number",
    ),
    Case(
        "md-interval-not-whole-steps",
        lambda x: md_config(timestep_fs=2.0, state_interval=0.003),
        ValueError,
        r"state_interval = 0\.003 ps is 1\.5 time steps of 2 fs, not a whole number",
        r"use a multiple of the time step \(e\.g\. 0\.004 ps\)",
    ),
    Case(
        "md-max-temperature-below-temperature",
        lambda x: md_config(max_temperature=200.0),
        ValueError,
        r"max_temperature \(200 K\)",
        r"must exceed temperature \(300 K\)",
    ),
    Case(
        "md-unknown-mode",
        lambda x: md_config(mode="qmmm"),
        ValueError,
        r"got 'qmmm'",
        r"mode must be one of \('ml', 'mlmm'\)",
    ),
    Case(
        "md-misspelt-setting",
        lambda x: MDConfig.from_dict({"structure": "x.pdb", "potential": "p.pt", "temprature": 300}),
        ValueError,
        r"unknown MD settings \['temprature'\]",
        r"known: .*'temperature'.*: check their spelling",
    ),
    Case(
        "md-config-without-potential",
        lambda x: MDConfig.from_dict({"structure": "x.pdb"}),
        ValueError,
        r"the MD settings lack \['potential'\]",
        r"give them in the config file or on the command line \(--potential\)",
    ),
    Case(
        "md-config-file-not-json",
        lambda x: MDConfig.from_file(x.file("md.json", "{temperature: 300}")),
        ValueError,
        r"cannot read the config file .*md\.json \(Expecting property name",
        r"write it as a JSON object",
    ),
    Case(
        "md-config-file-a-list",
        lambda x: MDConfig.from_file(x.file("list.json", "[300, 1]")),
        ValueError,
        r"holds a list, not a table of settings",
        r"write a JSON object",
    ),
    Case(
        "md-npt-without-a-box",
        lambda x: Run.start(x.argon_config(x.out / "run", structure=str(x.argon_without_box()), npt=0.02)),
        InvalidStructureError,
        r"the structure has no periodic box, so the NPT stage \(npt = 0\.02 ps\) cannot control the pressure",
        r"solvate it .*, give the structure a box .*, or set npt to 0",
    ),
    Case(
        "md-box-narrower-than-twice-the-cutoff",
        lambda x: Run.start(x.argon_config(x.out / "run", potential=str(x.lj_9))),
        InvalidStructureError,
        r"the periodic box is 1\.770 nm wide, less than twice the ML potential's .* cutoff \(0\.9 nm\)",
        r"Use a box at least 1\.800 nm wide \(more solvent padding or waters\), or a smaller cutoff",
    ),
    Case(
        "md-ml-selection-matches-nothing",
        lambda x: select_atoms(app.PDBFile(str(TRIALANINE)).topology, "resname XYZ"),
        ValueError,
        r"the ML selection 'resname XYZ' matches no atoms: the structure's residues are \[.*'ALA'",
        r"select some of them \(resname \.\.\.\), or atoms by 0-based index",
    ),
    Case(
        "md-ml-selection-index-out-of-range",
        lambda x: select_atoms(waters(), "index 0-5"),
        ValueError,
        r"names atoms outside the structure's 0\.\.2 \(3, 4, 5, \.\.\.\)",
        r"give 0-based indices of the prepared structure",
    ),
    Case(
        "md-structure-of-unknown-format",
        lambda x: Run.start(md_config(structure=str(x.file("solute.gro", "")), output=str(x.out / "run"))),
        ValueError,
        r"cannot read .*solute\.gro",
        r"give a \.pdb, \.cif/\.mmcif/\.pdbx or \.sdf/\.mol file",
    ),
    Case(
        "md-resume-without-a-run",
        lambda x: Run.resume(x.out),
        FileNotFoundError,
        r"holds no run \(config\.json missing\)",
        r"give the output directory of an mlcalc md run, or start a new run",
    ),
    Case(
        "md-resume-with-a-changed-config",
        lambda x: Run.resume(changed_config(x.md_run_copy())),
        MDCheckpointError,
        r"made with .*config\.json of SHA-256 .* resuming would mix two config\.json versions in one run",
        r"Put the original back, or start the run again from its first step with mlcalc md --restart",
    ),
    Case(
        "md-resume-without-its-trajectory",
        lambda x: Run.resume(without_trajectory(x.md_run_copy())),
        ValueError,
        r"the trajectory .*trajectory\.dcd is missing but the checkpoint counts 2 frames",
        r"put it back, or start the run again from its first step with mlcalc md --restart",
    ),
    Case(
        "md-resume-with-a-longer-time-step",
        lambda x: Run.resume(x.md_run_copy(), timestep_fs=20.0),
        ValueError,
        r"--resume can shorten the time step \(10 fs now\) but not lengthen it",
        r"run again from the start with mlcalc md --restart .* --timestep-fs 20",
    ),
]

COMMAND_LINE = [
    Case(
        "cli-dihedral-of-three-atoms",
        lambda x: opt(x, "--dihedral", "0,1,2"),
        2,
        r"mlcalc opt: error: argument --dihedral: a dihedral needs 4 atom indices, got \[0, 1, 2\]",
        r"needs 4 atom indices",
    ),
    Case(
        "cli-dihedral-with-semicolons",
        lambda x: opt(x, "--dihedral", "0;1;2;3"),
        2,
        r"argument --dihedral: cannot read --dihedral '0;1;2;3'",
        r"expected I,J,K,L\[=TARGET\], 0-based atom indices and a target in degrees, e\.g\. 0,1,2,3=120",
    ),
    Case(
        "cli-dihedral-target-not-a-number",
        lambda x: opt(x, "--dihedral", "0,1,2,3=abc"),
        2,
        r"cannot read --dihedral '0,1,2,3=abc'",
        r"e\.g\. 0,1,2,3=120",
    ),
    Case(
        "cli-dihedral-index-out-of-range",
        lambda x: opt(x, "--dihedral", "0,1,2,99"),
        1,
        r"mlcalc opt: error: dihedral 0-1-2-99: atom index 99 is out of range for a structure of 14 atoms",
        r"indices are 0-based \(the first atom is 0, the last 13\)",
    ),
    Case(
        "cli-same-dihedral-twice",
        lambda x: opt(x, "--dihedral", "0,1,2,3=60", "--dihedral", "3,2,1,0"),
        1,
        r"dihedral 3-2-1-0 is given twice",
        r"give each coordinate once",
    ),
    Case(
        "cli-without-model",
        lambda x: ["opt", str(x.butane_xyz)],
        2,
        r"mlcalc opt: error: the following arguments are required: --potential/--model",
        r"usage: mlcalc opt .*--potential POTENTIAL",
    ),
    Case(
        "cli-without-structure",
        lambda x: ["opt", "--potential", "demo"],
        2,
        r"the following arguments are required: structure",
        r"usage: mlcalc opt (.|\n)*structure",
    ),
    Case(
        "cli-unreadable-structure",
        lambda x: ["opt", str(x.file("bad.xyz", "not a structure\n")), "--potential", "demo", "-o", str(x.out)],
        1,
        r"mlcalc opt: error: cannot read .*bad\.xyz as a structure",
        r"give a file ASE reads \(xyz, extxyz, pdb, cif, POSCAR, \.\.\.\)",
    ),
    Case(
        "cli-missing-potential-file",
        lambda x: ["opt", str(x.butane_xyz), "--potential", str(x.out / "model.pt"), "-o", str(x.out)],
        1,
        r"mlcalc opt: error: potential file .*model\.pt does not exist",
        r"check the path, or give the name of a bundled potential",
    ),
    Case(
        "cli-dtype-float16",
        lambda x: opt(x, "--dtype", "float16"),
        2,
        r"argument --dtype: invalid choice: 'float16'",
        r"choose from '?float32'?, '?float64'?",
    ),
    Case(
        "cli-threads-not-a-number",
        lambda x: ["--threads", "two", "info", "demo"],
        2,
        r"argument --threads: .*got two",
        r"must be a positive whole number",
    ),
    Case(
        "threads-variable-not-a-number",
        lambda x: with_variable("MLCALC_NUM_THREADS", "two", mlcalc.threads.resolve_threads),
        ValueError,
        r"MLCALC_NUM_THREADS='two' is not a whole number of threads",
        r"give a whole number, 1 or more",
    ),
    Case(
        "cli-info-of-a-structure-file",
        lambda x: ["info", str(x.butane_xyz)],
        1,
        r"mlcalc info: error: .*butane\.xyz is not a TorchScript file",
        r"export models with mlcalc\.export",
    ),
    Case(
        "cli-scan-step-zero",
        lambda x: scan(x, "--step", "0"),
        1,
        r"mlcalc scan: error: --step must be a non-zero angle in degrees, got 0",
        r"must be a non-zero angle",
    ),
    Case(
        "cli-scan-step-nan",
        lambda x: scan(x, "--step", "nan"),
        1,
        r"--step must be a non-zero angle in degrees, got nan",
        r"must be a non-zero angle",
    ),
    Case(
        "cli-scan-absurdly-many-points",
        lambda x: scan(x, "--step", "1e-9"),
        1,
        r"--step 1e-09° makes a grid of 3\.6e\+11 points \(more than 3601\)",
        r"use a step of at least a fraction of a degree \(e\.g\. --step 1\)",
    ),
    Case(
        "cli-scan-start-without-stop",
        lambda x: scan(x, "--start", "0"),
        1,
        r"mlcalc scan: error: give both --start and --stop, or neither",
        r"give both --start and --stop",
    ),
    Case(
        "cli-scan-step-away-from-stop",
        lambda x: scan(x, "--start", "0", "--stop", "-90", "--step", "10"),
        1,
        r"--step 10 does not lead from --start 0 to --stop -90",
        r"use --step -10",
    ),
    Case(
        "cli-scan-infinite-stop",
        lambda x: scan(x, "--start", "0", "--stop", "inf"),
        1,
        r"got 0 and inf",
        r"--start and --stop must be finite angles in degrees",
    ),
    Case(
        "cli-scan-dihedral-with-target",
        lambda x: ["scan", str(x.butane_xyz), "--potential", "demo", "--dihedral", "0,1,2,3=60", "-o", str(x.out)],
        1,
        r"the scanned --dihedral takes no =TARGET",
        r"set the grid with --start, --stop, --step",
    ),
    Case(
        "cli-neb-without-structures",
        lambda x: ["neb", "--potential", "demo", "-o", str(x.out)],
        1,
        r"mlcalc neb: error: give INITIAL and FINAL structures \(or a --band file\)",
        r"give INITIAL and FINAL",
    ),
    Case(
        "cli-neb-structures-and-band",
        lambda x: ["neb", str(x.butane_xyz), "--band", str(x.butane_xyz), "--potential", "demo", "-o", str(x.out)],
        1,
        r"give INITIAL and FINAL, or --band, not both",
        r"not both",
    ),
    Case(
        "cli-neb-zero-images",
        lambda x: ["neb", str(x.butane_xyz), str(x.butane_xyz), "--potential", "demo", "--images", "0"],
        2,
        r"argument --images: .*got 0",
        r"must be a positive whole number",
    ),
    Case(
        "cli-export-without-family",
        lambda x: ["export", "model.pt", str(x.out / "out.pt")],
        1,
        r"mlcalc export: error: name the model's family",
        r"with --from FAMILY \(installed: see `mlcalc export --list`\)",
    ),
    Case(
        "cli-export-unknown-family",
        lambda x: ["export", "--from", "nonesuch", "model.pt", str(x.out / "out.pt")],
        1,
        r"no mlcalc adapter for 'nonesuch' is installed",
        r"install the plugin, e\.g\. `pip install \./plugins/nonesuch`",
    ),
    Case(
        "cli-md-without-structure",
        lambda x: ["md", "--potential", "demo", "--output", str(x.out / "md")],
        1,
        r"mlcalc md: error: give structure",
        r"\(or a --config file\)",
    ),
    Case(
        "cli-md-temperature-with-a-unit",
        lambda x: ["md", str(TRIALANINE), "--potential", "demo", "--temperature", "300K"],
        2,
        r"argument --temperature: must be a number in K, got '300K'",
        r"write the number alone",
    ),
    Case(
        "cli-md-missing-config-file",
        lambda x: ["md", "--config", str(x.out / "md.toml")],
        1,
        r"mlcalc md: error: config file .*md\.toml does not exist",
        r"give the path of a JSON or TOML file of MD settings",
    ),
    Case(
        "cli-md-resume-and-restart",
        lambda x: ["md", "--resume", str(x.out), "--restart", str(x.out)],
        1,
        r"mlcalc md: error: give --resume or --restart, not both",
        r"not both",
    ),
    Case(
        "cli-md-resume-with-new-settings",
        lambda x: ["md", "--resume", str(x.md_run_copy()), "--temperature", "100"],
        1,
        r"--resume continues a run with its own settings .* but \['temperature'\] were given too",
        r"drop them, or run it again from the start with them: mlcalc md --restart",
    ),
    Case(
        "cli-analyze-missing-trajectory",
        lambda x: ["analyze", str(TRIALANINE), str(x.out / "trajectory.dcd"), "--output", str(x.out)],
        1,
        r"mlcalc analyze: error: .*trajectory\.dcd does not exist",
        r"check the path \(mlcalc md writes start\.pdb and trajectory\.dcd",
    ),
    Case(
        "cli-analyze-selection-matches-nothing",
        lambda x: ["analyze", str(TRIALANINE), str(TRIALANINE), "--select", "resname XYZ", "--output", str(x.out)],
        1,
        r"the selection 'resname XYZ' matches no atoms \(residues in the topology: \[.*'ALA'",
        r"select some of them, e\.g\. --select 'resname \.\.\.'",
    ),
    Case(
        "cli-analyze-selection-syntax",
        lambda x: ["analyze", str(TRIALANINE), str(TRIALANINE), "--select", "resnam ALA", "--output", str(x.out)],
        1,
        r"cannot read the selection 'resnam ALA' \(Unknown selection token: 'resnam'\)",
        r"write an MDAnalysis selection such as 'resname ALA'",
    ),
    Case(
        "cli-analyze-one-frame",
        lambda x: ["analyze", str(TRIALANINE), str(TRIALANINE), "--output", str(x.out), "--no-plots"],
        1,
        r"the trajectory has 1 frame\(s\); the analyses need at least 3",
        r"write frames more often \(mlcalc md --trajectory-interval\) or run longer",
    ),
    Case(
        "cli-analyze-solute-without-residue-names",
        lambda x: ["analyze", str(x.butane_xyz), str(x.butane_xyz), "--output", str(x.out)],
        1,
        r"the topology has no residue names, so the selection 'solute' cannot tell solute from water",
        r"give a topology with residues .* or a selection such as --select all",
    ),
]


def params() -> list:
    """Every case as a ``pytest.param`` with its name as id; the no-GPU and no-openmm-torch cases skip where
    the machine has what they lack."""
    no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
    has_openmm_torch = importlib.util.find_spec("openmmtorch") is not None
    no_openmm_torch = pytest.mark.skipif(has_openmm_torch, reason="openmm-torch is installed")
    cases = [*POTENTIAL_FILES, *PLUGINS, *EXPORT, *STRUCTURES, *COORDINATES, *WORKFLOWS, *OPENMM, *MD, *COMMAND_LINE]
    found = [pytest.param(case, id=case.name) for case in cases]
    found += [pytest.param(case, id=case.name, marks=no_gpu) for case in NO_GPU_CASES]
    found += [pytest.param(case, id=case.name, marks=no_openmm_torch) for case in WITHOUT_OPENMM_TORCH]
    return found


@pytest.fixture(scope="module")
def shared(tmp_path_factory, lj_path) -> Inputs:
    return Inputs(tmp_path_factory.mktemp("inputs"), lj_path)


@pytest.fixture
def inputs(shared, tmp_path) -> Inputs:
    shared.out = tmp_path
    return shared


def test_the_catalogue_is_large_and_its_names_are_unique():
    names = [param.id for param in params()]
    assert len(names) >= 70 and len(set(names)) == len(names)


@pytest.mark.parametrize("case", params())
def test_a_bad_input_is_refused_naming_the_problem_and_the_fix(case: Case, inputs: Inputs, capsys):
    if isinstance(case.error, int):
        argv = case.call(inputs)
        try:
            code = main(argv)
        except SystemExit as exit:  # argparse's usage errors
            code = exit.code
        message = capsys.readouterr().err
        assert code == case.error, message
        assert "Traceback" not in message
        assert message.startswith("usage: mlcalc" if code == 2 else f"mlcalc {argv[0]}: error: "), message
    else:
        with pytest.raises(case.error) as raised:
            case.call(inputs)
        assert type(raised.value) is case.error, repr(raised.value)
        message = str(raised.value)
    assert re.search(case.problem, message), f"the problem is not named as {case.problem!r}:\n{message}"
    assert re.search(case.fix, message), f"the fix is not named as {case.fix!r}:\n{message}"


def test_n_waters_alone_is_accepted():
    """``n_waters`` without ``padding`` was refused ("give either padding or n_waters, not both": padding defaulted
    to 1.0 nm), so ``mlcalc md --n-waters N`` could never run."""
    config = md_config(n_waters=500)
    assert config.n_waters == 500 and config.padding is None
