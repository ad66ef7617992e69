"""The labelled dataset as graphs (ASE neighbour lists, the contract's edges), splits and batching."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence

import numpy as np
import torch
from ase.neighborlist import neighbor_list
from torch import Tensor

from mlcalc.models.hipnn import HCNO
from training.common import EXPLORED, FAMILIES, LABELLED, SEED, TEST_ONLY
from training.label import structures

TEST_FRACTION = 0.1
VALIDATION_FRACTION = 0.05


@dataclass
class Graph:
    """One structure: species index [n], positions [n, 3] Å, edges [2, e], edge shifts (Å) [e, 3]."""

    species: Tensor
    positions: Tensor
    edge_index: Tensor
    shift_vectors: Tensor
    energy: float
    forces: Tensor
    family: str
    origin: str


def load_labelled() -> Dict[str, np.ndarray]:
    """labelled.npz followed by the active-learning rounds of explored.npz when it exists."""
    parts = [dict(np.load(LABELLED))] + ([dict(np.load(EXPLORED))] if EXPLORED.exists() else [])
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def load_graphs(cutoff: float) -> List[Graph]:
    data = load_labelled()
    lookup = np.full(119, -1)
    lookup[list(HCNO)] = np.arange(len(HCNO))
    graphs = []
    offsets = np.concatenate([[0], np.cumsum(data["n_atoms"])])
    for s, atoms in enumerate(structures(data)):
        i, j, shifts = neighbor_list("ijS", atoms, cutoff)
        graphs.append(
            Graph(
                species=torch.from_numpy(lookup[atoms.numbers]),
                positions=torch.from_numpy(atoms.positions.copy()),
                edge_index=torch.from_numpy(np.stack([i, j])),
                shift_vectors=torch.from_numpy(shifts @ atoms.cell.array),
                energy=float(data["energy"][s]),
                forces=torch.from_numpy(data["forces"][offsets[s] : offsets[s + 1]].copy()),
                family=str(data["family"][s]),
                origin=str(data["origin"][s]),
            )
        )
    return graphs


def explored(graph) -> bool:
    """Whether a structure comes from an active-learning round (training/explore.py)."""
    return graph.origin.startswith("explore")


def split(graphs: Sequence[Graph]) -> Dict[str, List[int]]:
    """Per-family random split (fixed seed): 10 % test, 5 % validation, the rest training; the families
    in TEST_ONLY all test. The explored structures are split on their own (another seed), so the split
    of the first data set never changes and a model trained on it can be trained further."""
    first, rounds = np.random.default_rng(SEED), np.random.default_rng(SEED + 1)
    parts: Dict[str, List[int]] = {"train": [], "validation": [], "test": []}
    for family in FAMILIES:
        for rng, was_explored in ((first, False), (rounds, True)):
            group = [k for k, g in enumerate(graphs) if g.family == family and explored(g) == was_explored]
            members = rng.permutation(np.array(group, dtype=int))
            _assign(parts, members, test_only=family in TEST_ONLY and not was_explored)
    return parts


def _assign(parts: Dict[str, List[int]], members: np.ndarray, test_only: bool) -> None:
    if test_only:
        parts["test"] += members.tolist()
    else:
        n_test = int(round(TEST_FRACTION * len(members)))
        n_val = int(round(VALIDATION_FRACTION * len(members)))
        parts["test"] += members[:n_test].tolist()
        parts["validation"] += members[n_test : n_test + n_val].tolist()
        parts["train"] += members[n_test + n_val :].tolist()


def collate(graphs: Sequence[Graph]) -> Dict[str, Tensor]:
    """Concatenate graphs into one batch (the contract's input keys plus targets)."""
    counts = torch.tensor([len(g.species) for g in graphs])
    offsets = torch.cumsum(counts, 0) - counts
    return {
        "species": torch.cat([g.species for g in graphs]),
        "positions": torch.cat([g.positions for g in graphs]),
        "edge_index": torch.cat([g.edge_index + o for g, o in zip(graphs, offsets)], dim=1),
        "shift_vectors": torch.cat([g.shift_vectors for g in graphs]),
        "batch": torch.repeat_interleave(torch.arange(len(graphs)), counts),
        "n_atoms": counts,
        "energy": torch.tensor([g.energy for g in graphs], dtype=graphs[0].positions.dtype),
        "forces": torch.cat([g.forces for g in graphs]),
    }


def predict(model: torch.nn.Module, batch: Dict[str, Tensor], create_graph: bool) -> Dict[str, Tensor]:
    """Energies [B] (eV), forces [N, 3] (eV/Å) and per-order structure energies [B, n_orders]."""
    positions = batch["positions"].clone().requires_grad_(True)
    i, j = batch["edge_index"]
    inputs = {
        "species": batch["species"],
        "positions": positions,
        "edge_index": batch["edge_index"],
        "edge_vectors": positions[j] - positions[i] + batch["shift_vectors"],
    }
    terms = model.hierarchical_energies(inputs)
    n_structures = len(batch["n_atoms"])
    per_order = torch.zeros((n_structures, terms.shape[1]), dtype=terms.dtype).index_add(0, batch["batch"], terms)
    energy = per_order.sum(dim=1)
    (gradient,) = torch.autograd.grad(energy.sum(), positions, create_graph=create_graph)
    return {"energy": energy, "forces": -gradient, "per_order": per_order}


def to_float32(graph: Graph, reference: Tensor) -> Graph:
    """The graph in float32, its energy relative to Σ_atoms reference[species] (computed in float64)."""
    return Graph(
        species=graph.species,
        positions=graph.positions.float(),
        edge_index=graph.edge_index,
        shift_vectors=graph.shift_vectors.float(),
        energy=graph.energy - float(reference[graph.species].sum()),
        forces=graph.forces.float(),
        family=graph.family,
        origin=graph.origin,
    )


def self_energy_fit(graphs: Sequence[Graph], n_species: int) -> Tensor:
    """Least-squares energy per species (eV): E ≈ Σ_species count · e."""
    counts = np.array([np.bincount(g.species.numpy(), minlength=n_species) for g in graphs], dtype=float)
    energies = np.array([g.energy for g in graphs])
    solution, *_ = np.linalg.lstsq(counts, energies, rcond=None)
    return torch.from_numpy(solution)
