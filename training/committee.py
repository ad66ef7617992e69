"""Stage: a last-layer committee around the demo HIP-NN. Writes training/runs/v15/committee.npz (+ .json).

``python -m training committee [--checkpoint PATH] [--members M] [--seed S] [--output NPZ]``

The members share the model's interaction and on-site layers and differ in the last layer: the energy
per species and the energy heads, whose energy is linear in the features, E = θ · φ(structure) with φ
the atoms' summed block features and element counts (columns scaled to unit variance on the training
split). The last layer's Laplace posterior (last-layer prediction rigidity, Bigi et al., Mach. Learn.:
Sci. Technol. 5, 045018 (2024)) is a Gaussian around the trained θ whose precision is the Gauss-Newton
Hessian of the training loss (training/train.py: energy weight · ΔE²/N per structure, ΔF² per force
component): P = Σ_s (w_E / N_s) φ_s φ_sᵀ + (S / C) Σ_s J_s J_sᵀ + λ I, J_s = ∂φ_s/∂positions, S
structures and C force components (the force term estimated on a random FORCE_SAMPLE training structures
with PROBES random ±1 vectors each, scaled up: see force_gram); covariance α² P⁻¹. Without the force
term, the directions that only the forces pin down get force spreads of eV/Å. The members are M draws,
centred (their mean is the trained model, to round-off) and scaled by √(M/(M−1)) so that their spread
(standard deviation over members, ddof 0) estimates α √(φᵀ P⁻¹ φ). α is calibrated on the validation
split: the mean of (energy error / predicted σ)² is 1. The test split, never used, reports how well the
spread ranks the errors (Spearman) and how often an error falls within one and two spreads, for energies
and for the forces' per-atom spread. No training run: drawing the committee takes minutes.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import torch
import torch.autograd.forward_ad as forward_ad
from scipy.stats import spearmanr

from mlcalc.models.hipnn import HIPNN
from mlcalc.models.last_layer import LastLayerCommittee
from training.common import RUNS, atomic_write_json, atomic_write_npz, checkpoint_state, trained_model
from training.dataset import Graph, collate, load_graphs, split
from training.train import ENERGY_WEIGHT, within_force_limit

CHECKPOINT = RUNS / "v15" / "checkpoint.pt"
OUTPUT = RUNS / "v15" / "committee.npz"
MEMBERS = 8
FORCE_SAMPLE = 2048  # training structures whose Jacobians estimate the force term
PROBES = 4  # random vectors per structure in that estimate
#: LastLayerCommittee's offset arguments, in order (training/export.py reads them from the .npz).
OFFSETS = ("self_energy_offsets", "head_weight_offsets", "head_bias_offsets")
SEED = 15
RIDGE = 1.0  # λ on unit-variance columns: negligible against Φᵀ Φ (diagonal ~ structures), fixes null directions


def load_model(checkpoint: Path) -> Tuple[HIPNN, float]:
    """The checkpoint's best model in float64 with its absolute energies per species (eV), as exported, and
    the energy weight it was trained with."""
    state = checkpoint_state(checkpoint)
    return trained_model(state), float(state.get("energy_weight", ENERGY_WEIGHT))


def _inputs(batch: Dict[str, torch.Tensor], positions: torch.Tensor) -> Dict[str, torch.Tensor]:
    i, j = batch["edge_index"]
    return {
        "species": batch["species"],
        "positions": positions,
        "edge_index": batch["edge_index"],
        "edge_vectors": positions[j] - positions[i] + batch["shift_vectors"],
    }


def _summed_features(model: HIPNN, batch: Dict[str, torch.Tensor], positions: torch.Tensor):
    """φ [B, D] of a batch and the model's energies [B] (eV)."""
    inputs = _inputs(batch, positions)
    blocks = model.block_features(inputs)
    per_atom = torch.cat([*blocks, torch.nn.functional.one_hot(batch["species"], model.n_species).double()], 1)
    n = len(batch["n_atoms"])
    phi = torch.zeros(n, per_atom.shape[1], dtype=torch.float64).index_add(0, batch["batch"], per_atom)
    terms = model.energy_terms(batch["species"], blocks).sum(dim=1)
    return phi, torch.zeros(n, dtype=torch.float64).index_add(0, batch["batch"], terms)


