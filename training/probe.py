"""Capacity probe: how fast a HIP-NN architecture fits a small subset of one family, from scratch.

``python -m training probe [--family butane] [--structures 128] [--steps 10000] [--lr 1e-3]
[--activation softplus|shifted_softplus] [--residual|--no-residual] [--features 64] [--interactions 2]
[--output JSON]``; the architecture options default to train.py's.

A cheap (minutes on one core) comparison of architectures before a run of hours: fit the first
``--structures`` training structures of ``--family`` (below the force limit of train.py, a fixed random
choice) with train.py's loss, batch size and gradient clipping, Adam with a cosine decay from ``--lr``
to ``--lr``/100 over ``--steps`` (no warm-up, unlike train.py), and report the energy and force MAE
(kcal/mol, kcal/mol/Å; train.py's ``evaluate``) on them ("fit": what the architecture can represent in
that many steps) and on the next ``--structures`` ones ("held": what it learnt) five times along the way.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from mlcalc.models.hipnn import ACTIVATION_SHIFTS, HIPNN
from training.common import atomic_write_json
from training.dataset import collate, load_graphs, predict, self_energy_fit, split, to_float32
from training.train import (
    BATCH_SIZE,
    FINAL_LR_FRACTION,
    GRADIENT_CLIP,
    HYPERPARAMETERS,
    evaluate,
    loss_terms,
    within_force_limit,
)

REPORTS = 5


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m training probe")
    parser.add_argument("--family", default="butane")
    parser.add_argument("--structures", type=int, default=128, help="structures fitted (and as many held out)")
    parser.add_argument("--steps", type=int, default=10000)
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    parser.add_argument("--activation", choices=sorted(ACTIVATION_SHIFTS), default=HYPERPARAMETERS["activation"])
    parser.add_argument(
        "--residual", action=argparse.BooleanOptionalAction, default=HYPERPARAMETERS["residual"], help="on-site layers"
    )
    parser.add_argument("--features", type=int, default=HYPERPARAMETERS["n_features"])
    parser.add_argument("--interactions", type=int, default=HYPERPARAMETERS["n_interactions"])
    parser.add_argument("--output", type=Path, default=None, help="also write the report here (JSON)")
    args = parser.parse_args()
    graphs = load_graphs(HYPERPARAMETERS["cutoff"])
    parts = split(graphs)
    reference = self_energy_fit([graphs[k] for k in parts["train"]], len(HYPERPARAMETERS["species"]))
    graphs = [to_float32(g, reference) for g in graphs]
    members = [k for k in within_force_limit(graphs, parts["train"]) if graphs[k].family == args.family]
    members = np.random.default_rng(0).permutation(members)
    fit = members[: args.structures].tolist()
    held = members[args.structures : 2 * args.structures].tolist()
    if len(held) < args.structures:
        raise SystemExit(f"{args.family} has {len(members)} training structures: fewer than 2 × --structures")
    architecture = dict(
        HYPERPARAMETERS,
        activation=args.activation,
        residual=args.residual,
        n_features=args.features,
        n_interactions=args.interactions,
    )
    torch.manual_seed(1)
    model = HIPNN(**architecture).float()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    order_rng = np.random.default_rng(1)
    history, step, began = [], 0, time.perf_counter()
    while step < args.steps:
        order = order_rng.permutation(len(fit))
        for start in range(0, len(order), BATCH_SIZE):
            cosine = 0.5 * (1.0 + math.cos(math.pi * step / args.steps))
            for group in optimizer.param_groups:
                group["lr"] = args.lr * (FINAL_LR_FRACTION + (1.0 - FINAL_LR_FRACTION) * cosine)
            batch = collate([graphs[fit[k]] for k in order[start : start + BATCH_SIZE]])
            loss = loss_terms(predict(model, batch, create_graph=True), batch)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), GRADIENT_CLIP)
            optimizer.step()
            step += 1
            if step % max(args.steps // REPORTS, 1) == 0:
                fitted, learnt = evaluate(model, graphs, fit), evaluate(model, graphs, held)
                history.append({"step": step, "fit": fitted, "held": learnt})
                print(
                    f"step {step:6d}  {time.perf_counter() - began:5.0f} s  force MAE fit "
                    f"{history[-1]['fit']['force_mae']:.3f}, held {history[-1]['held']['force_mae']:.3f} kcal/mol/Å",
                    flush=True,
                )
            if step >= args.steps:
                break
    report = {key: getattr(args, key) for key in ("family", "structures", "steps", "lr")}
    report["architecture"] = {key: value for key, value in architecture.items() if key != "species"}
    report["history"] = history
    print(json.dumps(report))
    if args.output is not None:
        atomic_write_json(args.output, report)


if __name__ == "__main__":
    main()
