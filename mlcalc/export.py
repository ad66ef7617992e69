"""``mlcalc.export``: script a user's model together with the graph builder into one file."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

import torch

from mlcalc import torchscript
from mlcalc._version import __version__
from mlcalc.compiled import export_program, program_record
from mlcalc.contract import METADATA_FILE, MODEL_INPUTS, PROGRAM_FILE, Metadata, dtype_name
from mlcalc.errors import ContractError, script_error_message
from mlcalc.files import PathLike, write_atomic
from mlcalc.module import PotentialModule, copy_script_module

_REQUIRED = ("cutoff", "species", "length_unit", "energy_unit")
_DICT_TYPE = "Dict[str, Tensor]"


def export(
    model: Union[torch.nn.Module, Sequence[torch.nn.Module]],
    path: PathLike,
    *,
    cutoff: Optional[float] = None,
    species: Optional[Iterable[int]] = None,
    length_unit: Optional[str] = None,
    energy_unit: Optional[str] = None,
    name: Optional[str] = None,
    description: Optional[str] = None,
    references: Optional[Iterable[str]] = None,
    authors: Optional[Iterable[str]] = None,
    license: Optional[str] = None,
    dtype: Union[str, torch.dtype, None] = None,
    extra: Optional[Mapping[str, Any]] = None,
    compilable: bool = False,
) -> Metadata:
    """Write ``model`` as a self-contained mlcalc potential file and return its metadata.

    ``model`` is a ``torch.nn.Module`` (or scripted module) whose ``forward`` takes the contract's
    input dictionary and returns a dictionary with per-atom ``"energies"`` (see docs/contract.md). Its
    attribute ``mlcalc_metadata`` (a dict), when present, supplies defaults for every keyword. A list of
    models is exported as one :class:`mlcalc.models.Committee` (their mean energy and forces, and their
    spread as the committee outputs).

    Args:
        path: file to write; replaced atomically.
        cutoff: graph cutoff in ``length_unit``.
        species: supported atomic numbers.
        length_unit: unit of positions the model expects ("angstrom", "nm", "bohr").
        energy_unit: unit of the energies it returns ("eV", "meV", "kJ/mol", "kcal/mol", "hartree").
        name, description, references: human-readable provenance.
        authors: who made the model (names); license: its license (an SPDX identifier, e.g. "MIT").
        dtype: "float32" or "float64" (default: the model's parameters', else float64).
        extra: free-form JSON-serialisable information stored with the metadata.
        compilable: also store the model as a ``torch.export`` program (contract 1.4), for
            ``mlcalc.load(path, compile=True)`` (:mod:`mlcalc.compiled`); refused, naming the cause, where the
            model does not export.
    """
    if isinstance(model, (list, tuple)):
        from mlcalc.models.committee import Committee

        model = Committee(model)
    if not isinstance(model, torch.nn.Module):
        raise ContractError(
            f"export needs a torch.nn.Module, got {type(model).__name__}: pass the model itself (a saved state "
            "dict or file must first be loaded into its model class)"
        )
    declared = dict(getattr(model, "mlcalc_metadata", None) or {})
    given = {
        "cutoff": cutoff,
        "species": species,
        "length_unit": length_unit,
        "energy_unit": energy_unit,
        "name": name,
        "description": description,
        "references": references,
        "authors": authors,
        "license": license,
        "dtype": dtype_name(dtype, ContractError) if dtype is not None else None,
        "extra": dict(extra) if extra is not None else None,
    }
    own_cutoff = declared.get("cutoff")
    if cutoff is not None and own_cutoff is not None and cutoff < own_cutoff:
        raise ContractError(
            f"cutoff={cutoff:g} is below the {own_cutoff:g} the model declares (mlcalc_metadata): its graph would "
            "drop pairs the model interacts with and change its energies. Omit cutoff= to use the model's own"
        )
    fields = {**declared, **{k: v for k, v in given.items() if v is not None}}
    missing = [k for k in _REQUIRED if fields.get(k) is None]
    if missing:
        raise ContractError(
            f"export needs {', '.join(f'{k}=...' for k in missing)}: the model does not declare "
            "them in its mlcalc_metadata attribute"
        )
    unknown = sorted(set(fields) - set(Metadata.__dataclass_fields__))
    if unknown:
        raise ContractError(
            f"the model's mlcalc_metadata has unknown keys {unknown}: remove or rename them (known: "
            f"{', '.join(sorted(Metadata.__dataclass_fields__))})"
        )
    fields.setdefault("name", type(model).__name__)
    if fields.get("dtype") is None:  # not setdefault: a mixed-dtype model is fine when dtype= is given
        fields["dtype"] = _parameter_dtype(model)
    metadata = replace(Metadata(**fields), mlcalc_version=__version__, torch_version=torch.__version__)

    module = build_module(model, metadata)
    members = check_module(module, metadata)
    if "committee" in fields and fields["committee"] != members:
        raise ContractError(
            f"the model declares a committee of {fields['committee']} members but returns "
            + (f"{members} members' energies" if members else "no 'energies_committee'")
        )
    metadata = replace(metadata, committee=members)  # what the model returns decides
    program = None
    if compilable:
        program = export_program(copy.deepcopy(model).to(getattr(torch, metadata.dtype)).eval(), metadata)
        metadata = replace(metadata, program=program_record(program))
    save_module(module, metadata, path, program)
    return metadata


def build_module(model: torch.nn.Module, metadata: Metadata) -> torch.jit.ScriptModule:
    """Script ``model`` in ``metadata.dtype`` inside a :class:`PotentialModule`."""
    dtype = getattr(torch, metadata.dtype)
    copied = copy_script_module(model) if isinstance(model, torch.jit.ScriptModule) else copy.deepcopy(model)
    model = copied.to(dtype).eval()
    try:
        scripted = model if isinstance(model, torch.jit.ScriptModule) else torchscript.script(model)
    except Exception as exc:  # TorchScript raises many exception types; all mean the same here
        raise ContractError(
            f"the model could not be compiled with TorchScript; fix the code TorchScript points at:\n{exc}"
        ) from exc
    _check_signature(scripted)
    wrapper = PotentialModule(scripted, metadata.cutoff, metadata.species).to(dtype)
    return torchscript.script(wrapper)


def check_module(module: torch.jit.ScriptModule, metadata: Metadata) -> int:
    """Run the module on small test structures (one open, one periodic) and check its outputs; returns the
    number of committee members it reports (0 for a single model)."""
    dtype = getattr(torch, metadata.dtype)
    members = 0
    for numbers, positions, cell, pbc in _test_structures(metadata):
        args = (torch.tensor(numbers), torch.tensor(positions, dtype=dtype), torch.tensor(cell, dtype=dtype))
        keys = ["energy", "energies", "forces", "virial"]
        try:
            out = module.compute(*args, torch.tensor(pbc), None, True, True)
            if "energy_committee" in out:  # then also each member's forces (compute_committee)
                members = int(out["energy_committee"].shape[1])
                out = module.compute_committee(*args, torch.tensor(pbc), None, True, True)
                keys += ["energy_committee", "energy_uncertainty", "forces_uncertainty"]
        except Exception as exc:
            raise ContractError(
                f"the model failed on a test structure of {len(numbers)} atoms: {script_error_message(exc)}"
            ) from exc
        for key in keys:
            if out[key].dtype != dtype:
                raise ContractError(f"the model returned {key} in {out[key].dtype}; the file declares {metadata.dtype}")
            if not bool(torch.isfinite(out[key]).all()):
                raise ContractError(
                    f"the model returned non-finite {key} on a test structure of {len(numbers)} atoms "
                    f"spaced {0.6 * metadata.cutoff:g} {metadata.length_unit} apart: fix the model so that it gives "
                    "finite energies and gradients at every distance up to the cutoff"
                )
    return members


def save_module(
    module: torch.jit.ScriptModule, metadata: Metadata, path: PathLike, program: Optional[bytes] = None
) -> None:
    """Save with the metadata (and the exported ``program``, if any) as TorchScript extra files; a crash never
    leaves a partial file."""
    extra: dict[str, Union[str, bytes]] = {METADATA_FILE: metadata.to_json()}
    if program is not None:
        extra[PROGRAM_FILE] = program
    write_atomic(path, lambda tmp: torchscript.save(module, str(tmp), extra))


def _check_signature(scripted: torch.jit.ScriptModule) -> None:
    schema = scripted.forward.schema  # type: ignore[attr-defined]  # a ScriptMethod's schema
    arguments = [a for a in schema.arguments if a.name != "self"]
    returns = [str(r.type) for r in schema.returns]
    if len(arguments) != 1 or str(arguments[0].type) != _DICT_TYPE or returns != [_DICT_TYPE]:
        raise ContractError(
            f"the model's forward is `{schema}`; the contract needs "
            "`forward(self, inputs: Dict[str, Tensor]) -> Dict[str, Tensor]` "
            f"(inputs: {', '.join(MODEL_INPUTS)}; output: per-atom 'energies')"
        )


def _test_structures(metadata: Metadata) -> list[tuple]:
    """A short chain of up to four atoms of the supported elements, open and in a periodic box."""
    numbers = [metadata.species[k % len(metadata.species)] for k in range(min(4, max(2, len(metadata.species))))]
    spacing = 0.6 * metadata.cutoff
    positions = [[spacing * k, 0.1 * spacing * (k % 2), 0.0] for k in range(len(numbers))]
    box = spacing * (len(numbers) + 1)
    return [
        (numbers, positions, [[0.0] * 3] * 3, [False, False, False]),
        (numbers, positions, [[box, 0.0, 0.0], [0.0, box, 0.0], [0.0, 0.0, box]], [True, True, True]),
    ]


def _parameter_dtype(model: torch.nn.Module) -> str:
    dtypes = {t.dtype for t in list(model.parameters()) + list(model.buffers()) if t.is_floating_point()}
    if len(dtypes) > 1:
        raise ContractError(f"the model mixes floating dtypes {sorted(map(str, dtypes))}: pass dtype= to export")
    return dtype_name(dtypes.pop(), ContractError) if dtypes else "float64"
