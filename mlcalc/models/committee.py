"""A committee (ensemble) of models of one family in one potential file.

The members see the same graph, built once; the file returns their mean energy and forces and their
spread (the contract's committee outputs, :data:`mlcalc.contract.COMMITTEE_OUTPUTS`): the standard
deviation of the members' total energies and, per atom, the spread of their force vectors. A committee's
spread is the uncertainty estimate the MLIP literature uses for active learning (query by committee).
"""

from typing import Any, Callable, Dict, List, Sequence

import torch
from torch import Tensor

from mlcalc.contract import DTYPES, dtype_name
from mlcalc.errors import ContractError
from mlcalc.units import canonical_energy_unit, canonical_length_unit

#: Metadata every member must agree on (the file has one graph, one unit system and one dtype).
SHARED_METADATA = ("cutoff", "species", "length_unit", "energy_unit")
_FLOATS = tuple(getattr(torch, name) for name in DTYPES)


class Committee(torch.nn.Module):
    """Mean and spread of ``members``: models of the mlcalc contract with the same cutoff, species,
    units and dtype (from their ``mlcalc_metadata`` and parameters).

    ``mlcalc.export(Committee(members), path)`` (or ``mlcalc.export([m1, m2, ...], path)``) writes one file.
    Each member's outputs other than ``energies`` are dropped.

    Raises:
        ContractError: fewer than two members, or members that differ in cutoff, species, units or dtype
            (the message names the difference).
    """

    def __init__(self, members: Sequence[torch.nn.Module]):
        super().__init__()
        members = list(members)
        if len(members) < 2:
            raise ContractError(
                f"a committee needs at least two members, got {len(members)}: export a single model as it is"
            )
        declared = [dict(getattr(m, "mlcalc_metadata", None) or {}) for m in members]
        for key in SHARED_METADATA:
            _check_same(key, [d.get(key) for d in declared])
        _check_same("dtype", [_parameter_dtype(m) for m in members])
        self.members = torch.nn.ModuleList(members)
        first = declared[0]
        name = str(first.get("name", type(members[0]).__name__))
        self.mlcalc_metadata: Dict[str, Any] = {key: first[key] for key in SHARED_METADATA if key in first}
        self.mlcalc_metadata.update(
            name=f"{name}-committee-{len(members)}",
            description=f"committee of {len(members)} {name} models: mean and spread"
            + (f"; members: {first['description']}" if first.get("description") else ""),
            committee=len(members),
        )
        for key in ("references", "authors", "license"):
            if key in first:
                self.mlcalc_metadata[key] = first[key]

    def forward(self, inputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        energies: List[Tensor] = []
        for member in self.members:
            energies.append(member(inputs)["energies"])
        stacked = torch.stack(energies, dim=1)
        return {"energies": stacked.mean(dim=1), "energies_committee": stacked}  # contract.MODEL_COMMITTEE_OUTPUT


def _parameter_dtype(model: torch.nn.Module) -> str:
    """The floating dtype of a member's parameters and buffers (``"mixed"``/``"none"`` when not one)."""
    dtypes = {dtype_name(t.dtype) for t in [*model.parameters(), *model.buffers()] if t.dtype in _FLOATS}
    return dtypes.pop() if len(dtypes) == 1 else ("mixed" if dtypes else "none")


def _check_same(key: str, values: List[Any]) -> None:
    """Raise :class:`ContractError` naming the members whose ``key`` differs from the others'. Members that do
    not declare it (``None``; for dtype also parameter-free or mixed members, which export casts) are skipped."""
    canonical: dict[str, Callable[[Any], Any]] = {"species": lambda v: sorted(int(z) for z in v), "cutoff": float}
    canonical.update(length_unit=canonical_length_unit, energy_unit=canonical_energy_unit)
    if key in canonical:
        values = [None if v is None else canonical[key](v) for v in values]
    skipped = (None, "none", "mixed")
    given = [(k, v) for k, v in enumerate(values) if not any(v is s or v == s for s in skipped)]
    if any(v != given[0][1] for _, v in given):
        listed = "; ".join(f"member {k}: {v!r}" for k, v in given)
        raise ContractError(
            f"committee members differ in {key} ({listed}): one file has one {key}, so build every member with "
            f"the same {key}"
        )
