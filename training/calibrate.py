"""Stage: do the demo's committee spread and non-hierarchicality rank its real errors? Writes
training/data/calibration.json and docs/img/calibration-demo.png (and calibration-demo-committee.png).

``python -m training calibrate [--potential FILE] [--bins N] [--output JSON] [--plot PNG]``

On the held-out test structures of training/dataset.py's split (never fitted), each structure's
non-hierarchicality (``mlcalc.models.hipnn.structure_non_hierarchicality``, dimensionless) is set against
its energy error per atom, |E_demo − E_GFN2-xTB| / N (meV/atom): per atom because the non-hierarchicality
is a ratio that does not grow with the structure, while total-energy errors do (the 81-atom water boxes
would rank above every molecule whatever the signal). The per-structure error is reported too, and
Spearman's ρ within each family (whether the signal ranks structures of one kind). For a committee file
(the bundled demo is one) the same for the members' energy spread (``energy_uncertainty``, eV, per atom
and per structure).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import mlcalc
from mlcalc.models.hipnn import structure_non_hierarchicality
from mlcalc.uncertainty import calibration, plot_calibration
from training.common import DATA, ROOT, atomic_write_json
from training.dataset import load_labelled, split
from training.label import structures

OUTPUT = DATA / "calibration.json"
PLOT = ROOT.parent / "docs" / "img" / "calibration-demo.png"
COMMITTEE_PLOT = ROOT.parent / "docs" / "img" / "calibration-demo-committee.png"


class _Labels:
    """The attributes split() reads."""

    def __init__(self, family: str, origin: str):
        self.family = family
        self.origin = origin


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m training calibrate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--potential", default="demo", help="HIP-NN potential file (default: the bundled demo)")
    parser.add_argument("--bins", type=int, default=10, help="equal-count bins (default 10)")
    parser.add_argument("--output", type=Path, default=OUTPUT, help=f"JSON report (default {OUTPUT})")
    parser.add_argument("--plot", type=Path, default=PLOT, help=f"PNG (default {PLOT})")
    args = parser.parse_args()

    potential = mlcalc.load(args.potential, device="cpu")
    data = load_labelled()
    frames = structures(data)
    labels = [_Labels(str(f), str(o)) for f, o in zip(data["family"], data["origin"])]
    test = split(labels)["test"]
    members = [frames[k] for k in test]
    reference = np.array([float(data["energy"][k]) for k in test])
    families = np.array([labels[k].family for k in test])
    results = potential.evaluate(members, forces=False, stress=False)
    predicted = np.array([r["energy"] for r in results])
    atoms = np.array([len(a) for a in members])
    hierarchy = np.array([structure_non_hierarchicality(potential, a) for a in members])
    per_atom = np.abs(predicted - reference) / atoms * 1000.0  # meV/atom
    per_structure = np.abs(predicted - reference)  # eV

    main_result = calibration(hierarchy, per_atom, bins=args.bins)
    structure_result = calibration(hierarchy, per_structure, bins=args.bins)
    by_family = {}
    for family in sorted(set(families)):
        chosen = families == family
        entry = {"structures": int(chosen.sum()), "energy_mae_meV_per_atom": float(per_atom[chosen].mean())}
        if chosen.sum() >= 3 and np.ptp(hierarchy[chosen]) > 0:
            bins = max(1, min(args.bins, int(chosen.sum()) // 10))
            entry["spearman_per_atom"] = calibration(hierarchy[chosen], per_atom[chosen], bins=bins).spearman
        by_family[family] = entry
    decile = len(members) // 10
    flagged = set(np.argsort(-hierarchy, kind="stable")[:decile].tolist())
    worst = set(np.argsort(-per_atom, kind="stable")[:decile].tolist())
    report = {
        "potential": str(args.potential),
        "structures": len(members),
        "spread": "non-hierarchicality (dimensionless)",
        "per_atom_error_meV": main_result.as_dict(),
        "per_structure_error_eV": structure_result.as_dict(),
        "by_family": by_family,
        # Of the tenth of the structures with the largest errors per atom, how many the tenth with the largest
        # non-hierarchicality holds (chance: a tenth of them).
        "worst_decile_in_top_decile": {"structures": decile, "found": len(flagged & worst)},
    }
    if potential.metadata.committee:
        spread = np.array([r["energy_uncertainty"] for r in results])  # eV
        spread_per_atom = spread / atoms * 1000.0  # meV/atom
        committee = calibration(spread_per_atom, per_atom, bins=args.bins)
        report["committee_spread"] = {
            "spread": "standard deviation of the members' energies (energy_uncertainty)",
            "per_atom_error_meV": committee.as_dict(),
            "per_structure_error_eV": calibration(spread, per_structure, bins=args.bins).as_dict(),
            "within_1_spread": float(np.mean(per_structure <= spread)),
            "within_2_spreads": float(np.mean(per_structure <= 2 * spread)),
        }
        plot_calibration(
            committee,
            args.plot.with_name(args.plot.stem + "-committee.png"),
            spread=spread_per_atom,
            error=per_atom,
            spread_label="committee energy spread per atom, meV",
            error_label="|E − E(GFN2-xTB)| per atom, meV",
            log=True,
            identity=True,
            title=f"held-out test set: Spearman ρ = {committee.spearman:.2f} (n = {committee.count})",
        )
        within = report["committee_spread"]
        print(
            f"calibrate: committee spread per atom Spearman rho {committee.spearman:.3f}; errors within 1 / 2 "
            f"spreads {within['within_1_spread']:.2f} / {within['within_2_spreads']:.2f}"
        )
    atomic_write_json(args.output, report)
    plot_calibration(
        main_result,
        args.plot,
        spread=hierarchy,
        error=per_atom,
        spread_label="non-hierarchicality (demo HIP-NN)",
        error_label="|E − E(GFN2-xTB)| per atom, meV",
        log=True,
        title=f"held-out test set: Spearman ρ = {main_result.spearman:.2f} (n = {main_result.count})",
    )
    print(
        f"calibrate: {len(members)} test structures; Spearman rho per atom {main_result.spearman:.3f}, "
        f"per structure {structure_result.spearman:.3f}; of the {decile} worst per atom, {len(flagged & worst)} are "
        f"among the {decile} of largest non-hierarchicality; {args.output}, {args.plot}"
    )
    for family, entry in by_family.items():
        print(f"  {family}: {entry}")
