"""HIP-NN (hippynn) as an mlcalc contract model, in TorchScript.

hippynn's own layers cannot be scripted (they dispatch to custom kernels and read global settings), so
this module restates HIP-NN (Lubbers, Smith & Barros, J. Chem. Phys. 148, 241715 (2018), eqs. 1-7)
as hippynn 0.1 computes it, with the trained parameters copied in (the same numbers to round-off; the
sums are ordered differently and sensitivities below 1.8e-35 are 0, see :data:`EXP_FLOOR`):

* one-hot species features (``OneHotSpecies``);
* interaction layers ``z' = sum_pairs V (s(r) ⊗ z_j) + W z + b`` (the pair sum as one matrix product
  per atom, :class:`Interaction`) with sensitivities
  ``s_nu(r) = exp(-(1/r - 1/mu_nu)^2 sigma_nu^2 / 2) cos^2(pi r / 2 r_c)`` (``InteractLayer``,
  ``InverseSensitivityModule``/``GaussianSensitivityModule``, ``CosCutoff``, ``envsum``);
* atom layers, each optionally a residual block ``r(act(L x)) + A x`` (``ResNetWrapper``);
* hierarchical energy: one linear read-out per feature level, summed (``HEnergy``).

The read-outs' per-atom terms are returned as ``hierarchical_energies`` [N, n_orders], like the bundled
demo's (:mod:`mlcalc.models.hipnn`), so that :func:`mlcalc.models.hipnn.non_hierarchicality` and
``structure_non_hierarchicality`` work on an adapter's file. The orders are ``HEnergy``'s own terms: order
0 is the read-out of the one-hot features (a per-element energy; hippynn's ``partial_energies[0]``) and
order n the read-out after interaction block n, n_orders = n_interactions + 1; when ``HEnergy`` has
``first_is_interacting=True`` it drops the one-hot features, and so do these, n_orders = n_interactions
(order 0 is then the first interaction block). The per-structure sums E^n = Σ_i e_i^n are the
differences of consecutive entries of hippynn's ``energy_terms`` output (its cumulative sums
Σ_{m≤n} E^m).

hippynn's own hierarchicality outputs (hippynn 0.1.3, ``hippynn.layers.targets.HEnergy``) are not
mlcalc's R = Σ_{n≥1} (E^n)² / Σ_{n≥0} (E^n)². hippynn compares consecutive orders, with the squares of
per-atom terms, and sums the ratios over orders, so a value lies in [0, n_orders - 1], not [0, 1]:

* ``atom_hier``, per atom: h_i = Σ_{n≥1} (e_i^n)² / ((e_i^n)² + (e_i^{n-1})²);
* ``hierarchicality``, per molecule: Σ_i h_i (grows with the number of atoms);
* ``mol_hier``, per molecule: Σ_{n≥1} Σ_i (e_i^n)² / Σ_i ((e_i^n)² + (e_i^{n-1})²);
* ``batch_hier``: ``mol_hier`` with the sums over all atoms of a batch.

R squares the per-structure energies E^n instead, in which terms of opposite sign on different atoms
cancel, and weighs all orders n ≥ 1 against the total. Both are 0 for a perfectly hierarchical
prediction; for two orders (one interaction block) ``mol_hier`` equals R only for one atom.
"""

from __future__ import annotations

import math
from typing import Dict, List, NamedTuple, Tuple

import torch
from torch import Tensor

from mlcalc.models.hipnn import max_degree

#: Exponents below which a sensitivity is 0. x86 CPUs compute exp 10-40x slower where its result is below
#: float32's smallest normal number (1.2e-38, at -87.3: subnormal or 0), and HIP-NN's sensitivities are
#: that small for most pairs; exp(-80) = 1.8e-35 keeps clear of it. A sensitivity is at most 1: the change
#: is round-off, in float32 and float64 alike.
EXP_FLOOR = -80.0


