"""SevenNet's serial LAMMPS deployment (``sevenn get_model``/``sevenn deploy``, ``pair_style e3gnn``).

The deployed file is a frozen TorchScript module that LAMMPS calls with a dictionary: ``x`` (each atom's
index in the file's ``chemical_symbols_to_index`` list), ``edge_index`` ([2, E]: row 0 the centre atom i,
row 1 the neighbour j, both directions of every pair within the cutoff), ``edge_vec`` (r_j − r_i, Å,
float32 for a "single" file), ``num_atoms`` and ``nlocal``. It returns ``atomic_energy`` (eV, [N, 1])
and ``inferred_total_energy``; LAMMPS takes forces and the virial from the gradient with respect to
``edge_vec``. mlcalc's graph gives exactly those edges (its ``edge_vectors`` hold the periodic shifts),
and its module takes forces and stress from the same energies by autograd, so the imported file needs
neither LAMMPS nor the ``sevenn`` package. Read from ``sevenn/pair_e3gnn/pair_e3gnn.cpp`` and
``sevenn/scripts/deploy.py`` of SevenNet 0.13.
"""

from typing import Dict

import torch
from ase.data import atomic_numbers as ATOMIC_NUMBERS
from torch import Tensor

from mlcalc import torchscript
from mlcalc.errors import PluginError
from mlcalc.files import PathLike
from mlcalc.foreign.files import text
from mlcalc.module import index_lookup

NAME = "sevennet-lammps"
FAMILY = "SevenNet"
#: SevenNet versions whose deployed files this importer was checked with (PEP 440).
CHECKED_VERSIONS = ">=0.13,<0.14"
#: Extra files every serial deployment has.
REQUIRED = ("chemical_symbols_to_index", "cutoff", "num_species", "dtype", "version", "model_type")
DTYPES = {"single": "float32", "double": "float64"}


def recognises(extra: dict[str, bytes], modules: set[str]) -> bool:
    """Whether the extra files are a SevenNet deployment's (serial or parallel)."""
    return "chemical_symbols_to_index" in extra and "model_type" in extra


class SevenNetLammpsModel(torch.nn.Module):
    """Contract model around a SevenNet serial deployment: per-atom energies (eV) from mlcalc's graph."""

    type_of_number: Tensor

    def __init__(self, deployed: torch.jit.ScriptModule, numbers: list[int]):
        super().__init__()
        self.deployed = deployed
        self.register_buffer("type_of_number", index_lookup(numbers))

    def forward(self, inputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        numbers = inputs["atomic_numbers"]
        count = torch.tensor([numbers.shape[0]], dtype=torch.long)
        data: Dict[str, Tensor] = {
            "x": self.type_of_number[numbers],
            "edge_index": inputs["edge_index"],
            "edge_vec": inputs["edge_vectors"],
            "num_atoms": count.to(numbers.device),
            "nlocal": count,
        }
        return {"energies": self.deployed(data)["atomic_energy"].reshape(-1)}


def convert(path: PathLike, extra: dict[str, bytes]) -> dict:
    """The contract model and metadata fields of a SevenNet serial deployment.

    Raises:
        PluginError: a parallel deployment, one that needs custom LAMMPS kernels (flashTP,
            OpenEquivariance), or metadata that is missing or contradicts itself.
    """
    missing = [name for name in REQUIRED if name not in extra]
    if missing:
        raise PluginError(
            f"{path} looks like a SevenNet deployment but lacks the metadata {missing} that `sevenn get_model` "
            f"writes (found {sorted(extra)}): deploy it again with sevenn {CHECKED_VERSIONS}"
        )
    if "comm_size" in extra:
        raise PluginError(
            f"{path} is a parallel SevenNet deployment (one file per message-passing layer, for LAMMPS with "
            "MPI): deploy the serial model instead, `sevenn get_model CHECKPOINT` without -p"
        )
    kernels = [name for name in ("flashTP", "oeq") if name in extra and text(extra, name).lower() == "yes"]
    if kernels:
        raise PluginError(
            f"{path} was deployed with {' and '.join(kernels)}, whose custom kernels exist only in a specially "
            "built LAMMPS: deploy it again without -flashTP / -oeq"
        )
    model_type = text(extra, "model_type")
    if model_type != "E3_equivariant_model":
        raise PluginError(f"{path} holds a SevenNet model_type {model_type!r}; supported: 'E3_equivariant_model'")
    symbols = text(extra, "chemical_symbols_to_index").split()
    unknown = [s for s in symbols if s not in ATOMIC_NUMBERS]
    if unknown:
        raise PluginError(f"{path}: chemical_symbols_to_index holds unknown element symbols {unknown}")
    count = text(extra, "num_species")
    if not count.isdigit() or int(count) != len(symbols):
        raise PluginError(
            f"{path} contradicts itself: num_species is {count!r} but chemical_symbols_to_index lists "
            f"{len(symbols)} elements; the file is damaged or was edited: deploy it again"
        )
    precision = text(extra, "dtype")
    if precision not in DTYPES:
        raise PluginError(f"{path} has dtype {precision!r}; supported: {sorted(DTYPES)}")
    try:
        cutoff = float(text(extra, "cutoff"))
    except ValueError:
        cutoff = float("nan")
    if not 0 < cutoff < float("inf"):
        raise PluginError(f"{path} has cutoff {text(extra, 'cutoff')!r}, not a positive number of Å")
    deployed = torchscript.load(str(path), map_location="cpu")
    numbers = [ATOMIC_NUMBERS[s] for s in symbols]
    return {
        "model": SevenNetLammpsModel(deployed, numbers),
        "cutoff": cutoff,
        "species": numbers,
        "length_unit": "angstrom",
        "energy_unit": "eV",
        "dtype": DTYPES[precision],
        "family_version": text(extra, "version"),
        "extra": {"deployed": text(extra, "time") if "time" in extra else ""},
    }
