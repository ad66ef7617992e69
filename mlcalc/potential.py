"""``mlcalc.load`` and :class:`Potential`: a validated potential file, evaluated in eV and Å."""

from __future__ import annotations

import hashlib
import io
import os
import re
import zipfile
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from ase import Atoms
from ase.data import chemical_symbols
from ase.stress import full_3x3_to_voigt_6_stress

from mlcalc import torchscript
from mlcalc.compiled import CompiledModule, compile_module
from mlcalc.contract import (
    COMMITTEE_METHOD_SCHEMAS,
    METADATA_FILE,
    METHOD_SCHEMAS,
    PROGRAM_FILE,
    VERLET_METHOD_SCHEMAS,
    Metadata,
    dtype_name,
    version_tuple,
)
from mlcalc.data import resolve_potential_path
from mlcalc.errors import (
    ContractError,
    DeviceError,
    ExtensionError,
    InvalidStructureError,
    UnsupportedElementError,
    script_error_message,
)
from mlcalc.files import PathLike
from mlcalc.graph import complete_cell
from mlcalc.module import copy_script_module, freeze_parameters
from mlcalc.units import angstrom_per, ev_per
from mlcalc.verlet import VerletList

DeviceLike = Union[str, torch.device, None]
DtypeLike = Union[str, torch.dtype, None]


def read_metadata(path: PathLike) -> Metadata:
    """Metadata of a potential file, read without loading the model."""
    path = _existing(path)
    if not zipfile.is_zipfile(path):
        raise ContractError(f"{path} is not a TorchScript file (not a zip archive); export models with mlcalc.export")
    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if n.endswith(f"/extra/{METADATA_FILE}")]
        if not names:
            raise ContractError(
                f"{path} has no mlcalc metadata ({METADATA_FILE}): it was not written by mlcalc.export; "
                "export the model with mlcalc.export(model, path, cutoff=..., species=..., ...)"
            )
        text = archive.read(names[0])
    return Metadata.from_json(text, source=str(path))


def load_foreign_runtime(extra: Mapping[str, Any], source: str) -> None:
    """Register the TorchScript classes a file imported from another format needs before it loads (a
    metatomic model's come from shared libraries: :mod:`mlcalc.foreign.metatomic`); nothing for others."""
    if extra.get("foreign_format"):
        from mlcalc.foreign.metatomic import needs_runtime, runtime_for

        if needs_runtime(extra):
            runtime_for(extra, source)


def load(path: PathLike, device: DeviceLike = None, dtype: DtypeLike = None, compile: bool = False) -> "Potential":
    """Load and validate a potential file.

    Args:
        path: a file written by :func:`mlcalc.export`, or the name of a bundled potential ("demo").
        device: "cpu", "cuda", "cuda:1", a ``torch.device``; default CUDA when available.
        dtype: "float32", "float64" or a ``torch.dtype``; default the dtype the file declares.
        compile: run the model through ``torch.compile`` from the file's exported program (a file
            exported with ``compilable=True``; :mod:`mlcalc.compiled`). Compiles at load (tens of
            seconds) and checks the results against the file's TorchScript.

    Raises:
        ContractError: not TorchScript, no metadata, an unknown contract version or unit, or
            methods that do not match the contract.
        ExtensionError: the file calls operators or classes of a C++ extension this process has not
            loaded (naming it and the package to install).
        CompileError: ``compile=True`` for a file or machine where the compiled route cannot run.
    """
    given = os.fspath(path)
    path = _existing(path)
    metadata = read_metadata(path)
    load_foreign_runtime(metadata.extra, str(path))
    data = path.read_bytes()  # read once: the SHA-256 is of the very bytes loaded
    target = resolve_device(device)
    try:
        # straight onto the device: a foreign file's frozen weights are constants, which Module.to leaves behind
        module = torchscript.load(io.BytesIO(data), map_location=target)
    except ExtensionError as exc:  # a sound file that needs a library this process has not loaded
        raise ExtensionError(str(exc).replace("this TorchScript file", str(path), 1)) from exc.__cause__
    except Exception as exc:  # torch raises RuntimeError and others for corrupt archives
        raise ContractError(
            f"{path} could not be loaded by TorchScript ({exc}): the file is damaged or incomplete; copy it again "
            "or export it again"
        ) from exc
    _check_interface(module, metadata, str(path))
    sha256 = hashlib.sha256(data).hexdigest()
    program = _program_bytes(data, str(path)) if compile and metadata.program else None
    return Potential(
        module,
        metadata,
        device=device,
        dtype=dtype,
        source_sha256=sha256,
        source=given,
        compile=compile,
        program=program,
    )


