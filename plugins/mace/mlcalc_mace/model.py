"""A MACE model (mace-torch) as an mlcalc contract model.

MACE's own ``forward`` builds its edge vectors from positions and shifts and differentiates the
energy itself; mlcalc hands the model the edge vectors and differentiates the per-atom energies. So
this module keeps MACE's trained submodules (embeddings, interactions, products, read-outs, E0s,
scale/shift, ZBL repulsion) as they are, and restates the energy part of ``MACE.forward`` /
``ScaleShiftMACE.forward`` (mace 0.3) on mlcalc's graph. MACE's edge convention is mlcalc's:
``edge_index`` is (sender i, receiver j) and the edge vector is ``r_j - r_i + S @ cell``.
TorchScript stores the submodules' code (mace's and e3nn's) in the file, so it runs without them.
"""

from __future__ import annotations

from typing import Dict, List

import torch
from torch import Tensor


class Unscaled(torch.nn.Module):
    """Plain MACE's interaction energies: no scale and shift (``ScaleShiftBlock``'s signature)."""

    def forward(self, x: Tensor, head: Tensor) -> Tensor:
        return x


class MACEPotential(torch.nn.Module):
    """Per-atom MACE energies (``node_energy``, E0s included) from mlcalc's graph, in MACE's units.

    Args:
        mace: a ``mace.modules.MACE`` or ``ScaleShiftMACE``; its submodules are taken over.
        element_index: for each entry of mlcalc's sorted species list, its index in MACE's z table.
        head: index of the read-out head to evaluate.
        scale_shift: whether ``mace`` is a ``ScaleShiftMACE`` (its interaction energies scaled and shifted).
    """

    def __init__(self, mace: torch.nn.Module, element_index: Tensor, head: int, scale_shift: bool):
        super().__init__()
        num_elements = int(mace.atomic_numbers.shape[0])
        # One-hot node attributes, as mace.data builds them from its z table.
        onehot = torch.eye(num_elements, dtype=mace.atomic_energies_fn.atomic_energies.dtype)
        self.register_buffer("node_attrs_table", onehot[element_index].clone())
        self.register_buffer("atomic_numbers", mace.atomic_numbers.clone())
        self.head = head
        self.node_embedding = mace.node_embedding
        self.spherical_harmonics = mace.spherical_harmonics
        self.radial_embedding = mace.radial_embedding
        # Zero or one ZBL term: a ModuleList keeps TorchScript from needing an optional module.
        self.pair_repulsion = torch.nn.ModuleList([mace.pair_repulsion_fn] if hasattr(mace, "pair_repulsion") else [])
        self.atomic_energies_fn = mace.atomic_energies_fn
        self.interactions = mace.interactions
        self.products = mace.products
        self.readouts = mace.readouts
        self.scale_shift = mace.scale_shift if scale_shift else Unscaled()

    def forward(self, inputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        edge_index = inputs["edge_index"]
        vectors = inputs["edge_vectors"]
        node_attrs = self.node_attrs_table[inputs["species"]].to(vectors.dtype)
        n = node_attrs.shape[0]
        node_heads = torch.full((n,), self.head, dtype=torch.long, device=vectors.device)
        lengths = torch.linalg.norm(vectors, dim=-1, keepdim=True)

        node_e0 = self.atomic_energies_fn(node_attrs)[:, self.head]
        node_feats = self.node_embedding(node_attrs)
        edge_attrs = self.spherical_harmonics(vectors)
        edge_feats, cutoff = self.radial_embedding(lengths, node_attrs, edge_index, self.atomic_numbers)
        node_inter = torch.zeros_like(node_e0)
        for pair in self.pair_repulsion:
            node_inter = node_inter + pair(lengths, node_attrs, edge_index, self.atomic_numbers)

        features: List[Tensor] = []
        for i, (interaction, product) in enumerate(zip(self.interactions, self.products)):
            node_feats, sc = interaction(
                node_attrs=node_attrs,
                node_feats=node_feats,
                edge_attrs=edge_attrs,
                edge_feats=edge_feats,
                edge_index=edge_index,
                cutoff=cutoff,
                first_layer=(i == 0),
            )
            node_feats = product(node_feats=node_feats, sc=sc, node_attrs=node_attrs)
            features.append(node_feats)
        for i, readout in enumerate(self.readouts):
            # MACE reads the last layer's features only when it has a single read-out.
            feats = features[-1] if len(self.readouts) == 1 else features[i]
            node_inter = node_inter + readout(feats, node_heads)[:, self.head]
        node_inter = self.scale_shift(node_inter, node_heads)
        return {"energies": node_e0 + node_inter}
