"""Small, randomly initialised metatomic models, written as metatomic ``ModelInterface`` modules and
saved by metatomic's own ``AtomisticModel.save``.

:class:`ToyModel` is a many-body potential with random weights over two neighbour lists of its own: a
full list (cutoff ``cutoff``) from which each atom gets radial densities and the square of a weighted
sum of its neighbour vectors (so edge directions matter), fed through a small random network; and a
half list with a shorter cutoff (``pair_cutoff``, not strict) for a pair repulsion with a cosine
cutoff. It offers the energy per atom or per structure, an ``energy/scaled`` variant, and optionally
requests an extra input (``mass``), so that imports can be checked against metatomic's own ASE
calculator and refused where mlcalc cannot honour a model.

    python -c "import make_metatomic; make_metatomic.save('/tmp/m.pt')"
"""

import math
from pathlib import Path
from typing import Dict, List, Optional

import torch
from metatensor.torch import Labels, TensorBlock, TensorMap
from metatomic.torch import (
    AtomisticModel,
    ModelCapabilities,
    ModelMetadata,
    ModelOutput,
    NeighborListOptions,
    System,
)

#: Elements of the toy models (any atomic number works; these are the tests' elements).
TYPES = [1, 6, 8, 13, 29]
FEATURES = 6


class ToyModel(torch.nn.Module):
    """Random many-body energy over a full list (``cutoff``) and a half list (``pair_cutoff``), in the
    model's own length unit (``scale`` model lengths per Å, so that every unit gives the same energy
    surface in Å) and energy unit (``energy_scale`` model energies per eV)."""

    def __init__(
        self,
        cutoff: float,
        pair_cutoff: float,
        scale: float = 1.0,
        energy_scale: float = 1.0,
        per_atom: bool = True,
        seed: int = 0,
    ):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        count = max(TYPES) + 1
        self.cutoff = cutoff
        self.pair_cutoff = pair_cutoff
        self.scale = scale
        self.energy_scale = energy_scale
        self.per_atom = per_atom
        self.register_buffer("type_index", torch.full((count,), -1, dtype=torch.long))
        self.type_index[torch.tensor(TYPES)] = torch.arange(len(TYPES))
        n = len(TYPES)
        self.register_buffer("weights", torch.rand(n, n, FEATURES, generator=generator, dtype=torch.float64) + 0.5)
        self.register_buffer("widths", torch.linspace(0.6, 2.0, FEATURES, dtype=torch.float64))
        self.register_buffer("repulsion", torch.rand(n, n, generator=generator, dtype=torch.float64) + 0.2)
        self.register_buffer("shifts", torch.randn(n, generator=generator, dtype=torch.float64))
        self.hidden = torch.nn.Linear(FEATURES + 1, 8, dtype=torch.float64)
        self.out = torch.nn.Linear(8, 1, dtype=torch.float64)
        with torch.no_grad():
            for layer in (self.hidden, self.out):
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator, dtype=torch.float64) * 0.5)
                layer.bias.copy_(torch.randn(layer.bias.shape, generator=generator, dtype=torch.float64) * 0.1)
        self.full = NeighborListOptions(cutoff=cutoff, full_list=True, strict=True)
        self.half = NeighborListOptions(cutoff=pair_cutoff, full_list=False, strict=False)

    def requested_neighbor_lists(self) -> List[NeighborListOptions]:
        return [self.full, self.half]

    def _atom_energies(self, system: System) -> torch.Tensor:
        """Per-atom energies (model energy unit) of one system."""
        kinds = self.type_index[system.types.long()]
        full = system.get_neighbor_list(self.full)
        i = full.samples.column("first_atom").long()
        j = full.samples.column("second_atom").long()
        vectors = full.values.reshape(-1, 3) / self.scale  # Å
        r = vectors.square().sum(1).sqrt()
        smooth = 0.5 * (torch.cos(math.pi * r * self.scale / self.cutoff) + 1.0)
        radial = torch.exp(-((r.unsqueeze(1) / self.widths) ** 2)) * smooth.unsqueeze(1)
        radial = radial * self.weights[kinds[i], kinds[j]]
        density = torch.zeros_like(radial[:1]).expand(len(system), -1).index_add(0, i, radial)
        dipole = torch.zeros_like(system.positions).index_add(0, i, vectors * radial[:, :1])
        features = torch.cat([torch.tanh(density), (dipole * dipole).sum(1, keepdim=True)], dim=1)
        energies = self.out(torch.tanh(self.hidden(features))).reshape(-1) + self.shifts[kinds]
        half = system.get_neighbor_list(self.half)
        a = half.samples.column("first_atom").long()
        b = half.samples.column("second_atom").long()
        d = half.values.reshape(-1, 3).square().sum(1).sqrt() / self.scale
        inside = (d * self.scale < self.pair_cutoff).to(d.dtype)  # a non-strict list may hold farther pairs
        pair = self.repulsion[kinds[a], kinds[b]] * torch.exp(-2.0 * d) * inside
        pair = pair * 0.5 * (torch.cos(math.pi * d * self.scale / self.pair_cutoff) + 1.0)
        energies = energies.index_add(0, a, 0.5 * pair).index_add(0, b, 0.5 * pair)
        return energies * self.energy_scale

    def forward(
        self,
        systems: List[System],
        outputs: Dict[str, ModelOutput],
        selected_atoms: Optional[Labels] = None,
    ) -> Dict[str, TensorMap]:
        results: Dict[str, TensorMap] = {}
        for name, output in outputs.items():
            factor = 2.0 if name == "energy/scaled" else 1.0
            values: List[torch.Tensor] = []
            samples: List[torch.Tensor] = []
            for s, system in enumerate(systems):
                energies = self._atom_energies(system) * factor
                if output.sample_kind == "atom":
                    atoms = torch.arange(len(system), dtype=torch.int32)
                    values.append(energies.unsqueeze(1))
                    samples.append(torch.stack([torch.full_like(atoms, s), atoms], dim=1))
                else:
                    values.append(energies.sum().reshape(1, 1))
                    samples.append(torch.tensor([[s]], dtype=torch.int32))
            names = ["system", "atom"] if output.sample_kind == "atom" else ["system"]
            block = TensorBlock(
                values=torch.cat(values),
                samples=Labels(names, torch.cat(samples)),
                components=[],
                properties=Labels(["energy"], torch.tensor([[0]])),
            )
            results[name] = TensorMap(Labels(["_"], torch.tensor([[0]])), [block])
        return results


