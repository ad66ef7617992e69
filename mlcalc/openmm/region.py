"""What an ML force in OpenMM evaluates: the potential, its atoms, whether the box is used, and the units.

Shared by both force implementations (:mod:`mlcalc.openmm.torchforce` and
:mod:`mlcalc.openmm.pythonforce`), so that they validate the same inputs the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Union

from openmm import app

from mlcalc.errors import InvalidStructureError, UnsupportedElementError
from mlcalc.files import PathLike
from mlcalc.potential import DtypeLike, Potential, load
from mlcalc.units import ANGSTROM_PER_NM, EV_PER_KJ_PER_MOL

PotentialLike = Union[Potential, PathLike]

#: Edge of the cubic box (nm) a ``System`` has when nobody set one (``System::getDefaultPeriodicBoxVectors``).
OPENMM_DEFAULT_BOX_NM = 2.0

#: Why a periodic ML force refuses OpenMM's default box, when nothing confirmed the box.
DEFAULT_BOX_REFUSAL = (
    "the periodic box is OpenMM's default 2 nm cube, the box of a System whose box was never set: set it "
    "(system.setDefaultPeriodicBoxVectors or context.setPeriodicBoxVectors); if the box really is a 2 nm cube, "
    "create the ML force from a Topology that has it (topology.setPeriodicBoxVectors) to confirm it"
)
TopologyOrNumbers = Union[app.Topology, Sequence[int]]


@dataclass(frozen=True)
class MLRegion:
    """The ML atoms of a System and the potential that evaluates them.

    Attributes:
        potential: loaded on the CPU in the dtype the force computes in.
        atomic_numbers: of the ML atoms.
        indices: which particles are the ML atoms; ``None`` for all of them.
        periodic: whether the force uses the System's periodic box.
        num_particles: particles in the System.
        box_confirmed: a Topology with a box said the system is periodic; otherwise a periodic force
            refuses to run in OpenMM's default box (:data:`DEFAULT_BOX_REFUSAL`).
    """

    potential: Potential
    atomic_numbers: list[int]
    indices: Optional[list[int]]
    periodic: bool
    num_particles: int
    box_confirmed: bool

    @property
    def check_default_box(self) -> bool:
        """Whether the force must refuse OpenMM's default box (periodic, and no Topology box confirmed it)."""
        return self.periodic and not self.box_confirmed

    @property
    def length_scale(self) -> float:
        """Model length units per nm."""
        return ANGSTROM_PER_NM / self.potential.length_unit_in_angstrom

    @property
    def energy_scale(self) -> float:
        """kJ/mol per model energy unit."""
        return self.potential.energy_unit_in_ev / EV_PER_KJ_PER_MOL

    @property
    def force_name(self) -> str:
        return f"mlcalc:{self.potential.name}"


def ml_region(
    potential: PotentialLike,
    topology_or_atomic_numbers: TopologyOrNumbers,
    atoms: Optional[Sequence[int]],
    periodic: Optional[bool],
    dtype: DtypeLike,
) -> MLRegion:
    """Validate the inputs of an ML force and load the potential.

    ``periodic=None`` takes periodicity from the Topology's box; with a bare list of atomic numbers
    it cannot be known, so the caller must say. Unsupported elements and bad indices raise here.
    """
    box_confirmed = False
    topology = None
    if isinstance(topology_or_atomic_numbers, app.Topology):
        topology = topology_or_atomic_numbers
        # 0 for particles without an element (virtual sites of MM water, e.g. TIP4P's EP): fine outside the ML region
        numbers = [0 if atom.element is None else atom.element.atomic_number for atom in topology.atoms()]
        box_confirmed = topology_or_atomic_numbers.getPeriodicBoxVectors() is not None
        if periodic is None:
            periodic = box_confirmed
    else:
        numbers = [int(z) for z in topology_or_atomic_numbers]
        if periodic is None:
            raise ValueError(
                "periodic= is required with a list of atomic numbers: mlcalc cannot tell whether the System "
                "is periodic. Pass periodic=True to use the System's box (minimum image), periodic=False for "
                "an isolated system, or pass the Topology instead (periodic when it has a box)"
            )
    indices = ml_indices(atoms, len(numbers))
    selected = numbers if indices is None else [numbers[i] for i in indices]
    if topology is not None and 0 in selected:
        atom = list(topology.atoms())[(indices or range(len(numbers)))[selected.index(0)]]
        raise InvalidStructureError(
            f"ML atom {atom.index} ({atom.name} in residue {atom.residue.name} {atom.residue.id}) has no element: "
            "virtual sites and extra particles cannot be ML atoms; leave them out of atoms= (they stay MM)"
        )
    loaded = _as_potential(potential, dtype)
    _check_elements(loaded, selected, indices)
    return MLRegion(loaded, selected, indices, bool(periodic), len(numbers), box_confirmed)


def atomic_numbers(topology: app.Topology) -> list[int]:
    """Atomic number of every atom; a clear error for atoms without an element (a whole-system ML System)."""
    numbers = []
    for atom in topology.atoms():
        if atom.element is None:
            raise InvalidStructureError(
                f"atom {atom.index} ({atom.name} in residue {atom.residue.name} {atom.residue.id}) has no element; "
                "an ML potential needs elements (virtual sites and extra particles cannot be ML atoms): model "
                "such a system as ML/MM (create_mixed_system) with these particles in the MM part"
            )
        numbers.append(atom.element.atomic_number)
    return numbers


def ml_indices(atoms: Optional[Sequence[int]], n: int) -> Optional[list[int]]:
    """``atoms`` as a checked list of particle indices below ``n``; ``None`` stays ``None`` (all)."""
    if atoms is None:
        return None
    given = list(atoms)
    fractional = [i for i in given if isinstance(i, bool) or not float(i).is_integer()]
    if fractional:
        raise ValueError(f"ML atom indices must be whole numbers, got {fractional[:10]}: give 0-based particle indices")
    indices = [int(i) for i in given]
    if not indices:
        raise ValueError("atoms is empty: select at least one ML atom, or pass atoms=None for all")
    outside = [i for i in indices if not 0 <= i < n]
    if outside:
        raise IndexError(
            f"ML atom indices {outside[:10]} are outside the system's 0..{n - 1}: give 0-based indices of the "
            "System's particles"
        )
    if len(set(indices)) != len(indices):
        repeated = sorted({i for i in indices if indices.count(i) > 1})
        raise ValueError(f"ML atom indices {repeated[:10]} are repeated: give each ML atom once")
    return indices


def _as_potential(potential: PotentialLike, dtype: DtypeLike) -> Potential:
    # Built on the CPU: a TorchForce moves the module to the platform's device itself, and the
    # PythonForce moves it where it is asked to run.
    if isinstance(potential, Potential):
        return potential.to(device="cpu", dtype=dtype)
    return load(potential, device="cpu", dtype=dtype)


def _check_elements(potential: Potential, numbers: Sequence[int], indices: Optional[Sequence[int]]) -> None:
    unsupported = [k for k, z in enumerate(numbers) if z not in potential.species]
    if unsupported:
        where = [indices[k] if indices is not None else k for k in unsupported]
        found = sorted({numbers[k] for k in unsupported})
        raise UnsupportedElementError(
            f"potential {potential.name!r} does not support atomic numbers {found} (particles {where[:10]}); "
            f"it supports {', '.join(potential.metadata.symbols)}: use a potential trained for these elements, or "
            "leave these atoms to the MM force field (atoms=)"
        )
