"""HIP-NN, the Hierarchically Interacting Particle Neural Network, as an mlcalc contract model.

Written from the equations of Philip, Zhou & Nebgen, arXiv:2211.07181 (Methods → HIP-NN, eqs. 1–7; the
model is Lubbers, Smith & Barros, J. Chem. Phys. 148, 241715 (2018)):

- eq. 1, 2: E = Σ_i Ê_i, Ê_i = Σ_{n=0}^{N_int} Ê_i^n (hierarchical energy terms);
- eq. 3, on-site layer: z_i^{l+1} = f(W^l z_i^l + B^l), f = softplus;
  optionally (``residual=True``) z_i^{l+1} = z_i^l + f(W^l z_i^l + B^l), a simpler form of the residual
  blocks hippynn uses by default, and f = shifted softplus, ln(1 + eˣ) − ln 2 (zero at zero, as in
  SchNet): both train faster (training/README.md, capacity probe);
- eq. 4, interaction layer: z_{i,a}^{l+1} = f(Σ_{j,b} v_{ab}(r_ij) z_{j,b}^l + Σ_b W_ab z_{i,b}^l + B_a);
- eq. 5: v_{ab}(r) = Σ_ν V_{ν,a,b} s_ν(r);
- eq. 6: s_ν(r) = exp[−(r⁻¹ − μ_ν⁻¹)² / (2 σ_ν⁻²)] φ_cut(r);
- eq. 7: φ_cut(r) = cos²(π r / (2 R_cut)) for r ≤ R_cut, else 0.

The input features z⁰ are the one-hot species. Ê_i^0 is a linear function of z⁰ (a learnable energy per
species); Ê_i^n (n ≥ 1) is a linear function of the features after interaction block n (one
interaction layer followed by on-site layers). The per-order energies are returned as the extra
per-atom output ``hierarchical_energies`` [N, N_int + 1], from which :func:`non_hierarchicality`
measures how fast the terms decay.
"""

from __future__ import annotations

import math
from typing import Dict, List, NamedTuple, Sequence, cast

import torch
from torch import Tensor

#: Elements of the bundled demo potential: H, C, N, O.
HCNO = (1, 6, 7, 8)


#: The activation functions f of eqs. 3–4, as the constant subtracted from softplus.
ACTIVATION_SHIFTS = {"softplus": 0.0, "shifted_softplus": math.log(2.0)}


def cosine_squared_cutoff(r: Tensor, cutoff: float) -> Tensor:
    """Seed 000 eq. 7: cos²(π r / 2 R_cut) inside the cutoff, 0 outside (r in Å)."""
    inside = torch.cos(0.5 * math.pi * r / cutoff) ** 2
    return torch.where(r <= cutoff, inside, torch.zeros_like(r))


class InverseGaussianSensitivity(torch.nn.Module):
    """Seed 000 eq. 6: s_ν(r) = exp[−(1/r − 1/μ_ν)² σ_ν² / 2] φ_cut(r), with learnable μ_ν, σ_ν (Å).

    The centres μ_ν start evenly spaced in 1/r between ``min_distance`` and ``cutoff``; σ_ν starts at
    the inverse of that spacing, so neighbouring Gaussians overlap at about one standard deviation.
    """

    def __init__(self, n_sensitivities: int, min_distance: float, cutoff: float):
        super().__init__()
        inverse = torch.linspace(1.0 / min_distance, 1.0 / cutoff, n_sensitivities, dtype=torch.float64)
        spacing = float(inverse[0] - inverse[1])
        self.mu = torch.nn.Parameter(1.0 / inverse)
        self.sigma = torch.nn.Parameter(torch.full((n_sensitivities,), 1.0 / spacing, dtype=torch.float64))
        self.cutoff = cutoff

    def forward(self, r: Tensor) -> Tensor:
        """Sensitivities [E, n_sensitivities] of distances r [E]."""
        gaussian = torch.exp(-0.5 * ((1.0 / r.unsqueeze(-1) - 1.0 / self.mu) * self.sigma) ** 2)
        return gaussian * cosine_squared_cutoff(r, self.cutoff).unsqueeze(-1)


def max_degree(counts: Tensor) -> int:
    """The width of a padded neighbour layout: the largest entry of ``counts`` [N] (0 for N = 0).

    Outside TorchScript (``torch.export``, ``torch.compile``, eager) at least 2, declared so: a
    data-dependent size the compilers then need not special-case for 0 or 1 (the extra slots hold zeros,
    which change no sum)."""
    if counts.shape[0] == 0:
        return 0
    if torch.jit.is_scripting():
        return int(counts.max())
    width = torch.clamp(counts.max(), min=2).item()  # no int(): that would specialise the size
    torch._check(width >= 2)
    return cast(int, width)  # a SymInt under torch.export


