"""Stage 5: measure the bundled demo potential against GFN2-xTB; writes training/data/validation.json.

``python -m training validate [--md-ps 100] [--skip-md | --skip-static] [--md-systems A,B] [--potential FILE]
[--output JSON]``, or ``python -m training validate --merge PART.json ... --output JSON`` to join the reports of
one potential run in separate processes (static results and MD systems apart):

- held-out test set (the per-family split of training/dataset.py): energy and force MAE per family
  (kcal/mol, kcal/mol/Å; force MAE over Cartesian components) and the non-hierarchicality, for the
  first data set and for the active-learning rounds apart; the same on the training structures (how
  far the fit itself is from the targets, against how far the model generalises);
- butane C-C-C-C relaxed scan (ASE FixInternals + BFGS, fmax 0.01 eV/Å, 15° steps), each method on its
  own relaxed geometries, energies relative to each curve's anti (180°) point: RMSE in kcal/mol;
- azobenzene: cis-trans energy difference between the lowest minima (relaxed from the shipped and from
  phenyl-twisted starts), and the rotation (C-N=N-C torsion scan from cis, 10° steps) and inversion
  (N···C distance scan from cis to the linear C-N=N angle) barriers, each the highest point of its
  relaxed scan (``mlcalc.workflows.relaxed_scan``, fmax 0.01 eV/Å) above the cis minimum, by each method;
- the main job's water run (``mlcalc.demo.water.water_npt``: 2 ps NPT of 32 waters in OpenMM, 300 K)
  with four seeds: the largest temperature and O-H bond along each (a surface that releases energy heats
  it far above the 300 K bath: ``heats`` when any 50 fs sample exceeds 400 K, 4 standard deviations of
  the kinetic temperature of 96 atoms);
- NVT MD (ASE Langevin, 300 K, 0.5 fs) of each molecule with the demo potential: covalent bonds of the
  start stay shorter than 1.5× their initial length, and the non-hierarchicality along the run.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
from ase import Atoms, units
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

import mlcalc
from mlcalc.data import resolve_potential_path
from mlcalc.demo import DemoOptions
from mlcalc.demo.reference import single_points
from mlcalc.demo.water import water_npt
from mlcalc.files import file_sha256
from mlcalc.models.hipnn import structure_non_hierarchicality
from mlcalc.workflows import Dihedral, Distance, relaxed_scan
from training.common import KCAL_PER_EV, SEED, VALIDATION, atomic_write_json, xtb_calculator
from training.dataset import explored, load_labelled, split
from training.label import structures
from training.sample import (
    AZOBENZENE_CNNC,
    bonds,
    butane,
    geometry,
    phenyl_twisted,
    relax,
    torsion_scan,
    water_bonds,
    water_box,
    water_cluster,
)
from training.train import below_force_limit

FMAX = 0.01


def split_errors(potential: mlcalc.Potential) -> Dict[str, Dict[str, Dict[str, dict]]]:
    """Errors per family on the test structures (``"test"``) and on those train.py fits (``"train"``:
    the training structures whose largest force is at most ``MAX_TRAINING_FORCE``), each as ``first``
    (the first data set's structures, comparable across rounds) and ``explored`` (those the candidates
    of the active-learning rounds visited)."""
    data = load_labelled()
    frames = structures(data)
    offsets = np.concatenate([[0], np.cumsum(data["n_atoms"])])
    for s, atoms in enumerate(frames):
        atoms.info["energy"] = float(data["energy"][s])
        atoms.info["origin"] = str(data["origin"][s])
        atoms.arrays["reference_forces"] = data["forces"][offsets[s] : offsets[s + 1]]
    labels = [_Labels(str(f), str(o)) for f, o in zip(data["family"], data["origin"])]
    parts = split(labels)
    chosen = {
        "test": parts["test"],
        "train": [k for k in parts["train"] if below_force_limit(frames[k].arrays["reference_forces"])],
    }
    report: Dict[str, Dict[str, Dict[str, dict]]] = {}
    for part, indices in chosen.items():
        report[part] = {"first": {}, "explored": {}}
        for group in report[part]:
            for family in sorted({labels[k].family for k in indices}):
                members = [
                    frames[k]
                    for k in indices
                    if labels[k].family == family and explored(labels[k]) == (group == "explored")
                ]
                if members:
                    report[part][group][family] = family_errors(potential, members)
                    print(part, group, family, report[part][group][family], flush=True)
    return report


def family_errors(potential: mlcalc.Potential, members: List[Atoms]) -> dict:
    """Energy and force MAE (kcal/mol, kcal/mol/Å) of ``members``, also per origin (how each structure
    was sampled, with the mean reference force for scale), and their non-hierarchicality."""
    results = potential.evaluate(members)
    de = np.array([abs(r["energy"] - a.info["energy"]) for r, a in zip(results, members)]) * KCAL_PER_EV
    df = [np.abs(r["forces"] - a.arrays["reference_forces"]).ravel() * KCAL_PER_EV for r, a in zip(results, members)]
    hierarchy = [structure_non_hierarchicality(potential, a) for a in members]
    by_origin = {}
    for origin in sorted({a.info["origin"] for a in members}):
        chosen = [k for k, a in enumerate(members) if a.info["origin"] == origin]
        reference = np.concatenate([np.abs(members[k].arrays["reference_forces"]).ravel() for k in chosen])
        by_origin[origin] = {
            "structures": len(chosen),
            "energy_mae_kcal_mol": float(de[chosen].mean()),
            "force_mae_kcal_mol_A": float(np.concatenate([df[k] for k in chosen]).mean()),
            "mean_abs_reference_force_kcal_mol_A": float(reference.mean() * KCAL_PER_EV),
        }
    return {
        "structures": len(members),
        "energy_mae_kcal_mol": float(de.mean()),
        "energy_mae_per_atom_kcal_mol": float(np.mean(de / [len(a) for a in members])),
        "force_mae_kcal_mol_A": float(np.concatenate(df).mean()),
        "non_hierarchicality_median": float(np.median(hierarchy)),
        "non_hierarchicality_max": float(np.max(hierarchy)),
        "by_origin": by_origin,
    }


class _Labels:
    """The attributes split() reads."""

    def __init__(self, family: str, origin: str):
        self.family = family
        self.origin = origin


def butane_scan(potential: mlcalc.Potential) -> dict:
    start, torsion = butane()
    angles = np.arange(180.0, 180.0 - 360.0, -15.0)
    curves = {}
    for name, factory in (("gfn2_xtb", xtb_calculator), ("demo", lambda: mlcalc.MLCalculator(potential))):
        minimum = relax(start, fmax=FMAX, calculator=factory())
        points = torsion_scan(minimum, torsion, angles, fmax=FMAX, calculator=factory(), steps=300)
        energies = np.array([p.info["energy"] for p in points])
        curves[name] = (energies - energies[0]) * KCAL_PER_EV
    rmse = float(np.sqrt(np.mean((curves["demo"] - curves["gfn2_xtb"]) ** 2)))
    print(f"butane scan RMSE {rmse:.3f} kcal/mol", flush=True)
    return {
        "angles_deg": angles.tolist(),
        "gfn2_xtb_kcal_mol": curves["gfn2_xtb"].tolist(),
        "demo_kcal_mol": curves["demo"].tolist(),
        "rmse_kcal_mol": rmse,
        "max_abs_error_kcal_mol": float(np.abs(curves["demo"] - curves["gfn2_xtb"]).max()),
    }


def azobenzene_barriers(potential: mlcalc.Potential) -> dict:
    """Lowest cis and trans minima and the two relaxed scans from cis, by each method (each on its own
    geometries), and GFN2-xTB single points along the demo's scans. Scan points whose constrained
    relaxation did not converge are listed, never dropped."""
    report: Dict[str, dict] = {}
    structures = {}
    for name, factory in (("gfn2_xtb", xtb_calculator), ("demo", lambda: mlcalc.MLCalculator(potential))):
        report[name], *structures[name] = _azobenzene_profiles(factory)
        print(name, {k: v for k, v in report[name].items() if "profile" not in k}, flush=True)
    report["gfn2_xtb_on_demo_paths"] = _single_points_along(*structures["demo"])
    print("gfn2_xtb_on_demo_paths", {k: v for k, v in report["gfn2_xtb_on_demo_paths"].items() if "profile" not in k})
    report["errors_kcal_mol"] = {
        key: report["demo"][key] - report["gfn2_xtb"][key]
        for key in ("trans_minus_cis_kcal_mol", "rotation_barrier_kcal_mol", "inversion_barrier_kcal_mol")
    }
    return report


def lowest_minimum(label: str, calculator_factory) -> Atoms:
    """The lowest of the minima relaxed from the shipped geometry and from phenyl-twisted starts.

    The shipped cis geometry (RDKit, C-N=N-C 0°, rings perpendicular) is a symmetric saddle that BFGS
    does not leave: the twisted cis minimum (C-N=N-C ~12°, C-C-N=N ~40°) lies ~3 kcal/mol lower with both
    methods. Trans is flat in the ring twist; the planar and twisted starts both relax.
    """
    shipped = geometry(f"azobenzene_{label}")
    starts = [shipped] + [
        phenyl_twisted(shipped, cnnc, twist)
        for cnnc, twist in (((10.0, 40.0),) if label == "cis" else ((180.0, 0.0), (170.0, 30.0)))
    ]
    minima = [relax(start, fmax=FMAX, steps=1000, calculator=calculator_factory()) for start in starts]
    return min(minima, key=lambda m: m.info["energy"])


def _single_points_along(cis: Atoms, paths: Dict[str, List[Atoms]]) -> dict:
    """GFN2-xTB energies (kcal/mol from its energy at ``cis``, the demo's cis minimum) of the demo's
    relaxed scan points ``paths``: a low demo barrier is a wrong barrier path when GFN2-xTB puts the same
    geometries much higher."""
    xtb = xtb_calculator()
    e_cis = single_points([cis], xtb)[0]
    report = {}
    for name, points in paths.items():
        profile = ((single_points(points, xtb) - e_cis) * KCAL_PER_EV).tolist()
        report[f"{name}_profile_kcal_mol"] = profile
        report[f"{name}_highest_kcal_mol"] = max(profile)
    return report


def _azobenzene_profiles(calculator_factory) -> Tuple[dict, Atoms, Dict[str, List[Atoms]]]:
    """The method's profiles (kcal/mol from its cis minimum), its cis minimum, and its relaxed rotation
    and inversion scan points."""
    _, n1, n2, c2 = AZOBENZENE_CNNC
    cis = lowest_minimum("cis", calculator_factory)
    trans = lowest_minimum("trans", calculator_factory)
    torsion = Dihedral(*AZOBENZENE_CNNC)
    cnnc = (torsion.value(cis) + 180.0) % 360.0 - 180.0  # (-180, 180]
    side = 1.0 if cnnc >= 0 else -1.0  # turn the way the minimum already leans
    twists = side * np.arange(np.floor(abs(cnnc) / 10.0) * 10.0 + 10.0, 171.0, 10.0)
    rotation = relaxed_scan(cis, calculator_factory(), torsion, twists, fmax=FMAX, steps=500)
    linear = cis.get_distance(n1, n2) + cis.get_distance(n2, c2)
    distances = np.linspace(cis.get_distance(n1, c2), linear - 0.002, 12)[1:]
    inversion = relaxed_scan(cis, calculator_factory(), Distance(n1, c2), distances, fmax=FMAX, steps=500)
    e_cis = cis.info["energy"]
    profiles = {
        "cis_cnnc_deg": cnnc,
        "trans_cnnc_deg": torsion.value(trans),
        "trans_minus_cis_kcal_mol": (trans.info["energy"] - e_cis) * KCAL_PER_EV,
        "rotation_barrier_kcal_mol": float(rotation.energies.max() - e_cis) * KCAL_PER_EV,
        "inversion_barrier_kcal_mol": float(inversion.energies.max() - e_cis) * KCAL_PER_EV,
        "rotation_cnnc_deg": twists.tolist(),
        "rotation_profile_kcal_mol": ((rotation.energies - e_cis) * KCAL_PER_EV).tolist(),
        "rotation_unconverged": rotation.unconverged,
        "inversion_distance_angstrom": inversion.targets[:, 0].tolist(),
        "inversion_profile_kcal_mol": ((inversion.energies - e_cis) * KCAL_PER_EV).tolist(),
        "inversion_unconverged": inversion.unconverged,
    }
    return profiles, cis, {"rotation": rotation.images, "inversion": inversion.images}


WATER_NPT_SEEDS = (7, 1, 2, 3)  # 7: the demo's own (water_npt's default)
WATER_NPT_HOT_K = 400.0


def water_npt_check(potential: mlcalc.Potential) -> dict:
    """The demo's water NPT run (its default length, 2 ps) per seed: second-half mean and largest T (K),
    longest O-H (Å)."""
    runs = {}
    for seed in WATER_NPT_SEEDS:
        run = water_npt(potential, DemoOptions().md_ps, seed=seed)
        half = len(run.temperatures) // 2
        runs[str(seed)] = {
            "mean_temperature_K": float(run.temperatures[half:].mean()),
            "max_temperature_K": float(run.temperatures.max()),
            "longest_oh_angstrom": float(run.longest_oh.max()),
            "density_g_cm3": float(run.densities[half:].mean()),
        }
    hottest = max(run["max_temperature_K"] for run in runs.values())
    return {"seeds": runs, "heats": bool(hottest > WATER_NPT_HOT_K)}


def md_stability(potential: mlcalc.Potential, picoseconds: float, names: List[str]) -> Dict[str, dict]:
    rng = np.random.default_rng(SEED)
    systems = {
        "butane": butane()[0],
        "azobenzene_trans": geometry("azobenzene_trans"),
        "azobenzene_cis": geometry("azobenzene_cis"),
        "alanine_dipeptide": geometry("alanine_dipeptide"),
        "water_cluster_6": water_cluster(6, rng),
        "water_box_27": water_box(3, rng),
    }
    report: Dict[str, dict] = {}
    for name, atoms in systems.items():
        if names and name not in names:
            continue
        report[name] = md_run(potential, atoms, picoseconds, rng)
        print(name, report[name], flush=True)
    return report


def md_run(potential: mlcalc.Potential, atoms: Atoms, picoseconds: float, rng: np.random.Generator) -> dict:
    """Langevin NVT at 300 K (0.5 fs, friction 2/ps); bond stretch and non-hierarchicality every 100 fs."""
    began = time.perf_counter()
    atoms.calc = mlcalc.MLCalculator(potential)
    pairs = water_bonds(atoms) if atoms.pbc.any() else bonds(atoms)
    start_lengths = np.array([atoms.get_distance(i, j, mic=True) for i, j in pairs])
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=rng)
    Stationary(atoms)
    dynamics = Langevin(atoms, 0.5 * units.fs, temperature_K=300, friction=0.002 / units.fs, fixcm=False, rng=rng)
    stretch: List[float] = []
    hierarchy: List[float] = []
    temperatures: List[float] = []

    def observe() -> None:
        lengths = np.array([atoms.get_distance(i, j, mic=True) for i, j in pairs])
        stretch.append(float((lengths / start_lengths).max()))
        hierarchy.append(structure_non_hierarchicality(potential, atoms))
        temperatures.append(float(atoms.get_temperature()))

    dynamics.attach(observe, interval=200)
    dynamics.run(int(round(picoseconds * 1000 / 0.5)))
    return {
        "picoseconds": picoseconds,
        "atoms": len(atoms),
        "bonds": len(pairs),
        "max_bond_stretch_ratio": max(stretch),
        "intact": bool(max(stretch) < 1.5),
        "mean_temperature_K": float(np.mean(temperatures[len(temperatures) // 5 :])),
        "non_hierarchicality_max": max(hierarchy),
        "non_hierarchicality_median": float(np.median(hierarchy)),
        "wall_s": time.perf_counter() - began,
    }


def merge_reports(parts: List[dict]) -> dict:
    """One report from the reports of one potential written by separate processes.

    Each part holds the static results or some MD systems (``--skip-static --md-systems ...``); a result
    that two parts hold, parts of different potentials or MD runs of different lengths are refused. Parts
    are told apart by the potential's name and, in the reports that record it (those written after v15's
    MD runs), its file's SHA-256: every demo candidate has the same name, so parts without a hash are
    checked by name only. ``wall_s`` is the sum of the parts' (core seconds).
    """
    names = sorted({part["potential"] for part in parts})
    hashes = sorted({part["potential_sha256"] for part in parts if "potential_sha256" in part})
    if len(names) != 1 or len(hashes) > 1:
        raise ValueError(
            f"the parts validate different potential files (names {names}, SHA-256 {hashes}): "
            "merge the reports of one file"
        )
    merged: dict = {"potential": names[0]}
    if hashes:
        merged["potential_sha256"] = hashes[0]
    md: Dict[str, dict] = {}
    for part in parts:
        for key, value in part.items():
            if key in ("potential", "potential_sha256", "wall_s", "md_note"):
                continue
            into, results = (md, value) if key == "md_stability" else (merged, {key: value})
            held = into.keys() & results.keys()
            if held:
                raise ValueError(f"{sorted(held)} appear in two parts: give each result once")
            into.update(results)
    merged["wall_s"] = sum(part["wall_s"] for part in parts)
    if md:
        lengths = sorted({run["picoseconds"] for run in md.values()})
        if len(lengths) != 1:
            raise ValueError(f"the MD runs have different lengths {lengths} ps: merge runs of one length")
        processes = sum("md_stability" in part for part in parts)
        merged["md_stability"] = md
        merged["md_note"] = (
            f"{lengths[0]:g} ps per system, run in {processes} process{'es' if processes > 1 else ''} "
            "(--skip-static --md-systems ...), merged"
        )
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m training validate")
    parser.add_argument("--md-ps", type=float, default=100.0, help="NVT MD length per molecule (ps)")
    parser.add_argument("--skip-md", action="store_true")
    parser.add_argument("--skip-static", action="store_true", help="MD only: no test set, scans or barriers")
    parser.add_argument(
        "--md-systems", default="", help="comma-separated MD systems (default: all), to run them in separate processes"
    )
    parser.add_argument("--potential", default="demo", help="the potential file to validate (default: the bundled)")
    parser.add_argument("--output", type=Path, default=VALIDATION, help="the report to write")
    parser.add_argument(
        "--merge", type=Path, nargs="+", default=None, help="join reports of one potential into --output; runs nothing"
    )
    args = parser.parse_args()
    if args.merge:
        atomic_write_json(args.output, merge_reports([json.loads(path.read_text()) for path in args.merge]))
        print(f"wrote {args.output}")
        return
    began = time.perf_counter()
    potential = mlcalc.load(args.potential, device="cpu")
    sha256 = file_sha256(resolve_potential_path(args.potential))
    report: dict = {"potential": potential.name, "potential_sha256": sha256}
    if not args.skip_static:
        errors = split_errors(potential)
        report["test_set"], report["training_set"] = errors["test"], errors["train"]
        report["butane_scan"] = butane_scan(potential)
        report["azobenzene"] = azobenzene_barriers(potential)
        report["water_npt"] = water_npt_check(potential)
        print("water_npt", report["water_npt"], flush=True)
        atomic_write_json(args.output, report)
    if not args.skip_md:
        names = [name for name in args.md_systems.split(",") if name]
        report["md_stability"] = md_stability(potential, args.md_ps, names)
    report["wall_s"] = time.perf_counter() - began
    atomic_write_json(args.output, report)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
