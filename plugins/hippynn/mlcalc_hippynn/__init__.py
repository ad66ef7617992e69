"""mlcalc adapter for hippynn's HIP-NN: ``mlcalc export --from hippynn SOURCE OUT.pt``.

SOURCE is a hippynn ``GraphModule`` whose energy is one ``HEnergyNode`` on a ``Hipnn`` network (or
that energy node itself), a file written by ``torch.save(model, path)``, or an experiment directory
holding ``experiment_structure.pt`` and ``best_model.pt`` (what ``hippynn.experiment`` writes; the
model ``load_model_from_cwd()`` returns). hippynn does not record units: give the ones the model was
trained in (default, as hippynn's ASE calculator: kcal/mol and Å).

Besides the per-atom ``energies`` the file returns ``HEnergy``'s per-order terms as
``hierarchical_energies`` [N, n_orders], in the same units, for
``mlcalc.models.hipnn.structure_non_hierarchicality`` (:mod:`mlcalc_hippynn.model` compares it with
hippynn's own hierarchicality outputs).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import torch

from mlcalc import torchscript
from mlcalc.errors import PluginError
from mlcalc.plugins import Adapter, Conversion, load_saved_model
from mlcalc_hippynn.model import AtomLayer, Block, HIPNNPotential, Interaction, Sensitivity

__all__ = ["HIPNNPotential", "HippynnAdapter", "adapter"]


class HippynnAdapter(Adapter):
    name = "hippynn"
    package = "hippynn"
    tested_versions = ">=0.1.3,<0.2"
    options = {}

    def convert(
        self,
        source: Any,
        *,
        dtype: Optional[str] = None,
        length_unit: Optional[str] = None,
        energy_unit: Optional[str] = None,
    ) -> Conversion:
        energy_node, pair_cutoff = _energy_node(_load(source))
        network = energy_node.parents[0]
        hipnn = network.torch_module
        henergy = energy_node.torch_module
        _check_supported(hipnn, henergy)
        species_set = [int(z) for z in torch.as_tensor(hipnn.species_set).tolist()]
        if species_set[0] != 0 or len(set(species_set)) != len(species_set):
            raise PluginError(
                f"hippynn's possible_species {species_set} must start with 0 (the padding species) and not "
                "repeat elements"
            )
        species = sorted(species_set[1:])
        feature_index = torch.tensor([species_set.index(z) - 1 for z in species], dtype=torch.long)
        readouts = list(henergy.layers)
        use_onehot = not henergy.first_is_interacting
        onehot_readout = readouts.pop(0) if use_onehot else torch.nn.Identity()
        blocks = [_block(block, readout, hipnn) for block, readout in zip(hipnn.blocks, readouts)]
        contract_model = HIPNNPotential(feature_index, hipnn.nf_in, blocks, onehot_readout, use_onehot)
        parameter_dtype = str(next(hipnn.parameters()).dtype).replace("torch.", "")
        cutoff = float(pair_cutoff)  # hippynn's pair list; sensitivities vanish beyond their own hard cutoff
        return Conversion(
            model=contract_model,
            cutoff=cutoff,
            species=species,
            length_unit=length_unit or "angstrom",
            energy_unit=energy_unit or "kcal/mol",
            dtype=dtype or parameter_dtype,
            name="hippynn-HIPNN",
            description=(
                f"HIP-NN (hippynn): {hipnn.ni} interaction layers, {hipnn.n_sensitivities} sensitivities, "
                f"hard cutoff {cutoff:g}"
            ),
            references=["doi:10.1063/1.5011181 (HIP-NN)"],
            extra={"interaction_layers": int(hipnn.ni), "resnet": bool(hipnn.resnet)},
        )


def blocks_of(hipnn: torch.nn.Module) -> list:
    """hippynn's blocks with residual wrappers removed: [(interaction, atom linear layers...), ...]."""
    unwrap = (lambda layer: layer.base_layer) if hipnn.resnet else (lambda layer: layer)
    return [[unwrap(layer) for layer in block] for block in hipnn.blocks]


def _block(block: torch.nn.ModuleList, readout: torch.nn.Module, hipnn: torch.nn.Module) -> Block:
    resnet = bool(hipnn.resnet)
    activation = hipnn.activation

    def residual_parts(layer):
        if not resnet:
            return torch.nn.Identity(), torch.nn.Identity()
        adjust = layer.adjust_layer if layer.needs_size_adjust else torch.nn.Identity()
        return layer.res_layer, adjust

    interact = block[0].base_layer if resnet else block[0]
    sensitivity = Sensitivity(interact.sensitivity.mu, interact.sensitivity.sigma, interact.sensitivity.hard_max_dist)
    interaction = Interaction(
        sensitivity, interact.int_weights, interact.selfint, *residual_parts(block[0]), resnet, activation
    )
    atom_layers = [
        AtomLayer(layer.base_layer if resnet else layer, *residual_parts(layer), resnet, activation)
        for layer in block[1:]
    ]
    return Block(interaction, atom_layers, readout)


