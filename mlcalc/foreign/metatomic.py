"""metatomic models: ``AtomisticModel`` files saved by metatomic-torch (``AtomisticModel.save``).

Such a file is a scripted ``metatomic.torch.model.AtomisticModel`` whose extra files hold
``metatomic-version``, ``torch-version``, ``model-metadata`` (JSON: name, description, authors,
references), ``extensions`` and ``extensions-deps`` (JSON lists of TorchScript extension libraries it
needs). Everything else is in the module itself, read through its exported methods once the runtime is
loaded: ``capabilities()`` (outputs with their unit and sample kind, atomic types, interaction range,
length unit, supported devices, dtype), ``requested_neighbor_lists()`` (cutoff in the model's length
unit, full or half list, strict or not) and ``requested_inputs()`` (extra per-atom or per-system data).

The model takes ``List[System]`` and ``ModelEvaluationOptions`` and returns ``Dict[str, TensorMap]``:
custom TorchScript classes of metatomic-torch and metatensor-torch, registered by their shared libraries
``libmetatomic_torch`` and ``libmetatensor_torch`` (the latter links metatensor-core's
``libmetatensor``). :func:`load_runtime` loads those libraries from the installed distributions' files,
without importing any of their Python packages; an imported file needs them wherever it is loaded.

:class:`MetatomicModel` builds one ``System`` per structure from mlcalc's graph, in the model's dtype
(cell rows of non-periodic directions set to zero, as metatomic's own ASE calculator does), and each
requested neighbour list from mlcalc's full list, whose cutoff is the largest requested one: a shorter
cutoff keeps the edges within it, a half list keeps one direction of each pair (i < j, or i = j with the
first non-zero lattice shift positive). The samples are (first_atom, second_atom, cell_shift_a/b/c) and
the values mlcalc's differentiable ``edge_vectors``, so forces and stress come from mlcalc's autograd.
Lengths are converted from Å to the model's length unit and energies from its energy unit to eV by
factors metatomic-torch computes from the declared units at import. Per-atom energies are requested
where the output offers them (``sample_kind == "atom"``); a model with total energies only gets each
structure's energy spread evenly over its atoms (forces, stress and totals are exact, the per-atom split
is not the model's).

The imported file holds the model inside the ``AtomisticModel`` (its ``module``), called as
``AtomisticModel.forward`` calls it after the same conversions, with neighbour-list options made anew at
each call, equal to the model's requests. A module whose forward reaches the ``AtomisticModel``'s
custom-class attributes (its capabilities, its list of requests) cannot be frozen by ``torch.jit.freeze``
("Cannot inspect value of type Capsule"), which openmm-torch's TorchForce does. Read from
``metatomic/torch/model.py``, ``metatomic/torch/documentation.py``, ``metatomic_ase/_calculator.py`` and
``vesin/metatomic`` of metatomic-torch 0.1.19 and metatomic-ase 0.1.4.
"""

import importlib.metadata
import json
import math
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch
from ase.data import chemical_symbols
from torch import Tensor

from mlcalc import torchscript
from mlcalc.errors import PluginError
from mlcalc.files import PathLike
from mlcalc.foreign.files import text

NAME = "metatomic"
FAMILY = "metatomic"
#: metatomic-torch versions whose saved models this importer was checked with (PEP 440).
CHECKED_VERSIONS = ">=0.1.19,<0.2"
#: The distributions whose shared libraries register the TorchScript classes of a metatomic model, in
#: loading order (libmetatomic_torch finds libmetatensor_torch only once it is loaded).
RUNTIME = (("metatensor-torch", "libmetatensor_torch"), ("metatomic-torch", "libmetatomic_torch"))
#: Extra files every saved model has.
REQUIRED = ("metatomic-version", "model-metadata", "extensions")
DTYPES = ("float32", "float64")
#: What mlcalc's graph gives a model: no extra inputs (``requested_inputs``) can be honoured.
GIVEN = "types (atomic numbers), positions, cell, pbc and neighbour lists"


def recognises(extra: dict[str, bytes], modules: set[str]) -> bool:
    """Whether the archive is a metatomic model (or one of metatensor-torch's ``atomistic`` module, its
    predecessor)."""
    return (
        "metatomic-version" in extra
        or "metatomic.torch.model" in modules
        or any(module.startswith("metatensor.torch.atomistic") for module in modules)
    )


