"""Stage: one active-learning round by query by committee (``mlcalc select``), labelled with GFN2-xTB.

``python -m training query ACTION``:

- ``committee --checkpoints A.pt B.pt ... --output FILE``: one committee file (``mlcalc.export`` of a list)
  of the best models of training checkpoints (a stand-in where no trained committee exists);
- ``select --potential COMMITTEE.pt --round N [--top K] [--picoseconds PS] [--repeats R]``: the demo's own
  kind of runs driven by the committee's mean, pushed hotter than the training data (Langevin MD of butane,
  cis and trans azobenzene and alanine dipeptide at 900 and 1200 K, water clusters at 450 K, each R times
  with other seeds; ``explore.candidate_md``: frames every 50 fs until a bond breaks, kept in
  ``data/explore_frames/query{N}/``), the K frames per family of largest committee energy spread per atom,
  at least 100 fs apart within a run (``mlcalc.uncertainty.select``), labelled with GFN2-xTB, a fixed
  ``HELD_OUT`` share of each family's picks (by seed) held out: writes ``data/query{N}_selected.extxyz``
  (the picks with their spread and source), ``data/query{N}_train.npz`` and ``data/query{N}_heldout.npz``
  (the format of ``labelled.npz``; origins ``explore-query{N}-md{T}``);
- ``train --rounds 1[,2...] -- TRAIN OPTIONS``: ``python -m training train`` on the data it reads
  (``labelled.npz``, ``explored.npz``) plus the rounds' ``query{N}_train.npz`` (``dataset.load_labelled``
  extended in this process); the held-out picks are never read. The origins put the picks in the explored
  split (dataset.split), so the first split stays; of the training picks, dataset.split puts 10 % in its test
  and 5 % in its validation part;
- ``report --round N --checkpoint NAME=CKPT ... --potential NAME=FILE ... --output JSON``: energy and
  force MAE (kcal/mol, kcal/mol/Å) of each model on the held-out picks (the selected region), on the
  trained picks, and on the first test set (dataset.split's, as ``validate`` reports it), per family, and
  a committee's mean energy spread (kcal/mol) where it is one.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
from ase import Atoms

import mlcalc
from mlcalc.uncertainty.select import ENERGY_UNCERTAINTY, select
from training import dataset
from training.common import (
    DATA,
    KCAL_PER_EV,
    SEED,
    atomic_write_json,
    atomic_write_npz,
    checkpoint_state,
    trained_model,
)
from training.explore import candidate_md, label
from training.label import structures
from training.sample import butane, geometry, pack, water_cluster

#: The share of each family's picks held out as the selected-region test set (never trained on).
HELD_OUT = 0.3
#: Per-atom arrays of a packed data file (the others are per structure).
PER_ATOM = ("numbers", "positions", "forces")
#: The runs of a round: (family, start, temperature in K, share of ``--picoseconds``). Hotter than the training
#: data's MD (molecules 300–900 K, water clusters 200–350 K), where the model knows less; azobenzene half from
#: trans and half from cis, as explore does.
RUNS: Tuple[Tuple[str, str, float, float], ...] = (
    ("butane", "butane", 900.0, 1.0),
    ("butane", "butane", 1200.0, 1.0),
    ("azobenzene", "azobenzene_trans", 900.0, 0.5),
    ("azobenzene", "azobenzene_cis", 900.0, 0.5),
    ("azobenzene", "azobenzene_trans", 1200.0, 0.5),
    ("azobenzene", "azobenzene_cis", 1200.0, 0.5),
    ("alanine_dipeptide", "alanine_dipeptide", 900.0, 1.0),
    ("alanine_dipeptide", "alanine_dipeptide", 1200.0, 1.0),
    ("water_cluster", "water6", 450.0, 1.0),
    ("water_cluster", "water8", 450.0, 1.0),
)


def start_of(name: str, rng: np.random.Generator) -> Atoms:
    """The start structure of a run: ``butane``, ``waterN`` (a random (H₂O)N cluster) or a geometry file."""
    if name == "butane":
        return butane()[0]
    if name.startswith("water"):
        return water_cluster(int(name.removeprefix("water")), rng)
    return geometry(name)


def run_all(
    potential: mlcalc.Potential, folder: Path, picoseconds: float, repeats: int, seed: int
) -> List[Tuple[str, Path, float]]:
    """Every run of ``RUNS``, ``repeats`` times with other seeds, driven by ``potential`` (frames every 50 fs),
    each written to ``folder`` as extxyz (an existing file is kept: a rerun resumes); (family, file,
    temperature in K) of each."""
    import ase.io

    folder.mkdir(parents=True, exist_ok=True)
    runs = []
    for repeat in range(repeats):
        for index, (family, name, temperature, share) in enumerate(RUNS):
            path = folder / f"{repeat}_{index:02d}_{name}_{temperature:.0f}K.extxyz"
            runs.append((family, path, temperature))
            if path.exists():
                continue
            rng = np.random.default_rng(seed + 100 * repeat + index)
            began = time.perf_counter()
            frames = candidate_md(potential, start_of(name, rng), temperature, share * picoseconds, rng)
            ase.io.write(path, frames)
            print(f"{path.name}: {len(frames)} frames in {time.perf_counter() - began:.0f} s", flush=True)
    return runs


def pick_per_family(runs: Sequence[Tuple[str, Path, float]], potential: mlcalc.Potential, top: int) -> List[Atoms]:
    """The ``top`` frames of each family with the largest committee energy spread per atom, no two
    neighbouring frames of one run (``mlcalc.uncertainty.select``), with ``info["family"]`` and
    ``info["temperature"]`` (K) added."""
    temperatures = {str(path): temperature for _, path, temperature in runs}
    picks = []
    for family in dict.fromkeys(family for family, _, _ in runs):
        paths = [path for f, path, _ in runs if f == family]
        chosen = select(paths, potential=potential, top=top, per_atom=True, min_separation=2)
        for atoms in chosen:
            atoms.info["family"] = family
            atoms.info["temperature"] = temperatures[atoms.info["source"]]
        picks += chosen
        spreads = [a.info[ENERGY_UNCERTAINTY] * KCAL_PER_EV for a in chosen]
        print(f"{family}: {len(chosen)} picks, spread {min(spreads):.2f}–{max(spreads):.2f} kcal/mol", flush=True)
    return picks


def hold_out(families: Sequence[str], fraction: float, seed: int) -> np.ndarray:
    """Which structures are held out: in each family, ``round(fraction · n)`` of its n structures drawn with
    ``seed`` (the same picks give the same choice)."""
    families = np.asarray(families)
    held = np.zeros(len(families), dtype=bool)
    rng = np.random.default_rng(seed)
    for family in sorted(set(families.tolist())):
        members = np.flatnonzero(families == family)
        held[rng.permutation(members)[: int(round(fraction * len(members)))]] = True
    return held


def subset(data: Dict[str, np.ndarray], chosen: np.ndarray) -> Dict[str, np.ndarray]:
    """The structures where the boolean mask ``chosen`` [S] is true, of a packed data file."""
    per_atom = np.repeat(chosen, data["n_atoms"])
    return {key: value[per_atom] if key in PER_ATOM else value[chosen] for key, value in data.items()}


def concatenate(parts: Sequence[Dict[str, np.ndarray]]) -> Dict[str, np.ndarray]:
    """Packed data files one after the other; they must hold the same arrays."""
    keys = set(parts[0])
    for part in parts[1:]:
        if set(part) != keys:
            raise ValueError(f"data files differ in their arrays: {sorted(keys)} and {sorted(part)}")
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def round_paths(round_: int) -> Dict[str, Path]:
    return {
        "selected": DATA / f"query{round_}_selected.extxyz",
        "train": DATA / f"query{round_}_train.npz",
        "heldout": DATA / f"query{round_}_heldout.npz",
    }


def run_select(args: argparse.Namespace) -> None:
    import ase.io

    paths = round_paths(args.round)
    potential = mlcalc.load(args.potential, device="cpu")
    if not potential.metadata.committee:
        raise SystemExit(f"{args.potential} is a single model: query by committee needs a committee file")
    began = time.perf_counter()
    folder = DATA / "explore_frames" / f"query{args.round}"
    runs = run_all(potential, folder, args.picoseconds, args.repeats, SEED + 500 * args.round)
    picks = pick_per_family(runs, potential, args.top)
    ase.io.write(paths["selected"], picks)
    origins = [f"explore-query{args.round}-md{a.info['temperature']:.0f}" for a in picks]
    labelled = label(pack([(a, a.info["family"], o) for a, o in zip(picks, origins)]))
    held = hold_out(labelled["family"], HELD_OUT, SEED + 500 * args.round)
    atomic_write_npz(paths["train"], **subset(labelled, ~held))
    atomic_write_npz(paths["heldout"], **subset(labelled, held))
    print(
        f"round {args.round}: {len(picks)} picked, {len(labelled['n_atoms'])} labelled, {held.sum()} held out, "
        f"in {time.perf_counter() - began:.0f} s -> {paths['train'].name}, {paths['heldout'].name}",
        flush=True,
    )


def run_train(args: argparse.Namespace, train_argv: List[str]) -> None:
    """train.main on the data it reads plus the rounds' training picks (``dataset.load_labelled`` extended)."""
    from training import train

    extra = [round_paths(r)["train"] for r in args.rounds]
    missing = [str(p) for p in extra if not p.exists()]
    if missing:
        raise SystemExit(f"missing {', '.join(missing)}: run python -m training query select for those rounds")
    base = dataset.load_labelled
    dataset.load_labelled = lambda: concatenate([base()] + [dict(np.load(p)) for p in extra])
    sys.argv = ["python -m training train", *train_argv]
    train.main()


