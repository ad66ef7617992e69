"""The compiled route: a file's model through ``torch.export`` and ``torch.compile`` (Inductor).

TorchScript cannot carry Inductor's generated kernels, and PyTorch deprecates it. A file exported with
``mlcalc.export(..., compilable=True)`` (contract 1.4) therefore also holds its model part as a
``torch.export`` ExportedProgram (the extra file :data:`~mlcalc.contract.PROGRAM_FILE`, recorded in the
metadata's ``program``). ``mlcalc.load(path, compile=True)`` runs that program through
``torch.compile(dynamic=True)`` inside the same outer code as the TorchScript module (input checks,
energy sums, one backward pass for forces and virial, committees), with the file's TorchScript graph
builder unchanged. The engines that run in Python use it: the ASE calculator, OpenMM's PythonForce and
batched evaluation. openmm-torch's TorchForce runs TorchScript in C++ and cannot.

At load the compiled module is checked against the file's TorchScript on test structures (energies,
forces, virial) and refused with :class:`~mlcalc.errors.CompileError` if they differ beyond float
round-off; so is a file without a program, another dtype than the file's, a program this torch cannot
read, or a machine where Inductor cannot build (no C++ compiler). ``load(path)`` without ``compile``
then runs the same file through TorchScript.
"""

import contextlib
import hashlib
import io
import math
import time
import weakref
from typing import Dict, Iterator, List, Optional, Tuple, cast

import numpy as np
import torch
from torch import Tensor

from mlcalc.contract import Metadata
from mlcalc.errors import CompileError, ContractError
from mlcalc.module import PotentialModule, freeze_parameters

#: Atoms of the example structures the program is traced on, and checked on (other sizes: the program
#: must not have specialised on them).
TRACE_SIZES = (7, 5)
CHECK_SIZES = (9, 4, 6)
#: Largest relative difference between the compiled route and the file's TorchScript at load, per dtype
#: (of the largest magnitude of each output): fused kernels reorder sums, nothing more.
TOLERANCE = {torch.float64: 1e-10, torch.float32: 2e-4}


def example_inputs(
    metadata: Metadata, sizes: Tuple[int, ...], dtype: torch.dtype, device: Optional[torch.device] = None
) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """``(atomic_numbers, positions, cell, pbc, batch)`` of ``len(sizes)`` structures of the file's
    elements (first periodic, second open, then mixed), atoms 0.45 cutoff apart on a jittered grid."""
    rng = np.random.default_rng(len(sizes))
    spacing = 0.45 * metadata.cutoff
    numbers: List[int] = []
    positions: List[np.ndarray] = []
    cells: List[np.ndarray] = []
    pbcs: List[List[bool]] = []
    batch: List[int] = []
    for b, n in enumerate(sizes):
        side = math.ceil(n ** (1 / 3))
        grid = np.array([(i, j, k) for i in range(side) for j in range(side) for k in range(side)][:n], float)
        positions.append((grid + rng.uniform(-0.1, 0.1, grid.shape)) * spacing)
        numbers += [metadata.species[(b + a) % len(metadata.species)] for a in range(n)]
        cells.append(np.eye(3) * side * spacing)
        pbcs.append([[True] * 3, [False] * 3, [True, True, False]][b % 3])
        batch += [b] * n
    return (
        torch.tensor(numbers, device=device),
        torch.tensor(np.concatenate(positions), dtype=dtype, device=device),
        torch.tensor(np.stack(cells), dtype=dtype, device=device),
        torch.tensor(pbcs, device=device),
        torch.tensor(batch, device=device),
    )


def export_program(model: torch.nn.Module, metadata: Metadata) -> bytes:
    """The ExportedProgram of ``model`` (in ``metadata.dtype``, on the CPU) as ``torch.export.save``
    bytes, checked on structures of other sizes than it was traced on.

    Raises:
        ContractError: the model does not export, or its program disagrees with the model.
    """
    if isinstance(model, torch.jit.ScriptModule):
        raise ContractError(
            "a scripted model cannot be exported with torch.export for the compiled route: pass the Python module "
            "(before torch.jit.script) with compilable=True"
        )
    dtype = getattr(torch, metadata.dtype)
    wrapper = PotentialModule(freeze_parameters(model), metadata.cutoff, metadata.species).to(dtype).eval()
    trace_inputs = _model_inputs(wrapper, example_inputs(metadata, TRACE_SIZES, dtype))
    auto = torch.export.Dim.AUTO
    dims = {key: {1 if key == "edge_index" else 0: auto} for key in trace_inputs}
    try:
        program = torch.export.export(wrapper.model, (trace_inputs,), dynamic_shapes={"inputs": dims}, strict=False)
    except Exception as exc:  # torch.export raises many kinds; each means the model cannot be exported as it is
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ContractError(
            f"the model could not be exported with torch.export for the compiled route ({type(exc).__name__}: "
            f"{first}); export it without compilable=True (it then runs through TorchScript only), or make "
            "the code torch.export points at export-friendly (docs/performance.md, compiled route)"
        ) from exc
    check_inputs = _model_inputs(wrapper, example_inputs(metadata, CHECK_SIZES, dtype))
    expected = wrapper.model(check_inputs)["energies"]
    try:
        found = program.module()(check_inputs)["energies"]
    except Exception as exc:
        raise ContractError(
            f"the model's exported program fails on structures of other sizes than it was traced on ({exc}): it "
            "specialised on a size; export without compilable=True"
        ) from exc
    difference = _relative_difference(found, expected)
    if not difference <= TOLERANCE[dtype]:
        raise ContractError(
            f"the model's exported program gives energies {difference:.1e} (relative) from the model's own: "
            "torch.export traced a different computation; export without compilable=True"
        )
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue()


