"""mlcalc adapter for SchNetPack: ``mlcalc export --from schnetpack MODEL OUT.pt --option species=H,C,N,O``.

Converts a ``schnetpack.model.NeuralNetworkPotential`` with a SchNet or PaiNN representation and an
Atomwise energy head, given as an object or as a file written by ``torch.save(model, path)`` (what
SchNetPack's training writes as ``best_model``). Supported around them: the input modules
``PairwiseDistances`` and ``Strain``, a ``ScaleProperty`` of the energy before ``Forces``, and the
post-processors ``CastTo32``/``CastTo64`` and ``AddOffsets`` (mean and single-atom references).

SchNetPack models record neither their units nor their elements: give the elements the model was
trained on (option ``species``) and the units it was trained in (default, as SchNetPack's ASE
calculator: kcal/mol and Å).
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any, List, Optional, Sequence, Tuple, Union

import torch

from mlcalc.errors import PluginError
from mlcalc.plugins import Adapter, Conversion, load_saved_model
from mlcalc_schnetpack.model import SchNetPackPotential

__all__ = ["SchNetPackAdapter", "SchNetPackPotential", "adapter", "import_schnetpack"]


def import_schnetpack() -> ModuleType:
    """``import schnetpack``, made to work with torch >= 2.9.

    SchNetPack (2.0.4 to 2.1.1) imports the type variable ``T_co`` from
    ``torch.utils.data.dataloader``, which torch 2.9 renamed ``_T_co``; it is used in annotations only,
    so restoring the old name is enough.
    """
    import torch.utils.data.dataloader as dataloader

    if not hasattr(dataloader, "T_co") and hasattr(dataloader, "_T_co"):
        dataloader.T_co = dataloader._T_co
    import schnetpack

    return schnetpack


class SchNetPackAdapter(Adapter):
    name = "schnetpack"
    package = "schnetpack"
    # Verified with 2.0.4 (2.1.x requires sympy<=1.12, which torch 2.9 cannot install with).
    tested_versions = ">=2.0.4,<2.1"
    options = {
        "species": "elements the model was trained on, e.g. H,C,N,O (required: SchNetPack does not record them)",
        "energy_key": "the model's energy output (default 'energy')",
    }

    def convert(
        self,
        source: Any,
        *,
        dtype: Optional[str] = None,
        length_unit: Optional[str] = None,
        energy_unit: Optional[str] = None,
        species: Union[str, Sequence[Union[int, str]], None] = None,
        energy_key: str = "energy",
    ) -> Conversion:
        spk = import_schnetpack()
        model = _load(source, spk)
        representation = model.representation
        if type(representation) not in (spk.representation.SchNet, spk.representation.PaiNN):
            raise PluginError(
                f"the schnetpack adapter converts SchNet and PaiNN representations; this model uses "
                f"{type(representation).__name__}"
            )
        _check_input_modules(model, spk)
        atomwise, scale = _energy_head(model, spk, energy_key)
        numbers = _species(species, int(representation.embedding.num_embeddings))
        offsets = _offsets(model, spk, energy_key, numbers)
        props = spk.properties
        keys = dict(Z=props.Z, Rij=props.Rij, idx_i=props.idx_i, idx_j=props.idx_j, features="scalar_representation")
        contract_model = SchNetPackPotential(representation, atomwise.outnet, scale, offsets, keys)
        cutoff = float(representation.cutoff_fn.cutoff)
        parameter_dtype = str(next(model.parameters()).dtype).replace("torch.", "")
        kind = type(representation).__name__
        return Conversion(
            model=contract_model,
            cutoff=cutoff,
            species=numbers,
            length_unit=length_unit or "angstrom",
            energy_unit=energy_unit or "kcal/mol",
            dtype=dtype or parameter_dtype,
            name=f"schnetpack-{kind}",
            description=(
                f"SchNetPack {kind}: {len(representation.interactions)} interactions, "
                f"{representation.n_atom_basis} features, cutoff {cutoff:g}"
            ),
            references=["doi:10.1063/5.0138367 (SchNetPack 2.0)", _REFERENCES[kind]],
            extra={"representation": kind, "energy_key": energy_key},
        )


_REFERENCES = {"SchNet": "doi:10.1063/1.5019779 (SchNet)", "PaiNN": "arXiv:2102.03150 (PaiNN)"}


def _check_input_modules(model: torch.nn.Module, spk: ModuleType) -> None:
    kinds = [type(m) for m in model.input_modules]
    if spk.atomistic.PairwiseDistances not in kinds:
        raise PluginError("the SchNetPack model has no PairwiseDistances input module: no pair vectors to replace")
    # Strain only adds the strain derivative for SchNetPack's own stress; mlcalc computes the stress.
    other = [k.__name__ for k in kinds if k not in (spk.atomistic.PairwiseDistances, spk.atomistic.Strain)]
    if other:
        raise PluginError(f"the schnetpack adapter does not support the input module(s) {other}")


def _energy_head(model: torch.nn.Module, spk: ModuleType, energy_key: str) -> Tuple[torch.nn.Module, float]:
    """The Atomwise module predicting ``energy_key`` and the product of the scales applied to it
    before its derivatives (``ScaleProperty`` output modules)."""
    atomwise, scale, forces_seen = None, 1.0, False
    for module in model.output_modules:
        if isinstance(module, spk.atomistic.Atomwise) and module.output_key == energy_key and atomwise is None:
            if module.n_out != 1 or module.aggregation_mode != "sum":
                raise PluginError(
                    f"the Atomwise energy head predicts {module.n_out} value(s) per atom aggregated by "
                    f"{module.aggregation_mode!r}; the adapter needs one per atom, summed"
                )
            atomwise = module
        elif isinstance(module, spk.transform.ScaleProperty) and module.input_key == energy_key:
            if module.output_key != energy_key or forces_seen:
                raise PluginError(
                    "a ScaleProperty of the energy that writes another key or follows the Forces module "
                    "makes SchNetPack's forces disagree with its energy; the adapter does not convert it"
                )
            scale *= float(module.scale.reshape(-1)[0])
        elif isinstance(module, spk.atomistic.Forces) and module.energy_key == energy_key:
            forces_seen = True
        else:
            raise PluginError(
                f"the schnetpack adapter converts energy models (Atomwise, ScaleProperty, Forces); this model "
                f"also has the output module {type(module).__name__}"
            )
    if atomwise is None:
        raise PluginError(f"the SchNetPack model has no Atomwise output module predicting {energy_key!r}")
    return atomwise, scale


def _offsets(model: torch.nn.Module, spk: ModuleType, energy_key: str, numbers: List[int]) -> torch.Tensor:
    """Per-atom energy offsets of the post-processors, for each of ``numbers``."""
    offsets = torch.zeros(len(numbers), dtype=torch.float64)
    if not model.do_postprocessing:
        return offsets
    index = torch.tensor(numbers)
    for module in model.postprocessors:
        if isinstance(module, spk.transform.CastMap):
            continue  # dtype casts: the file has one dtype throughout
        if isinstance(module, spk.transform.ScaleProperty):
            raise PluginError(
                "a ScaleProperty post-processor scales SchNetPack's energy but not its forces; the adapter "
                "converts energy scales placed before the Forces output module only"
            )
        if not isinstance(module, spk.transform.AddOffsets) or module._property != energy_key:
            raise PluginError(
                f"the schnetpack adapter supports the post-processors CastTo32, CastTo64 and AddOffsets of "
                f"the energy; this model has {type(module).__name__}"
            )
        if not module.is_extensive:
            raise PluginError("AddOffsets with is_extensive=False makes the energy intensive: not a potential")
        if module.add_mean:
            offsets += float(module.mean.reshape(-1)[0])
        if module.add_atomrefs:
            offsets += module.atomref.detach().to(torch.float64).cpu()[index]
    return offsets


def _species(species: Union[str, Sequence[Union[int, str]], None], max_z: int) -> List[int]:
    from ase.data import atomic_numbers

    if species is None:
        raise PluginError(
            "SchNetPack models do not record the elements they were trained on: name them with "
            "species=[1, 6, 8] (command line: --option species=H,C,O)"
        )
    items = species.split(",") if isinstance(species, str) else list(species)
    numbers = []
    for item in items:
        text = str(item).strip()
        z = int(text) if text.isdigit() else atomic_numbers.get(text)
        if z is None or not 0 < z < max_z:
            raise PluginError(f"species: {text!r} is not an element the model's embedding covers (Z 1-{max_z - 1})")
        numbers.append(z)
    return sorted(set(numbers))


def _load(source: Any, spk: ModuleType) -> torch.nn.Module:
    if isinstance(source, (str, os.PathLike)):
        source = load_saved_model(source, "schnetpack", "the NeuralNetworkPotential")
    if isinstance(source, spk.task.AtomisticTask):
        source = source.model  # a Lightning task wraps the model
    if not isinstance(source, spk.model.NeuralNetworkPotential):
        raise PluginError(
            f"the schnetpack adapter converts schnetpack.model.NeuralNetworkPotential models; got "
            f"{type(source).__module__}.{type(source).__qualname__}: is this a model of another family?"
        )
    return source


adapter = SchNetPackAdapter()