def errors(potential: mlcalc.Potential, data: Dict[str, np.ndarray], indices: Sequence[int]) -> dict:
    """Energy and force MAE (kcal/mol, kcal/mol/Å, forces over Cartesian components) of the structures
    ``indices`` of packed data, overall and per family, and a committee's mean energy spread (kcal/mol)."""
    frames = structures(data)
    offsets = np.concatenate([[0], np.cumsum(data["n_atoms"])])
    results = [
        result
        for start in range(0, len(indices), 64)
        for result in potential.evaluate([frames[k] for k in indices[start : start + 64]], forces=True, stress=False)
    ]
    de = np.array([abs(r["energy"] - data["energy"][k]) for r, k in zip(results, indices)]) * KCAL_PER_EV
    df = [np.abs(r["forces"] - data["forces"][offsets[k] : offsets[k + 1]]).ravel() for r, k in zip(results, indices)]
    spread = np.array([r.get("energy_uncertainty", np.nan) for r in results]) * KCAL_PER_EV
    families = np.array([str(data["family"][k]) for k in indices])

    def summary(chosen: np.ndarray) -> dict:
        entry = {
            "structures": int(chosen.sum()),
            "energy_mae_kcal_mol": float(de[chosen].mean()),
            "force_mae_kcal_mol_A": float(np.concatenate([df[k] for k in np.flatnonzero(chosen)]).mean() * KCAL_PER_EV),
        }
        if potential.metadata.committee:
            entry["energy_spread_mean_kcal_mol"] = float(spread[chosen].mean())
        return entry

    report = {"all": summary(np.ones(len(indices), dtype=bool))}
    report.update({family: summary(families == family) for family in sorted(set(families.tolist()))})
    return report