def program_record(data: bytes) -> Dict[str, object]:
    """The metadata's ``program`` entry for the program bytes ``data``."""
    return {"torch_version": torch.__version__, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


class CompiledModule(PotentialModule):
    """The contract's methods (``compute``, ``compute_committee``, ``compute_from_neighbors``,
    ``neighbor_list``, ``neighbor_list_within``) in eager Python around a compiled model; the graph comes
    from the file's TorchScript module ``script``. ``compile_seconds``: time of the first calls (s)."""

    def __init__(self, script: torch.jit.ScriptModule, model: torch.nn.Module):
        species = (script.species_lookup >= 0).nonzero().flatten().tolist()
        super().__init__(model, float(script.cutoff), species)
        self.script = script
        self.species_lookup = script.species_lookup
        self.compile_seconds = math.nan

    def forward(
        self, atomic_numbers: Tensor, positions: Tensor, cell: Tensor, pbc: Tensor, batch: Optional[Tensor] = None
    ) -> Dict[str, Tensor]:
        with _compiler_settings():
            return super().forward(atomic_numbers, positions, cell, pbc, batch)

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
        with _compiler_settings():
            return super()._compute(
                atomic_numbers, positions, cell, pbc, batch, candidates, candidate_shifts, forces, virial, members
            )

    def _graph(self, positions: Tensor, cell: Tensor, pbc: Tensor, batch: Tensor) -> Tuple[Tensor, Tensor]:
        return self.script.neighbor_list(positions.detach(), cell.detach(), pbc, batch)

    def neighbor_list(
        self, positions: Tensor, cell: Tensor, pbc: Tensor, batch: Optional[Tensor] = None
    ) -> Tuple[Tensor, Tensor]:
        return self.script.neighbor_list(positions, cell, pbc, batch)

    def neighbor_list_within(
        self, positions: Tensor, cell: Tensor, pbc: Tensor, batch: Optional[Tensor], cutoff: float
    ) -> Tuple[Tensor, Tensor]:
        return self.script.neighbor_list_within(positions, cell, pbc, batch, cutoff)


def compile_module(
    script: torch.jit.ScriptModule, data: bytes, metadata: Metadata, dtype: torch.dtype, source: str
) -> CompiledModule:
    """The compiled route for a loaded file: its program ``data`` compiled around ``script`` (already on
    its device, in ``dtype``), checked against ``script`` on test structures.

    Raises:
        CompileError: no program, another dtype than the file's, an unreadable program, a failed
            compilation or results that differ from the TorchScript's.
    """
    record = metadata.program
    if not record:
        raise CompileError(
            f"{source} carries no exported program (it was exported without compilable=True, or before contract "
            "1.4), so it runs through TorchScript only: load it without compile=True, or export it again with "
            "mlcalc.export(..., compilable=True) / mlcalc export --compilable"
        )
    if hashlib.sha256(data).hexdigest() != record["sha256"]:
        raise ContractError(
            f"{source}: its exported program does not match the SHA-256 its metadata records: the file is damaged; "
            "copy or export it again"
        )
    if dtype != getattr(torch, metadata.dtype):
        raise CompileError(
            f"{source}'s exported program is {metadata.dtype}; it compiles in that dtype only: leave out dtype=, "
            "or export a compilable file in the dtype you want"
        )
    device = script.species_lookup.device
    key = (record["sha256"], str(device), dtype)
    compiled = _COMPILED.get(key)
    if compiled is None:
        compiled = _compile(data, record, device, source)
    _check_weights(cast(torch.nn.Module, compiled._orig_mod), script.model, source)  # what torch.compile wraps
    _COMPILED[key] = compiled
    module = CompiledModule(script, _CompiledModel(compiled, script.model))
    start = time.perf_counter()
    _check_against_script(module, script, metadata, dtype, device, source)
    module.compile_seconds = time.perf_counter() - start
    return module


#: Compiled programs by (SHA-256, device, dtype), while a potential uses them: loading the same file again
#: (``Potential.to``, a pickled PythonForce, another calculator) reuses the compilation.
_COMPILED: "weakref.WeakValueDictionary[Tuple[str, str, torch.dtype], torch.nn.Module]" = weakref.WeakValueDictionary()


def _compile(data: bytes, record: Dict, device: torch.device, source: str) -> torch.nn.Module:
    """``torch.compile`` of the program ``data`` on ``device``, its parameters frozen."""
    try:
        program = torch.export.load(io.BytesIO(data))
        if device.type != "cpu":
            from torch.export.passes import move_to_device_pass

            program = move_to_device_pass(program, device)
        graph_module = freeze_parameters(program.module())
    except Exception as exc:  # unreadable by this torch, or not movable to the device
        raise CompileError(
            f"torch {torch.__version__} cannot read {source}'s exported program, written by torch "
            f"{record['torch_version']} ({type(exc).__name__}: {exc}); load it without compile=True (TorchScript), "
            "or export it again with this torch"
        ) from exc
    return cast(torch.nn.Module, torch.compile(graph_module, dynamic=True))  # an OptimizedModule


@contextlib.contextmanager
def _compiler_settings() -> Iterator[None]:
    """How the program is compiled, around each call (compilation happens inside the first ones): ``.item()``
    and data-dependent shapes traced into one graph (a padded layout's width) rather than broken there, and
    no donated buffers (a committee's force spread takes one backward pass per member, retaining the graph)."""
    with (
        torch._dynamo.config.patch(capture_scalar_outputs=True, capture_dynamic_output_shape_ops=True),
        torch._functorch.config.patch(donated_buffer=False),
    ):
        yield


class _CompiledModel(torch.nn.Module):
    """The compiled program, and the file's TorchScript model for inputs the program was not traced for:
    ``torch.export`` specialises sizes 0 and 1, so fewer than 2 atoms or 2 edges (a lone atom, a dimer)
    run through ``fallback``, with the same outer code and numbers."""

    def __init__(self, compiled: torch.nn.Module, fallback: torch.nn.Module):
        super().__init__()
        self.compiled = compiled
        self.fallback = fallback

    def forward(self, inputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        if inputs["positions"].shape[0] < 2 or inputs["edge_index"].shape[1] < 2:
            return self.fallback(inputs)
        return self.compiled(inputs)


def _model_inputs(wrapper: PotentialModule, inputs: Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]) -> Dict[str, Tensor]:
    numbers, positions, cell, pbc, batch = inputs
    cell, pbc, batch = wrapper._prepare(numbers, positions, cell, pbc, batch)
    return wrapper._model_inputs(numbers, positions, cell, pbc, batch, None, None)


def _check_weights(graph_module: torch.nn.Module, model: torch.nn.Module, source: str) -> None:
    """Refuse a program whose parameters are not the TorchScript model's (an edited or mixed-up file)."""
    ours = dict(model.named_parameters())
    theirs = dict(graph_module.named_parameters())
    if set(ours) != set(theirs) or any(not torch.equal(theirs[k].to(ours[k].device), ours[k]) for k in ours):
        raise ContractError(
            f"{source}: its exported program does not hold the weights of its TorchScript model (an edited or "
            "mixed-up file); export it again"
        )


def _check_against_script(
    module: CompiledModule,
    script: torch.jit.ScriptModule,
    metadata: Metadata,
    dtype: torch.dtype,
    device: torch.device,
    source: str,
) -> None:
    """Compile (the first calls) and compare energies, forces and virial with the TorchScript module's."""
    method = "compute_committee" if metadata.committee else "compute"
    for sizes in (TRACE_SIZES, CHECK_SIZES):
        inputs = example_inputs(metadata, sizes, dtype, device)
        try:
            found = getattr(module, method)(*inputs, True, True)
        except Exception as exc:  # Inductor's failures (no C++ compiler, unsupported op) come in many kinds
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CompileError(
                f"torch.compile could not compile {source}'s exported program ({type(exc).__name__}: {first}); "
                "load it without compile=True (TorchScript: the same numbers, slower). Inductor needs a C++ "
                "compiler on the CPU"
            ) from exc
        expected = getattr(script, method)(*inputs, True, True)
        for key, value in expected.items():
            difference = _relative_difference(found[key], value)
            if not difference <= TOLERANCE[dtype]:
                raise CompileError(
                    f"{source}: the compiled route gives {key} {difference:.1e} (relative) from the TorchScript "
                    f"module's on a test structure, beyond {metadata.dtype} round-off; load it without compile=True"
                )


def _relative_difference(found: Tensor, expected: Tensor) -> float:
    """max |found - expected| over max |expected| (0 for two empty or zero tensors)."""
    if found.shape != expected.shape:
        return math.inf
    scale = float(expected.abs().max()) if expected.numel() else 0.0
    error = float((found.detach() - expected).abs().max()) if expected.numel() else 0.0
    return error / scale if scale > 0 else error
