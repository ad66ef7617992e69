"""An ANI model (TorchANI) as an mlcalc contract model: AEVs from mlcalc's edge list.

The radial and angular terms, the atomic networks and the self energies are TorchANI's own modules,
scripted as they are: TorchScript stores their code in the potential file, so it runs without
TorchANI installed. What is written here is what TorchANI does with its own neighbour list: the
radial AEV sums over every edge of a centre atom, the angular AEV over every unordered pair of edges
of a centre atom shorter than the angular cutoff, each in the block of its neighbours' elements
(TorchANI's ``AEVComputer._pyaev_compute_from_neighbors``).
"""

from __future__ import annotations

from typing import Dict, Tuple

import torch
from torch import Tensor


class ANIPotential(torch.nn.Module):
    """Per-atom ANI energies (hartree) from mlcalc's graph (lengths in Å).

    Args:
        radial, angular: TorchANI's radial and angular AEV terms (``aev_computer.radial/angular``).
        networks: TorchANI's atomic networks container (``ANINetworks``, ``Ensemble``, ...).
        self_energies: TorchANI's ``SelfEnergy`` module (the energy shifter).
        element_index: for each entry of mlcalc's sorted species list, TorchANI's element index.
        triu_index: TorchANI's [S, S] map from a pair of element indices to its angular AEV block.
        committee: ``networks`` is an ensemble whose members' energies are returned as the contract's
            ``energies_committee`` [N, M] (their mean is ``energies``): the file reports their spread.
    """

    def __init__(
        self,
        radial: torch.nn.Module,
        angular: torch.nn.Module,
        networks: torch.nn.Module,
        self_energies: torch.nn.Module,
        element_index: Tensor,
        triu_index: Tensor,
        committee: bool = False,
    ):
        super().__init__()
        self.committee = committee
        self.radial = radial
        self.angular = angular
        self.networks = networks
        self.self_energies = self_energies
        self.num_species = int(element_index.shape[0])
        self.num_species_pairs = self.num_species * (self.num_species + 1) // 2
        self.radial_feats = int(radial.num_feats)
        self.angular_feats = int(angular.num_feats)
        self.angular_cutoff = float(angular.cutoff)
        self.register_buffer("element_index", element_index.clone())
        self.register_buffer("triu_index", triu_index.clone())

    def forward(self, inputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        elements = self.element_index[inputs["species"]]
        edge_index = inputs["edge_index"]
        vectors = inputs["edge_vectors"]
        n = elements.shape[0]
        # The contract sorts edges by centre atom; a stable sort keeps that from being an assumption.
        order = torch.argsort(edge_index[0], stable=True)
        centre = edge_index[0][order]
        neighbour = edge_index[1][order]
        vectors = vectors[order]
        distances = torch.linalg.vector_norm(vectors, dim=1)

        radial_terms = self.radial(distances)  # [E, radial_feats]
        radial = torch.zeros(
            (n * self.num_species, self.radial_feats), dtype=vectors.dtype, device=vectors.device
        ).index_add(0, centre * self.num_species + elements[neighbour], radial_terms)

        close = (distances <= self.angular_cutoff).nonzero().flatten()
        first, second = _edge_pairs(centre[close], n)
        first = close[first]
        second = close[second]
        tri_distances = torch.stack([distances[first], distances[second]])
        tri_vectors = torch.stack([vectors[first], vectors[second]])
        angular_terms = self.angular(tri_distances, tri_vectors)  # [T, angular_feats]
        pair_block = self.triu_index[elements[neighbour[first]], elements[neighbour[second]]]
        angular = torch.zeros(
            (n * self.num_species_pairs, self.angular_feats), dtype=vectors.dtype, device=vectors.device
        ).index_add(0, centre[first] * self.num_species_pairs + pair_block, angular_terms)

        aevs = torch.cat([radial.view(n, -1), angular.view(n, -1)], dim=1).unsqueeze(0)
        self_energies = self.self_energies(elements.unsqueeze(0), True).view(n)
        if self.committee:  # each member's atomic energies, [M, 1, N] (TorchANI's ensemble_values)
            members = self.networks(elements.unsqueeze(0), aevs, True, True).view(-1, n).t() + self_energies[:, None]
            return {"energies": members.mean(dim=1), "energies_committee": members}
        energies = self.networks(elements.unsqueeze(0), aevs, True, False).view(n)
        return {"energies": energies + self_energies}


def _edge_pairs(centre: Tensor, n: int) -> Tuple[Tensor, Tensor]:
    """Every unordered pair (a, b), a < b, of positions in ``centre`` (sorted) with equal centre atoms."""
    counts = torch.bincount(centre, minlength=n)
    start = torch.cumsum(counts, 0) - counts
    edges = torch.arange(centre.shape[0], device=centre.device)
    later = counts[centre] - 1 - (edges - start[centre])  # edges of the same centre after this one
    first = torch.repeat_interleave(edges, later)
    offsets = torch.cumsum(later, 0) - later
    second = first + 1 + torch.arange(first.shape[0], device=centre.device) - offsets[first]
    return first, second
