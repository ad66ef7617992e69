"""A last-layer committee of HIP-NN: members that share every layer but the energy heads.

Member m is the base HIP-NN with its energy per species and its energy heads (the linear maps from the
features after each interaction block to Ê_i^n, eq. 2 of Philip et al.) shifted by offsets δ_m that sum
to zero over the members, so the members' mean is the base model itself, to round-off. The features are
computed once: the committee costs the base model plus one [N, F] × [F, M] product per block, where a
committee of whole models (:class:`mlcalc.models.Committee`) costs M models.

The offsets are the choice of whoever builds the committee. The demo's come from ``python -m training
committee`` (training/committee.py): draws from the Laplace posterior of the last layer (last-layer
prediction rigidity, Bigi, Chong, Ceriotti & Grasselli, Mach. Learn.: Sci. Technol. 5, 045018 (2024)),
calibrated on held-out data.
"""

import copy
from typing import Any, Dict, cast

import torch
from torch import Tensor

from mlcalc.models.hipnn import HIPNN

#: How far from zero (relative to the largest offset) the members' mean offset may be.
CENTRED = 1e-12


class LastLayerCommittee(torch.nn.Module):
    """``model`` with ``M`` sets of energy-head offsets; returns the contract's committee outputs.

    Args:
        model: the base HIP-NN (its mean).
        self_energy_offsets: [M, n_species] eV, added to ``model.self_energies``.
        head_weight_offsets: [M, n_interactions, n_features] eV, added to each block's head weight.
        head_bias_offsets: [M, n_interactions] eV, added to each block's head bias.

    Raises:
        ValueError: fewer than two members, shapes that do not match the model, or offsets whose mean over
            the members is not zero (then the members' mean would not be the model).
    """

    self_energy_offsets: Tensor
    head_weight_offsets: Tensor
    head_bias_offsets: Tensor

    def __init__(
        self, model: HIPNN, self_energy_offsets: Tensor, head_weight_offsets: Tensor, head_bias_offsets: Tensor
    ):
        super().__init__()
        members = int(self_energy_offsets.shape[0])
        n_blocks, n_features = len(model.heads), int(cast(torch.nn.Linear, model.heads[0]).weight.shape[1])
        shapes = {
            "self_energy_offsets": (tuple(self_energy_offsets.shape), (members, model.n_species)),
            "head_weight_offsets": (tuple(head_weight_offsets.shape), (members, n_blocks, n_features)),
            "head_bias_offsets": (tuple(head_bias_offsets.shape), (members, n_blocks)),
        }
        if members < 2:
            raise ValueError(f"a committee needs at least two members, got {members}")
        for name, (got, expected) in shapes.items():
            if got != expected:
                raise ValueError(f"{name} has shape {got}; this model needs {expected} (members, ...)")
        dtype = model.self_energies.dtype
        offsets = [t.detach().to(dtype) for t in (self_energy_offsets, head_weight_offsets, head_bias_offsets)]
        largest = max(float(t.abs().max()) for t in offsets)
        drift = max(float(t.mean(dim=0).abs().max()) for t in offsets)
        if drift > CENTRED * max(largest, 1e-300):
            raise ValueError(
                f"the offsets' mean over members is {drift:.3g} (largest offset {largest:.3g}): subtract it, so "
                "that the members' mean is the model"
            )
        self.model = model
        self.register_buffer("self_energy_offsets", offsets[0])
        self.register_buffer("head_weight_offsets", offsets[1])
        self.register_buffer("head_bias_offsets", offsets[2])
        base: Dict[str, Any] = dict(model.mlcalc_metadata)
        self.mlcalc_metadata = dict(
            base,
            name=f"{base['name']}-last-layer-committee-{members}",
            description=f"{base['description']}; a committee of {members} members sharing every layer but the "
            "energy heads (mean: the base model)",
            committee=members,
        )

    def member(self, index: int) -> HIPNN:
        """Member ``index`` as a HIP-NN of its own (a copy of the base model with its offsets added)."""
        member = copy.deepcopy(self.model)
        with torch.no_grad():
            member.self_energies.add_(self.self_energy_offsets[index])
            for k, module in enumerate(member.heads):
                head = cast(torch.nn.Linear, module)
                head.weight.add_(self.head_weight_offsets[index, k])
                head.bias.add_(self.head_bias_offsets[index, k])
        return member

    def forward(self, inputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        species = inputs["species"]
        blocks = self.model.block_features(inputs)
        terms = self.model.energy_terms(species, blocks)
        energies = terms.sum(dim=1)
        offsets = self.self_energy_offsets[:, species].transpose(0, 1)  # [N, M]
        for k in range(len(blocks)):
            offsets = (
                offsets + blocks[k] @ self.head_weight_offsets[:, k, :].transpose(0, 1) + self.head_bias_offsets[:, k]
            )
        return {
            "energies": energies,
            "energies_committee": energies.unsqueeze(1) + offsets,
            "hierarchical_energies": terms,
        }