def first_test_set() -> Tuple[Dict[str, np.ndarray], List[int]]:
    """The data train.py reads and the indices of its first test set (dataset.split, never fitted)."""
    data = dataset.load_labelled()
    labels = [_Labels(str(f), str(o)) for f, o in zip(data["family"], data["origin"])]
    return data, [k for k in dataset.split(labels)["test"] if not dataset.explored(labels[k])]


class _Labels:
    """The attributes dataset.split reads."""

    def __init__(self, family: str, origin: str):
        self.family = family
        self.origin = origin


def named(pairs: Sequence[str]) -> List[Tuple[str, str]]:
    """``NAME=PATH`` arguments as (name, path)."""
    bad = [pair for pair in pairs if "=" not in pair]
    if bad:
        raise SystemExit(f"give models as NAME=PATH, not {', '.join(bad)}")
    return [(name, path) for name, _, path in (pair.partition("=") for pair in pairs)]


def run_report(args: argparse.Namespace) -> None:
    paths = round_paths(args.round)
    sets = {"heldout": dict(np.load(paths["heldout"])), "trained": dict(np.load(paths["train"]))}
    first, first_test = first_test_set()
    report: dict = {"round": args.round, "held_out_fraction": HELD_OUT, "models": {}}
    with tempfile.TemporaryDirectory() as folder:
        models = [(name, source, source) for name, source in named(args.potential)]
        for name, checkpoint in named(args.checkpoint):
            models.append((name, checkpoint, str(Path(folder) / f"{name}.pt")))
            mlcalc.export(trained_model(checkpoint_state(Path(checkpoint))), models[-1][2], dtype="float64")
        for name, source, path in models:
            potential = mlcalc.load(path, device="cpu")
            entry = {key: errors(potential, data, range(len(data["n_atoms"]))) for key, data in sets.items()}
            entry["first_test_set"] = errors(potential, first, first_test)
            report["models"][name] = {"source": source, **entry}
            print(name, {key: value["all"] for key, value in entry.items()}, flush=True)
    atomic_write_json(args.output, report)
    print(f"wrote {args.output}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m training query", description=__doc__.split("\n\n")[0])
    actions = parser.add_subparsers(dest="action", required=True)
    committee = actions.add_parser("committee", help="one committee file of training checkpoints' best models")
    committee.add_argument("--checkpoints", type=Path, nargs="+", required=True)
    committee.add_argument("--output", type=Path, required=True)
    chooser = actions.add_parser("select", help="committee-driven runs, the most uncertain frames, GFN2-xTB labels")
    chooser.add_argument("--potential", required=True, help="the committee file that drives the runs and scores them")
    chooser.add_argument("--round", type=int, default=1, help="query round (its own files and seeds)")
    chooser.add_argument("--top", type=int, default=40, help="picks per family (default 40)")
    chooser.add_argument("--repeats", type=int, default=2, help="each run this many times, other seeds (default 2)")
    chooser.add_argument("--picoseconds", type=float, default=2.0, help="MD per family and temperature, ps (default 2)")
    trainer = actions.add_parser("train", help="python -m training train with the rounds' training picks added")
    trainer.add_argument("--rounds", type=lambda s: [int(r) for r in s.split(",")], required=True)
    reporter = actions.add_parser("report", help="errors before and after on the held-out picks and first test set")
    reporter.add_argument("--round", type=int, default=1)
    reporter.add_argument("--potential", nargs="*", default=[], metavar="NAME=FILE", help="potential files")
    reporter.add_argument("--checkpoint", nargs="*", default=[], metavar="NAME=CKPT", help="training checkpoints")
    reporter.add_argument("--output", type=Path, required=True)
    argv = sys.argv[1:]
    own, train_argv = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    args = parser.parse_args(own)
    if args.action == "committee":
        metadata = mlcalc.export(
            [trained_model(checkpoint_state(p)) for p in args.checkpoints], args.output, dtype="float64"
        )
        print(f"wrote {args.output}: {metadata.name}")
    elif args.action == "select":
        run_select(args)
    elif args.action == "train":
        run_train(args, train_argv)
    else:
        run_report(args)


if __name__ == "__main__":
    main()
