"""A Verlet list for one structure: candidate edges within cutoff + skin, reused between calls.

The candidates are rebuilt when the atoms (numbers or count), the cell or the periodic flags change, or
when any atom has moved by half the skin or more since the last build. While every atom has moved less
than skin/2, a pair closer than the cutoff now was closer than cutoff + skin at the build, so the
candidates hold every edge the model must see; the module keeps those within the cutoff at the current
positions. A changed cell is never bounded: any change of the cell (an NPT step, a cell relaxation)
rebuilds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Union

import torch
from torch import Tensor

from mlcalc.contract import VERLET_METHOD_SCHEMAS
from mlcalc.errors import ContractError

if TYPE_CHECKING:
    from mlcalc.compiled import CompiledModule


class VerletList:
    """Candidate edges of one structure for ``module`` (a potential file's module, or the compiled route's;
    cutoff and skin in the model's length unit)."""

    def __init__(
        self,
        module: Union[torch.jit.ScriptModule, "CompiledModule"],
        cutoff: float,
        skin: float,
        source: str = "the potential",
    ):
        if not skin > 0:
            raise ValueError(f"the Verlet skin must be positive (a length), got {skin!r}")
        missing = [name for name in VERLET_METHOD_SCHEMAS if not hasattr(module, name)]
        if missing:
            raise ContractError(
                f"{source} has no {', '.join(missing)}: it was written for contract 1.0, before Verlet lists; "
                "re-export it with this mlcalc to use a skin, or use skin=0"
            )
        self.module = module
        self.cutoff = float(cutoff)
        self.skin = float(skin)
        self.builds = 0
        self.reuses = 0
        self._positions: Optional[Tensor] = None
        self._cell: Optional[Tensor] = None
        self._pbc: Optional[Tensor] = None
        self._edges: Optional[tuple[Tensor, Tensor]] = None

    def candidates(self, positions: Tensor, cell: Tensor, pbc: Tensor) -> tuple[Tensor, Tensor]:
        """Edges ``(edge_index [2, E], shifts [E, 3])`` that hold every pair within the cutoff at
        ``positions`` [N, 3] (cell [1, 3, 3], pbc [1, 3], as the module receives them)."""
        if self._edges is not None and self._still_valid(positions, cell, pbc):
            self.reuses += 1
            return self._edges
        self._edges = self.module.neighbor_list_within(positions, cell, pbc, None, self.cutoff + self.skin)
        self._positions = positions.detach().clone()
        self._cell = cell.detach().clone()
        self._pbc = pbc.detach().clone()
        self.builds += 1
        return self._edges

    def reset(self) -> None:
        """Forget the candidates: the next call rebuilds."""
        self._edges = None

    def _still_valid(self, positions: Tensor, cell: Tensor, pbc: Tensor) -> bool:
        assert self._positions is not None and self._cell is not None and self._pbc is not None
        if positions.shape != self._positions.shape or not torch.equal(cell, self._cell):
            return False
        if not torch.equal(pbc, self._pbc):
            return False
        moved = (positions.detach() - self._positions).square().sum(1)
        return bool(moved.max() < (0.5 * self.skin) ** 2) if moved.numel() else True