def runtime_libraries() -> list[str]:
    """Paths of metatomic's TorchScript libraries built for the running torch, from the installed
    distributions' file lists (nothing is imported).

    Raises:
        PluginError: a distribution is not installed, or has no library for this torch version.
    """
    major_minor = ".".join(torch.__version__.split("+")[0].split(".")[:2])
    paths = []
    for distribution, library in RUNTIME:
        try:
            files = importlib.metadata.distribution(distribution).files or []
            version = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError as exc:
            raise PluginError(
                f"{distribution} is not installed: {exc}. metatomic models need its TorchScript library "
                f"({library}); install it with `pip install metatomic-torch` (the version the file records)"
            ) from exc
        found = [
            str(file.locate())
            for file in files
            if file.name.startswith(library) and f"torch-{major_minor}" in file.parts and "lib" in file.parts
        ]
        if not found:
            raise PluginError(
                f"{distribution} {version} has no {library} built for torch {major_minor}: install a "
                f"{distribution} release built for this torch, or `pip install --no-binary={distribution} "
                f"{distribution}`"
            )
        paths.append(found[0])
    return paths


def runtime_loaded() -> bool:
    """Whether metatomic-torch's TorchScript classes and operators are registered in this process."""
    return hasattr(torch.ops.metatomic, "version")


def needs_runtime(metadata_extra: Mapping[str, Any]) -> bool:
    """Whether a file of this metadata ``extra`` was imported from a metatomic model (then loading it needs
    :func:`runtime_for` first)."""
    return metadata_extra.get("foreign_format") == NAME


def runtime_for(metadata_extra: Mapping[str, Any], source: str) -> None:
    """Load the runtime an imported file needs, the metadata's ``runtime`` (``mlcalc.load`` calls this
    for a file imported from a metatomic model, before loading it)."""
    load_runtime(source, str(metadata_extra.get("runtime", "metatomic-torch")))


def load_runtime(source: str = "", requirement: str = "") -> None:
    """Register metatomic's TorchScript classes in this process (``torch.ops.load_library`` of
    libmetatensor_torch, then libmetatomic_torch); nothing when already registered.

    Args:
        source: the file that needs them (named in the error).
        requirement: the pip requirement to name in the error, e.g. ``"metatomic-torch==0.1.19"``.

    Raises:
        PluginError: the libraries are not installed or do not load, naming the package to install.
    """
    if runtime_loaded():
        return
    need = requirement or "metatomic-torch"
    try:
        for path in runtime_libraries():
            torch.ops.load_library(path)
    except (PluginError, OSError, RuntimeError) as exc:
        raise PluginError(
            f"{source or 'this file'} holds a metatomic model, whose TorchScript classes come from the shared "
            f"libraries of metatomic-torch and metatensor-torch; they could not be loaded ({exc}). Install "
            f"them: `pip install {need}` (its Python packages need not be imported)"
        ) from exc


