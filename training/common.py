"""Paths, seeds and small helpers shared by the training stages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict

import numpy as np

from mlcalc.files import write_atomic, write_text_atomic

ROOT = Path(__file__).resolve().parent
DATA = ROOT / "data"
GEOMETRIES = ROOT / "geometries"
SAMPLES = DATA / "samples.npz"
LABELLED = DATA / "labelled.npz"
EXPLORED = DATA / "explored.npz"  # active-learning rounds (training/explore.py)
RUNS = ROOT / "runs"
CHECKPOINT = RUNS / "checkpoint.pt"
BUNDLED = ROOT.parent / "mlcalc" / "data" / "demo.pt"
VALIDATION = DATA / "validation.json"
SEED = 20261122
FAMILIES = ("butane", "azobenzene", "alanine_dipeptide", "water_cluster", "water_liquid", "water_box")
#: Families held out entirely for testing (periodic GFN2-xTB is too slow to label many).
TEST_ONLY = ("water_box",)
KCAL_PER_EV = 23.060547830619026  # ase.units.mol / ase.units.kcal


def xtb_calculator():
    """GFN2-xTB as an ASE calculator (tblite, its defaults: electronic temperature 300 K), quiet."""
    from tblite.ase import TBLite

    return TBLite(method="GFN2-xTB", verbosity=0)


def atomic_write_npz(path: Path, **arrays: Any) -> None:
    """``np.savez_compressed`` to ``path`` atomically."""

    def write(tmp: Path) -> None:
        with tmp.open("wb") as stream:  # a file object, not a name: savez would append ".npz" to it
            np.savez_compressed(stream, **arrays)

    write_atomic(path, write)


def atomic_write_json(path: Path, data: Dict[str, Any]) -> None:
    """``data`` as indented JSON, atomically."""
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")
