"""Checkpoints of an MD run that are verified before they are trusted.

Each checkpoint is written as a new file ``checkpoint-<step>.chk`` (atomically), read back and checked,
and only then named in ``checkpoint.json`` (the manifest: file, step, size, SHA-256, and the SHA-256 of
the run's inputs: the potential file, ``config.json`` and ``start.pdb``), itself replaced atomically;
the previous checkpoint is deleted last. A run killed at any moment therefore leaves a manifest naming
an intact checkpoint. On resume the manifest and the file must agree (size and checksum) and the inputs
must be the ones the run started with; anything else is refused with what is wrong and what to do.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from mlcalc.errors import MLCalcError
from mlcalc.files import write_atomic, write_text_atomic

MANIFEST = "checkpoint.json"


class CheckpointError(MLCalcError, ValueError):
    """A checkpoint or a run directory that cannot be resumed safely."""


@dataclass(frozen=True)
class CheckpointRecord:
    """What ``checkpoint.json`` says of the checkpoint it names."""

    file: str
    step: int
    size: int
    sha256: str
    inputs: dict  # what the run computes from -> its SHA-256: "potential" (the file's bytes), "config.json", ...


def write_checkpoint(directory: Path, data: bytes, step: int, inputs: dict) -> CheckpointRecord:
    """Write ``data`` (``Context.createCheckpoint()``) as the run's checkpoint at ``step``, recording the
    SHA-256 of its ``inputs``; see the module doc."""
    directory = Path(directory)
    previous = {path.name for path in directory.glob("checkpoint-*.chk")}
    record = CheckpointRecord(
        f"checkpoint-{step:012d}.chk", step, len(data), hashlib.sha256(data).hexdigest(), dict(inputs)
    )
    path = write_atomic(directory / record.file, lambda tmp: tmp.write_bytes(data))
    if hashlib.sha256(path.read_bytes()).hexdigest() != record.sha256:
        raise CheckpointError(f"{path} did not read back as written (disk full or failing?); the last good one is kept")
    write_text_atomic(directory / MANIFEST, json.dumps(asdict(record), indent=2) + "\n")
    for name in previous - {record.file}:
        (directory / name).unlink(missing_ok=True)
    for stale in directory.glob(".checkpoint-*.tmp"):  # left by a write that was killed
        stale.unlink(missing_ok=True)
    return record


def read_checkpoint(directory: Path, inputs: dict, names: dict) -> tuple[CheckpointRecord, bytes]:
    """The checkpoint that ``checkpoint.json`` names, verified, and its bytes.

    Args:
        inputs: the SHA-256 of each input now, as given to :func:`write_checkpoint`.
        names: the file behind each input, for the messages.

    Raises:
        CheckpointError: no or unreadable manifest, a missing, truncated or altered checkpoint, or an
            input that changed since the checkpoint was written.
    """
    directory = Path(directory)
    manifest = directory / MANIFEST
    restart = f"start the run again from its first step with mlcalc md --restart {directory}"
    if not manifest.exists():
        raise CheckpointError(f"{directory} has no {MANIFEST}: the run cannot be resumed safely; {restart}")
    try:
        record = CheckpointRecord(**json.loads(manifest.read_text()))
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{manifest} is damaged ({exc}); {restart}") from exc
    for key, now in inputs.items():
        then = record.inputs.get(key)
        if then != now:
            raise CheckpointError(
                f"the run in {directory} was made with {names[key]} of SHA-256 {str(then)[:16]}..., but it now has "
                f"{now[:16]}...: resuming would mix two {key} versions in one run. Put the original back, or "
                f"{restart} (or start a new run in another directory)"
            )
    path = directory / record.file
    if not path.exists():
        raise CheckpointError(f"the checkpoint {path} named in {MANIFEST} is missing; {restart}")
    data = path.read_bytes()
    if len(data) != record.size or hashlib.sha256(data).hexdigest() != record.sha256:
        raise CheckpointError(
            f"the checkpoint {path} is damaged ({len(data)} bytes, {MANIFEST} says {record.size}, or its checksum "
            f"differs); {restart}"
        )
    return record, data