class MetatomicModel(torch.nn.Module):
    """Contract model around the model inside a metatomic ``AtomisticModel``: per-atom energies (eV) from
    mlcalc's graph.

    ``requests``: each requested neighbour list as (cutoff in the model's length unit, the same in Å, full
    list, strict), in the order of ``requested_neighbor_lists()``; ``per_atom``: whether the
    energy output is per atom; ``float64``: the model's dtype; ``devices``: its supported device types;
    ``length_factor``: model length units per Å; ``energy_factor``: eV per model energy unit.
    """

    def __init__(
        self,
        model: torch.jit.ScriptModule,
        output: str,
        per_atom: bool,
        requests: List[Tuple[float, float, bool, bool]],
        float64: bool,
        devices: List[str],
        length_factor: float,
        energy_factor: float,
    ):
        super().__init__()
        self.model = model
        self.output = output
        self.sample_kind = "atom" if per_atom else "system"
        self.model_cutoffs = [request[0] for request in requests]
        self.cutoffs = [request[1] for request in requests]  # Å
        self.full = [request[2] for request in requests]
        self.strict = [request[3] for request in requests]
        self.graph_cutoff = max(self.cutoffs)
        self.float64 = float64
        self.devices = devices
        self.length_factor = length_factor
        self.energy_factor = energy_factor

    def forward(self, inputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        positions = inputs["positions"]
        device = positions.device
        if device.type not in self.devices:
            raise RuntimeError(
                "this metatomic model runs on {} only, not on {}".format(", ".join(self.devices), device.type)
            )
        dtype = torch.float64 if self.float64 else torch.float32
        batch = inputs["batch"]
        cell = inputs["cell"]
        pbc = inputs["pbc"]
        numbers = inputs["atomic_numbers"]
        edge_index = inputs["edge_index"]
        edge_vectors = inputs["edge_vectors"]
        shifts = inputs["edge_shifts"]
        count = cell.shape[0]
        atoms = torch.bincount(batch, minlength=count)
        edges = torch.bincount(batch[edge_index[0]], minlength=count)
        atom_starts: List[int] = (torch.cumsum(atoms, 0) - atoms).tolist()
        edge_starts: List[int] = (torch.cumsum(edges, 0) - edges).tolist()
        atom_counts: List[int] = atoms.tolist()
        edge_counts: List[int] = edges.tolist()
        xyz = torch.classes.metatensor.Labels(["xyz"], torch.arange(3, dtype=torch.int32, device=device).unsqueeze(1))
        distance = torch.classes.metatensor.Labels(["distance"], torch.zeros(1, 1, dtype=torch.int32, device=device))
        systems: List[torch.classes.metatomic.System] = []  # type: ignore[name-defined]
        for b in range(count):
            first = atom_starts[b]
            n = atom_counts[b]
            periodic = pbc[b]
            system = torch.classes.metatomic.System(
                numbers[first : first + n].to(torch.int32),
                positions[first : first + n].to(dtype) * self.length_factor,
                (cell[b] * periodic.unsqueeze(1).to(cell.dtype)).to(dtype) * self.length_factor,
                periodic,
            )
            pairs = edge_index[:, edge_starts[b] : edge_starts[b] + edge_counts[b]] - first
            vectors = edge_vectors[edge_starts[b] : edge_starts[b] + edge_counts[b]]
            shift = shifts[edge_starts[b] : edge_starts[b] + edge_counts[b]]
            lengths = vectors.detach().square().sum(1).sqrt()
            for k, cutoff in enumerate(self.model_cutoffs):
                # equal to the model's own request (cutoff, full_list, strict), as get_neighbor_list looks for
                options = torch.classes.metatomic.NeighborListOptions(cutoff, self.full[k], self.strict[k], "mlcalc")
                keep = torch.ones_like(lengths, dtype=torch.bool)
                if self.cutoffs[k] < self.graph_cutoff:
                    keep = lengths < self.cutoffs[k]
                if not self.full[k]:
                    keep = keep & _one_direction(pairs, shift)
                samples = torch.cat([pairs.t()[keep], shift[keep]], dim=1).to(torch.int32)
                block = torch.classes.metatensor.TensorBlock(
                    vectors[keep].to(dtype).unsqueeze(2) * self.length_factor,
                    torch.classes.metatensor.Labels(
                        ["first_atom", "second_atom", "cell_shift_a", "cell_shift_b", "cell_shift_c"], samples
                    ),
                    [xyz],
                    distance,
                )
                system.add_neighbor_list(options, block)
            systems.append(system)
        request = torch.classes.metatomic.ModelOutput("", "eV", self.sample_kind, [], "")
        block = self.model(systems, {self.output: request}, None)[self.output].block(0)
        values = block.values.reshape(-1) * self.energy_factor
        starts = torch.tensor(atom_starts, dtype=torch.long, device=device)
        samples = block.samples.values.to(torch.long)
        if self.sample_kind == "atom":
            index = starts[samples[:, 0]] + samples[:, 1]
            energies = torch.zeros(positions.shape[0], dtype=values.dtype, device=device).index_add(0, index, values)
        else:
            totals = torch.zeros(count, dtype=values.dtype, device=device).index_add(0, samples[:, 0], values)
            energies = totals[batch] / atoms[batch].to(values.dtype)
        return {"energies": energies.to(positions.dtype)}


def _one_direction(pairs: Tensor, shifts: Tensor) -> Tensor:
    """Which edges of a full list form a half list: i < j, or i = j with the first non-zero shift positive."""
    i = pairs[0]
    j = pairs[1]
    positive = (shifts[:, 0] > 0) | (
        (shifts[:, 0] == 0) & ((shifts[:, 1] > 0) | ((shifts[:, 1] == 0) & (shifts[:, 2] > 0)))
    )
    return (i < j) | ((i == j) & positive)


def convert(path: PathLike, extra: dict[str, bytes], variant: Optional[str] = None) -> dict:
    """The contract model and metadata fields of a saved metatomic ``AtomisticModel``.

    Args:
        variant: the energy output's variant to use (``energy/VARIANT``); default the plain ``energy``.

    Raises:
        PluginError: a file of metatensor-torch's older ``atomistic`` module, metadata that is missing or
            contradicts itself, TorchScript extensions, extra inputs, no (or an ambiguous) energy output,
            units metatomic cannot convert to eV and Å, an unknown dtype, or types that are not elements.
    """
    if "metatomic-version" not in extra and "metatensor-version" in extra:
        raise PluginError(
            f"{path} was exported by metatensor-torch {text(extra, 'metatensor-version')}'s atomistic module, "
            f"metatomic's predecessor, a format mlcalc does not import; supported: models saved by "
            f"metatomic-torch {CHECKED_VERSIONS} (`AtomisticModel.save`): export it again with metatomic-torch"
        )
    missing = [name for name in REQUIRED if name not in extra]
    if missing:
        raise PluginError(
            f"{path} looks like a metatomic model but lacks the metadata {missing} that `AtomisticModel.save` "
            f"writes (found {sorted(extra)}): save it again with metatomic-torch {CHECKED_VERSIONS}"
        )
    version = text(extra, "metatomic-version")
    try:
        extensions = json.loads(text(extra, "extensions"))
        described = json.loads(text(extra, "model-metadata"))
    except ValueError as exc:
        raise PluginError(f"{path}: its extensions or model-metadata are not JSON ({exc}); save it again") from exc
    if not isinstance(extensions, list) or not isinstance(described, dict):
        raise PluginError(
            f"{path} contradicts itself: extensions must be a JSON list and model-metadata a JSON object, found "
            f"{type(extensions).__name__} and {type(described).__name__}; the file is damaged or was edited"
        )
    if extensions:
        names = [entry.get("name", entry) if isinstance(entry, dict) else entry for entry in extensions]
        raise PluginError(
            f"{path} needs the TorchScript extensions {names} beside metatomic's own libraries; mlcalc imports "
            "metatomic models that need none (the extensions would have to be loaded wherever the file runs)"
        )
    requirement = f"metatomic-torch=={version}"
    load_runtime(str(path), requirement)
    model = torchscript.load(str(path), map_location="cpu")
    layout = _layout(model)
    if layout:
        raise PluginError(
            f"{path}: {layout}, not a metatomic AtomisticModel as metatomic-torch {CHECKED_VERSIONS} saves it"
        )
    capabilities = model.capabilities()
    outputs = dict(capabilities.outputs.items())
    output = _energy_output(path, outputs, variant)
    energy_unit = outputs[output].unit
    sample_kind = outputs[output].sample_kind
    if sample_kind not in ("atom", "system"):
        raise PluginError(f"{path}: its {output!r} output has sample_kind {sample_kind!r}; supported: atom, system")
    length_unit = capabilities.length_unit
    energy_factor = _factor(path, f"its {output!r} output's unit", energy_unit, "eV")
    _factor(path, "its length unit", length_unit, "angstrom")
    length_factor = _factor(path, "its length unit", "angstrom", length_unit)
    if capabilities.dtype not in DTYPES:
        raise PluginError(f"{path} has dtype {capabilities.dtype!r}; supported: {list(DTYPES)}")
    inputs = sorted(model.requested_inputs(True).keys())
    if inputs:
        raise PluginError(
            f"{path}: the model requests the inputs {inputs}, which mlcalc does not give (it gives {GIVEN}); "
            "supported: models that request no extra inputs"
        )
    types = list(capabilities.atomic_types)
    bad = [t for t in types if not 1 <= t < len(chemical_symbols)]
    if not types or bad or len(set(types)) != len(types):
        raise PluginError(
            f"{path}: its atomic_types {types} are not distinct atomic numbers (1-{len(chemical_symbols) - 1}); "
            "mlcalc passes atomic numbers as metatomic types, as metatomic's ASE calculator does"
        )
    requests = model.requested_neighbor_lists()
    if not requests:
        raise PluginError(
            f"{path}: the model requests no neighbour list; mlcalc gives models its neighbour list, so it "
            "imports metatomic models that request at least one"
        )
    cutoffs = [float(options.engine_cutoff("angstrom")) for options in requests]
    if not all(0 < c < math.inf for c in cutoffs):
        raise PluginError(f"{path}: its neighbour-list cutoffs {cutoffs} Å are not all positive and finite")
    interaction = float(capabilities.interaction_range)
    largest = max(options.cutoff for options in requests)
    if not interaction >= largest * (1 - 1e-12):
        raise PluginError(
            f"{path} contradicts itself: its interaction_range {interaction} {length_unit} is shorter than the "
            f"cutoff of its own neighbour list ({largest} {length_unit}); the file is damaged or was edited"
        )
    devices = list(capabilities.supported_devices)
    if "cpu" not in devices:
        raise PluginError(
            f"{path}: the model runs on {devices} only; mlcalc checks every file it writes on the CPU, so it "
            "imports metatomic models whose supported_devices include 'cpu'"
        )
    lists = "; ".join(
        f"{'full' if o.full_list else 'half'}, {c:g} Å{', strict' if o.strict else ''}"
        for o, c in zip(requests, cutoffs)
    )
    references = [ref for refs in (described.get("references") or {}).values() for ref in refs]
    return {
        "model": MetatomicModel(
            model.module,
            output,
            sample_kind == "atom",
            [(float(o.cutoff), c, bool(o.full_list), bool(o.strict)) for o, c in zip(requests, cutoffs)],
            capabilities.dtype == "float64",
            devices,
            length_factor,
            energy_factor,
        ),
        "cutoff": max(cutoffs),
        "species": sorted(types),
        "length_unit": "angstrom",
        "energy_unit": "eV",
        "dtype": capabilities.dtype,
        "authors": [str(a) for a in described.get("authors") or []],
        "references": [str(r) for r in references],
        "family_version": version,
        "extra": {
            "model_name": str(described.get("name", "")),
            "model_description": str(described.get("description", "")),
            "energy_output": output,
            "per_atom_energies": "model" if sample_kind == "atom" else "total spread evenly over the atoms",
            "model_length_unit": length_unit,
            "model_energy_unit": energy_unit,
            "neighbor_lists": lists,
            "interaction_range": f"{interaction} {length_unit}",
            "supported_devices": " ".join(devices),
            "other_outputs": " ".join(sorted(set(outputs) - {output})),
            "runtime": requirement,
            "torch_version_saved": text(extra, "torch-version") if "torch-version" in extra else "",
        },
    }


def _energy_output(path: PathLike, outputs: dict, variant: Optional[str]) -> str:
    """The name of the energy output to use: ``energy``, or ``energy/VARIANT``."""
    energies = sorted(name for name in outputs if name == "energy" or name.startswith("energy/"))
    if not energies:
        raise PluginError(
            f"{path}: the model has no energy output (its outputs: {sorted(outputs)}); mlcalc imports the "
            "'energy' output of a metatomic model (forces and stress come from its gradients)"
        )
    wanted = "energy" if variant is None else f"energy/{variant}"
    if wanted not in energies:
        choices = ", ".join(name.split("/", 1)[1] if "/" in name else "(default)" for name in energies)
        raise PluginError(
            f"{path}: the model has no {wanted!r} output; its energy outputs are {energies}: choose one with "
            f"the option variant=NAME (variants: {choices})"
        )
    return wanted


def _factor(path: PathLike, what: str, unit: str, target: str) -> float:
    """``target`` per ``unit`` (eV, Å or the model's units), by metatomic's own conversion; refuses a unit
    it cannot convert, or none at all."""
    if not unit:
        raise PluginError(
            f"{path}: {what} is not set (empty), so mlcalc cannot convert it to {target}; supported: any unit "
            "metatomic-torch converts (e.g. eV, meV, kJ/mol, kcal/mol, Hartree; angstrom, nm, Bohr)"
        )
    try:
        return float(torch.ops.metatomic.unit_conversion_factor(unit, target))
    except (RuntimeError, ValueError) as exc:
        raise PluginError(
            f"{path}: {what} is {unit!r}, which metatomic-torch cannot convert to {target} ({exc}); supported: "
            "the units metatomic-torch knows (e.g. eV, meV, kJ/mol, kcal/mol, Hartree; angstrom, nm, Bohr)"
        ) from exc


def _layout(model: torch.jit.ScriptModule) -> str:
    """What differs from a saved AtomisticModel ("" when nothing does)."""
    if model.original_name != "AtomisticModel":
        return f"its top module is {model.original_name}"
    missing = [m for m in ("capabilities", "requested_neighbor_lists", "requested_inputs") if not hasattr(model, m)]
    if missing:
        return f"it lacks the methods {missing}"
    schema = str(model.forward.schema)  # type: ignore[attr-defined]
    if "check_consistency" not in schema or "metatomic.System" not in schema:
        return f"its forward is {schema!r}"
    return ""
