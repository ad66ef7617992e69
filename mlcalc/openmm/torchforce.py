"""TorchForce construction: mlcalc potentials as openmm-torch ``TorchForce`` objects.

OpenMM passes a TorchForce all N positions in nm (float64 and unwrapped on the Reference and CPU
platforms, possibly float32 and wrapped per molecule on CUDA) and, when periodic, the box vectors
in nm; it expects the energy in kJ/mol. :class:`TorchForceModule` converts units, selects the ML
atoms and calls the file's own graph builder, so the numbers equal :class:`mlcalc.MLCalculator`'s.
It returns the forces too (``setOutputsForces``), from the file's ``compute`` (a gradient with
respect to the positions only): left to itself, openmm-torch's Reference and CPU kernel calls
``energy.backward()``, which also accumulates a gradient for every model parameter at every step.
"""

from __future__ import annotations

import logging
import re
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import openmm
import torch
from openmm import app, unit
from torch import Tensor

from mlcalc.errors import InvalidStructureError, UnsupportedElementError
from mlcalc.potential import PathLike, Potential, load
from mlcalc.units import ANGSTROM_PER_NM, EV_PER_KJ_PER_MOL

PotentialLike = Union[Potential, PathLike]


#: Why ``import openmmtorch`` failed, if it did; ``implementation="python"`` still works then.
_OPENMMTORCH_ERROR: Optional[str] = None


def _import_openmmtorch():
    """Import openmmtorch without the root-logger warning of the deprecated ``simtk.openmm`` shim
    that openmmtorch 1.5 imports: it concerns openmmtorch's code, not our users'. ``None`` where it
    cannot be imported (not installed, or its CUDA libraries do not load with this torch)."""
    global _OPENMMTORCH_ERROR

    def not_simtk_notice(record: logging.LogRecord) -> bool:
        return "importing 'simtk.openmm' is deprecated" not in record.getMessage()

    root = logging.getLogger()
    root.addFilter(not_simtk_notice)
    try:
        import openmmtorch
    except ImportError as exc:
        _OPENMMTORCH_ERROR = str(exc)
        return None
    finally:
        root.removeFilter(not_simtk_notice)
    return openmmtorch


def _reload_torch_kernels() -> None:
    """Load openmm-torch's kernel plugins that failed because ``openmm`` was imported before ``torch``.

    ``import openmm`` loads every plugin at once; openmm-torch's (PyPI 1.5) link ``libnvrtc.so.12``,
    which is not on the loader's path until torch has loaded its CUDA libraries. A script that
    imports openmm first would then fail at Context creation with "No Platform supports all the
    requested kernels". torch is loaded by now, so load the failed plugins again. Plugins that
    still fail (OpenCL without libOpenCL, say) belong to platforms that cannot run here anyway.
    """
    for failure in openmm.Platform.getPluginLoadFailures():
        match = re.match(r"Error loading library (\S*libOpenMMTorch\w*\.so\w*): ", failure)
        if match:
            try:
                openmm.Platform.loadPluginLibrary(match.group(1))
            except Exception:  # still failing: see the docstring
                pass


openmmtorch = _import_openmmtorch()
_reload_torch_kernels()


