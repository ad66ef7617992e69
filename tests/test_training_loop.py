"""The bookkeeping of training/query.py (one active-learning round): the hold-out split, packed-data subsets and
merges, and that adding a round's picks leaves the first data set's split alone. Seconds; no training."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # training/ lives beside mlcalc/, not in the package

from training.dataset import explored, split  # noqa: E402
from training.query import concatenate, hold_out, subset  # noqa: E402
from training.sample import pack  # noqa: E402


class Labels:
    def __init__(self, family: str, origin: str):
        self.family = family
        self.origin = origin


def packed(sizes, family="water_cluster", origin="explore-query1-md450"):
    """Packed structures of ``sizes`` atoms (hydrogens on a line) with fake labels."""
    frames = [(Atoms(f"H{n}", positions=[[0.8 * k, 0, 0] for k in range(n)]), family, origin) for n in sizes]
    data = pack(frames)
    data["energy"] = -np.arange(len(sizes), dtype=float)
    data["forces"] = np.arange(3 * sum(sizes), dtype=float).reshape(-1, 3)
    return data


def test_hold_out_takes_the_share_of_each_family_and_repeats():
    families = ["butane"] * 10 + ["azobenzene"] * 7 + ["water_cluster"] * 3
    held = hold_out(families, 0.3, seed=5)
    counts = {f: int(held[np.array(families) == f].sum()) for f in set(families)}
    assert counts == {"butane": 3, "azobenzene": 2, "water_cluster": 1}
    assert np.array_equal(held, hold_out(families, 0.3, seed=5))
    assert not np.array_equal(held, hold_out(families, 0.3, seed=6))


def test_subsets_keep_atoms_with_their_structures_and_merge_back():
    data = packed([2, 3, 4, 1])
    chosen = np.array([True, False, True, False])
    kept, rest = subset(data, chosen), subset(data, ~chosen)
    assert kept["n_atoms"].tolist() == [2, 4]
    assert np.array_equal(kept["forces"], np.concatenate([data["forces"][0:2], data["forces"][5:9]]))
    assert len(kept["numbers"]) == len(kept["positions"]) == len(kept["forces"]) == 6
    merged = concatenate([kept, rest])
    assert sorted(merged["energy"].tolist()) == sorted(data["energy"].tolist())
    assert len(merged["forces"]) == merged["n_atoms"].sum() == data["n_atoms"].sum()


def test_concatenate_refuses_files_with_other_arrays():
    data = packed([2])
    with pytest.raises(ValueError, match="differ in their arrays"):
        concatenate([data, {k: v for k, v in data.items() if k != "forces"}])


def test_a_rounds_picks_join_the_explored_split_and_leave_the_first_alone():
    rng = np.random.default_rng(0)
    first = [Labels(f, "md300") for f in rng.choice(["butane", "water_cluster"], 200)]
    rounds = [Labels(f, "explore1-md600") for f in rng.choice(["butane", "water_cluster"], 100)]
    picks = [Labels("butane", "explore-query1-md1200") for _ in range(30)]
    before, after = split(first + rounds), split(first + rounds + picks)
    for part in ("train", "validation", "test"):
        assert [k for k in before[part] if k < 200] == [k for k in after[part] if k < 200]
    assert all(explored(p) for p in picks)
    assert sum(len(indices) for indices in after.values()) == 330


def test_labelled_picks_are_in_the_training_format():
    pytest.importorskip("tblite")
    from training.explore import label

    water = Atoms("OH2", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    dimer = water.copy() + Atoms("OH2", positions=water.positions + [2.9, 0, 0])
    labelled = label(pack([(water, "water_cluster", "explore-query1-md450"), (dimer, "water_cluster", "x")]))
    assert set(labelled) == set(np.load(Path(__file__).resolve().parents[1] / "training/data/labelled.npz").files)
    held = subset(labelled, np.array([False, True]))
    assert held["n_atoms"].tolist() == [6] and held["forces"].shape == (6, 3)
