"""NequIP and Allegro models compiled by ``nequip-compile --mode torchscript`` (``.nequip.pth`` files).

The file is a scripted ``GraphModel`` (nequip >= 0.7, the NequIP framework; Allegro models are built by
the ``allegro`` extension and compiled by the same tool) whose extra files hold ``r_max``,
``type_names`` (space-separated), ``num_types``, ``model_dtype``, ``allow_tf32`` and, for a model with
per-edge-type cutoffs, ``per_edge_type_cutoff`` (``num_types``² cutoffs, row = the type of the centre
atom). Its ``.model`` is a ``ForceStressOutput`` that differentiates the energy of its ``.func``, an
energy model over nequip's ``AtomicDataDict``: ``edge_index`` (row 0 the centre atom i, row 1 the
neighbour j), ``atom_types`` (index into ``type_names``) and the positions, cell and
``edge_cell_shift`` from which it forms ``edge_vectors`` = r_j − r_i + shift @ cell, unless
``edge_vectors`` are given (as nequip's LAMMPS ML-IAP interface gives them). This wrapper calls that
energy model with mlcalc's own edge vectors, so that forces and stress come from mlcalc's autograd and the
graph is never differentiated twice; the per-atom energies are its ``atomic_energy`` (per-type scale
and shift and any pair potential included). With per-edge-type cutoffs the edges beyond their pair's
cutoff are dropped first, as nequip's own neighbour list does. The file records no nequip version: it
is recognised by its metadata and by the layout of its modules, and a legacy ``nequip-deploy`` file
(nequip < 0.7, which records ``nequip_version``) is refused. Read from ``nequip/nn/graph_model.py``,
``nequip/nn/grad_output.py``, ``nequip/nn/embedding/_edge.py``, ``nequip/data/transforms/
neighborlist.py`` and ``nequip/model/inference_models/torchscript.py`` of nequip 0.19.1.
"""

from typing import Dict, Optional, Union

import torch
from ase.data import atomic_numbers as ATOMIC_NUMBERS
from torch import Tensor

from mlcalc import torchscript
from mlcalc.errors import PluginError
from mlcalc.files import PathLike
from mlcalc.foreign.files import text
from mlcalc.module import index_lookup

NAME = "nequip-torchscript"
FAMILY = "NequIP"
#: nequip versions (with their Allegro extension, nequip-allegro 0.8) whose compiled files this importer
#: was checked with. The files do not record the version, so this is what the metadata keys stand for.
CHECKED_VERSIONS = ">=0.19,<0.20"
#: Extra files every compiled model has.
REQUIRED = ("r_max", "type_names", "num_types", "model_dtype")
#: Every extra file nequip 0.19 writes (``allow_tf32`` only matters for CUDA matrix products).
KNOWN = REQUIRED + ("allow_tf32", "per_edge_type_cutoff")
DTYPES = ("float32", "float64")


def recognises(extra: dict[str, bytes], modules: set[str]) -> bool:
    """Whether the archive is a nequip model (compiled, or deployed by nequip < 0.7)."""
    return any(module.startswith("nequip.nn.") for module in modules) or (
        "type_names" in extra and "r_max" in extra and ("model_dtype" in extra or "nequip_version" in extra)
    )


