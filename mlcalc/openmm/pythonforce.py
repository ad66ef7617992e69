"""The potential as an ``openmm.PythonForce`` (OpenMM >= 8.5): for machines without openmm-torch.

OpenMM calls a Python function with the ``State`` (positions in nm, box in nm) and expects the
energy in kJ/mol and the forces in kJ/mol/nm. :class:`PotentialComputation` converts units and
calls the potential file's own ``compute`` (graph builder, model, one backward pass), so the numbers
equal those of the ``TorchForce`` from :func:`mlcalc.openmm.create_force`: the same positions in the
same dtype reach the same module. Choose it with ``create_force(..., implementation="python")``.

A PythonForce costs a round trip through Python on every evaluation (and a device copy on CUDA);
prefer the TorchForce where openmm-torch is installed.
"""

from __future__ import annotations

import io
from typing import Optional, Sequence, Union

import numpy as np
import openmm
import torch
from openmm import app, unit

from mlcalc.openmm.torchforce import PotentialLike, ml_region
from mlcalc.units import ANGSTROM_PER_NM, EV_PER_KJ_PER_MOL


class PotentialComputation:
    """``(state) -> (energy kJ/mol, forces [N, 3] kJ/mol/nm)`` for ``openmm.PythonForce``.

    Picklable (OpenMM pickles the function to serialise and copy the force): the TorchScript module
    travels as the bytes of ``torch.jit.save``.

    Args:
        module: the potential file's TorchScript module (model units).
        atomic_numbers: of the ML atoms.
        indices: which of the ``num_particles`` particles are the ML atoms, or ``None`` for all.
        num_particles: particles in the System.
        periodic: pass the box to the model.
        length_scale: model length units per nm.
        energy_scale: kJ/mol per model energy unit.
        dtype: the model's dtype.
        device: where the model runs.
    """

    def __init__(
        self,
        module: torch.jit.ScriptModule,
        atomic_numbers: Sequence[int],
        indices: Optional[Sequence[int]],
        num_particles: int,
        periodic: bool,
        length_scale: float,
        energy_scale: float,
        dtype: torch.dtype,
        device: torch.device,
    ):
        self.module = module
        self.atomic_numbers = torch.tensor(list(atomic_numbers), dtype=torch.long, device=device)
        self.indices = None if indices is None else np.asarray(indices, dtype=np.int64)
        self.num_particles = int(num_particles)
        self.periodic = bool(periodic)
        # The TorchForce multiplies positions (cast to the model dtype) by a length scale of the model
        # dtype; do the same so that float32 models round identically.
        self.length_scale = torch.tensor(length_scale, dtype=dtype, device=device)
        self.energy_scale = float(energy_scale)
        self.pbc = torch.full((3,), self.periodic, dtype=torch.bool, device=device)

    def __call__(self, state: openmm.State) -> tuple[float, np.ndarray]:
        positions = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        if self.indices is not None:
            positions = positions[self.indices]
        scale = self.length_scale
        x = torch.as_tensor(np.ascontiguousarray(positions), device=scale.device).to(scale.dtype) * scale
        if self.periodic:
            box = state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer)
            cell = torch.as_tensor(np.asarray(box), device=scale.device).to(scale.dtype) * scale
        else:
            cell = torch.zeros((3, 3), dtype=scale.dtype, device=scale.device)
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
        torch.jit.save(self.module, buffer)
        state["module"] = buffer.getvalue()
        return state

    def __setstate__(self, state: dict) -> None:
        module = torch.jit.load(io.BytesIO(state["module"]), map_location=state["length_scale"].device)
        self.__dict__.update(state, module=module)


def create_python_force(
    potential: PotentialLike,
    topology_or_atomic_numbers: Union[app.Topology, Sequence[int]],
    atoms: Optional[Sequence[int]] = None,
    *,
    periodic: Optional[bool] = None,
    dtype: Union[str, torch.dtype, None] = None,
    device: Union[str, torch.device, None] = "cpu",
) -> openmm.PythonForce:
    """An ``openmm.PythonForce`` evaluating ``potential`` on all particles or on the subset ``atoms``.

    Arguments as :func:`mlcalc.openmm.create_force`; ``device`` is where the model runs (OpenMM hands
    positions to Python on the host whatever its platform).
    """
    if not hasattr(openmm, "PythonForce"):
        raise ImportError(f"openmm.PythonForce needs OpenMM >= 8.5; this is OpenMM {openmm.__version__}")
    potential, selected, indices, periodic, n_particles = ml_region(
        potential, topology_or_atomic_numbers, atoms, periodic, dtype
    )
    device = torch.device(device if device is not None else "cpu")
    computation = PotentialComputation(
        potential.module.to(device),
        selected,
        indices,
        num_particles=n_particles,
        periodic=bool(periodic),
        length_scale=ANGSTROM_PER_NM / potential.length_unit_in_angstrom,
        energy_scale=potential.energy_unit_in_ev / EV_PER_KJ_PER_MOL,
        dtype=potential.dtype,
        device=device,
    )
    force = openmm.PythonForce(computation)
    force.setUsesPeriodicBoundaryConditions(bool(periodic))
    force.setName(f"mlcalc:{potential.name}")
    return force
