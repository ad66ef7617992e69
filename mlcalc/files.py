"""Atomic output files: written to a temporary file in the same directory, then moved into place.

A run killed at any moment leaves the previous or the new version of a file, never half of one.
Every mlcalc output (potential files, tables, checkpoints, trajectories' side files, plots) goes
through :func:`write_atomic`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Union

import numpy as np

PathLike = Union[str, os.PathLike]


def _file_mode() -> int:
    """The mode ``open()`` would give a new file under this process's umask (``mkstemp`` gives 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomic(path: PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(temporary_path)``, flush it to disk and move it onto ``path``; returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(Path(temporary))
        with open(temporary, "rb+") as stream:
            os.fsync(stream.fileno())
        os.chmod(temporary, _file_mode())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json_atomic(path: PathLike, data: Any, *, indent: Optional[int] = 1, sort_keys: bool = False) -> Path:
    """Write ``data`` as JSON atomically; NumPy arrays and scalars are written as lists and numbers."""
    return write_text_atomic(path, json.dumps(data, indent=indent, sort_keys=sort_keys, default=json_default) + "\n")


def write_csv_atomic(
    path: PathLike,
    columns: Sequence[str],
    rows: Iterable[Union[Mapping[str, Any], Sequence[Any]]],
    *,
    digits: Optional[int] = None,
) -> Path:
    """Write a CSV table atomically: a header of ``columns``, then one line per row.

    Args:
        rows: mappings keyed by ``columns`` (missing keys give empty cells) or sequences in column order.
        digits: significant digits of floats; ``None`` writes the shortest text that reads back exactly.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        values = [row.get(column) for column in columns] if isinstance(row, Mapping) else row
        writer.writerow([_csv_cell(value, digits) for value in values])
    return write_text_atomic(path, buffer.getvalue())


def _csv_cell(value: Any, digits: Optional[int]) -> str:
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (float, np.floating)):
        return repr(float(value)) if digits is None else f"{float(value):.{digits}g}"
    return str(value)


def json_default(value: Any) -> Any:
    """``json.dumps(default=...)`` for NumPy arrays (as lists) and NumPy scalars."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def file_sha256(path: PathLike) -> str:
    """SHA-256 of a file's bytes (hex), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
