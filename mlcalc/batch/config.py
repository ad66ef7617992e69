"""Batch files: mixed tasks in one TOML (Python >= 3.11) or JSON file.

.. code-block:: toml

    potential = "demo"          # default of every task (also dtype, device)
    output = "screening"        # batch directory (the command line's -o wins)

    [defaults.scan]             # settings every scan task starts from
    step = 30.0

    [[task]]
    kind = "scan"
    structure = "inputs/butane.xyz"   # relative to this file
    dihedral = "0,1,2,3"

    [[task]]
    kind = "md"
    structures = ["inputs/*.pdb"]     # a glob: one task per file
    replicas = 4                       # seeds seed, seed + 1, ...
    nvt = 1.0

A task's keys are :class:`~mlcalc.batch.Task` fields (kind, structure or structures, final, potential,
dtype, device, name), ``replicas`` (MD), and its settings (:data:`mlcalc.batch.tasks.DEFAULTS`, or
:class:`mlcalc.md.config.MDConfig` fields for MD).
"""

from __future__ import annotations

import glob
import json
from pathlib import Path
from typing import Any, Optional

from mlcalc.batch.tasks import Task

#: Keys of a ``[[task]]`` entry that are not settings.
TASK_KEYS = ("kind", "structure", "structures", "final", "potential", "dtype", "device", "name", "replicas")
#: Top-level keys of a batch file.
FILE_KEYS = ("potential", "dtype", "device", "output", "workers", "defaults", "task")


def read_file(path: Path) -> dict:
    """The batch file as a dict (TOML or JSON by its suffix)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"batch file {path} does not exist: give a TOML or JSON file of [[task]] entries")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except ImportError:
        raise ValueError("TOML batch files need Python >= 3.11; write it as JSON") from None
    except ValueError as exc:  # JSONDecodeError and TOMLDecodeError
        raise ValueError(f"cannot read the batch file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"the batch file {path} holds a {type(data).__name__}, not a table with [[task]] entries")
    unknown = sorted(set(data) - set(FILE_KEYS))
    if unknown:
        raise ValueError(f"unknown keys {unknown} in {path}; known: {list(FILE_KEYS)}")
    return data


def _paths(entry: dict, base: Path, where: str) -> list[str]:
    """The structure files of an entry: ``structure``, or every match of ``structures`` (globs)."""
    if ("structure" in entry) == ("structures" in entry):
        raise ValueError(f"{where}: give structure = FILE or structures = [GLOB, ...], one of them")
    if "structure" in entry:
        return [str(base / entry["structure"])]
    patterns = entry["structures"]
    patterns = [patterns] if isinstance(patterns, str) else patterns
    found = [match for pattern in patterns for match in sorted(glob.glob(str(base / pattern)))]
    if not found:
        raise ValueError(f"{where}: structures = {patterns} matches no file (relative to {base})")
    return found


def tasks_from_file(path: Path, potential: Optional[str] = None) -> tuple[list[Task], dict]:
    """The tasks of a batch file and its top-level options (``output``, ``workers``); ``potential``
    overrides the file's default. Relative paths are relative to the file's directory."""
    path = Path(path)
    data = read_file(path)
    base = path.resolve().parent
    entries = data.get("task", [])
    if not entries:
        raise ValueError(f"{path} has no tasks: add [[task]] entries (kind, structure and the settings)")
    common = {key: data[key] for key in ("potential", "dtype", "device") if key in data}
    if potential is not None:
        common["potential"] = potential
    if "potential" in common and Path(base / common["potential"]).is_file():
        common["potential"] = str(base / common["potential"])
    defaults: dict[str, dict] = data.get("defaults", {})
    tasks: list[Task] = []
    for n, entry in enumerate(entries, start=1):
        where = f"{path}, task {n}"
        kind = entry.get("kind")
        if kind is None:
            raise ValueError(f"{where}: give its kind (scan, path, neb, opt, md)")
        settings: dict[str, Any] = {**defaults.get(kind, {}), **{k: v for k, v in entry.items() if k not in TASK_KEYS}}
        fields = {**common, **{k: entry[k] for k in ("potential", "dtype", "device", "name") if k in entry}}
        if "final" in entry:
            fields["final"] = str(base / entry["final"])
        replicas = int(entry.get("replicas", 1))
        if replicas > 1 and kind != "md":
            raise ValueError(f"{where}: replicas are for md tasks")
        for structure in _paths(entry, base, where):
            try:
                if kind == "md":
                    tasks += md_replicas(structure, settings, replicas, **fields)
                else:
                    tasks.append(Task(kind, structure, settings, **fields))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{where}: {exc}") from None
    return tasks, {key: data[key] for key in ("output", "workers") if key in data}


def md_replicas(structure: str, settings: dict, replicas: int, **fields) -> list[Task]:
    """``replicas`` MD tasks of ``structure``, seeds ``settings["seed"]`` (default 1), +1, +2, ..., named
    ``<stem>-seed<N>``."""
    first = int(settings.get("seed", 1))
    name = fields.pop("name", None) or Path(structure).stem
    return [
        Task("md", structure, {**settings, "seed": first + r}, name=f"{name}-seed{first + r}", **fields)
        for r in range(replicas)
    ]