class TorchForceModule(torch.nn.Module):
    """``forward(positions [N, 3] nm, boxvectors [3, 3] nm = None) -> (energy, forces)``: the energy in
    kJ/mol and the forces on all N particles in kJ/mol/nm (zero on particles outside the ML atoms),
    in the dtype of ``positions``; for a TorchForce with ``setOutputsForces(True)``.

    Args:
        potential: the potential file's TorchScript module (model units).
        atomic_numbers: of the ML atoms.
        indices: which of the N particles are the ML atoms, or ``None`` for all of them.
        length_scale: model length units per nm.
        energy_scale: kJ/mol per model energy unit.
    """

    def __init__(
        self,
        potential: torch.nn.Module,
        atomic_numbers: Sequence[int],
        indices: Optional[Sequence[int]],
        length_scale: float,
        energy_scale: float,
        dtype: torch.dtype,
    ):
        super().__init__()
        self.potential = potential
        self.select = indices is not None
        self.register_buffer("atomic_numbers", torch.tensor(list(atomic_numbers), dtype=torch.long))
        self.register_buffer("indices", torch.tensor(list(indices) if indices is not None else [], dtype=torch.long))
        # Buffers, so that module.to(device) moves them; made once, not at every step.
        self.register_buffer("length_scale", torch.tensor(length_scale, dtype=dtype))
        self.register_buffer("no_cell", torch.zeros((3, 3), dtype=dtype))
        self.register_buffer("no_pbc", torch.zeros(3, dtype=torch.bool))
        self.register_buffer("all_pbc", torch.ones(3, dtype=torch.bool))
        self.energy_scale = float(energy_scale)
        self.force_scale = float(energy_scale) * float(length_scale)  # kJ/mol/nm per model force unit

    def forward(self, positions: Tensor, boxvectors: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        ml_positions = positions.index_select(0, self.indices) if self.select else positions
        ml_positions = ml_positions.detach().to(self.length_scale.dtype) * self.length_scale
        if boxvectors is None:
            cell, pbc = self.no_cell, self.no_pbc
        else:
            cell, pbc = boxvectors.detach().to(ml_positions.dtype) * self.length_scale, self.all_pbc
        out = self.potential.compute(self.atomic_numbers, ml_positions, cell, pbc, None, True, False)
        energy = out["energy"].sum() * self.energy_scale
        ml_forces = (out["forces"] * self.force_scale).to(positions.dtype)
        if not self.select:
            return energy, ml_forces
        forces = torch.zeros(positions.shape, dtype=positions.dtype, device=positions.device)
        return energy, forces.index_copy(0, self.indices, ml_forces)


def create_force(
    potential: PotentialLike,
    topology_or_atomic_numbers: Union[app.Topology, Sequence[int]],
    atoms: Optional[Sequence[int]] = None,
    *,
    periodic: Optional[bool] = None,
    dtype: Union[str, torch.dtype, None] = None,
    cuda_graphs: bool = False,
    implementation: str = "torch",
) -> openmm.Force:
    """A ``TorchForce`` evaluating ``potential`` on all particles or on the subset ``atoms``.

    Args:
        potential: a :class:`mlcalc.Potential` or the path of a potential file.
        topology_or_atomic_numbers: an ``openmm.app.Topology`` or the atomic number of every particle.
        atoms: indices of the ML atoms (ML/MM); ``None`` for all. The module indexes them itself,
            since a TorchForce always receives every particle.
        periodic: use the box; default: whether the topology has periodic box vectors
            (``False`` for a list of atomic numbers).
        dtype: the model's dtype inside OpenMM (default: the file's).
        cuda_graphs: set openmm-torch's ``useCUDAGraphs`` property (CUDA platform only).
        implementation: ``"torch"`` (openmm-torch ``TorchForce``) or ``"python"`` (``openmm.PythonForce``,
            OpenMM >= 8.5, for machines without openmm-torch; see :mod:`mlcalc.openmm.pythonforce`).
    """
    if implementation == "python":
        from mlcalc.openmm.pythonforce import create_python_force

        return create_python_force(potential, topology_or_atomic_numbers, atoms, periodic=periodic, dtype=dtype)
    if implementation != "torch":
        raise ValueError(f"implementation must be 'torch' or 'python', got {implementation!r}")
    if openmmtorch is None:
        raise ImportError(
            f"openmm-torch cannot be imported here ({_OPENMMTORCH_ERROR}); "
            "pass implementation='python' to evaluate the potential through openmm.PythonForce instead"
        )
    potential, selected, indices, periodic, _ = ml_region(potential, topology_or_atomic_numbers, atoms, periodic, dtype)
    module = TorchForceModule(
        potential.module,
        selected,
        indices,
        length_scale=ANGSTROM_PER_NM / potential.length_unit_in_angstrom,
        energy_scale=potential.energy_unit_in_ev / EV_PER_KJ_PER_MOL,
        dtype=potential.dtype,
    )
    force = openmmtorch.TorchForce(torch.jit.script(module))
    force.setOutputsForces(True)
    force.setUsesPeriodicBoundaryConditions(bool(periodic))
    force.setProperty("useCUDAGraphs", "true" if cuda_graphs else "false")
    force.setName(f"mlcalc:{potential.name}")
    return force


def create_system(
    topology: app.Topology,
    potential: PotentialLike,
    *,
    positions: Optional[Union[unit.Quantity, np.ndarray]] = None,
    constraints: Optional[object] = None,
    remove_cm_motion: bool = True,
    hydrogen_mass: Optional[unit.Quantity] = None,
    dtype: Union[str, torch.dtype, None] = None,
    cuda_graphs: bool = False,
    implementation: str = "torch",
) -> openmm.System:
    """A whole-system ML ``openmm.System``: masses and box from ``topology``, one ``TorchForce``.

    Args:
        topology: every atom must have an element.
        potential: a :class:`mlcalc.Potential` or the path of a potential file.
        positions: needed with ``constraints``: bond lengths are constrained to their values here
            (a ``Quantity``, or an array in nm).
        constraints: ``None``, ``openmm.app.HBonds`` (bonds to hydrogen) or ``openmm.app.AllBonds``.
        remove_cm_motion: add a ``CMMotionRemover``.
        hydrogen_mass: repartition mass from heavy atoms to bonded hydrogens (e.g. ``1.5*amu``).
        implementation: ``"torch"`` or ``"python"``, as in :func:`create_force`.
    """
    numbers = atomic_numbers(topology)
    system = openmm.System()
    masses = [atom.element.mass for atom in topology.atoms()]
    if hydrogen_mass is not None:
        masses = _repartition(topology, masses, hydrogen_mass)
    for mass in masses:
        system.addParticle(mass)
    box = topology.getPeriodicBoxVectors()
    if box is not None:
        system.setDefaultPeriodicBoxVectors(*box)
    if constraints is not None:
        _add_constraints(system, topology, constraints, positions)
    system.addForce(
        create_force(
            potential,
            numbers,
            periodic=box is not None,
            dtype=dtype,
            cuda_graphs=cuda_graphs,
            implementation=implementation,
        )
    )
    if remove_cm_motion:
        system.addForce(openmm.CMMotionRemover())
    return system


def ml_region(
    potential: PotentialLike,
    topology_or_atomic_numbers: Union[app.Topology, Sequence[int]],
    atoms: Optional[Sequence[int]],
    periodic: Optional[bool],
    dtype,
) -> tuple[Potential, list[int], Optional[list[int]], bool, int]:
    """What an ML force evaluates: the potential (loaded, in ``dtype``), the atomic numbers of the ML
    atoms, their indices (``None``: all particles), whether the system is periodic (from the topology's
    box unless given) and the number of particles. Unsupported elements and bad indices raise here."""
    if isinstance(topology_or_atomic_numbers, app.Topology):
        numbers = atomic_numbers(topology_or_atomic_numbers)
        if periodic is None:
            periodic = topology_or_atomic_numbers.getPeriodicBoxVectors() is not None
    else:
        numbers = [int(z) for z in topology_or_atomic_numbers]
        periodic = bool(periodic)
    indices = _ml_indices(atoms, len(numbers))
    selected = numbers if indices is None else [numbers[i] for i in indices]
    potential = _as_potential(potential, dtype)
    _check_elements(potential, selected, indices)
    return potential, selected, indices, periodic, len(numbers)


def atomic_numbers(topology: app.Topology) -> list[int]:
    """Atomic number of every atom; a clear error for atoms without an element."""
    numbers = []
    for atom in topology.atoms():
        if atom.element is None:
            raise InvalidStructureError(
                f"atom {atom.index} ({atom.name} in residue {atom.residue.name} {atom.residue.id}) has no element; "
                "an ML potential needs elements (virtual sites and extra particles cannot be ML atoms)"
            )
        numbers.append(atom.element.atomic_number)
    return numbers


def _as_potential(potential: PotentialLike, dtype) -> Potential:
    # TorchForce moves the module to the platform's device itself; build it on the CPU.
    if isinstance(potential, Potential):
        return potential.to(device="cpu", dtype=dtype)
    return load(potential, device="cpu", dtype=dtype)


def _ml_indices(atoms: Optional[Sequence[int]], n: int) -> Optional[list[int]]:
    if atoms is None:
        return None
    indices = [int(i) for i in atoms]
    if not indices:
        raise ValueError("atoms is empty: select at least one ML atom, or pass atoms=None for all")
    outside = [i for i in indices if not 0 <= i < n]
    if outside:
        raise IndexError(f"ML atom indices {outside[:10]} are outside the system's 0..{n - 1}")
    if len(set(indices)) != len(indices):
        repeated = sorted({i for i in indices if indices.count(i) > 1})
        raise ValueError(f"ML atom indices {repeated[:10]} are repeated")
    return indices


def _check_elements(potential: Potential, numbers: Sequence[int], indices: Optional[Sequence[int]]) -> None:
    unsupported = [k for k, z in enumerate(numbers) if z not in potential.species]
    if unsupported:
        where = [indices[k] if indices is not None else k for k in unsupported]
        found = sorted({numbers[k] for k in unsupported})
        raise UnsupportedElementError(
            f"potential {potential.name!r} does not support atomic numbers {found} (particles {where[:10]}); "
            f"it supports {', '.join(potential.metadata.symbols)}"
        )


def _repartition(topology: app.Topology, masses: list, hydrogen_mass: unit.Quantity) -> list:
    masses = list(masses)
    for a, b in topology.bonds():
        if a.element == app.element.hydrogen:
            a, b = b, a
        if b.element == app.element.hydrogen and a.element != app.element.hydrogen:
            transfer = hydrogen_mass - masses[b.index]
            masses[b.index] = hydrogen_mass
            masses[a.index] = masses[a.index] - transfer
            if masses[a.index].value_in_unit(unit.dalton) <= 0:
                raise ValueError(f"hydrogen_mass={hydrogen_mass} leaves atom {a.index} ({a.name}) without mass")
    return masses


def _add_constraints(system: openmm.System, topology: app.Topology, constraints, positions) -> None:
    if constraints not in (app.HBonds, app.AllBonds):
        raise ValueError("constraints must be None, openmm.app.HBonds or openmm.app.AllBonds")
    if positions is None:
        raise ValueError("constraints need positions: bonds are constrained to their lengths in those positions")
    xyz = np.asarray(positions.value_in_unit(unit.nanometer) if unit.is_quantity(positions) else positions, float)
    if xyz.shape != (topology.getNumAtoms(), 3):
        raise ValueError(f"positions must have shape ({topology.getNumAtoms()}, 3), got {xyz.shape}")
    if not list(topology.bonds()):
        raise ValueError(
            "constraints were asked for, but the topology has no bonds (add them, e.g. from a PDB's CONECT)"
        )
    for a, b in topology.bonds():
        if constraints is app.HBonds and app.element.hydrogen not in (a.element, b.element):
            continue
        system.addConstraint(a.index, b.index, float(np.linalg.norm(xyz[a.index] - xyz[b.index])))