class Pairs(NamedTuple):
    """The pairs of each atom i, in ``width`` slots (the most pairs of one atom), for :class:`Interaction`."""

    pair: Tensor  # [N, width]: the index of the pair (i, j) in each slot of atom i; P in empty slots
    second: Tensor  # [N, width]: its atom j; N in empty slots


def pair_slots(first: Tensor, second: Tensor, n_atoms: int) -> Pairs:
    """:class:`Pairs` of the pairs ``(first, second)`` [P] of ``n_atoms`` atoms, in any order."""
    n_pairs = first.shape[0]
    counts = torch.bincount(first, minlength=n_atoms)
    order = torch.argsort(first, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(n_pairs, device=first.device) - starts[first[order]]
    width = max_degree(counts)
    pair = torch.full((n_atoms, width), n_pairs, dtype=torch.long, device=first.device)
    pair[first[order], slot] = order
    padded_second = torch.cat([second, torch.full((1,), n_atoms, dtype=torch.long, device=second.device)])
    return Pairs(pair, padded_second[pair])


def padded(values: Tensor, index: Tensor) -> Tensor:
    """``values`` [M, F] with a row of zeros appended, at ``index`` [N, W]: [N, W, F]."""
    rows = torch.cat([values, torch.zeros((1, values.shape[1]), dtype=values.dtype, device=values.device)])
    return rows.index_select(0, index.flatten()).view(index.shape[0], index.shape[1], values.shape[1])


class Sensitivity(torch.nn.Module):
    """``s_nu(r)`` [P, n_sensitivities] for pair distances ``r`` [P] (hippynn's sensitivity modules)."""

    def __init__(self, mu: Tensor, sigma: Tensor, hard_max_dist: float):
        super().__init__()
        self.mu = torch.nn.Parameter(mu.detach().clone())
        self.sigma = torch.nn.Parameter(sigma.detach().clone())
        self.hard_max_dist = float(hard_max_dist)
        self.exp_floor = EXP_FLOOR

    def forward(self, distances: Tensor) -> Tensor:
        nondim = (distances.unsqueeze(1) ** -1 - self.mu**-1) ** 2 / (self.sigma**-2)
        exponent = -0.5 * nondim
        # Most pairs lie far from most sensitivities' centres, where exp underflows: 0 below EXP_FLOOR,
        # and exp of the clamped exponent (the fast path) above it.
        above = exponent > self.exp_floor
        base = torch.where(above, torch.exp(exponent.clamp(min=self.exp_floor)), torch.zeros_like(exponent))
        cutoff = torch.cos(math.pi / 2 * distances / self.hard_max_dist) ** 2
        cutoff = cutoff * (distances <= self.hard_max_dist).to(cutoff.dtype)
        return base * cutoff.unsqueeze(1)


class Interaction(torch.nn.Module):
    """One interaction layer, optionally inside a residual block."""

    def __init__(
        self,
        sensitivity: Sensitivity,
        int_weights: Tensor,
        selfint: torch.nn.Linear,
        res_layer: torch.nn.Module,
        adjust_layer: torch.nn.Module,
        resnet: bool,
        activation: torch.nn.Module,
    ):
        super().__init__()
        self.sensitivity = sensitivity
        self.int_weights = torch.nn.Parameter(int_weights.detach().clone())
        self.selfint = selfint
        self.res_layer = res_layer
        self.adjust_layer = adjust_layer
        self.resnet = resnet
        self.activation = activation

    def forward(self, features: Tensor, pairs: Pairs, distances: Tensor) -> Tensor:
        n_dist, nf_out, nf_in = self.int_weights.shape
        n_atoms = features.shape[0]
        sense = self.sensitivity(distances)
        # hippynn's envsum, env[i] = sum over pairs (i, j) of s(r_ij) ⊗ z_j [N, n_dist, nf_in], as one small
        # matrix product per atom over its pairs (padded to the same width with zeros): no pairs ×
        # sensitivities × features tensor is formed, in the forward or the backward pass.
        env = torch.bmm(padded(sense, pairs.pair).transpose(1, 2), padded(features, pairs.second))
        weights = torch.reshape(self.int_weights.permute(0, 2, 1), (n_dist * nf_in, nf_out))
        out = torch.mm(torch.reshape(env, (n_atoms, n_dist * nf_in)), weights) + self.selfint(features)
        if self.resnet:
            return self.res_layer(self.activation(out)) + self.adjust_layer(features)
        return self.activation(out)


class AtomLayer(torch.nn.Module):
    """One atom (dense) layer, optionally inside a residual block."""

    def __init__(
        self,
        linear: torch.nn.Linear,
        res_layer: torch.nn.Module,
        adjust_layer: torch.nn.Module,
        resnet: bool,
        activation: torch.nn.Module,
    ):
        super().__init__()
        self.linear = linear
        self.res_layer = res_layer
        self.adjust_layer = adjust_layer
        self.resnet = resnet
        self.activation = activation

    def forward(self, features: Tensor) -> Tensor:
        if self.resnet:
            return self.res_layer(self.activation(self.linear(features))) + self.adjust_layer(features)
        return self.activation(self.linear(features))


class Block(torch.nn.Module):
    """An interaction layer, its atom layers and the energy read-out of its output features."""

    def __init__(self, interaction: Interaction, atom_layers: List[AtomLayer], readout: torch.nn.Module):
        super().__init__()
        self.interaction = interaction
        self.atom_layers = torch.nn.ModuleList(atom_layers)
        self.readout = readout

    def forward(self, features: Tensor, pairs: Pairs, distances: Tensor) -> Tuple[Tensor, Tensor]:
        features = self.interaction(features, pairs, distances)
        for layer in self.atom_layers:
            features = layer(features)
        return features, self.readout(features)


class HIPNNPotential(torch.nn.Module):
    """Per-atom HIP-NN energies from mlcalc's graph, in the model's own units.

    Returns ``energies`` [N] and ``hierarchical_energies`` [N, n_orders], the per-atom energy terms
    e_i^n of hippynn's ``HEnergy`` (its ``partial_energies``, one read-out per feature level, see the
    module docstring), in the same units; ``energies`` is their sum over orders, computed as exactly
    that sum (``hierarchical_energies.sum(dim=1)``: equal bit for bit).

    Args:
        feature_index: for each entry of mlcalc's sorted species list, its one-hot column in hippynn.
        n_input_features: number of one-hot columns (elements of the model).
        blocks: the interaction blocks, each with its energy read-out.
        onehot_readout: the read-out of the one-hot features (per-element energies), or ``None`` when
            hippynn's ``HEnergy`` skips them (``first_is_interacting``).
    """

    def __init__(
        self,
        feature_index: Tensor,
        n_input_features: int,
        blocks: List[Block],
        onehot_readout: torch.nn.Module,
        use_onehot_readout: bool,
    ):
        super().__init__()
        # Integer, so that converting the module's dtype leaves it alone (hippynn's one-hot is boolean).
        self.register_buffer("onehot", torch.eye(n_input_features, dtype=torch.long)[feature_index])
        self.blocks = torch.nn.ModuleList(blocks)
        self.onehot_readout = onehot_readout
        self.use_onehot_readout = use_onehot_readout

    def forward(self, inputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        distances = torch.linalg.vector_norm(inputs["edge_vectors"], dim=1)
        features = self.onehot[inputs["species"]].to(distances.dtype)
        n = features.shape[0]
        pairs = pair_slots(inputs["edge_index"][0], inputs["edge_index"][1], n)
        terms: List[Tensor] = []  # each [N, 1]: HEnergy's per-atom energy of one feature level
        if self.use_onehot_readout:
            terms.append(self.onehot_readout(features))
        for block in self.blocks:
            features, part = block(features, pairs, distances)
            terms.append(part)
        hierarchical = torch.cat(terms, dim=1)
        return {"energies": hierarchical.sum(dim=1), "hierarchical_energies": hierarchical}
