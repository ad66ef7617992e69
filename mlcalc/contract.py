"""The mlcalc potential contract: what a saved potential file holds, receives and returns.

A file is a TorchScript archive of :class:`mlcalc.module.PotentialModule` (the periodic graph
builder plus the user's model) with a JSON metadata record stored as the TorchScript extra
file :data:`METADATA_FILE`. docs/contract.md states the contract for users; this module is the
single place the code reads it from.

Versioning: ``MAJOR.MINOR``. A minor release adds optional inputs or outputs and stays
readable by older model code; a major release breaks it. A reader accepts files whose major
version it knows and whose minor version is not newer than its own.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Union

from ase.data import chemical_symbols

from mlcalc.errors import ContractError
from mlcalc.units import canonical_energy_unit, canonical_length_unit

if TYPE_CHECKING:
    import torch

#: 1.1: neighbor_list_within and compute_from_neighbors (Verlet lists); 1.2: authors and license;
#: 1.3: committees (``committee`` in the metadata, the uncertainty outputs); 1.4: an optional exported
#: program of the model beside the TorchScript (``program`` in the metadata, :data:`PROGRAM_FILE`).
CONTRACT_VERSION = "1.4"
METADATA_FILE = "mlcalc_metadata.json"
#: Extra file with the model part as a ``torch.export`` ExportedProgram (``torch.export.save``), for the
#: compiled route (:mod:`mlcalc.compiled`); present when the metadata's ``program`` is not empty.
PROGRAM_FILE = "mlcalc_program.pt2"
DTYPES = ("float32", "float64")

#: TorchScript schemas of the methods every potential file exposes (see :mod:`mlcalc.module`).
METHOD_SCHEMAS = {
    "forward": "(Tensor atomic_numbers, Tensor positions, Tensor cell, Tensor pbc, Tensor? batch=None) "
    "-> Dict(str, Tensor)",
    "compute": "(Tensor atomic_numbers, Tensor positions, Tensor cell, Tensor pbc, Tensor? batch=None, "
    "bool forces=True, bool virial=False) -> Dict(str, Tensor)",
    "neighbor_list": "(Tensor positions, Tensor cell, Tensor pbc, Tensor? batch=None) -> ((Tensor, Tensor))",
}
#: The committee method: added by contract 1.3, required of files that declare 1.3 or later.
COMMITTEE_METHOD_SCHEMAS = {
    "compute_committee": "(Tensor atomic_numbers, Tensor positions, Tensor cell, Tensor pbc, Tensor? batch=None, "
    "bool forces=True, bool virial=False) -> Dict(str, Tensor)",
}
#: Methods for Verlet lists: added by contract 1.1, required of files that declare 1.1 or later,
#: possibly absent from 1.0 files.
VERLET_METHOD_SCHEMAS = {
    "neighbor_list_within": "(Tensor positions, Tensor cell, Tensor pbc, Tensor? batch, float cutoff) "
    "-> ((Tensor, Tensor))",
    "compute_from_neighbors": "(Tensor atomic_numbers, Tensor positions, Tensor cell, Tensor pbc, Tensor? batch, "
    "Tensor edge_index, Tensor shifts, bool forces=True, bool virial=False) -> Dict(str, Tensor)",
}

#: Keys of the dictionary a model's ``forward`` receives (contract 1.0). ``PotentialModule._evaluate``
#: builds it with these keys (TorchScript needs them literal; a test checks they agree).
MODEL_INPUTS = (
    "atomic_numbers",  # int64 [N]
    "species",  # int64 [N]: index of each atom's element in the metadata species list
    "positions",  # float [N, 3], model length unit
    "cell",  # float [B, 3, 3], rows are lattice vectors, model length unit
    "pbc",  # bool [B, 3]
    "batch",  # int64 [N]: index of the structure each atom belongs to
    "edge_index",  # int64 [2, E]: row 0 the centre atom i, row 1 the neighbour j
    "edge_vectors",  # float [E, 3]: r_j - r_i + S @ cell, model length unit
    "edge_shifts",  # int64 [E, 3]: integer lattice shift S of each edge
)
#: Output every model must return: per-atom energies, float [N], model energy unit.
MODEL_REQUIRED_OUTPUT = "energies"
#: Optional model output of a committee (contract 1.3): each member's per-atom energies, float [N, M], model
#: energy unit; ``energies`` must then be their mean over members.
MODEL_COMMITTEE_OUTPUT = "energies_committee"
#: Outputs a file adds for a committee, in model units: ``energy_committee`` [B, M] (each member's total
#: energy per structure) and ``energy_uncertainty`` [B] (the standard deviation of those, ddof 0), from
#: every method; ``compute_committee`` with forces adds ``forces_uncertainty`` [N] (per atom, sqrt of the
#: members' mean squared deviation from the mean force vector, sqrt(1/M Σ_m |F_m - F|²)), at the cost of
#: one backward pass per member. ``forces`` and ``virial`` are the gradients of the mean energy.
COMMITTEE_OUTPUTS = ("energy_committee", "energy_uncertainty", "forces_uncertainty")
#: Outputs the file itself adds; a model must not return them.
RESERVED_OUTPUTS = ("energy", "forces", "virial") + COMMITTEE_OUTPUTS


def dtype_name(dtype: Union[str, "torch.dtype"], error: type[Exception] = ValueError) -> str:
    """``"float32"`` or ``"float64"`` for those names or torch dtypes; raises ``error`` otherwise."""
    name = str(dtype).replace("torch.", "")
    if name not in DTYPES:
        raise error(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return name


@dataclass(frozen=True)
class Metadata:
    """What a potential file says about itself. Lengths in ``length_unit``."""

    name: str
    cutoff: float
    species: tuple[int, ...]
    length_unit: str
    energy_unit: str
    dtype: str = "float64"
    description: str = ""
    references: tuple[str, ...] = ()
    authors: tuple[str, ...] = ()
    license: str = ""
    committee: int = 0
    #: the exported program (contract 1.4): {"torch_version": ..., "sha256": ..., "bytes": ...}, or empty
    program: dict[str, Any] = field(default_factory=dict)
    contract_version: str = CONTRACT_VERSION
    mlcalc_version: str = ""
    torch_version: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check = _checker(self.name or "<unnamed>")
        check(isinstance(self.name, str) and self.name.strip() != "", "name must be a non-empty string")
        check(
            isinstance(self.cutoff, (int, float)) and 0 < self.cutoff < math.inf,
            f"cutoff must be a positive number, got {self.cutoff!r}: give the model's cutoff radius in its length unit",
        )
        species = tuple(int(z) for z in self.species)
        check(len(species) > 0, "species (the supported atomic numbers) must not be empty")
        bad = [z for z in species if not 1 <= z < len(chemical_symbols)]
        check(not bad, f"species holds invalid atomic numbers {bad}: list elements by atomic number, 1 (H) to 118")
        check(
            len(set(species)) == len(species),
            f"species holds repeated atomic numbers {species}: list each element once",
        )
        check(self.dtype in DTYPES, f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        object.__setattr__(self, "cutoff", float(self.cutoff))
        object.__setattr__(self, "species", tuple(sorted(species)))
        object.__setattr__(self, "references", tuple(str(r) for r in self.references))
        check(
            not isinstance(self.authors, str),
            f"authors must be a list of names, got the string {self.authors!r}: write authors=[{self.authors!r}]",
        )
        object.__setattr__(self, "authors", tuple(str(a) for a in self.authors))
        check(isinstance(self.license, str), f"license must be a string (an SPDX identifier), got {self.license!r}")
        check(
            isinstance(self.committee, int)
            and not isinstance(self.committee, bool)
            and self.committee != 1
            and self.committee >= 0,
            f"committee must be the number of members (2 or more), or 0 for a single model; got {self.committee!r}",
        )
        check(
            isinstance(self.program, dict)
            and (not self.program or set(self.program) == {"torch_version", "sha256", "bytes"}),
            f"program must be empty or record torch_version, sha256 and bytes; got {self.program!r}",
        )
        object.__setattr__(self, "length_unit", canonical_length_unit(self.length_unit))
        object.__setattr__(self, "energy_unit", canonical_energy_unit(self.energy_unit))

    @property
    def symbols(self) -> list[str]:
        """Chemical symbols of the supported elements."""
        return [chemical_symbols[z] for z in self.species]

    def to_json(self) -> str:
        record = asdict(self)
        record["species"] = list(self.species)
        record["references"] = list(self.references)
        record["authors"] = list(self.authors)
        return json.dumps(record, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes, source: str = "file") -> "Metadata":
        """Parse and validate a metadata record; raise :class:`ContractError` naming the problem."""
        try:
            record = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ContractError(
                f"{source}: metadata is not valid JSON ({exc}); re-export it with mlcalc.export"
            ) from exc
        if not isinstance(record, dict):
            raise ContractError(f"{source}: metadata must be a JSON object; re-export it with mlcalc.export")
        check_contract_version(str(record.get("contract_version", "")), source)
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(record) - known)
        if unknown:
            raise ContractError(
                f"{source}: metadata has unknown fields {unknown}, perhaps written by a newer mlcalc: upgrade mlcalc, "
                "or re-export the model with this one"
            )
        missing = sorted(k for k in ("name", "cutoff", "species", "length_unit", "energy_unit") if k not in record)
        if missing:
            raise ContractError(f"{source}: metadata lacks {missing}; re-export it with mlcalc.export")
        return cls(**record)


def version_tuple(version: str) -> tuple[int, int]:
    """``"MAJOR.MINOR"`` as a pair of integers; ValueError for anything else."""
    parts = tuple(int(p) for p in version.split("."))
    if len(parts) != 2:
        raise ValueError(f"not MAJOR.MINOR: {version!r}")
    return parts[0], parts[1]


def check_contract_version(version: str, source: str = "file") -> None:
    """Raise :class:`ContractError` unless this mlcalc can read contract ``version``."""
    ours = version_tuple(CONTRACT_VERSION)
    try:
        theirs = version_tuple(version)
    except ValueError:
        raise ContractError(
            f"{source}: contract version {version!r} is not of the form MAJOR.MINOR; "
            "re-export the model with mlcalc.export"
        ) from None
    if theirs[0] != ours[0] or theirs[1] > ours[1]:
        raise ContractError(
            f"{source}: contract version {version} is not supported by this mlcalc "
            f"(it reads {ours[0]}.0 to {CONTRACT_VERSION}); "
            + ("upgrade mlcalc" if theirs > ours else "re-export the model with this mlcalc")
        )


def _checker(name: str):
    def check(condition: bool, message: str) -> None:
        if not condition:
            raise ContractError(f"metadata of {name!r}: {message}")

    return check