def _check_supported(hipnn: torch.nn.Module, henergy: torch.nn.Module) -> None:
    from hippynn.layers.hiplayers import CosCutoff, GaussianSensitivityModule, InteractLayer, InverseSensitivityModule
    from hippynn.networks.hipnn import Hipnn

    if type(hipnn) is not Hipnn:
        raise PluginError(
            f"the hippynn adapter converts the HIP-NN network (hippynn.networks.Hipnn); this model uses "
            f"{type(hipnn).__name__} (HIP-NN-TS and HIP-HOP networks are not supported)"
        )
    for layers in blocks_of(hipnn):
        interact = layers[0]
        if type(interact) is not InteractLayer:
            raise PluginError(f"unsupported hippynn interaction layer {type(interact).__name__}")
        sensitivity = interact.sensitivity
        if type(sensitivity) not in (InverseSensitivityModule, GaussianSensitivityModule):
            raise PluginError(
                f"unsupported hippynn sensitivity {type(sensitivity).__name__}; the adapter supports the "
                "'inverse' and 'linear' sensitivities"
            )
        if type(sensitivity.cutoff) is not CosCutoff:
            raise PluginError(f"unsupported hippynn cutoff {type(sensitivity.cutoff).__name__}; only CosCutoff")
        for layer in layers[1:]:
            if type(layer) is not torch.nn.Linear:
                raise PluginError(f"unsupported hippynn atom layer {type(layer).__name__}")
    if any(layer.out_features != 1 for layer in henergy.layers):
        raise PluginError("the HEnergy read-out predicts several targets; the adapter exports a single energy")
    try:
        torchscript.script(hipnn.activation)
    except Exception as exc:  # TorchScript raises many exception types
        raise PluginError(
            f"hippynn's activation {hipnn.activation!r} cannot be compiled with TorchScript: {exc}"
        ) from exc


def _energy_node(model: Any) -> tuple:
    """The model's single HEnergy node and its pair cutoff."""
    from hippynn.graphs import GraphModule, find_relatives
    from hippynn.graphs.nodes.base.node_functions import NodeNotFound
    from hippynn.graphs.nodes.networks import Hipnn as HipnnNode
    from hippynn.graphs.nodes.tags import Energies, PairIndexer
    from hippynn.graphs.nodes.targets import HEnergyNode

    if isinstance(model, GraphModule):
        found = find_relatives(model.nodes_to_compute, Energies)
        if len(found) != 1:
            raise PluginError(
                f"the hippynn model computes {len(found)} energy nodes; pass the one to export (an HEnergyNode)"
            )
        model = found.pop()
    if not isinstance(model, HEnergyNode):
        raise PluginError(
            f"the hippynn adapter converts a hippynn GraphModule or its HEnergyNode; got "
            f"{type(model).__module__}.{type(model).__qualname__}: is this a model of another family?"
        )
    network = model.parents[0]
    if not isinstance(network, HipnnNode):
        raise PluginError(
            f"the energy node reads the network {type(network).__name__}, which is not supported: the hippynn "
            "adapter converts plain Hipnn (HIP-NN) networks"
        )
    try:
        indexers = find_relatives(network, PairIndexer)
    except NodeNotFound:
        raise PluginError("the hippynn network has no pair indexer: no distance cutoff to export") from None
    return model, max(float(p.dist_hard_max) for p in indexers)


def _load(source: Any) -> Any:
    if not isinstance(source, (str, os.PathLike)):
        return source
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"no such file or directory: {path}")
    if path.is_dir():
        structure, state = path / "experiment_structure.pt", path / "best_model.pt"
        if not (structure.exists() and state.exists()):
            raise PluginError(
                f"{path} is a directory without experiment_structure.pt and best_model.pt: pass a hippynn "
                "experiment directory or a file written by torch.save(model, path)"
            )
        from hippynn.experiment.serialization import load_saved_tensors

        loaded, state_dict = load_saved_tensors(str(structure), str(state), map_location="cpu")
        model = loaded["training_modules"].model
        model.load_state_dict(state_dict)
        return model
    return load_saved_model(path, "hippynn", "the hippynn GraphModule", also="and hippynn experiment directories")


adapter = HippynnAdapter()