class NeedsMasses(ToyModel):
    """The toy model, also asking the engine for the atoms' masses (an input mlcalc does not give)."""

    def requested_inputs(self) -> Dict[str, ModelOutput]:
        return {"mass": ModelOutput(quantity="", unit="u", sample_kind="atom")}


def save(
    path: Path,
    *,
    dtype: str = "float64",
    length_unit: str = "angstrom",
    energy_unit: str = "eV",
    per_atom: bool = True,
    cutoff: float = 4.0,
    pair_cutoff: float = 3.0,
    interaction_range: Optional[float] = None,
    outputs: Optional[List[str]] = None,
    types: Optional[List[int]] = None,
    needs_masses: bool = False,
    devices: Optional[List[str]] = None,
) -> Path:
    """Build a toy model and save it with ``AtomisticModel.save``; its cutoffs are given in Å and
    converted to ``length_unit``, its energies to ``energy_unit`` (the same potential in every unit)."""
    from metatomic.torch import unit_conversion_factor

    scale = unit_conversion_factor("angstrom", length_unit)
    energy_scale = unit_conversion_factor("eV", energy_unit) if energy_unit else 1.0
    kind = NeedsMasses if needs_masses else ToyModel
    module = kind(cutoff * scale, pair_cutoff * scale, scale, energy_scale, per_atom).to(getattr(torch, dtype)).eval()
    sample_kind = "atom" if per_atom else "system"
    capabilities = ModelCapabilities(
        outputs={
            name: ModelOutput(quantity="", unit=energy_unit, sample_kind=sample_kind, description=name)
            for name in (outputs or ["energy", "energy/scaled"])
        },
        atomic_types=types or TYPES,
        interaction_range=(cutoff if interaction_range is None else interaction_range) * scale,
        length_unit=length_unit,
        supported_devices=devices or ["cpu", "cuda"],
        dtype=dtype,
    )
    metadata = ModelMetadata(
        name="toy many-body model",
        description="random weights, for mlcalc's tests",
        authors=["mlcalc tests"],
        references={"implementation": ["https://example.org/toy"]},
    )
    AtomisticModel(module, metadata, capabilities).save(str(path))
    return Path(path)
