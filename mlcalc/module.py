"""The TorchScript module inside every mlcalc file: input checks, the graph builder and the model.

Its methods are the contract's outer interface, usable from any code that can load TorchScript
(Python, C++, OpenMM's TorchForce). All quantities are in the model's declared units.

* ``forward(atomic_numbers, positions, cell, pbc, batch=None)`` → ``{"energy": [B], "energies": [N], ...}``
* ``compute(..., forces=True, virial=False)`` adds ``"forces"`` [N, 3] = -dE/dr and
  ``"virial"`` [B, 3, 3] = -dE/dε (ε the strain applied to positions and cell; stress = -virial / V).
* ``neighbor_list(positions, cell, pbc, batch=None)`` → ``(edge_index [2, E], shifts [E, 3])``.
* ``neighbor_list_within(positions, cell, pbc, batch, cutoff)``: the same for a larger cutoff (a Verlet
  list: cutoff + skin), and ``compute_from_neighbors(..., edge_index, shifts, forces, virial)``:
  ``compute`` on such candidate edges, of which the model sees those within its cutoff now (contract 1.1).

``cell`` may be [3, 3] or [B, 3, 3], ``pbc`` [3] or [B, 3]; ``batch`` (structure index per atom,
non-decreasing) may be omitted for one structure.
"""

import io
from typing import Dict, List, Optional, Sequence, Tuple, TypeVar

import torch
from torch import Tensor

from mlcalc import torchscript
from mlcalc.graph import MAX_IMAGES, PAIR_CHUNK, build_graph

NUM_ELEMENTS = 119


