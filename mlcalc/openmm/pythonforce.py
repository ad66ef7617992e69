"""The potential as an ``openmm.PythonForce`` (OpenMM >= 8.5): any torch, no openmm-torch needed.

OpenMM calls a Python function with the ``State`` (positions in nm, box in nm) and expects the
energy in kJ/mol and the forces in kJ/mol/nm. :class:`PotentialComputation` converts units and
calls the potential file's own ``compute`` (graph builder, model, one backward pass), so the numbers
equal those of the ``TorchForce`` from :mod:`mlcalc.openmm.torchforce`: the same positions in the
same dtype reach the same module. openmm-ml >= 1.6 runs its own models the same way.

A PythonForce costs a round trip through Python on every evaluation (and a device copy on CUDA).
"""

from __future__ import annotations

import io
from typing import Optional, Union

import numpy as np
import openmm
import torch
from openmm import unit

from mlcalc import torchscript
from mlcalc.compiled import CompiledModule, compile_module
from mlcalc.contract import Metadata
from mlcalc.module import freeze_parameters
from mlcalc.openmm.region import DEFAULT_BOX_REFUSAL, OPENMM_DEFAULT_BOX_NM, MLRegion
from mlcalc.potential import DeviceLike, load_foreign_runtime, resolve_device


class PotentialComputation:
    """``(state) -> (energy kJ/mol, forces [N, 3] kJ/mol/nm)`` for ``openmm.PythonForce``.

    Picklable (OpenMM pickles the function to serialise and copy the force): the TorchScript module
    travels as the bytes of ``torch.jit.save`` and is loaded back onto the same device; a compiled
    potential's program travels with it and is compiled again.

    Args:
        region: the ML atoms and the potential.
        device: where the model runs.
    """

    def __init__(self, region: MLRegion, device: torch.device):
        potential = region.potential
        self.module: Union[torch.jit.ScriptModule, CompiledModule]
        if potential.compiled:  # the compiled route (mlcalc.compiled), compiled again for another device
            potential = potential if potential.device == device else potential.to(device=device)
            self.module = potential.module
            self.program: Optional[tuple[bytes, Metadata]] = (potential.program or b"", potential.metadata)
        else:
            self.module = potential.script_module.to(device)
            self.program = None
        self.atomic_numbers = torch.tensor(region.atomic_numbers, dtype=torch.long, device=device)
        self.indices = None if region.indices is None else np.asarray(region.indices, dtype=np.int64)
        self.num_particles = region.num_particles
        self.periodic = region.periodic
        # The TorchForce multiplies positions (cast to the model dtype) by a length scale of the model
        # dtype; do the same so that float32 models round identically.
        self.length_scale = torch.tensor(region.length_scale, dtype=region.potential.dtype, device=device)
        self.energy_scale = region.energy_scale
        self.pbc = torch.full((3,), self.periodic, dtype=torch.bool, device=device)
        self.check_default_box = region.check_default_box
        # An imported file may need its format's runtime registered before the module unpickles.
        self.foreign_extra = dict(potential.metadata.extra) if potential.metadata.extra.get("foreign_format") else None

    def __call__(self, state: openmm.State) -> tuple[float, np.ndarray]:
        positions = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        if self.indices is not None:
            positions = positions[self.indices]
        scale = self.length_scale
        if scale.dtype != torch.float64 and len(positions):
            positions = positions - positions[0]  # as the TorchForce does: float32 keeps the digits that matter
        x = torch.as_tensor(np.ascontiguousarray(positions), device=scale.device).to(scale.dtype) * scale
        if self.periodic:
            box = state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer)
            if self.check_default_box and np.array_equal(box, OPENMM_DEFAULT_BOX_NM * np.eye(3)):
                raise ValueError(DEFAULT_BOX_REFUSAL)
            cell = torch.as_tensor(np.asarray(box), device=scale.device).to(scale.dtype) * scale
        else:
            cell = torch.zeros((3, 3), dtype=scale.dtype, device=scale.device)
        with torchscript.unoptimized():
            out = self.module.compute(self.atomic_numbers, x, cell, self.pbc, None, True, False)
        energy = float(out["energy"].sum()) * self.energy_scale
        # -dE/dx_nm = -(dE/dx_model) * (model lengths per nm), in kJ/mol.
        forces = out["forces"].to(torch.float64).cpu().numpy() * (self.energy_scale * float(scale))
        if self.indices is None:
            return energy, forces
        everything = np.zeros((self.num_particles, 3))
        everything[self.indices] = forces
        return energy, everything

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        buffer = io.BytesIO()
        torchscript.save(self.module.script if isinstance(self.module, CompiledModule) else self.module, buffer)
        state["module"] = buffer.getvalue()
        return state

    def __setstate__(self, state: dict) -> None:
        state.setdefault("program", None)  # pickled by an mlcalc before the compiled route
        if state.setdefault("foreign_extra", None) is not None:
            load_foreign_runtime(state["foreign_extra"], "a pickled PythonForce")
        device = state["length_scale"].device
        # The Potential's module was saved frozen; a force pickled by an older mlcalc was not.
        script = freeze_parameters(torchscript.load(io.BytesIO(state["module"]), map_location=device))
        module: Union[torch.jit.ScriptModule, CompiledModule] = script
        if state["program"] is not None:
            program, metadata = state["program"]
            module = compile_module(script, program, metadata, state["length_scale"].dtype, metadata.name)
        self.__dict__.update(state, module=module)


def create_python_force(region: MLRegion, device: DeviceLike) -> openmm.Force:
    """An ``openmm.PythonForce`` for ``region``, the model on ``device`` (default CUDA where torch has it).

    OpenMM hands positions to Python on the host whatever its platform; the model may still run on a GPU.

    Raises:
        ImportError: OpenMM is older than 8.5 (no ``PythonForce``).
    """
    if not hasattr(openmm, "PythonForce"):
        raise ImportError(
            f"openmm.PythonForce needs OpenMM >= 8.5; this is OpenMM {openmm.__version__}: upgrade OpenMM "
            '(pip install "mlcalc[openmm]"), or install openmm-torch for the TorchForce '
            '(pip install "mlcalc[openmm-torch]")'
        )
    force = openmm.PythonForce(PotentialComputation(region, resolve_device(device)))
    force.setUsesPeriodicBoundaryConditions(region.periodic)
    return force
