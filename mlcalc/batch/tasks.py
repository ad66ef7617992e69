"""A batch task: one workflow (kind) on one input, with its settings; its id and fingerprint.

A task's **fingerprint** records what its numbers depend on: the kind, the input structure(s)
(:func:`mlcalc.workflows.output.structure_fingerprint`; the file's SHA-256 for MD, whose input OpenMM
reads), the potential file's SHA-256 and dtype, and the settings with every default filled in (so
``{"fmax": 0.01}`` and ``{}`` are the same task). Its **id** is a readable stem and the first 10 hex
digits of the fingerprint's SHA-256, e.g. ``butane-scan-3f9a0c2e1b``: changed settings give a new id,
hence a new directory, never a finished task mistaken for the new one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path
from typing import Any, Optional

from mlcalc.files import PathLike, file_sha256

#: The kinds of task, with the workflow each one runs.
KINDS = {
    "scan": "relaxed scan of one or two dihedrals (mlcalc.workflows.relaxed_scan)",
    "path": "dihedral-driven path between two structures (mlcalc.workflows.dihedral_path)",
    "neb": "climbing-image NEB between two structures (mlcalc.workflows.run_neb)",
    "opt": "constrained optimisation (mlcalc.workflows.optimize)",
    "md": "an MD replica in OpenMM (mlcalc.md.pipeline, settings of mlcalc.md.config.MDConfig)",
}

_OPTIMIZER = {"fmax": 0.01, "steps": 500, "optimizer": "BFGS"}

#: Settings of each kind and their defaults (the workflows' and commands' own); ``REQUIRED`` has none.
REQUIRED = object()
DEFAULTS: dict[str, dict[str, Any]] = {
    "scan": {
        "dihedral": REQUIRED,  # [I, J, K, L] or "I,J,K,L", or a list of two for a 2D scan
        "grid": None,  # explicit values, degrees (a list of two lists in 2D); else start/stop/step
        "start": None,
        "stop": None,
        "step": 10.0,
        "fixed": [],  # dihedrals held at their starting value or "I,J,K,L=TARGET"
        "both_directions": False,
        "backend": "ase",
        **_OPTIMIZER,
    },
    "path": {
        "guide": REQUIRED,
        "partner": None,
        "intermediates": 19,
        "direction": "shortest",
        "relax_endpoints": True,
        "backend": "scipy",
        **_OPTIMIZER,
    },
    "neb": {
        "images": 7,
        "interpolation": "idpp",
        "climb": True,
        "k": 0.1,
        "fmax": 0.01,
        "steps": 1000,
        "optimizer": "FIRE",
        "relax_endpoints": True,
    },
    "opt": {"constraints": [], "backend": "ase", **_OPTIMIZER},  # ["dihedral 0,1,2,3=60", "distance 0,1"]
    "md": {},  # the fields of MDConfig but structure, potential and output: filled by normalise_md
}

#: Kinds that take two structures (initial and final).
TWO_STRUCTURES = ("path", "neb")


@dataclasses.dataclass(frozen=True)
class Task:
    """One workflow on one input.

    Attributes:
        kind: one of :data:`KINDS`.
        structure: the input structure file (the initial one for ``path`` and ``neb``; a PDB, mmCIF or
            SDF solute for ``md``). A file with several frames gives ``path``/``neb`` both endpoints
            (first and last frame) when ``final`` is not given.
        settings: the workflow's settings (see :data:`DEFAULTS`; for ``md`` the fields of
            :class:`mlcalc.md.config.MDConfig`). Angles in degrees, distances in Å, fmax in eV/Å.
        final: the final structure of ``path`` and ``neb``.
        potential: potential file or bundled name (``"demo"``).
        dtype: ``"float32"``/``"float64"`` (default: the file's).
        device: ``"cpu"``, ``"cuda"``, ... on the worker (default: CUDA when the worker sees one). Not
            part of the fingerprint (as in the workflows' checkpoints).
        name: readable stem of the task id (default: the structure file's stem).
    """

    kind: str
    structure: str
    settings: dict = dataclasses.field(default_factory=dict)
    final: Optional[str] = None
    potential: str = "demo"
    dtype: Optional[str] = None
    device: Optional[str] = None
    name: Optional[str] = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown task kind {self.kind!r}: one of {', '.join(KINDS)}")
        object.__setattr__(self, "structure", str(self.structure))
        if self.final is not None:
            object.__setattr__(self, "final", str(self.final))
            if self.kind not in TWO_STRUCTURES:
                raise ValueError(f"a {self.kind} task takes one structure, but final={self.final!r} was given")
        object.__setattr__(self, "settings", normalise(self.kind, dict(self.settings)))
        if self.dtype not in (None, "float32", "float64"):
            raise ValueError(f"dtype must be 'float32', 'float64' or None, got {self.dtype!r}")

    @property
    def stem(self) -> str:
        """The readable part of the id: ``name`` or the structure's stem, then the kind."""
        base = self.name or Path(self.structure).stem
        return f"{re.sub(r'[^A-Za-z0-9._+-]+', '_', base)[:60]}-{self.kind}"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _indices(value: Any, what: str, count: int) -> list[int]:
    """``"0,1,2,3"`` or ``[0, 1, 2, 3]`` -> ``[0, 1, 2, 3]`` (0-based atom indices)."""
    if isinstance(value, str):
        value = [part for part in value.replace(" ", "").split(",") if part]
    try:
        indices = [int(v) for v in value]
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be {count} comma-separated 0-based atom indices, got {value!r}") from None
    if len(indices) != count:
        raise ValueError(f"{what} must name {count} atoms (0-based indices), got {indices}")
    return indices


def _dihedrals(value: Any, what: str) -> list[list[int]]:
    """One dihedral or a list of them -> a list of index lists."""
    if isinstance(value, str) or (isinstance(value, (list, tuple)) and value and not isinstance(value[0], (list, str))):
        value = [value]
    return [_indices(v, what, 4) for v in value]


def _coordinate(value: Any, default_kind: Optional[str] = None) -> list:
    """``"dihedral 0,1,2,3=60"`` (or ``"0,1,2,3=60"`` with ``default_kind``, or ``[kind, indices, target]``)
    -> ``["dihedral", [0, 1, 2, 3], 60.0]``; the target is None when not given (the starting value is kept)."""
    from mlcalc.commands.workflow_arguments import KINDS as COORDINATES
    from mlcalc.commands.workflow_arguments import parse_coordinate

    if isinstance(value, (list, tuple)):
        kind, indices, target = value
        text = ",".join(str(i) for i in indices) + ("" if target is None else f"={float(target)!r}")
    else:
        kind, _, text = str(value).strip().partition(" ")
        if kind not in COORDINATES:
            kind, text = default_kind, str(value).strip()
    if kind not in COORDINATES:
        raise ValueError(f"a constraint reads 'dihedral I,J,K,L[=TARGET]' (or angle, distance), got {value!r}")
    coordinate = parse_coordinate(kind, text)
    return [kind, list(coordinate.indices), coordinate.target]


def normalise(kind: str, settings: dict) -> dict:
    """``settings`` with defaults filled in and values in one canonical form (indices as int lists,
    numbers as floats); unknown or missing settings raise a ValueError naming them."""
    if kind == "md":
        return normalise_md(settings)
    defaults = DEFAULTS[kind]
    unknown = sorted(set(settings) - set(defaults))
    if unknown:
        raise ValueError(f"unknown {kind} settings {unknown}; known: {sorted(defaults)}")
    missing = [k for k, v in defaults.items() if v is REQUIRED and k not in settings]
    if missing:
        raise ValueError(f"a {kind} task needs the settings {missing}")
    out = {**defaults, **settings}
    for key in ("fmax", "step", "start", "stop", "k"):
        if key in out and out[key] is not None:
            out[key] = float(out[key])
    for key in ("steps", "intermediates", "images"):
        if key in out:
            out[key] = int(out[key])
    if kind == "scan":
        out["dihedral"] = _dihedrals(out["dihedral"], "dihedral")
        if len(out["dihedral"]) not in (1, 2):
            raise ValueError(f"a scan runs over one or two dihedrals, got {len(out['dihedral'])}")
        out["fixed"] = [_coordinate(f, "dihedral") for f in out["fixed"]]
        if any(kind != "dihedral" for kind, _, _ in out["fixed"]):
            raise ValueError(f"a scan holds dihedrals fixed, got {out['fixed']}")
        if out["grid"] is not None:
            grid = out["grid"]
            nested = len(out["dihedral"]) == 2
            out["grid"] = [[float(v) for v in g] for g in grid] if nested else [float(v) for v in grid]
    elif kind == "path":
        out["guide"] = _indices(out["guide"], "guide", 4)
        out["partner"] = None if out["partner"] is None else _indices(out["partner"], "partner", 4)
    elif kind == "opt":
        out["constraints"] = [_coordinate(c) for c in out["constraints"]]
    return out


def normalise_md(settings: dict) -> dict:
    """MD settings as a full :class:`~mlcalc.md.config.MDConfig` (checked there), without the structure,
    potential and output, which the task and the batch give."""
    from mlcalc.md.config import MDConfig

    given = sorted({"structure", "potential", "output"} & set(settings))
    if given:
        raise ValueError(f"an md task's settings take no {given}: the task gives the structure and potential")
    data = MDConfig(structure="-", potential="-", **settings).to_dict()
    for key in ("structure", "potential", "output"):
        data.pop(key)
    return data


def potential_record(potential: str, dtype: Optional[str]) -> dict:
    """SHA-256 of the potential file and the dtype it runs in (the file's when ``dtype`` is None)."""
    from mlcalc.data import resolve_potential_path
    from mlcalc.potential import read_metadata

    path = resolve_potential_path(potential)
    return {"sha256": file_sha256(path), "dtype": dtype or read_metadata(path).dtype}


def structure_record(path: PathLike, kind: str) -> str:
    """Fingerprint of an input: :func:`~mlcalc.workflows.output.structure_fingerprint` of every frame
    ASE reads (the file's SHA-256 for MD, whose input OpenMM reads)."""
    if kind == "md":
        if not Path(path).is_file():
            raise FileNotFoundError(f"structure file {path} does not exist")
        return file_sha256(path)
    from mlcalc.commands.workflow_arguments import read_images
    from mlcalc.workflows.output import structure_fingerprint

    frames = read_images(str(path))
    digest = hashlib.sha256()
    for atoms in frames if kind in TWO_STRUCTURES else frames[-1:]:
        digest.update(structure_fingerprint(atoms).encode())
    return digest.hexdigest()


def fingerprint(task: Task, potentials: Optional[dict] = None) -> dict:
    """What the task's numbers depend on (see the module docstring). ``potentials`` caches
    :func:`potential_record` by (potential, dtype) over many tasks."""
    key = (task.potential, task.dtype)
    if potentials is None:
        potentials = {}
    if key not in potentials:
        potentials[key] = potential_record(task.potential, task.dtype)
    record = {
        "kind": task.kind,
        "structure": structure_record(task.structure, task.kind),
        "final": None if task.final is None else structure_record(task.final, task.kind),
        "potential_sha256": potentials[key]["sha256"],
        "dtype": potentials[key]["dtype"],
        "settings": task.settings,
    }
    return json.loads(json.dumps(record, sort_keys=True))


def digest(record: Any) -> str:
    """SHA-256 (hex) of ``record`` as canonical JSON (sorted keys)."""
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def task_id(task: Task, record: dict) -> str:
    """``<stem>-<10 hex digits of the fingerprint's SHA-256>``."""
    return f"{task.stem}-{digest(record)[:10]}"


def unreadable_id(task: Task) -> str:
    """Id of a task whose input cannot be fingerprinted: from the paths and settings instead."""
    return f"{task.stem}-{digest(['unreadable', task.to_dict()])[:10]}"
