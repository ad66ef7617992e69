"""A task's directory: ``task.json``, ``result.json`` (the task is finished), ``error.json`` (it failed).

Every file is written atomically (:func:`mlcalc.files.write_json_atomic`). ``task.json`` (the task and
its fingerprint) is written before the task runs; ``result.json`` (status, summary, fingerprint, wall
time, worker) when it ends, and only then: its presence with the same fingerprint is what makes a rerun
skip the task. ``error.json`` (type, message, traceback) records a failure; a rerun retries the task and
removes it on success. A directory that holds another fingerprint is refused (:class:`BatchDirectoryError`),
never reused.
"""

from __future__ import annotations

import json
import time
import traceback
from pathlib import Path
from typing import Optional

from mlcalc.errors import MLCalcError
from mlcalc.files import write_json_atomic

TASK_FILE = "task.json"
RESULT_FILE = "result.json"
ERROR_FILE = "error.json"


class BatchDirectoryError(MLCalcError, ValueError):
    """A task directory holds the files of a different task (another fingerprint)."""


def _read(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise BatchDirectoryError(f"cannot read {path} ({exc}): delete it to run the task again") from None


def differences(old: dict, new: dict) -> list[str]:
    """The top-level fingerprint entries (settings one by one) that differ between ``old`` and ``new``."""
    changed = []
    for key in sorted(set(old) | set(new)):
        if key == "settings" and isinstance(old.get(key), dict) and isinstance(new.get(key), dict):
            changed += [f"settings.{k}" for k in differences(old[key], new[key])]
        elif old.get(key) != new.get(key):
            changed.append(key)
    return changed


def check_directory(directory: Path, fingerprint: dict) -> Optional[dict]:
    """The finished record (``result.json``) of this task in ``directory``, or ``None`` when it has to run.

    Raises:
        BatchDirectoryError: ``directory`` holds a task with another fingerprint (naming what differs).
    """
    for name in (RESULT_FILE, TASK_FILE):
        record = _read(directory / name)
        if record is not None and record.get("fingerprint") != fingerprint:
            changed = ", ".join(differences(record.get("fingerprint") or {}, fingerprint))
            raise BatchDirectoryError(
                f"{directory} holds another task ({directory / name} differs in: {changed}); the batch never reuses "
                "it: delete or move that directory, or give another output directory"
            )
        if name == RESULT_FILE and record is not None:
            return record
    return None


def write_task(directory: Path, task_id: str, task: dict, fingerprint: dict) -> None:
    """``task.json``: the task as given and its fingerprint."""
    write_json_atomic(directory / TASK_FILE, {"id": task_id, "task": task, "fingerprint": fingerprint})


def write_result(directory: Path, record: dict) -> None:
    """``result.json`` (marks the task finished), then remove an earlier attempt's ``error.json``."""
    write_json_atomic(directory / RESULT_FILE, record)
    (directory / ERROR_FILE).unlink(missing_ok=True)


def error_record(exc: BaseException) -> dict:
    """Type, message (with the exception's notes) and traceback of ``exc``."""
    notes = "".join(f"\n{note}" for note in getattr(exc, "__notes__", ()))
    return {
        "type": type(exc).__name__,
        "message": f"{exc}{notes}",
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
    }


def write_error(directory: Path, task_id: str, fingerprint: Optional[dict], error: dict) -> None:
    """``error.json``: what went wrong (``error`` from :func:`error_record`), when."""
    write_json_atomic(
        directory / ERROR_FILE,
        {"id": task_id, "fingerprint": fingerprint, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **error},
    )
