"""Stage 3: train HIP-NN on the labelled data (float32, CPU), with checkpoints and resume.

``python -m training train [--minutes 40] [--checkpoint PATH] [--threads 1] [--init CHECKPOINT]
[--energy-weight 50]``.
Energies are fitted relative to a least-squares energy per species (float64, stored in the checkpoint
and added back to Ê^0 at export), so float32 keeps their precision. Loss (eV, Å): ENERGY_WEIGHT · mean_s
(ΔE_s)²/N_s + mean(ΔF²); the energy weight makes an energy error of 0.5 kcal/mol cost about as much as a
force error of 1 kcal/mol/Å in a 25-atom molecule (``--energy-weight``, stored in the checkpoint);
structures with a force above ``MAX_TRAINING_FORCE`` are left out of training and model selection. Adam
with a cosine learning-rate schedule over the wall-clock budget (from ``--lr`` down to ``--lr`` / 100,
after a short linear warm-up); the budget and the time spent are stored in the checkpoint, so a rerun
resumes the same schedule. The model with the best validation score, E MAE / 0.5 kcal/mol + F MAE / 1
kcal/mol/Å (the errors measured against their targets), is kept in the checkpoint (written atomically
each epoch).
``--init`` starts a new checkpoint from another one's best model and energy reference (active learning:
the same architecture trained further on more data).
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

import numpy as np
import torch

from mlcalc.models.hipnn import HCNO, HIPNN
from training.common import CHECKPOINT, KCAL_PER_EV, SEED, checkpoint_state
from training.dataset import collate, load_graphs, predict, self_energy_fit, split, to_float32

#: Shifted softplus and residual on-site layers since runs/v7 (runs/v2-v6: softplus, no residual): from
#: scratch on 128 butane frames, 10,000 steps, they reach a force MAE of 1.65 (fit) / 2.42 (held out)
#: kcal/mol/Å against 2.78 / 3.81 (training/README.md, capacity probe).
HYPERPARAMETERS = dict(
    species=list(HCNO),
    n_features=64,
    n_interactions=2,
    n_onsite=2,
    n_sensitivities=20,
    cutoff=5.0,
    min_distance=0.8,
    activation="shifted_softplus",
    residual=True,
)
BATCH_SIZE = 16
ENERGY_WEIGHT = 50.0
WARMUP_FRACTION = 0.02
FINAL_LR_FRACTION = 0.01
GRADIENT_CLIP = 10.0  # largest gradient norm of one step
TARGETS = {"energy_mae": 0.5, "force_mae": 1.0}  # kcal/mol, kcal/mol/Å: the model-selection scale
#: Structures with a larger force (eV/Å, ~460 kcal/mol/Å) are left out of training and model selection:
#: atoms run into each other (0.09 Å apart in one explored frame, 46,556 kcal/mol/Å), far outside
#: anything MD at 900 K visits, and squared errors there outweighed all the other structures together.
MAX_TRAINING_FORCE = 20.0


def score(metrics: dict) -> float:
    """Model-selection score: the validation MAEs in units of their targets (lower is better)."""
    return sum(metrics[key] / target for key, target in TARGETS.items())


def loss_terms(out: dict, batch: dict, energy_weight: float = ENERGY_WEIGHT) -> torch.Tensor:
    """The training loss of one batch (see the module docstring)."""
    energy = ((out["energy"] - batch["energy"]) ** 2 / batch["n_atoms"]).mean()
    return energy_weight * energy + ((out["forces"] - batch["forces"]) ** 2).mean()


def evaluate(model, graphs, indices, energy_weight: float = ENERGY_WEIGHT) -> dict:
    """Energy and force MAE (kcal/mol, kcal/mol/Å) and the mean batch loss over ``indices``."""
    e_err, f_err, loss = [], [], 0.0
    for start in range(0, len(indices), 64):
        batch = collate([graphs[k] for k in indices[start : start + 64]])
        out = predict(model, batch, create_graph=False)
        e_err.append((out["energy"] - batch["energy"]).detach().abs())
        f_err.append((out["forces"] - batch["forces"]).detach().abs().flatten())
        loss += float(loss_terms(out, batch, energy_weight).detach()) * len(batch["n_atoms"])
    return {
        "energy_mae": float(torch.cat(e_err).mean()) * KCAL_PER_EV,
        "force_mae": float(torch.cat(f_err).mean()) * KCAL_PER_EV,
        "loss": loss / len(indices),
    }


def below_force_limit(forces) -> bool:
    """Whether a structure's largest force (eV/Å; [n, 3] tensor or array) is at most ``MAX_TRAINING_FORCE``."""
    return float(torch.as_tensor(forces).norm(dim=1).max()) <= MAX_TRAINING_FORCE


def within_force_limit(graphs, indices) -> list:
    """``indices`` without the structures whose largest force exceeds ``MAX_TRAINING_FORCE``."""
    return [k for k in indices if below_force_limit(graphs[k].forces)]


def learning_rate(peak: float, progress: float) -> float:
    """Linear warm-up, then cosine decay to FINAL_LR_FRACTION · peak; ``progress`` in [0, 1]."""
    if progress < WARMUP_FRACTION:
        return peak * max(progress / WARMUP_FRACTION, 0.05)
    t = min((progress - WARMUP_FRACTION) / (1.0 - WARMUP_FRACTION), 1.0)
    return peak * (FINAL_LR_FRACTION + (1.0 - FINAL_LR_FRACTION) * 0.5 * (1.0 + math.cos(math.pi * t)))


