"""Atomic output files and resumable checkpoints.

Every file is written to a temporary file in its own directory and moved into place with ``os.replace``,
so a run killed at any moment leaves either the previous or the new version, never half a file.
A :class:`Checkpoint` holds a run's parameters and its completed steps as JSON, positions included at
full float64 precision (JSON writes the shortest repr that round-trips), so a resumed run continues
from bit-identical structures.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np
from ase import Atoms

from mlcalc.files import PathLike, json_default, write_atomic, write_json_atomic
from mlcalc.workflows.errors import CheckpointError

CHECKPOINT_VERSION = 1


def write_images_atomic(path: PathLike, images: Iterable[Atoms]) -> Path:
    """Write structures as extended XYZ atomically (energies, forces and ``info`` included)."""
    from ase.io import write

    images = list(images)
    return write_atomic(path, lambda tmp: write(tmp, images, format="extxyz"))


#: ``Atoms.info`` key of a committee's energy spread (eV) at a workflow's structure (ASE's
#: ``SinglePointCalculator`` keeps only ASE's own properties).
UNCERTAINTY_INFO = "energy_uncertainty"


def keep_uncertainty(atoms: Atoms, calc: Any) -> Atoms:
    """Record in ``atoms.info`` the energy spread (eV) of ``calc``'s last results when it is a committee
    (:mod:`mlcalc.models.committee`), and remove a stale one otherwise; returns ``atoms``."""
    value = getattr(calc, "results", {}).get("energy_uncertainty")
    if value is None:
        atoms.info.pop(UNCERTAINTY_INFO, None)
    else:
        atoms.info[UNCERTAINTY_INFO] = float(value)
    return atoms


def energy_uncertainty(atoms: Atoms) -> Optional[float]:
    """The committee spread (eV) a workflow recorded with ``atoms``, or ``None``."""
    value = atoms.info.get(UNCERTAINTY_INFO)
    return None if value is None else float(value)


def structure_fingerprint(atoms: Atoms) -> str:
    """SHA-256 of a structure's numbers, positions, cell and pbc (identifies a run's input)."""
    digest = hashlib.sha256()
    for array in (atoms.numbers.astype(np.int64), atoms.positions, atoms.cell.array, atoms.pbc.astype(np.int8)):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def calculator_fingerprint(calc: Any) -> dict:
    """What computes a run's energies: for an mlcalc calculator its potential's
    :meth:`~mlcalc.Potential.fingerprint` (file SHA-256 and dtype), for other ASE calculators their class
    and ``todict()`` parameters. Two runs with different fingerprints must not share a checkpoint."""
    from mlcalc.potential import Potential

    potential = getattr(calc, "potential", None)
    kind = f"{type(calc).__module__}.{type(calc).__qualname__}"
    if isinstance(potential, Potential):
        return {"class": kind, **potential.fingerprint()}
    todict = getattr(calc, "todict", None)
    return {"class": kind, "parameters": json.loads(json.dumps(todict() if todict else {}, default=repr))}


class Checkpoint:
    """A run's checkpoint: a directory with ``parameters.json`` and one ``step-NNNNN.json`` per completed
    step, each written atomically (so saving a step costs the same at step 10 and at step 10,000).

    Args:
        directory: the checkpoint directory.
        parameters: JSON-able description of the run; resuming with different parameters is refused.
        resume: continue from existing steps (``False`` starts afresh and removes them).
    """

    def __init__(self, directory: PathLike, parameters: dict, resume: bool = True):
        self.directory = Path(directory)
        self.parameters = json.loads(json.dumps(parameters, default=json_default))
        self.steps: list[dict] = []
        stored = self.directory / "parameters.json"
        if resume and stored.exists():
            self._load(stored)
        else:
            for old in self.directory.glob("step-*.json"):
                old.unlink()
            write_json_atomic(stored, {"version": CHECKPOINT_VERSION, "parameters": self.parameters})

    def _load(self, stored: Path) -> None:
        try:
            data = json.loads(stored.read_text(encoding="utf-8"))
            if data.get("version") != CHECKPOINT_VERSION:
                raise ValueError(f"version {data.get('version')}, expected {CHECKPOINT_VERSION}")
        except (OSError, ValueError) as exc:
            raise CheckpointError(
                f"cannot use the checkpoint {self.directory} ({exc}); delete it to start the run afresh"
            ) from None
        old = data.get("parameters", {})
        differing = sorted(k for k in set(old) | set(self.parameters) if old.get(k) != self.parameters.get(k))
        if differing:
            shown = "; ".join(
                f"{k}: {_brief(old.get(k))} in the checkpoint, {_brief(self.parameters.get(k))} now" for k in differing
            )
            raise CheckpointError(
                f"{self.directory} is the checkpoint of a different run ({shown}); choose another output "
                "directory, delete the checkpoint, or run without resuming"
            )
        while (path := self._step_path(len(self.steps))).exists():
            self.steps.append(json.loads(path.read_text(encoding="utf-8")))

    def _step_path(self, index: int) -> Path:
        return self.directory / f"step-{index:05d}.json"

    def append(self, step: dict) -> None:
        """Record a completed step (atomically)."""
        step = json.loads(json.dumps(step, default=json_default))
        write_json_atomic(self._step_path(len(self.steps)), step, indent=None)
        self.steps.append(step)


def _brief(value: Any, limit: int = 240) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def optional_path(directory: Optional[PathLike], name: str) -> Optional[Path]:
    """``directory / name``, or ``None`` without a directory."""
    return None if directory is None else Path(directory) / name