def _program_bytes(data: bytes, source: str) -> bytes:
    """The exported program stored in the potential file ``data`` (contract 1.4)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = [n for n in archive.namelist() if n.endswith(f"/extra/{PROGRAM_FILE}")]
        if not names:
            raise ContractError(
                f"{source}: its metadata records an exported program but the file holds none ({PROGRAM_FILE}): "
                "the file is damaged; copy or export it again"
            )
        return archive.read(names[0])


def _relative_to_first_atom(positions: np.ndarray, batch: Optional[np.ndarray]) -> np.ndarray:
    """``positions`` [N, 3] less the position of the first atom of each one's structure (float64)."""
    if not len(positions):
        return positions
    if batch is None:
        return positions - positions[0]
    structures, first = np.unique(batch, return_index=True)
    origins = np.zeros((int(structures.max()) + 1, 3))
    origins[structures] = positions[first]
    return positions - origins[batch]


def _explain_non_finite(numbers, positions, cell, pbc, batch) -> None:
    """Raise for a non-finite result: name coincident atoms (the usual cause) or say the model failed."""
    from ase.neighborlist import neighbor_list

    for b in range(len(cell)):
        atoms = np.arange(len(numbers)) if batch is None else np.flatnonzero(batch == b)
        image = Atoms(numbers[atoms], positions=positions[atoms], cell=cell[b], pbc=pbc[b])
        first, second, distance = neighbor_list("ijd", image, 1e-3)
        pairs = [(atoms[i], atoms[j], d) for i, j, d in zip(first, second, distance) if i < j]
        if pairs:
            shown = ", ".join(f"{i} and {j} ({d:.1e} Å apart)" for i, j, d in pairs[:5])
            where = "" if batch is None else f" in structure {b}"
            raise InvalidStructureError(
                f"atoms {shown}{where} are at the same position, and the potential gives a non-finite energy or "
                "forces there: remove the duplicated atoms (a structure written twice, or a bad periodic image)"
            )
    raise InvalidStructureError(
        "the potential gave a non-finite energy or forces for a structure with finite coordinates and no "
        "coincident atoms: the model fails there (atoms far closer than in its training data?); check the structure"
    )