class PotentialModule(torch.nn.Module):
    """Graph builder plus model behind one interface; scripted and saved by :func:`mlcalc.export`."""

    species_lookup: Tensor  # buffer: index of each atomic number in the species list, -1 where absent

    def __init__(self, model: torch.nn.Module, cutoff: float, species: Sequence[int]):
        super().__init__()
        self.model = model
        self.cutoff = float(cutoff)
        self.pair_chunk = PAIR_CHUNK
        self.max_images = MAX_IMAGES
        self.register_buffer("species_lookup", index_lookup(species))

    def forward(
        self, atomic_numbers: Tensor, positions: Tensor, cell: Tensor, pbc: Tensor, batch: Optional[Tensor] = None
    ) -> Dict[str, Tensor]:
        cell, pbc, batch = self._prepare(atomic_numbers, positions, cell, pbc, batch)
        return self._evaluate(atomic_numbers, positions, cell, pbc, batch)

    @torch.jit.export
    def compute(
        self,
        atomic_numbers: Tensor,
        positions: Tensor,
        cell: Tensor,
        pbc: Tensor,
        batch: Optional[Tensor] = None,
        forces: bool = True,
        virial: bool = False,
    ) -> Dict[str, Tensor]:
        """Energies plus forces and/or virial from one forward and one backward pass (a committee's
        ``forces``/``virial`` are the gradients of its mean energy; its ``energy_uncertainty`` comes along)."""
        return self._compute(atomic_numbers, positions, cell, pbc, batch, None, None, forces, virial, False)

    @torch.jit.export
    def compute_committee(
        self,
        atomic_numbers: Tensor,
        positions: Tensor,
        cell: Tensor,
        pbc: Tensor,
        batch: Optional[Tensor] = None,
        forces: bool = True,
        virial: bool = False,
    ) -> Dict[str, Tensor]:
        """``compute`` for a committee, plus ``forces_uncertainty`` [N] from each member's forces: one
        backward pass per member (since contract 1.3; a single model raises ValueError)."""
        return self._compute(atomic_numbers, positions, cell, pbc, batch, None, None, forces, virial, True)

    @torch.jit.export
    def compute_from_neighbors(
        self,
        atomic_numbers: Tensor,
        positions: Tensor,
        cell: Tensor,
        pbc: Tensor,
        batch: Optional[Tensor],
        edge_index: Tensor,
        shifts: Tensor,
        forces: bool = True,
        virial: bool = False,
    ) -> Dict[str, Tensor]:
        """``compute`` on candidate edges (from ``neighbor_list_within`` with a larger cutoff, possibly at
        earlier positions): the model sees the candidates that lie within its cutoff now. The caller
        guarantees that the candidates hold every such pair (no atom moved more than half the skin)."""
        return self._compute(atomic_numbers, positions, cell, pbc, batch, edge_index, shifts, forces, virial, False)

    def _compute(
        self,
        atomic_numbers: Tensor,
        positions: Tensor,
        cell: Tensor,
        pbc: Tensor,
        batch: Optional[Tensor],
        candidates: Optional[Tensor],
        candidate_shifts: Optional[Tensor],
        forces: bool,
        virial: bool,
        members: bool,
    ) -> Dict[str, Tensor]:
        cell, pbc, batch = self._prepare(atomic_numbers, positions, cell, pbc, batch)
        if (forces or virial) and not torch.is_grad_enabled():
            raise RuntimeError("compute() needs gradients: call it outside torch.no_grad()/inference_mode()")
        positions = positions.detach().requires_grad_(forces)
        cell = cell.detach()
        wrt: List[Tensor] = []
        if forces:
            wrt.append(positions)
        used_positions = positions
        used_cell = cell
        if virial:
            strain = torch.zeros_like(cell).requires_grad_(True)
            wrt.append(strain)
            used_positions = positions + torch.bmm(positions.unsqueeze(1), strain[batch]).squeeze(1)
            used_cell = cell + torch.bmm(cell, strain)
        out = self._evaluate(atomic_numbers, used_positions, used_cell, pbc, batch, candidates, candidate_shifts)
        if members and "energy_committee" not in out:
            raise ValueError("compute_committee() needs a committee (a model returning 'energies_committee')")
        if len(wrt) > 0:
            if members:
                self._committee_gradients(out, wrt, positions, cell, forces, virial)
            else:
                grads = torch.autograd.grad([out["energy"].sum()], wrt, allow_unused=True)
                if forces:
                    g = grads[0]
                    out["forces"] = -g if g is not None else torch.zeros_like(positions)
                if virial:
                    g = grads[len(grads) - 1]
                    out["virial"] = -g if g is not None else torch.zeros_like(cell)
        result: Dict[str, Tensor] = {}
        for key, value in out.items():
            result[key] = value.detach()
        return result

    def _committee_gradients(
        self, out: Dict[str, Tensor], wrt: List[Tensor], positions: Tensor, cell: Tensor, forces: bool, virial: bool
    ) -> None:
        """Forces and virial of a committee: each member's by its own backward pass (the force spread needs
        them all), their mean as ``forces``/``virial``, and ``forces_uncertainty`` [N]."""
        member_energy = out["energy_committee"]
        n_members = member_energy.shape[1]
        member_forces: List[Tensor] = []
        member_virials: List[Tensor] = []
        for m in range(n_members):
            grads = torch.autograd.grad(
                [member_energy[:, m].sum()], wrt, retain_graph=m < n_members - 1, allow_unused=True
            )
            if forces:
                g = grads[0]
                member_forces.append(-g if g is not None else torch.zeros_like(positions))
            if virial:
                g = grads[len(grads) - 1]
                member_virials.append(-g if g is not None else torch.zeros_like(cell))
        if forces:
            stacked = torch.stack(member_forces)  # [M, N, 3]
            mean = stacked.mean(dim=0)
            out["forces"] = mean
            out["forces_uncertainty"] = ((stacked - mean) ** 2).sum(dim=2).mean(dim=0).sqrt()
        if virial:
            out["virial"] = torch.stack(member_virials).mean(dim=0)

    @torch.jit.export
    def neighbor_list(
        self, positions: Tensor, cell: Tensor, pbc: Tensor, batch: Optional[Tensor] = None
    ) -> Tuple[Tensor, Tensor]:
        """Edges ``(i, j)`` [2, E] and integer shifts [E, 3] within the cutoff (see :mod:`mlcalc.graph`)."""
        atomic_numbers = torch.zeros(positions.shape[0], dtype=torch.long, device=positions.device)
        cell, pbc, batch = self._shapes(atomic_numbers, positions, cell, pbc, batch)
        return build_graph(positions, cell, pbc, batch, self.cutoff, self.pair_chunk, self.max_images)

    @torch.jit.export
    def neighbor_list_within(
        self, positions: Tensor, cell: Tensor, pbc: Tensor, batch: Optional[Tensor], cutoff: float
    ) -> Tuple[Tensor, Tensor]:
        """``neighbor_list`` for a cutoff of at least the model's (a Verlet list: cutoff + skin)."""
        if cutoff < self.cutoff:
            raise ValueError(
                "a Verlet list needs a cutoff of at least the model's {}, got {}".format(self.cutoff, cutoff)
            )
        atomic_numbers = torch.zeros(positions.shape[0], dtype=torch.long, device=positions.device)
        cell, pbc, batch = self._shapes(atomic_numbers, positions, cell, pbc, batch)
        return build_graph(positions, cell, pbc, batch, cutoff, self.pair_chunk, self.max_images)

    def _evaluate(
        self,
        atomic_numbers: Tensor,
        positions: Tensor,
        cell: Tensor,
        pbc: Tensor,
        batch: Tensor,
        candidates: Optional[Tensor] = None,
        candidate_shifts: Optional[Tensor] = None,
    ) -> Dict[str, Tensor]:
        inputs = self._model_inputs(atomic_numbers, positions, cell, pbc, batch, candidates, candidate_shifts)
        out = self.model(inputs)
        if "energies" not in out:
            raise ValueError(
                "the model returned no 'energies' (per-atom energies, shape [N]); it breaks the mlcalc contract"
            )
        energies = out["energies"]
        n = positions.shape[0]
        if energies.dim() != 1 or energies.shape[0] != n:
            raise ValueError(
                "the model returned 'energies' of shape {}; the contract needs per-atom energies of shape [{}]".format(
                    energies.shape, n
                )
            )
        # contract.RESERVED_OUTPUTS, written out: TorchScript reads no module-level tuples of strings.
        for key in ["energy", "forces", "virial", "energy_committee", "energy_uncertainty", "forces_uncertainty"]:
            if key in out:
                raise ValueError("the model returned '{}', a key mlcalc reserves; rename that output".format(key))
        energy = torch.zeros(cell.shape[0], dtype=energies.dtype, device=energies.device).index_add(0, batch, energies)
        result: Dict[str, Tensor] = {}
        for key, value in out.items():
            result[key] = value
        result["energy"] = energy
        if "energies_committee" in out:
            members = out["energies_committee"]
            if members.dim() != 2 or members.shape[0] != n or members.shape[1] < 2:
                raise ValueError(
                    "the model returned 'energies_committee' of shape {}; a committee needs [{}, members >= 2]".format(
                        members.shape, n
                    )
                )
            if not torch.allclose(members.mean(dim=1), energies, rtol=1e-5, atol=1e-6):
                raise ValueError("the model's 'energies' are not the mean of its 'energies_committee' over members")
            shape = (cell.shape[0], members.shape[1])
            member_energy = torch.zeros(shape, dtype=members.dtype, device=members.device).index_add(0, batch, members)
            result["energy_committee"] = member_energy
            result["energy_uncertainty"] = member_energy.std(dim=1, unbiased=False)
        return result

    def _model_inputs(
        self,
        atomic_numbers: Tensor,
        positions: Tensor,
        cell: Tensor,
        pbc: Tensor,
        batch: Tensor,
        candidates: Optional[Tensor],
        candidate_shifts: Optional[Tensor],
    ) -> Dict[str, Tensor]:
        """The model's input dictionary (contract ``MODEL_INPUTS``): the graph within the cutoff, built here
        or kept from candidate edges, and its edge vectors (differentiable in positions and cell)."""
        species = self.species_lookup[atomic_numbers]
        if candidates is None or candidate_shifts is None:
            edge_index, shifts = self._graph(positions, cell, pbc, batch)
        else:
            edge_index, shifts = self._within_cutoff(positions, cell, batch, candidates, candidate_shifts)
        first = edge_index[0]
        second = edge_index[1]
        edge_vectors = positions[second] - positions[first] + _shift_vectors(shifts, cell, batch, first)
        return {
            "atomic_numbers": atomic_numbers,
            "species": species,
            "positions": positions,
            "cell": cell,
            "pbc": pbc,
            "batch": batch,
            "edge_index": edge_index,
            "edge_vectors": edge_vectors,
            "edge_shifts": shifts,
        }

    def _graph(self, positions: Tensor, cell: Tensor, pbc: Tensor, batch: Tensor) -> Tuple[Tensor, Tensor]:
        """Edges within the cutoff and their shifts (:func:`mlcalc.graph.build_graph`)."""
        return build_graph(positions, cell, pbc, batch, self.cutoff, self.pair_chunk, self.max_images)

    def _within_cutoff(
        self, positions: Tensor, cell: Tensor, batch: Tensor, candidates: Tensor, candidate_shifts: Tensor
    ) -> Tuple[Tensor, Tensor]:
        """The candidate edges shorter than the cutoff at these positions (the builder's criterion)."""
        n = positions.shape[0]
        if (
            candidates.dim() != 2
            or candidates.shape[0] != 2
            or candidate_shifts.dim() != 2
            or candidate_shifts.shape[0] != candidates.shape[1]
            or candidate_shifts.shape[1] != 3
        ):
            raise ValueError(
                "candidate edges must have shapes [2, E] and [E, 3], got {} and {}".format(
                    candidates.shape, candidate_shifts.shape
                )
            )
        if candidates.numel() > 0 and (int(candidates.min()) < 0 or int(candidates.max()) >= n):
            raise ValueError("candidate edges name atoms outside 0..{}".format(n - 1))
        with torch.no_grad():
            p = positions.detach()
            c = cell.detach()
            first = candidates[0]
            d = p[candidates[1]] - p[first] + _shift_vectors(candidate_shifts, c, batch, first)
            keep = ((d * d).sum(-1) < self.cutoff * self.cutoff).nonzero().squeeze(1)
        return candidates.index_select(1, keep), candidate_shifts.index_select(0, keep)

    def _prepare(
        self, atomic_numbers: Tensor, positions: Tensor, cell: Tensor, pbc: Tensor, batch: Optional[Tensor]
    ) -> Tuple[Tensor, Tensor, Tensor]:
        cell, pbc, batch = self._shapes(atomic_numbers, positions, cell, pbc, batch)
        if bool((atomic_numbers < 0).any()) or bool((atomic_numbers >= self.species_lookup.shape[0]).any()):
            raise ValueError("atomic numbers must lie in 0..118")
        unsupported = atomic_numbers[self.species_lookup[atomic_numbers] < 0]
        if unsupported.numel() > 0:
            supported: List[int] = (self.species_lookup >= 0).nonzero().flatten().tolist()
            found: List[int] = torch.unique(unsupported).tolist()
            raise ValueError(
                "atomic numbers {} are not supported by this potential; it supports {}".format(found, supported)
            )
        if not bool(torch.isfinite(positions).all()):
            bad: List[int] = (~torch.isfinite(positions).all(dim=1)).nonzero().flatten().tolist()
            raise ValueError("positions of atoms {} are NaN or infinite".format(bad))
        if not bool(torch.isfinite(cell).all()):
            raise ValueError("the cell holds NaN or infinite values")
        return cell, pbc, batch

    def _shapes(
        self, atomic_numbers: Tensor, positions: Tensor, cell: Tensor, pbc: Tensor, batch: Optional[Tensor]
    ) -> Tuple[Tensor, Tensor, Tensor]:
        n = positions.shape[0]
        if positions.dim() != 2 or positions.shape[1] != 3:
            raise ValueError("positions must have shape [N, 3], got {}".format(positions.shape))
        if not positions.is_floating_point():
            raise ValueError("positions must be a floating-point tensor")
        if atomic_numbers.dim() != 1 or atomic_numbers.shape[0] != n:
            raise ValueError("atomic_numbers must have shape [{}], got {}".format(n, atomic_numbers.shape))
        if cell.dim() == 2:
            cell = cell.unsqueeze(0)
        if pbc.dim() == 1:
            pbc = pbc.unsqueeze(0)
        if cell.dim() != 3 or cell.shape[1] != 3 or cell.shape[2] != 3:
            raise ValueError("cell must have shape [3, 3] or [B, 3, 3], got {}".format(cell.shape))
        if pbc.dim() != 2 or pbc.shape[1] != 3 or pbc.shape[0] != cell.shape[0]:
            raise ValueError("pbc must have shape [3] or [B, 3] matching the cell, got {}".format(pbc.shape))
        cell = cell.to(positions.dtype)
        pbc = pbc.to(torch.bool)
        if batch is None:
            if cell.shape[0] != 1:
                raise ValueError(
                    "a batch of {} cells needs the batch tensor (structure index of each atom)".format(cell.shape[0])
                )
            batch = torch.zeros(n, dtype=torch.long, device=positions.device)
        else:
            if batch.dim() != 1 or batch.shape[0] != n:
                raise ValueError("batch must have shape [{}], got {}".format(n, batch.shape))
            if n > 0:
                if bool((batch[1:] < batch[:-1]).any()):
                    raise ValueError("batch must be non-decreasing: the atoms of each structure must be contiguous")
                if int(batch[0]) < 0 or int(batch[-1]) >= cell.shape[0]:
                    raise ValueError("batch indices must lie in 0..{}".format(cell.shape[0] - 1))
        return cell, pbc, batch