def last_layer_features(model: HIPNN, graphs: List[Graph], batch_size: int = 64) -> Tuple[np.ndarray, np.ndarray]:
    """φ [S, n_blocks · F + n_species] (the summed block features, then element counts) and the model's
    energies [S] (eV) of ``graphs``."""
    features, energies = [], []
    with torch.no_grad():
        for start in range(0, len(graphs), batch_size):
            batch = collate(graphs[start : start + batch_size])
            phi, energy = _summed_features(model, batch, batch["positions"])
            features.append(phi)
            energies.append(energy)
    return torch.cat(features).numpy(), torch.cat(energies).numpy()


def draw_offsets(covariance: np.ndarray, members: int, seed: int) -> np.ndarray:
    """``members`` centred draws [M, D] of N(0, covariance), scaled so that their ddof-0 variance along any
    direction estimates the covariance's."""
    draws = np.random.default_rng(seed).standard_normal((members, covariance.shape[0]))
    draws -= draws.mean(axis=0)
    return np.sqrt(members / (members - 1)) * draws @ np.linalg.cholesky(covariance).T


def split_offsets(offsets: np.ndarray, model: HIPNN) -> Dict[str, np.ndarray]:
    """θ offsets [M, D] in φ's column order → the arrays LastLayerCommittee takes (eV)."""
    n_blocks, n_features = len(model.heads), model.heads[0].weight.shape[1]
    weights = offsets[:, : n_blocks * n_features].reshape(len(offsets), n_blocks, n_features)
    return {
        "head_weight_offsets": weights,
        "head_bias_offsets": np.zeros((len(offsets), n_blocks)),  # the element counts carry the constant
        "self_energy_offsets": offsets[:, n_blocks * n_features :],
    }


def force_gram(model: HIPNN, graphs: List[Graph], scale: np.ndarray, probes: int, seed: int) -> np.ndarray:
    """Σ_s J_s J_sᵀ [D, D] of ``graphs`` in φ's scaled columns, J_s = ∂φ_s/∂positions, estimated as
    Σ_s mean_k (J_s v_k)(J_s v_k)ᵀ over ``probes`` random ±1 vectors v_k (Hutchinson; J v by forward-mode
    differentiation, one pass per probe: the exact Jacobians take one backward pass per column of φ)."""
    generator = torch.Generator().manual_seed(seed)
    gram = np.zeros((len(scale), len(scale)))
    with torch.no_grad():
        for start in range(0, len(graphs), 32):
            batch = collate(graphs[start : start + 32])
            for _ in range(probes):
                signs = torch.randint(0, 2, batch["positions"].shape, generator=generator).to(torch.float64) * 2 - 1
                with forward_ad.dual_level():
                    phi, _ = _summed_features(model, batch, forward_ad.make_dual(batch["positions"], signs))
                    product = forward_ad.unpack_dual(phi).tangent.numpy() / scale  # [B, D]
                gram += product.T @ product / probes
    return gram


def force_spread(committee: LastLayerCommittee, graphs: List[Graph]) -> Tuple[np.ndarray, np.ndarray]:
    """Per atom of ``graphs``: the members' force spread sqrt(1/M Σ_m |F_m − F|²) and the committee's force
    error |F − F_ref| (eV/Å); each member's forces by its own backward pass, as mlcalc computes them."""
    spreads, errors = [], []
    for start in range(0, len(graphs), 32):
        batch = collate(graphs[start : start + 32])
        positions = batch["positions"].clone().requires_grad_(True)
        members = committee(_inputs(batch, positions))["energies_committee"].sum(dim=0)  # [M]: batch totals
        forces = torch.stack(
            [-torch.autograd.grad(members[m], positions, retain_graph=True)[0] for m in range(len(members))]
        )
        mean = forces.mean(dim=0)
        spreads.append(((forces - mean) ** 2).sum(dim=2).mean(dim=0).sqrt().numpy())
        errors.append((mean - batch["forces"]).norm(dim=1).numpy())
    return np.concatenate(spreads), np.concatenate(errors)


