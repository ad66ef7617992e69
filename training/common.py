"""Paths, seeds and small helpers shared by the training stages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict

import numpy as np
import torch

from mlcalc.files import write_atomic, write_text_atomic
from mlcalc.models.hipnn import HIPNN

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


def checkpoint_state(path: Path) -> Dict[str, Any]:
    """A training checkpoint written by ``python -m training train`` (a pickle of tensors and settings)."""
    return torch.load(path, weights_only=False)


def trained_model(state: Dict[str, Any]) -> HIPNN:
    """The best model of a checkpoint's ``state`` in float64 and evaluation mode, with absolute energies
    (eV): training fitted energies relative to a least-squares energy per species, added back here."""
    model = HIPNN(**state["hyperparameters"])
    model.load_state_dict(state["best_model"])
    model = model.double().eval()
    with torch.no_grad():
        model.self_energies.add_(state["self_energy_reference"].double())
    return model


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
