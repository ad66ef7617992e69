"""Stage 3: train HIP-NN on the labelled data (float32, CPU, one thread), with checkpoints and resume.

``python -m training train [--minutes 25]``. Energies are fitted relative to a least-squares energy per
species (float64, stored in the checkpoint and added back to Ê^0 at export), so float32 keeps their
precision. Loss: Σ_s (ΔE_s)²/N_s / B + mean(ΔF²) (eV, Å). Adam with the
learning rate halved when the validation loss stalls; the best model on the validation set is kept in
training/runs/checkpoint.pt (written atomically each epoch; a rerun resumes from it).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from mlcalc.models.hipnn import HCNO, HIPNN
from training.common import CHECKPOINT, KCAL_PER_EV, RUNS, SEED
from training.dataset import collate, load_graphs, predict, self_energy_fit, split, to_float32

HYPERPARAMETERS = dict(
    species=list(HCNO), n_features=32, n_interactions=2, n_onsite=2, n_sensitivities=16, cutoff=5.0, min_distance=0.8
)
BATCH_SIZE = 16
FORCE_WEIGHT = 1.0


def evaluate(model, graphs, indices) -> dict:
    """Energy and force MAE (kcal/mol, kcal/mol/Å) and the loss over ``indices``."""
    e_err, f_err, loss = [], [], 0.0
    for start in range(0, len(indices), 64):
        batch = collate([graphs[k] for k in indices[start : start + 64]])
        out = predict(model, batch, create_graph=False)
        de = (out["energy"] - batch["energy"]).detach()
        df = (out["forces"] - batch["forces"]).detach()
        e_err.append(de.abs())
        f_err.append(df.abs().flatten())
        loss += float((de**2 / batch["n_atoms"]).sum()) + FORCE_WEIGHT * float((df**2).mean()) * len(de)
    return {
        "energy_mae": float(torch.cat(e_err).mean()) * KCAL_PER_EV,
        "force_mae": float(torch.cat(f_err).mean()) * KCAL_PER_EV,
        "loss": loss / len(indices),
    }


def save(state: dict) -> None:
    RUNS.mkdir(exist_ok=True)
    tmp = CHECKPOINT.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, CHECKPOINT)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m training train")
    parser.add_argument("--minutes", type=float, default=25.0, help="wall-clock budget of this run")
    parser.add_argument("--lr", type=float, default=2e-3)
    args = parser.parse_args()
    began = time.perf_counter()
    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED)
    graphs = load_graphs(HYPERPARAMETERS["cutoff"])
    parts = split(graphs)
    reference = self_energy_fit([graphs[k] for k in parts["train"]], len(HCNO))
    graphs = [to_float32(g, reference) for g in graphs]
    model = HIPNN(**HYPERPARAMETERS).float()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=8)
    epoch, best = 0, float("inf")
    if CHECKPOINT.exists():
        state = torch.load(CHECKPOINT, weights_only=False)
        model.load_state_dict(state["last_model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        epoch, best = state["epoch"], state["best_loss"]
        rng = np.random.default_rng(SEED + epoch)
        print(f"resumed at epoch {epoch}, best validation loss {best:.3e}", flush=True)
    else:
        state = {"hyperparameters": HYPERPARAMETERS, "split": parts, "self_energy_reference": reference}
    print(f"{len(graphs)} structures: " + ", ".join(f"{k} {len(v)}" for k, v in parts.items()), flush=True)
    print(f"{sum(p.numel() for p in model.parameters())} parameters", flush=True)
    train = np.array(parts["train"])
    while time.perf_counter() - began < 60 * args.minutes:
        model.train()
        for start in range(0, len(train), BATCH_SIZE):
            batch = collate([graphs[k] for k in rng.permutation(train)[start : start + BATCH_SIZE]])
            out = predict(model, batch, create_graph=True)
            loss = ((out["energy"] - batch["energy"]) ** 2 / batch["n_atoms"]).mean() + FORCE_WEIGHT * (
                (out["forces"] - batch["forces"]) ** 2
            ).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        epoch += 1
        metrics = evaluate(model, graphs, parts["validation"])
        scheduler.step(metrics["loss"])
        if metrics["loss"] < best:
            best = metrics["loss"]
            state["best_model"] = {k: v.clone() for k, v in model.state_dict().items()}
        state.update(
            last_model=model.state_dict(),
            optimizer=optimizer.state_dict(),
            scheduler=scheduler.state_dict(),
            epoch=epoch,
            best_loss=best,
        )
        save(state)
        print(
            f"epoch {epoch:4d}  {time.perf_counter() - began:6.0f} s  lr {optimizer.param_groups[0]['lr']:.1e}  "
            f"validation: E MAE {metrics['energy_mae']:.3f} kcal/mol, F MAE {metrics['force_mae']:.3f} kcal/mol/Å",
            flush=True,
        )


if __name__ == "__main__":
    main()
