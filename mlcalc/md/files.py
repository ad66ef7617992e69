"""The MD pipeline's tables, written atomically (see :mod:`mlcalc.files`)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Sequence

from mlcalc.files import PathLike, write_atomic, write_text_atomic


def write_json(path: PathLike, data) -> Path:
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_csv(path: PathLike, header: Sequence[str], rows: Sequence[Sequence]) -> Path:
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as stream:
            writer = csv.writer(stream)
            writer.writerow(header)
            writer.writerows(rows)

    return write_atomic(path, write)