class NeighbourSlots(NamedTuple):
    """Each centre atom's edges laid out in slots 0..deg-1 of a row of ``width`` (the largest degree).

    ``centre``, ``slot`` [E]: the row and slot of each edge; ``distances`` [N, width]: its length in its
    slot, and ``2 R_cut`` in empty slots (a sensitivity of exactly 0 there, see :func:`cosine_squared_cutoff`)."""

    centre: Tensor
    slot: Tensor
    distances: Tensor


def neighbour_slots(distances: Tensor, centre: Tensor, n_atoms: int, cutoff: float) -> NeighbourSlots:
    """:class:`NeighbourSlots` of the edges with lengths ``distances`` [E] (Å) and centre atoms ``centre`` [E]."""
    counts = torch.bincount(centre, minlength=n_atoms)
    order = torch.argsort(centre, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.empty_like(order)
    slot[order] = torch.arange(order.shape[0], device=order.device) - starts[centre[order]]
    width = max_degree(counts)
    padded = torch.full((n_atoms, width), 2.0 * cutoff, dtype=distances.dtype, device=distances.device)
    return NeighbourSlots(centre, slot, padded.index_put((centre, slot), distances))


class InteractionLayer(torch.nn.Module):
    """Seed 000 eqs. 4–5: f(Σ_ν V_ν · (Σ_j s_ν(r_ij) z_j) + W z_i + B), f = softplus − ``shift``."""

    def __init__(
        self, n_in: int, n_out: int, n_sensitivities: int, min_distance: float, cutoff: float, shift: float = 0.0
    ):
        super().__init__()
        self.shift = shift
        self.sensitivity = InverseGaussianSensitivity(n_sensitivities, min_distance, cutoff)
        scale = 1.0 / math.sqrt(n_in * n_sensitivities)
        self.interaction = torch.nn.Parameter(torch.randn(n_sensitivities, n_in, n_out, dtype=torch.float64) * scale)
        self.self_interaction = torch.nn.Linear(n_in, n_out, dtype=torch.float64)

    def forward(self, features: Tensor, slots: NeighbourSlots, neighbour: Tensor) -> Tensor:
        n_atoms, n_in = features.shape
        n_sensitivities = self.interaction.shape[0]
        # Σ_j s_ν(r_ij) z_j as one batched matrix product per centre atom over its slots (zeros in empty
        # ones), so no [E, S, F_in] tensor is formed; then one matrix product with V as [S·F_in, F_out].
        sensitivities = self.sensitivity(slots.distances)  # [N, width, S]
        padded_z = torch.zeros(
            (n_atoms, slots.distances.shape[1], n_in), dtype=features.dtype, device=features.device
        ).index_put((slots.centre, slots.slot), features[neighbour])
        environment = torch.bmm(sensitivities.transpose(1, 2), padded_z)  # [N, S, F_in]
        interaction = torch.mm(
            environment.reshape(n_atoms, n_sensitivities * n_in),
            self.interaction.reshape(n_sensitivities * n_in, self.interaction.shape[2]),
        )
        return torch.nn.functional.softplus(interaction + self.self_interaction(features)) - self.shift


class HIPNN(torch.nn.Module):
    """HIP-NN energy model (Å, eV) for the elements ``species``.

    Args:
        species: supported atomic numbers (sorted; the one-hot order).
        n_features: width of every hidden layer.
        n_interactions: number of interaction blocks (hierarchy orders 1..n_interactions).
        n_onsite: on-site layers after each interaction layer.
        n_sensitivities: Gaussian sensitivity functions per interaction layer.
        cutoff: R_cut in Å (also the graph cutoff of the exported file).
        min_distance: shortest distance (Å) the first sensitivity centre is placed at.
        activation: f of eqs. 3–4, "softplus" (Philip et al.) or "shifted_softplus" (softplus − ln 2).
        residual: on-site layers add f(W z + B) to their input instead of replacing it.
    """

    def __init__(
        self,
        species: Sequence[int] = HCNO,
        n_features: int = 32,
        n_interactions: int = 2,
        n_onsite: int = 2,
        n_sensitivities: int = 16,
        cutoff: float = 5.0,
        min_distance: float = 0.8,
        activation: str = "softplus",
        residual: bool = False,
    ):
        super().__init__()
        if activation not in ACTIVATION_SHIFTS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATION_SHIFTS)}, got {activation!r}")
        self.shift = ACTIVATION_SHIFTS[activation]
        self.residual = residual
        species = sorted(int(z) for z in species)
        if len(set(species)) != len(species) or not species or species[0] < 1:
            raise ValueError(f"species must be distinct atomic numbers >= 1, got {species}")
        if n_interactions < 1 or cutoff <= min_distance:
            raise ValueError("need n_interactions >= 1 and cutoff > min_distance")
        self.n_species = len(species)
        self.cutoff = float(cutoff)
        self.self_energies = torch.nn.Parameter(torch.zeros(self.n_species, dtype=torch.float64))
        interactions: List[torch.nn.Module] = []
        onsites: List[torch.nn.Module] = []
        heads: List[torch.nn.Module] = []
        n_in = self.n_species
        for _ in range(n_interactions):
            interactions.append(InteractionLayer(n_in, n_features, n_sensitivities, min_distance, cutoff, self.shift))
            onsites.append(
                torch.nn.ModuleList(
                    [torch.nn.Linear(n_features, n_features, dtype=torch.float64) for _ in range(n_onsite)]
                )
            )
            heads.append(torch.nn.Linear(n_features, 1, dtype=torch.float64))
            n_in = n_features
        self.interactions = torch.nn.ModuleList(interactions)
        self.onsites = torch.nn.ModuleList(onsites)
        self.heads = torch.nn.ModuleList(heads)
        self.mlcalc_metadata = {
            "name": "hipnn",
            "cutoff": float(cutoff),
            "species": species,
            "length_unit": "angstrom",
            "energy_unit": "eV",
            "description": (
                f"HIP-NN ({n_interactions} interaction blocks, {n_onsite} on-site layers each, "
                f"{n_features} features, {n_sensitivities} sensitivities, R_cut {cutoff} Å"
                + (f", {activation}" if activation != "softplus" else "")
                + (", residual on-site layers" if residual else "")
                + ")"
            ),
            "references": ["N. Lubbers, J. S. Smith, K. Barros, J. Chem. Phys. 148, 241715 (2018)"],
        }

    def block_features(self, inputs: Dict[str, Tensor]) -> List[Tensor]:
        """The features z_i after each interaction block (interaction layer and its on-site layers), each
        [N, n_features]: what the energy heads read."""
        species = inputs["species"]
        neighbour = inputs["edge_index"][1]
        distances = torch.linalg.norm(inputs["edge_vectors"], dim=-1)
        slots = neighbour_slots(distances, inputs["edge_index"][0], species.shape[0], self.cutoff)
        features = torch.nn.functional.one_hot(species, self.n_species).to(inputs["positions"].dtype)
        blocks: List[Tensor] = []
        for interaction, onsite in zip(self.interactions, self.onsites):
            features = interaction(features, slots, neighbour)
            for layer in onsite:
                activated = torch.nn.functional.softplus(layer(features)) - self.shift
                features = features + activated if self.residual else activated
            blocks.append(features)
        return blocks

    def energy_terms(self, species: Tensor, blocks: List[Tensor]) -> Tensor:
        """Per-atom energy terms Ê_i^n [N, n_interactions + 1] in eV of the block features ``blocks``."""
        terms = [self.self_energies[species]]
        for k, head in enumerate(self.heads):
            terms.append(head(blocks[k]).squeeze(-1))
        return torch.stack(terms, dim=1)

    def hierarchical_energies(self, inputs: Dict[str, Tensor]) -> Tensor:
        """Per-atom energy terms Ê_i^n [N, n_interactions + 1] in eV (Philip et al. eq. 2)."""
        return self.energy_terms(inputs["species"], self.block_features(inputs))

    def forward(self, inputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        terms = self.hierarchical_energies(inputs)
        return {"energies": terms.sum(dim=1), "hierarchical_energies": terms}


def non_hierarchicality(hierarchical_energies: Tensor, batch: Tensor, n_structures: int) -> Tensor:
    """Non-hierarchicality of each structure, R = Σ_{n≥1} (E^n)² / Σ_{n≥0} (E^n)², E^n = Σ_i Ê_i^n.

    Seed 000 calls a prediction reliable when the hierarchical terms decay rapidly with the order n and
    flags it when they do not; R is the share of the squared energy carried by the orders n ≥ 1 (0 for a
    perfectly hierarchical prediction, → 1 when the higher orders dominate). Inputs: the model's
    ``hierarchical_energies`` [N, n_orders] and ``batch`` [N]; returns [n_structures].
    """
    per_order = torch.zeros(
        (n_structures, hierarchical_energies.shape[1]), dtype=hierarchical_energies.dtype, device=batch.device
    ).index_add(0, batch, hierarchical_energies)
    squares = per_order**2
    return squares[:, 1:].sum(dim=1) / squares.sum(dim=1)


def structure_non_hierarchicality(potential, atoms) -> float:
    """Non-hierarchicality of one ``ase.Atoms`` under a loaded HIP-NN ``mlcalc.Potential`` (dimensionless).

    Raises ValueError when the potential has no ``hierarchical_energies`` output (not a HIP-NN file).
    """
    out = potential.model_outputs(atoms)
    if "hierarchical_energies" not in out:
        raise ValueError(f"potential {potential.name!r} returns no 'hierarchical_energies': it is not a HIP-NN file")
    terms = out["hierarchical_energies"]
    batch = torch.zeros(terms.shape[0], dtype=torch.long, device=terms.device)
    return float(non_hierarchicality(terms, batch, 1)[0])