class Potential:
    """A loaded potential file. Evaluates structures in eV and Å whatever the model's units.

    Use :func:`load` to make one. ``script_module`` is the TorchScript module in the model's own units,
    its parameters frozen (``requires_grad`` False: it evaluates, it does not train). ``module`` is what
    evaluates: ``script_module`` itself, or with ``compile=True`` a :class:`mlcalc.compiled.CompiledModule`
    from the file's exported ``program`` (bytes), whose ``compile_seconds`` says what compiling cost.
    """

    def __init__(
        self,
        module: torch.jit.ScriptModule,
        metadata: Metadata,
        device: DeviceLike = None,
        dtype: DtypeLike = None,
        source_sha256: Optional[str] = None,
        source: Optional[str] = None,
        compile: bool = False,
        program: Optional[bytes] = None,
    ):
        self.metadata = metadata
        self.source_sha256 = source_sha256  # of the file it was loaded from
        self.source = source  # the path (or bundled name) it was loaded from
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, metadata.dtype)
        foreign = metadata.extra.get("foreign_format")
        if foreign and self.dtype != getattr(torch, metadata.dtype):
            raise ContractError(
                f"{metadata.name} was imported from a {foreign} file whose weights are frozen {metadata.dtype} "
                f"constants: it runs in {metadata.dtype} only; leave out dtype="
            )
        # In place: the Potential owns the module. Frozen, so that no engine (ASE, OpenMM, batches) that
        # runs it computes parameter gradients; see freeze_parameters.
        self.script_module = freeze_parameters(module.to(device=self.device, dtype=self.dtype))
        self.compiled = bool(compile)
        self.program = program
        self.module: Union[torch.jit.ScriptModule, CompiledModule] = self.script_module
        if self.compiled:
            label = source or metadata.name
            self.module = compile_module(self.script_module, program or b"", metadata, self.dtype, label)
        self.length_unit_in_angstrom = angstrom_per(metadata.length_unit)
        self.energy_unit_in_ev = ev_per(metadata.energy_unit)
        self._supported = np.zeros(len(chemical_symbols), dtype=bool)
        self._supported[list(metadata.species)] = True

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def cutoff(self) -> float:
        """Graph cutoff in Å."""
        return self.metadata.cutoff * self.length_unit_in_angstrom

    @property
    def species(self) -> tuple[int, ...]:
        """Supported atomic numbers."""
        return self.metadata.species

    def to(self, device: DeviceLike = None, dtype: DtypeLike = None) -> "Potential":
        """A copy on another device and/or dtype (``None`` keeps the current one); ``self`` is unchanged."""
        return Potential(
            copy_script_module(self.script_module),
            self.metadata,
            device=self.device if device is None else device,
            dtype=self.dtype if dtype is None else dtype,
            source_sha256=self.source_sha256,
            source=self.source,
            compile=self.compiled,
            program=self.program,
        )

    def fingerprint(self) -> dict:
        """What identifies the numbers this potential gives: its name, the SHA-256 of its file (of the
        saved module where it was not loaded from a file) and its dtype. Checkpoints of workflows record
        it, so that a resume with another potential is refused. The compiled route adds ``"compiled": True``
        (its numbers equal TorchScript's to round-off, not bit for bit)."""
        sha256 = self.source_sha256
        if sha256 is None:
            buffer = io.BytesIO()
            torchscript.save(self.script_module, buffer, {METADATA_FILE: self.metadata.to_json()})
            sha256 = hashlib.sha256(buffer.getvalue()).hexdigest()
        fingerprint: dict = {"potential": self.name, "sha256": sha256, "dtype": str(self.dtype).replace("torch.", "")}
        if self.compiled:
            fingerprint["compiled"] = True
        return fingerprint

    def __repr__(self) -> str:
        symbols = self.metadata.symbols
        species = ", ".join(symbols) if len(symbols) <= 12 else f"{len(symbols)} elements, {symbols[0]}..{symbols[-1]}"
        return (
            f"Potential({self.name!r}, cutoff={self.cutoff:g} Å, species=[{species}], "
            f"device={self.device}, dtype={str(self.dtype).replace('torch.', '')}"
            + (", compiled)" if self.compiled else ")")
        )

    def check_structure(self, numbers: np.ndarray, positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray) -> None:
        """Raise a clear error for a structure this potential cannot evaluate (Å)."""
        numbers = np.asarray(numbers)
        valid = (numbers >= 0) & (numbers < len(chemical_symbols))
        if not valid.all():
            raise UnsupportedElementError(f"atomic numbers {sorted(set(numbers[~valid].tolist()))} do not exist")
        unsupported = ~self._supported[numbers]
        if unsupported.any():
            found = ", ".join(
                f"{chemical_symbols[z]} (Z={z}) at atoms {np.flatnonzero(numbers == z)[:10].tolist()}"
                for z in sorted(set(numbers[unsupported].tolist()))
            )
            raise UnsupportedElementError(
                f"potential {self.name!r} does not support {found}; it supports "
                f"{', '.join(self.metadata.symbols)}. Use a potential trained for these elements."
            )
        finite = np.isfinite(positions).all(axis=1)
        if not finite.all():
            raise InvalidStructureError(
                f"positions of atoms {np.flatnonzero(~finite)[:10].tolist()} are NaN or infinite; "
                "check the structure (an optimiser or MD run that diverged?)"
            )
        if not np.isfinite(cell).all():
            raise InvalidStructureError("the cell holds NaN or infinite values")
        try:
            complete_cell(torch.as_tensor(np.asarray(cell, dtype=np.float64)), [bool(p) for p in pbc])
        except ValueError as exc:
            raise InvalidStructureError(str(exc)) from None

    def model_outputs(self, atoms: Atoms) -> dict[str, torch.Tensor]:
        """The file's ``forward`` outputs for one structure, in the model's units, detached: what the
        contract returns beyond energy and forces (uncertainties, committee energies, HIP-NN terms)."""
        scale = self.length_unit_in_angstrom

        def tensor(x, dtype: torch.dtype = self.dtype) -> torch.Tensor:
            return torch.as_tensor(np.asarray(x), dtype=dtype, device=self.device)

        with torch.no_grad(), torchscript.unoptimized():
            out = self.module.forward(
                tensor(atoms.numbers, torch.long),
                tensor(atoms.positions / scale),
                tensor(atoms.cell.array / scale),
                tensor(atoms.pbc, torch.bool),
            )
        return {key: value.detach() for key, value in out.items()}

    def verlet_list(self, skin: float) -> VerletList:
        """A Verlet list for one structure with a skin of ``skin`` Å, for :meth:`evaluate`'s ``verlet``."""
        scale = self.length_unit_in_angstrom
        return VerletList(self.module, self.metadata.cutoff, skin / scale, source=f"potential {self.name!r}")

    def evaluate(
        self,
        images: Union[Atoms, Sequence[Atoms]],
        *,
        forces: bool = True,
        stress: bool = True,
        verlet: Optional[VerletList] = None,
        force_uncertainty: bool = False,
    ) -> list[dict]:
        """Evaluate one or many ``ase.Atoms`` in one model call.

        Returns one dict per structure with ``energy`` (eV), ``free_energy``, ``energies`` [N] (eV),
        ``forces`` [N, 3] (eV/Å) and, for cells of non-zero volume, ``stress`` (Voigt, eV/Å³,
        ASE's sign convention). ``verlet`` (one structure only, from :meth:`verlet_list`) reuses
        candidate edges between calls. A committee adds ``energy_uncertainty`` (eV) and
        ``energy_committee`` [M] (eV), and with ``force_uncertainty`` ``forces_uncertainty`` [N] (eV/Å).
        """
        if isinstance(images, Atoms):  # the ASE calculator's path: no concatenation, no batch vector
            arrays: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, Optional[np.ndarray]] = (
                images.numbers,
                images.positions,
                images.cell.array[None],
                images.pbc[None],
                None,
            )
            counts = [len(images)]
        else:
            images = list(images)
            if not images:
                return []
            counts = [len(a) for a in images]
            arrays = (
                np.concatenate([a.numbers for a in images]),
                np.concatenate([a.positions for a in images]),
                np.stack([a.cell.array for a in images]),
                np.stack([a.pbc for a in images]),
                np.repeat(np.arange(len(images)), counts),
            )
        results = self.evaluate_arrays(
            *arrays, forces=forces, stress=stress, verlet=verlet, force_uncertainty=force_uncertainty
        )
        per_image = []
        start = 0
        for b, count in enumerate(counts):
            stop = start + count
            item: dict[str, Any] = {"energy": float(results["energy"][b]), "free_energy": float(results["energy"][b])}
            item["energies"] = results["energies"][start:stop]
            if forces:
                item["forces"] = results["forces"][start:stop]
            if "stress" in results and not np.isnan(results["stress"][b]).any():
                item["stress"] = results["stress"][b]
            if "energy_uncertainty" in results:
                item["energy_uncertainty"] = float(results["energy_uncertainty"][b])
                item["energy_committee"] = results["energy_committee"][b]
                if "forces_uncertainty" in results:
                    item["forces_uncertainty"] = results["forces_uncertainty"][start:stop]
            per_image.append(item)
            start = stop
        return per_image

    def evaluate_arrays(
        self,
        numbers: np.ndarray,
        positions: np.ndarray,
        cell: np.ndarray,
        pbc: np.ndarray,
        batch: Optional[np.ndarray] = None,
        *,
        forces: bool = True,
        stress: bool = True,
        verlet: Optional[VerletList] = None,
        force_uncertainty: bool = False,
    ) -> dict[str, np.ndarray]:
        """Evaluate structures given as arrays (Å); ``cell`` [B, 3, 3], ``pbc`` [B, 3], ``batch`` [N]
        (may be omitted for one structure). ``verlet``: candidate edges reused between calls (one
        structure, see :meth:`verlet_list`).

        Returns ``energy`` [B] and ``energies`` [N] in eV, ``forces`` [N, 3] in eV/Å and ``stress``
        [B, 6] in eV/Å³ (NaN rows for cells of zero volume). A committee adds ``energy_committee`` [B, M]
        and ``energy_uncertainty`` [B] in eV, and with ``force_uncertainty`` (one backward pass per
        member, no Verlet list) ``forces_uncertainty`` [N] in eV/Å (:data:`mlcalc.contract.COMMITTEE_OUTPUTS`).
        """
        if force_uncertainty and not self.metadata.committee:
            raise ContractError(
                f"potential {self.name!r} is a single model, not a committee: it gives no force uncertainty"
            )
        numbers = np.asarray(numbers, dtype=np.int64)
        positions = np.asarray(positions, dtype=np.float64)
        cell = np.asarray(cell, dtype=np.float64).reshape(-1, 3, 3)
        pbc = np.asarray(pbc, dtype=bool).reshape(-1, 3)
        if batch is None and len(cell) != 1:
            raise ValueError(f"{len(cell)} cells need the batch array (structure index of each atom)")
        if verlet is not None and len(cell) != 1:
            raise ValueError("a Verlet list serves one structure, not a batch")
        if batch is not None:
            batch = np.asarray(batch, dtype=np.int64)
        if positions.shape != (len(numbers), 3):
            raise InvalidStructureError(f"positions must have shape ({len(numbers)}, 3), got {positions.shape}")
        want_virial = stress and bool(pbc.any())
        if want_virial:
            with np.errstate(invalid="ignore"):  # a NaN cell is reported by the checks below
                volumes = np.abs(np.linalg.det(cell))
            want_virial = bool((volumes > 0).any())
        scale = self.length_unit_in_angstrom
        # float32 keeps ~7 digits of a coordinate: taken from the origin, a molecule 1e4 Å away lost the
        # energy's third digit. Relative to each structure's first atom (in float64 first) it keeps them all.
        relative = positions if self.dtype == torch.float64 else _relative_to_first_atom(positions, batch)
        inputs = (
            self._tensor(numbers, torch.long),
            self._tensor(relative / scale if scale != 1.0 else relative, self.dtype),
            self._tensor(cell / scale if scale != 1.0 else cell, self.dtype),
            self._tensor(pbc, torch.bool),
            None if batch is None else self._tensor(batch, torch.long),
        )
        try:
            with torch.enable_grad():
                if verlet is not None and not force_uncertainty:  # the graph builder keeps its optimised plan
                    edges, shifts = verlet.candidates(inputs[1], inputs[2], inputs[3])
                with torchscript.unoptimized():
                    if force_uncertainty:
                        out = self.module.compute_committee(*inputs, forces, want_virial)
                    elif verlet is None:
                        out = self.module.compute(*inputs, forces, want_virial)
                    else:
                        out = self.module.compute_from_neighbors(*inputs, edges, shifts, forces, want_virial)
        except (torch.jit.Error, RuntimeError) as exc:
            # The module checks its input too, with terser messages (TorchScript has no element names);
            # the checks are repeated here only after a failure, so that they cost nothing per call.
            for b in range(len(cell)):
                atoms = slice(None) if batch is None else batch == b
                self.check_structure(numbers[atoms], positions[atoms], cell[b], pbc[b])
            if isinstance(exc, torch.jit.Error) and "builtins.ValueError" in str(exc):
                # the graph builder's own checks of the cell (TorchScript can raise only ValueError)
                raise InvalidStructureError(script_error_message(exc)) from None
            raise
        energy_scale = self.energy_unit_in_ev
        results = {
            "energy": _to_numpy(out["energy"], energy_scale),
            "energies": _to_numpy(out["energies"], energy_scale),
        }
        if forces:
            results["forces"] = _to_numpy(out["forces"], energy_scale / scale)
        if "energy_uncertainty" in out:  # a committee (contract 1.3)
            results["energy_uncertainty"] = _to_numpy(out["energy_uncertainty"], energy_scale)
            results["energy_committee"] = _to_numpy(out["energy_committee"], energy_scale)
            if "forces_uncertainty" in out:
                results["forces_uncertainty"] = _to_numpy(out["forces_uncertainty"], energy_scale / scale)
        if want_virial:
            virial = _to_numpy(out["virial"], energy_scale)
            with np.errstate(divide="ignore", invalid="ignore"):
                stress_3x3 = -virial / np.where(volumes > 0, volumes, np.nan)[:, None, None]
            results["stress"] = full_3x3_to_voigt_6_stress(stress_3x3)  # batched: [B, 3, 3] -> [B, 6]
        if not (np.isfinite(results["energy"]).all() and np.isfinite(results.get("forces", 0.0)).all()):
            _explain_non_finite(numbers, positions, cell, pbc, batch)
        return results

    def _tensor(self, array: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
        """``array`` as a tensor of ``dtype`` on the potential's device (no copy when it already is one)."""
        if not (array.flags.c_contiguous and array.flags.writeable):  # what torch.from_numpy needs
            array = np.array(array)
        tensor = torch.from_numpy(array)
        if tensor.dtype != dtype or self.device.type != "cpu":
            tensor = tensor.to(device=self.device, dtype=dtype)
        return tensor


def _to_numpy(tensor: torch.Tensor, factor: float) -> np.ndarray:
    """``tensor`` (an output of this call's ``compute``, owned by nobody else) as float64 NumPy,
    times ``factor``."""
    if tensor.dtype != torch.float64 or tensor.device.type != "cpu":
        tensor = tensor.to("cpu", torch.float64)
    array = tensor.numpy()
    return array * factor if factor != 1.0 else array


def resolve_device(device: DeviceLike) -> torch.device:
    """``None`` → CUDA when available, else CPU; strings and devices as given."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise DeviceError(f"unknown device {device!r} ({exc}): use 'cpu', 'cuda' or 'cuda:N'") from None
    if device.type not in ("cpu", "cuda"):
        raise DeviceError(f"device {device} is not supported: use 'cpu', 'cuda' or 'cuda:N'")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device {device} was asked for but torch sees no CUDA GPU; use device='cpu'")
    return device


def resolve_dtype(dtype: DtypeLike, default: str) -> torch.dtype:
    """``"float32"``/``"float64"``/``torch.float32``/``torch.float64``; ``None`` → ``default``."""
    return getattr(torch, dtype_name(default if dtype is None else dtype))


def _existing(path: PathLike) -> Path:
    """The file ``path``, or the bundled potential of that name (``mlcalc.load("demo")``)."""
    return resolve_potential_path(path)


def _check_interface(module: torch.jit.ScriptModule, metadata: Metadata, source: str) -> None:
    required = dict(METHOD_SCHEMAS)
    if version_tuple(metadata.contract_version) >= (1, 1):
        required.update(VERLET_METHOD_SCHEMAS)
    if version_tuple(metadata.contract_version) >= (1, 3):
        required.update(COMMITTEE_METHOD_SCHEMAS)
    for method, expected in required.items():
        if not hasattr(module, method):
            raise ContractError(f"{source}: the module has no {method}() method; re-export it with mlcalc.export")
        schema = str(getattr(module, method).schema)
        found = re.sub(r"^\w+\(\S+ self(, )?", "(", schema)
        if found != expected:
            raise ContractError(
                f"{source}: {method}() is `{schema}`, the contract needs `{method}{expected}`; "
                "re-export the model with mlcalc.export"
            )
    if abs(float(module.cutoff) - metadata.cutoff) > 1e-12 * metadata.cutoff:
        raise ContractError(
            f"{source}: the module's cutoff {module.cutoff} disagrees with its metadata {metadata.cutoff}"
        )
    lookup = module.species_lookup
    if sorted((lookup >= 0).nonzero().flatten().tolist()) != list(metadata.species):
        raise ContractError(f"{source}: the module's species disagree with its metadata {list(metadata.species)}")