class NequIPModel(torch.nn.Module):
    """Contract model around a compiled NequIP/Allegro model: per-atom energies (eV) from mlcalc's graph."""

    type_of_number: Tensor
    rmax_recip: Tensor

    def __init__(self, energy_model: torch.jit.ScriptModule, numbers: list[int], cutoffs: Optional[Tensor]):
        super().__init__()
        self.energy_model = energy_model
        self.register_buffer("type_of_number", index_lookup(numbers))
        self.num_types = len(numbers)
        self.per_edge_type = cutoffs is not None
        recip = torch.ones(1, dtype=torch.float64) if cutoffs is None else cutoffs.reciprocal().reshape(-1)
        self.register_buffer("rmax_recip", recip)

    def forward(self, inputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        positions = inputs["positions"]
        batch = inputs["batch"]
        types = self.type_of_number[inputs["atomic_numbers"]]
        edge_index = inputs["edge_index"]
        edge_vectors = inputs["edge_vectors"]
        if self.per_edge_type:
            pair = types[edge_index[0]] * self.num_types + types[edge_index[1]]
            scaled = edge_vectors.detach().square().sum(1).sqrt() * self.rmax_recip.to(edge_vectors.dtype)[pair]
            keep = scaled <= 1.0
            edge_index = edge_index[:, keep]
            edge_vectors = edge_vectors[keep]
        data: Dict[str, Tensor] = {
            "pos": positions,
            "atom_types": types,
            "edge_index": edge_index,
            "edge_vectors": edge_vectors,
            "batch": batch,
            "num_atoms": torch.bincount(batch, minlength=inputs["cell"].shape[0]),
        }
        energies = self.energy_model(data)["atomic_energy"]
        return {"energies": energies.reshape(-1).to(positions.dtype)}


def parse_type_map(type_map: Union[Dict[str, str], str, None]) -> Optional[Dict[str, str]]:
    """``type_map`` as a dict; a string ``"TYPE:SYMBOL,..."`` (``--option type_map=...``) is parsed."""
    if type_map is None or isinstance(type_map, dict):
        return type_map
    pairs = [item.split(":") for item in str(type_map).split(",") if item.strip()]
    if not pairs or any(len(pair) != 2 or not pair[0].strip() or not pair[1].strip() for pair in pairs):
        raise PluginError(f"type_map takes TYPE:SYMBOL pairs separated by commas (e.g. Cs:C,Xx:O), got {type_map!r}")
    return {name.strip(): symbol.strip() for name, symbol in pairs}


def type_elements(path: PathLike, names: list[str], type_map: Optional[Dict[str, str]]) -> list[int]:
    """The atomic number of each type name: the name itself as an element symbol, or ``type_map``'s."""
    if type_map is not None:
        unknown = sorted(set(type_map) - set(names))
        if unknown:
            raise PluginError(f"{path}: type_map names {unknown}, which are not among the model's types {names}")
    symbols = [(type_map or {}).get(name, name) for name in names]
    bad = [f"{name}" if name == symbol else f"{name} -> {symbol}" for name, symbol in zip(names, symbols)]
    bad = [entry for entry, symbol in zip(bad, symbols) if symbol not in ATOMIC_NUMBERS or symbol == "X"]
    if bad:
        raise PluginError(
            f"{path}: the model's type names {names} include {bad}, which are not element symbols; give the element "
            "of each such type, type_map={'TYPE': 'SYMBOL', ...} (the model's chemical_species_to_atom_type_map "
            "the other way round)"
        )
    numbers = [ATOMIC_NUMBERS[s] for s in symbols]
    twice = sorted({s for s in symbols if symbols.count(s) > 1})
    if twice:
        raise PluginError(
            f"{path}: several of the model's types {names} are the element(s) {twice}; mlcalc tells atoms apart by "
            "element only, so such a model cannot be imported (map each type to a different element)"
        )
    return numbers


def _float(extra: dict[str, bytes], name: str) -> float:
    try:
        return float(text(extra, name))
    except ValueError:
        return float("nan")


def convert(path: PathLike, extra: dict[str, bytes], type_map: Union[Dict[str, str], str, None] = None) -> dict:
    """The contract model and metadata fields of a ``nequip-compile --mode torchscript`` file.

    Args:
        type_map: the element symbol of each type name that is not one (e.g. ``{"Cs": "C"}``, or from the
            command line ``"Cs:C,Xx:O"``).

    Raises:
        PluginError: a legacy ``nequip-deploy`` file, metadata that is missing, unknown or contradicts
            itself, type names that are not elements, or a module layout other than nequip 0.19's.
    """
    if "nequip_version" in extra:
        raise PluginError(
            f"{path} was deployed by nequip {text(extra, 'nequip_version')} (`nequip-deploy`, nequip < 0.7), a format "
            f"mlcalc does not import; supported: `nequip-compile --mode torchscript` files of nequip {CHECKED_VERSIONS}"
        )
    missing = [name for name in REQUIRED if name not in extra]
    if missing:
        raise PluginError(
            f"{path} looks like a nequip model but lacks the metadata {missing} that `nequip-compile` writes (found "
            f"{sorted(extra)}): compile it again with nequip {CHECKED_VERSIONS}, `--mode torchscript`"
        )
    if "nequip_custom_ops_libs" in extra:
        raise PluginError(
            f"{path} was compiled with accelerated kernels that need the packages "
            f"{text(extra, 'nequip_custom_ops_libs').split()} (a --modifiers option of nequip-compile, e.g. "
            "cuEquivariance or OpenEquivariance): compile it again without those modifiers"
        )
    unknown = sorted(set(extra) - set(KNOWN))
    if unknown:
        raise PluginError(
            f"{path} has metadata {unknown} that nequip {CHECKED_VERSIONS} does not write (a newer nequip, or a "
            f"modifier such as a custom kernel, that mlcalc's import was not checked with): compile it with nequip "
            f"{CHECKED_VERSIONS} without --modifiers"
        )
    names = text(extra, "type_names").split()
    count = text(extra, "num_types")
    if not names or not count.isdigit() or int(count) != len(names):
        raise PluginError(
            f"{path} contradicts itself: num_types is {count!r} but type_names lists {len(names)} types ({names}); "
            "the file is damaged or was edited: compile it again"
        )
    numbers = type_elements(path, names, parse_type_map(type_map))
    precision = text(extra, "model_dtype")
    if precision not in DTYPES:
        raise PluginError(f"{path} has model_dtype {precision!r}; supported: {list(DTYPES)}")
    cutoff = _float(extra, "r_max")
    if not 0 < cutoff < float("inf"):
        raise PluginError(f"{path} has r_max {text(extra, 'r_max')!r}, not a positive number of Å")
    cutoffs: Optional[Tensor] = None
    if "per_edge_type_cutoff" in extra:
        values = text(extra, "per_edge_type_cutoff").split()
        try:
            cutoffs = torch.tensor([float(v) for v in values], dtype=torch.float64)
        except ValueError:
            cutoffs = torch.tensor([float("nan")])
        if cutoffs.numel() != len(names) ** 2 or not bool(((cutoffs > 0) & (cutoffs <= cutoff)).all()):
            raise PluginError(
                f"{path} contradicts itself: per_edge_type_cutoff must hold {len(names)}² cutoffs in (0, r_max = "
                f"{cutoff}] Å, found {values}; the file is damaged or was edited: compile it again"
            )
        cutoffs = cutoffs.reshape(len(names), len(names))
    compiled = torchscript.load(str(path), map_location="cpu")
    layout = _layout(compiled)
    if layout:
        raise PluginError(
            f"{path}: {layout}, not the layout of nequip {CHECKED_VERSIONS}'s compiled models (GraphModel → "
            f"ForceStressOutput → energy model): compile it with nequip {CHECKED_VERSIONS}"
        )
    return {
        "model": NequIPModel(compiled.model.func, numbers, cutoffs),
        "cutoff": cutoff,
        "species": sorted(numbers),
        "length_unit": "angstrom",
        "energy_unit": "eV",
        "dtype": precision,
        "family_version": None,
        "extra": {
            "type_names": " ".join(names),
            "allow_tf32": text(extra, "allow_tf32") if "allow_tf32" in extra else "",
            "model": _architecture(compiled),
            "per_edge_type_cutoff": text(extra, "per_edge_type_cutoff") if cutoffs is not None else "",
        },
    }


def _layout(compiled: torch.jit.ScriptModule) -> str:
    """What differs from the module layout this importer was written for ("" when nothing does)."""
    if compiled.original_name != "GraphModel" or not hasattr(compiled, "model"):
        return f"its top module is {compiled.original_name}"
    if compiled.model.original_name != "ForceStressOutput" or not hasattr(compiled.model, "func"):
        return f"its GraphModel wraps {compiled.model.original_name}"
    if "edge_vectors" not in list(getattr(compiled, "model_input_fields", [])):
        return "its GraphModel does not take edge_vectors"
    schema = str(compiled.model.func.forward.schema)
    if "Dict(str, Tensor) input) -> Dict(str, Tensor)" not in schema:
        return f"its energy model's forward is {schema!r}"
    return ""


def _architecture(compiled: torch.jit.ScriptModule) -> str:
    """The architecture, "Allegro" or "NequIP", from the energy model's submodules (recorded in the metadata only)."""
    kinds = {module.original_name for module in compiled.model.func.modules()}
    return "Allegro" if "Allegro_Module" in kinds else "NequIP" if "ConvNetLayer" in kinds else "other"
