"""mlcalc adapter for TorchANI: ``mlcalc export --from torchani MODEL.pt OUT.pt``.

Converts a ``torchani.arch.ANI`` model (ANI-1x/ANI-2x architecture or any ``Assembler``-built ANI:
AEV terms, atomic networks or ensembles of them, self energies) given as an object or as a file
written by ``torch.save(model, path)``. Lengths in Å, energies in hartree, as in TorchANI.
"""

from __future__ import annotations

import os
from typing import Any, Optional

import torch

from mlcalc.errors import PluginError
from mlcalc.plugins import Adapter, Conversion, load_saved_model, option_bool
from mlcalc_torchani.model import ANIPotential

__all__ = ["ANIPotential", "TorchANIAdapter", "adapter"]


class TorchANIAdapter(Adapter):
    name = "torchani"
    package = "torchani"
    tested_versions = ">=2.9,<2.10"
    options = {
        "committee": "an ensemble of several networks reports their spread (default True; False: the mean only)",
    }

    def convert(
        self,
        source: Any,
        *,
        dtype: Optional[str] = None,
        length_unit: Optional[str] = None,
        energy_unit: Optional[str] = None,
        committee: Any = True,
    ) -> Conversion:
        import torchani.arch

        model = _load(source)
        if isinstance(model, torchani.arch.ANIq):
            raise PluginError(
                "this TorchANI model predicts atomic charges (ANIq); the torchani adapter converts "
                "energy-only ANI models"
            )
        if not isinstance(model, torchani.arch.ANI):
            raise PluginError(
                f"the torchani adapter converts torchani.arch.ANI models; got {type(model).__module__}."
                f"{type(model).__qualname__}: is this a model of another family?"
            )
        extra = sorted(k for k, p in model.potentials.items() if k != "nnp" and p._enabled)
        if extra:
            raise PluginError(
                f"this ANI model adds the potentials {extra} to its networks; the torchani adapter converts "
                "the networks and self energies only: disable them (model.set_enabled(name, False)) if you "
                "mean to export the networks alone"
            )
        if not model.potentials["nnp"]._enabled:
            raise PluginError("this ANI model's networks are disabled (model.set_enabled('nnp', False))")
        if length_unit not in (None, "angstrom", "Å", "A") or energy_unit not in (None, "hartree", "Ha"):
            raise PluginError("TorchANI models work in Å and hartree; leave length_unit and energy_unit unset")
        computer = model.aev_computer
        numbers = [int(z) for z in model.atomic_numbers.tolist()]
        species = sorted(numbers)
        element_index = torch.tensor([numbers.index(z) for z in species], dtype=torch.long)
        members = len(model)
        contract_model = ANIPotential(
            computer.radial,
            computer.angular,
            model.neural_networks,
            model.energy_shifter,
            element_index,
            computer.triu_index.cpu(),
            committee=option_bool("committee", committee) and members > 1,
        )
        parameter_dtype = str(next(model.parameters()).dtype).replace("torch.", "")
        return Conversion(
            model=contract_model,
            cutoff=float(computer.radial.cutoff),
            species=species,
            length_unit="angstrom",
            energy_unit="hartree",
            dtype=dtype or parameter_dtype,
            name=f"torchani-{type(model).__name__}",
            description=(
                f"TorchANI model: {len(model)} network(s), radial cutoff {computer.radial.cutoff:g} Å, "
                f"angular cutoff {computer.angular.cutoff:g} Å, elements {' '.join(model.symbols)}"
            ),
            references=["doi:10.1021/acs.jcim.0c00451 (TorchANI)", "doi:10.1039/C6SC05720A (ANI)"],
            extra={"angular_cutoff": float(computer.angular.cutoff), "ensemble_size": len(model)},
        )


def _load(source: Any) -> torch.nn.Module:
    if isinstance(source, torch.nn.Module):
        return source
    if not isinstance(source, (str, os.PathLike)):
        raise PluginError(f"the torchani adapter takes an ANI model or the path of one; got {type(source).__name__}")
    return load_saved_model(source, "torchani", "the ANI model (e.g. with torchani.arch.Assembler)")


adapter = TorchANIAdapter()
