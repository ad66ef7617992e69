"""A SchNetPack energy model (SchNet or PaiNN with an Atomwise head) as an mlcalc contract model.

SchNetPack's representations are TorchScript-compatible, so they are kept as they are: TorchScript
stores their code in the potential file, which then runs without SchNetPack. What is restated here is
the model's glue: its input dictionary (SchNetPack's ``PairwiseDistances`` computes
``R[idx_j] - R[idx_i] + offsets``, which is mlcalc's edge vector for ``idx_i, idx_j = edge_index``),
the Atomwise network's per-atom outputs (before their sum), and the energy's linear post-processing,
folded into one scale and a per-element offset: ``E_i = scale * y_i + offset[Z_i]`` (``ScaleProperty``
before the forces; ``AddOffsets`` mean per atom and single-atom references).
"""

from __future__ import annotations

from typing import Dict

import torch
from torch import Tensor


class SchNetPackPotential(torch.nn.Module):
    """Per-atom SchNetPack energies from mlcalc's graph, in the model's own units.

    Args:
        representation: SchNetPack's ``SchNet`` or ``PaiNN`` module.
        outnet: the Atomwise head's network (``Atomwise.outnet``), features → one value per atom.
        scale: factor on the network's outputs (product of the energy's ``ScaleProperty`` scales).
        offsets: per-atom energy offset of each entry of mlcalc's sorted species list.
        keys: SchNetPack's input names of atomic numbers, pair vectors, centre and neighbour indices,
            and of the representation's scalar features (``schnetpack.properties``).
    """

    def __init__(
        self,
        representation: torch.nn.Module,
        outnet: torch.nn.Module,
        scale: float,
        offsets: Tensor,
        keys: Dict[str, str],
    ):
        super().__init__()
        self.representation = representation
        self.outnet = outnet
        self.register_buffer("scale", torch.tensor(float(scale), dtype=torch.float64))
        self.register_buffer("offsets", offsets.detach().clone().to(torch.float64))
        self.z_key = keys["Z"]
        self.rij_key = keys["Rij"]
        self.idx_i_key = keys["idx_i"]
        self.idx_j_key = keys["idx_j"]
        self.features_key = keys["features"]

    def forward(self, inputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        spk_inputs: Dict[str, Tensor] = {
            self.z_key: inputs["atomic_numbers"],
            self.rij_key: inputs["edge_vectors"],
            self.idx_i_key: inputs["edge_index"][0],
            self.idx_j_key: inputs["edge_index"][1],
        }
        features = self.representation(spk_inputs)[self.features_key]
        outputs = self.outnet(features).squeeze(-1)
        return {"energies": self.scale * outputs + self.offsets[inputs["species"]]}