def save(state: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m training train")
    parser.add_argument(
        "--minutes", type=float, default=None, help="wall-clock length of the whole schedule (40; resumed: as stored)"
    )
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate")
    parser.add_argument("--checkpoint", type=Path, default=CHECKPOINT)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: the machine is shared)")
    parser.add_argument(
        "--energy-weight", type=float, default=None, help=f"energy loss weight ({ENERGY_WEIGHT}; resumed: as stored)"
    )
    parser.add_argument(
        "--init", type=Path, default=None, help="a new run starts from this checkpoint's best model (same architecture)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    began = time.perf_counter()
    torch.manual_seed(SEED)
    graphs = load_graphs(HYPERPARAMETERS["cutoff"])
    parts = split(graphs)
    reference = self_energy_fit([graphs[k] for k in parts["train"]], len(HCNO))
    model = HIPNN(**HYPERPARAMETERS).float()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    epoch, best, spent, budget = 0, float("inf"), 0.0, 60.0 * (args.minutes or 40.0)
    if args.checkpoint.exists():
        state = checkpoint_state(args.checkpoint)
        if state["hyperparameters"] != HYPERPARAMETERS or "best_score" not in state:
            raise SystemExit(f"{args.checkpoint} holds another architecture or schedule: pass a new --checkpoint")
        if state["split"] != parts:
            raise SystemExit(f"{args.checkpoint} was trained on other data: start a new --checkpoint (--init it)")
        reference = state["self_energy_reference"]
        model.load_state_dict(state["last_model"])
        optimizer.load_state_dict(state["optimizer"])
        epoch, best, spent = state["epoch"], state["best_score"], state["seconds_spent"]
        if state.get("max_training_force") != MAX_TRAINING_FORCE:
            raise SystemExit(f"{args.checkpoint} was trained with another force limit: start a new --checkpoint")
        stored_weight = state.get("energy_weight", ENERGY_WEIGHT)
        if args.energy_weight is not None and args.energy_weight != stored_weight:
            raise SystemExit(f"{args.checkpoint} has energy weight {stored_weight}: start a new --checkpoint")
        budget = 60.0 * args.minutes if args.minutes is not None else state["seconds_budget"]
        print(f"resumed at epoch {epoch} ({spent:.0f} of {budget:.0f} s), best validation score {best:.3f}", flush=True)
    else:
        if args.init is not None:
            start = checkpoint_state(args.init)
            if start["hyperparameters"] != HYPERPARAMETERS:
                raise SystemExit(f"{args.init} holds another architecture: it cannot start this run")
            model.load_state_dict(start["best_model"])
            reference = start["self_energy_reference"]  # the energy zero the model was trained against
            print(f"starting from the best model of {args.init} (epoch {start['epoch']})", flush=True)
        state = {"hyperparameters": HYPERPARAMETERS, "split": parts, "self_energy_reference": reference}
        state["energy_weight"] = ENERGY_WEIGHT if args.energy_weight is None else args.energy_weight
        state["max_training_force"] = MAX_TRAINING_FORCE
    energy_weight = state.get("energy_weight", ENERGY_WEIGHT)
    graphs = [to_float32(g, reference) for g in graphs]
    rng = np.random.default_rng(SEED + epoch)
    print(f"{len(graphs)} structures: " + ", ".join(f"{k} {len(v)}" for k, v in parts.items()), flush=True)
    print(f"{sum(p.numel() for p in model.parameters())} parameters, {torch.get_num_threads()} threads", flush=True)
    train = np.array(within_force_limit(graphs, parts["train"]))
    validation = within_force_limit(graphs, parts["validation"])
    print(
        f"left out above {MAX_TRAINING_FORCE} eV/Å: {len(parts['train']) - len(train)} training and "
        f"{len(parts['validation']) - len(validation)} validation structures",
        flush=True,
    )
    resumed_at, spent_before = time.perf_counter(), spent
    while spent < budget:
        model.train()
        order = rng.permutation(train)
        for start in range(0, len(order), BATCH_SIZE):
            spent = spent_before + time.perf_counter() - resumed_at
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(args.lr, spent / budget)
            batch = collate([graphs[k] for k in order[start : start + BATCH_SIZE]])
            loss = loss_terms(predict(model, batch, create_graph=True), batch, energy_weight)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), GRADIENT_CLIP)
            optimizer.step()
        epoch += 1
        metrics = evaluate(model, graphs, validation, energy_weight)
        if score(metrics) < best:
            best = score(metrics)
            state["best_model"] = {k: v.clone() for k, v in model.state_dict().items()}
            state["best_validation"] = metrics
        spent = spent_before + time.perf_counter() - resumed_at
        state.update(
            last_model=model.state_dict(),
            optimizer=optimizer.state_dict(),
            epoch=epoch,
            best_score=best,
            seconds_spent=spent,
            seconds_budget=budget,
        )
        save(state, args.checkpoint)
        print(
            f"epoch {epoch:4d}  {time.perf_counter() - began:6.0f} s  lr {optimizer.param_groups[0]['lr']:.1e}  "
            f"validation: E MAE {metrics['energy_mae']:.3f} kcal/mol, F MAE {metrics['force_mae']:.3f} kcal/mol/Å",
            flush=True,
        )


if __name__ == "__main__":
    main()