def coverage(spread: np.ndarray, error: np.ndarray) -> Dict[str, float]:
    """How well ``spread`` ranks ``error`` (Spearman) and how often the error lies within 1 and 2 spreads."""
    return {
        "spearman": float(spearmanr(spread, error).statistic),
        "within_1_spread": float(np.mean(error <= spread)),
        "within_2_spreads": float(np.mean(error <= 2 * spread)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m training committee", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=CHECKPOINT)
    parser.add_argument("--members", type=int, default=MEMBERS)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()

    model, energy_weight = load_model(args.checkpoint)
    graphs = load_graphs(float(model.mlcalc_metadata["cutoff"]))
    parts = split(graphs)
    train = np.array(within_force_limit(graphs, parts["train"]))  # what training fitted
    validation, test = np.array(parts["validation"]), np.array(parts["test"])
    phi, predicted = last_layer_features(model, graphs)
    atoms = np.array([len(g.species) for g in graphs])
    error = np.array([g.energy for g in graphs]) - predicted

    scale = phi[train].std(axis=0)
    scale[scale == 0] = 1.0
    scaled = phi / scale
    sample = np.random.default_rng(args.seed).choice(train, size=min(FORCE_SAMPLE, len(train)), replace=False)
    components = 3 * atoms[train].sum()
    precision = (
        energy_weight * (scaled[train] / atoms[train, None]).T @ scaled[train]
        + len(train)
        / components
        * len(train)
        / len(sample)
        * force_gram(model, [graphs[k] for k in sample], scale, PROBES, args.seed)
        + RIDGE * np.eye(phi.shape[1])
    )
    covariance = np.linalg.inv(precision)
    sigma = np.sqrt(np.einsum("si,ij,sj->s", scaled, covariance, scaled))  # uncalibrated
    alpha = float(np.sqrt(np.mean((error[validation] / sigma[validation]) ** 2)))
    offsets = draw_offsets(alpha**2 * covariance, args.members, args.seed) / scale  # raw φ columns
    spread = (phi @ offsets.T).std(axis=1)
    parts_of_offsets = split_offsets(offsets, model)
    committee = LastLayerCommittee(model, *(torch.from_numpy(parts_of_offsets[key]) for key in OFFSETS))
    atom_spread, atom_error = force_spread(committee, [graphs[k] for k in test])

    def energies(values: np.ndarray) -> Dict[str, float]:
        per_atom = coverage(values[test] / atoms[test], np.abs(error[test]) / atoms[test])
        return {
            "spearman_per_atom": per_atom["spearman"],
            "spearman_per_structure": coverage(values[test], np.abs(error[test]))["spearman"],
            "within_1_spread": per_atom["within_1_spread"],
            "within_2_spreads": per_atom["within_2_spreads"],
        }

    report = {
        "members": args.members,
        "seed": args.seed,
        "alpha": alpha,
        "energy_weight": energy_weight,
        "structures": {
            "train": len(train),
            "force_sample": len(sample),
            "validation": len(validation),
            "test": len(test),
        },
        "energy_on_test": energies(spread),
        "energy_posterior_on_test": energies(alpha * sigma),  # the limit of infinitely many members
        "forces_per_atom_on_test": coverage(atom_spread, atom_error),
        "test_force_error_mean_eV_per_A": float(atom_error.mean()),
        "test_force_spread_mean_eV_per_A": float(atom_spread.mean()),
    }
    atomic_write_npz(args.output, **parts_of_offsets)
    atomic_write_json(args.output.with_suffix(".json"), report)
    print(f"committee: {args.members} members, alpha {alpha:.3f}; {args.output} and its .json report")
    for key, value in report.items():
        print(f"  {key}: {value}")


if __name__ == "__main__":
    main()
