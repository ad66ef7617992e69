"""MACE's LAMMPS export (``mace_create_lammps_model``, ``pair_style mace``).

The file is a scripted ``LAMMPS_MACE``: the MACE model (``.model``), its ``atomic_numbers``, ``r_max`` and
the chosen ``head`` as buffers. LAMMPS builds the graph of local and ghost atoms and calls the model with
MACE's own data dictionary; this wrapper does the same from mlcalc's graph: ``positions``, ``edge_index``
(sender = the centre atom i, receiver = the neighbour j, as in MACE's ``get_edge_vectors_and_lengths``),
``shifts`` such that positions[j] − positions[i] + shifts are mlcalc's edge vectors (so forces and stress
come from mlcalc's autograd), the one-hot ``node_attrs`` over the model's elements, and ``batch``/``ptr``.
The per-atom energies are the model's ``node_energy`` (E0s included). The file records no mace version.
Read from ``mace/calculators/lammps_mace.py`` and ``mace/modules/models.py`` of mace-torch 0.3.16.
"""

from typing import Dict

import torch
from torch import Tensor

from mlcalc import torchscript
from mlcalc.errors import PluginError
from mlcalc.files import PathLike
from mlcalc.module import index_lookup

NAME = "mace-lammps"
FAMILY = "MACE"
#: mace-torch versions whose LAMMPS exports this importer was checked with.
CHECKED_VERSIONS = ">=0.3.16,<0.4"
#: The buffers and submodule a LAMMPS_MACE file holds.
REQUIRED = ("atomic_numbers", "r_max", "head", "model")


def recognises(extra: dict[str, bytes], modules: set[str]) -> bool:
    """Whether the archive holds MACE's ``LAMMPS_MACE`` wrapper."""
    return "mace.calculators.lammps_mace" in modules


class MaceLammpsModel(torch.nn.Module):
    """Contract model around a LAMMPS_MACE file's MACE model: per-atom energies (eV) from mlcalc's graph."""

    index_of_number: Tensor
    head: Tensor

    def __init__(self, lammps: torch.jit.ScriptModule):
        super().__init__()
        self.model = lammps.model
        numbers = [int(z) for z in lammps.atomic_numbers.tolist()]
        self.register_buffer("index_of_number", index_lookup(numbers))
        self.register_buffer("head", lammps.head.detach().clone().reshape(1))
        self.n_elements = len(numbers)

    def forward(self, inputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        positions = inputs["positions"]
        edge_index = inputs["edge_index"]
        batch = inputs["batch"]
        graphs = inputs["cell"].shape[0]
        shifts = inputs["edge_vectors"] - (positions[edge_index[1]] - positions[edge_index[0]])
        counts = torch.bincount(batch, minlength=graphs)
        ptr = torch.cat([torch.zeros(1, dtype=torch.long, device=batch.device), torch.cumsum(counts, 0)])
        elements = self.index_of_number[inputs["atomic_numbers"]]
        data: Dict[str, Tensor] = {
            "positions": positions,
            "node_attrs": torch.nn.functional.one_hot(elements, self.n_elements).to(positions.dtype),
            "edge_index": edge_index,
            "shifts": shifts,
            "unit_shifts": inputs["edge_shifts"].to(positions.dtype),
            "cell": inputs["cell"],
            "batch": batch,
            "ptr": ptr,
            "head": self.head.expand(graphs),
        }
        energies = self.model(data, training=False, compute_force=False)["node_energy"]
        if energies is None:
            raise ValueError("the MACE model returned no node energies")
        # a float32 export keeps some float64 buffers (the E0s), so its energies come out in float64
        return {"energies": energies.to(positions.dtype)}


def convert(path: PathLike, extra: dict[str, bytes]) -> dict:
    """The contract model and metadata fields of a MACE LAMMPS export.

    Raises:
        PluginError: the file lacks what ``mace_create_lammps_model`` writes, or its model's interface
            is not the one this importer was written for.
    """
    lammps = torchscript.load(str(path), map_location="cpu")
    missing = [name for name in REQUIRED if not hasattr(lammps, name)]
    if missing:
        raise PluginError(
            f"{path} holds MACE's LAMMPS wrapper but lacks {missing}, which mace_create_lammps_model writes: "
            f"export it again with mace-torch {CHECKED_VERSIONS}"
        )
    schema = str(lammps.model.forward.schema)
    if "compute_force" not in schema or "Dict(str, Tensor) data" not in schema:
        raise PluginError(
            f"{path}: its MACE model's forward is {schema!r}, not the interface of mace-torch "
            f"{CHECKED_VERSIONS} (a data dictionary and compute_force): export it with a checked version"
        )
    dtype = lammps.r_max.dtype
    if dtype not in (torch.float32, torch.float64):
        raise PluginError(f"{path} holds a {dtype} model; supported: float32 and float64")
    return {
        "model": MaceLammpsModel(lammps),
        "cutoff": float(lammps.r_max),
        "species": [int(z) for z in lammps.atomic_numbers.tolist()],
        "length_unit": "angstrom",
        "energy_unit": "eV",
        "dtype": str(dtype).replace("torch.", ""),
        "family_version": None,
        "extra": {"head": int(lammps.head.reshape(-1)[0])},
    }