ModuleT = TypeVar("ModuleT", bound=torch.nn.Module)


def _shift_vectors(shifts: Tensor, cell: Tensor, batch: Tensor, first: Tensor) -> Tensor:
    """``shifts @ cell`` of each edge's structure [E, 3]; one matrix product for a single structure
    (gathering a 3x3 cell per edge for ``bmm`` cost 4x more, in the backward pass of the virial)."""
    if cell.shape[0] == 1:
        return torch.mm(shifts.to(cell.dtype), cell[0])
    return torch.bmm(shifts.to(cell.dtype).unsqueeze(1), cell[batch[first]]).squeeze(1)


def index_lookup(numbers: Sequence[int]) -> Tensor:
    """A table over atomic numbers 0..NUM_ELEMENTS-1: the position of each of ``numbers`` in that list,
    -1 for the others (index it with atomic numbers to get model-specific element indices)."""
    lookup = torch.full((NUM_ELEMENTS,), -1, dtype=torch.long)
    lookup[torch.tensor(list(numbers), dtype=torch.long)] = torch.arange(len(numbers))
    return lookup


def freeze_parameters(module: ModuleT) -> ModuleT:
    """Make no parameter of ``module`` require a gradient (in place); returns ``module``.

    Forces and the virial are gradients with respect to positions and strain only, but TorchScript's
    differentiable graphs compute the gradient of every tensor that requires one, whatever
    ``torch.autograd.grad`` asks for: trainable parameters cost a weight-gradient matrix product per
    layer at every call (a third of a PaiNN evaluation). Frozen, the results are bit-identical.
    """
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return module


def copy_script_module(module: torch.jit.ScriptModule) -> torch.jit.ScriptModule:
    """An independent copy of a scripted module, on the CPU. (``Module.to`` converts in place, and
    ``copy.deepcopy`` of a ScriptModule turns its parameters into non-leaf tensors.)"""
    buffer = io.BytesIO()
    torchscript.save(module, buffer)
    buffer.seek(0)
    return torchscript.load(buffer, map_location="cpu")
