"""mlcalc adapter for MACE (mace-torch): ``mlcalc export --from mace MODEL.model OUT.pt``.

Converts an energy model, ``mace.modules.MACE`` or ``ScaleShiftMACE``, given as an object or as a
file written by ``torch.save(model, path)`` (the ``.model`` file mace's training writes; not the
TorchScript ``_compiled.model``). The exported per-atom energies are MACE's ``node_energy``, E0s
included. Lengths in Å and energies in eV, as MACE's ASE calculator assumes; multi-head models export
one head (option ``head``, default as ``MACECalculator``: the only head, else the one named "default").
"""

from __future__ import annotations

import copy
import os
from typing import Any, Optional

import torch

from mlcalc import torchscript
from mlcalc.errors import PluginError
from mlcalc.plugins import Adapter, Conversion, load_saved_model
from mlcalc_mace.model import MACEPotential

__all__ = ["MACEAdapter", "MACEPotential", "adapter"]


class MACEAdapter(Adapter):
    name = "mace"
    package = "mace-torch"
    # The adapter restates MACE.forward, which mace's 0.3.x patch releases have changed (heads,
    # LAMMPS-MLIAP, embeddings): verified with 0.3.16 only (see tests/plugins).
    tested_versions = "==0.3.16"
    options = {"head": "the read-out head of a multi-head model to export (default: the only one, else 'default')"}

    def convert(
        self,
        source: Any,
        *,
        dtype: Optional[str] = None,
        length_unit: Optional[str] = None,
        energy_unit: Optional[str] = None,
        head: Optional[str] = None,
    ) -> Conversion:
        import mace  # noqa: F401  (mace must be imported before e3nn: it lets e3nn load its constants)
        from e3nn.util import jit
        from mace.modules import MACE, ScaleShiftMACE

        model = _load(source)
        if not isinstance(model, MACE):
            raise PluginError(
                f"the mace adapter converts mace.modules.MACE and ScaleShiftMACE models; got "
                f"{type(model).__module__}.{type(model).__qualname__}: is this a model of another family?"
            )
        if type(model) not in (MACE, ScaleShiftMACE):
            raise PluginError(
                f"the mace adapter converts the energy models MACE and ScaleShiftMACE; {type(model).__name__} "
                "is not supported"
            )
        _check_supported(model)
        heads = list(getattr(model, "heads", None) or ["Default"])
        head_name = _head(heads, head)
        parameter_dtype = str(next(model.parameters()).dtype).replace("torch.", "")
        dtype = dtype or parameter_dtype
        numbers = [int(z) for z in model.atomic_numbers.tolist()]
        species = sorted(numbers)
        element_index = torch.tensor([numbers.index(z) for z in species], dtype=torch.long)
        # e3nn's copies and compilation trace, save and load TorchScript on our behalf: quiet, as our own calls.
        with torchscript.quiet_deprecation():
            # Convert a copy: e3nn's compile replaces submodules in place, and the user keeps their model.
            mace_copy = copy.deepcopy(model).to(getattr(torch, dtype)).eval()
            is_scale_shift = type(model) is ScaleShiftMACE
            contract_model = MACEPotential(mace_copy, element_index, heads.index(head_name), is_scale_shift)
            # e3nn's modules must be compiled by e3nn (some are traced, some need its codegen): compile
            # them in the final dtype, then script the whole.
            try:
                scripted = torch.jit.script(jit.compile(contract_model))
            except Exception as exc:  # TorchScript raises many exception types
                raise PluginError(f"the MACE model could not be compiled with TorchScript: {exc}") from exc
        r_max = float(model.r_max)
        return Conversion(
            model=scripted,
            cutoff=r_max,
            species=species,
            length_unit=length_unit or "angstrom",
            energy_unit=energy_unit or "eV",
            dtype=dtype,
            name=f"mace-{type(model).__name__}",
            description=(
                f"MACE ({type(model).__name__}): {len(model.interactions)} interactions, r_max {r_max:g}, "
                f"elements {' '.join(map(str, species))}, head {head_name!r}"
            ),
            references=["arXiv:2206.07697 (MACE)", "doi:10.1063/5.0155322 (MACE architecture)"],
            extra={"model_class": type(model).__name__, "head": head_name, "heads": heads},
        )


def _check_supported(model: torch.nn.Module) -> None:
    """Refuse MACE options the restated forward does not compute."""
    if hasattr(model, "joint_embedding"):
        raise PluginError(
            f"this MACE model embeds per-structure inputs ({', '.join(model.embedding_specs)}), which the "
            "mlcalc contract does not provide; the mace adapter converts models without embedding_specs"
        )
    for module in model.modules():
        for key in ("cueq_config", "oeq_config"):
            config = getattr(module, key, None)
            if config is not None and getattr(config, "enabled", False):
                raise PluginError(
                    "this MACE model uses cuEquivariance/OpenEquivariance kernels; convert it back to e3nn "
                    "first (`mace_cueq_to_e3nn` or mace.cli.convert_oeq_e3nn) and export that"
                )


def _head(heads: list, head: Optional[str]) -> str:
    if head is not None:
        if head not in heads:
            raise PluginError(f"this MACE model has no head {head!r}; its heads: {heads}")
        return head
    if len(heads) == 1:
        return heads[0]
    default = [h for h in heads if h.lower() == "default"]
    if not default:
        raise PluginError(f"this MACE model has several heads {heads} and none is 'default': choose one with head=")
    return default[0]


def _load(source: Any) -> torch.nn.Module:
    if isinstance(source, torch.jit.ScriptModule):
        raise PluginError(
            "this is a TorchScript-compiled MACE model (a *_compiled.model file); pass the .model file "
            "that mace's training writes next to it (saved with torch.save)"
        )
    if isinstance(source, torch.nn.Module):
        return source
    if not isinstance(source, (str, os.PathLike)):
        raise PluginError(f"the mace adapter takes a MACE model or the path of one; got {type(source).__name__}")
    loaded = load_saved_model(source, "mace", "the MACE model", also="such as the .model files of mace's training")
    return _load(loaded)


adapter = MACEAdapter()
