"""Stage 4: export the best checkpoint as the bundled potential mlcalc/data/demo.pt (float64, eV, Å).

``python -m training export [--checkpoint PATH] [--committee NPZ] [--output FILE]`` (``--output`` to try a
candidate first; ``--committee`` the offsets of ``python -m training committee``: the file is then a last-layer
committee around the checkpoint's model, whose mean is that model).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

import mlcalc
from mlcalc.models.last_layer import LastLayerCommittee
from training.committee import OFFSETS
from training.common import BUNDLED, CHECKPOINT, LABELLED, checkpoint_state, trained_model


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m training export")
    parser.add_argument("--checkpoint", type=Path, default=CHECKPOINT)
    parser.add_argument("--output", type=Path, default=BUNDLED, help="the potential file to write")
    parser.add_argument("--committee", type=Path, help="committee offsets (training/committee.py) to add")
    args = parser.parse_args()
    state = checkpoint_state(args.checkpoint)
    model = trained_model(state)
    exported: torch.nn.Module = model
    committee_note, committee_report = "", {}
    if args.committee:
        offsets = np.load(args.committee)
        exported = LastLayerCommittee(model, *(torch.from_numpy(offsets[key]) for key in OFFSETS))
        committee_note = (
            f" A committee of {len(offsets['self_energy_offsets'])} members sharing every layer but the energy heads "
            "(training/committee.py): the energy is the trained model's, the members' spread an uncertainty "
            "calibrated on held-out data."
        )
        committee_report = {"committee": json.loads(args.committee.with_suffix(".json").read_text())}
    data = np.load(LABELLED)
    families, counts = np.unique(data["family"], return_counts=True)
    metadata = mlcalc.export(
        exported,
        args.output,
        name="mlcalc-demo-hipnn-gfn2xtb",
        description=(
            "Demonstration HIP-NN for H, C, N, O trained on GFN2-xTB (tblite) energies and forces of butane, "
            "azobenzene (cis, trans, rotation and inversion paths), alanine dipeptide, water clusters and a "
            "periodic water box. Not for production: see mlcalc's docs/model-card.md. Extra per-atom output "
            "'hierarchical_energies' [N, orders] gives the non-hierarchicality." + committee_note
        ),
        references=[
            "N. Lubbers, J. S. Smith, K. Barros, J. Chem. Phys. 148, 241715 (2018) (HIP-NN)",
            "C. Bannwarth, S. Ehlert, S. Grimme, J. Chem. Theory Comput. 15, 1652 (2019) (GFN2-xTB)",
        ],
        dtype="float64",
        compilable=True,  # mlcalc.load("demo", compile=True): the compiled route (mlcalc.compiled)
        extra={
            "hyperparameters": state["hyperparameters"],
            "epochs": state["epoch"],
            "training_structures": {str(f): int(c) for f, c in zip(families, counts)},
            "split": {k: len(v) for k, v in state["split"].items()},
            "best_validation": state.get("best_validation", {}),
            **committee_report,
        },
    )
    print(f"wrote {args.output} ({args.output.stat().st_size / 1e6:.2f} MB): {metadata.name}, epoch {state['epoch']}")


if __name__ == "__main__":
    main()
