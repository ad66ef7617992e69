"""``create_force``: the potential as an OpenMM force, the TorchForce where openmm-torch works, else the PythonForce.

Both implementations take the same inputs and give the same numbers (tests check them against each
other and against :class:`mlcalc.MLCalculator` to 1e-10 relative in float64):

- ``"torch"``: openmm-torch's ``TorchForce``, a C++ force: no Python in the MD loop, CUDA graphs.
  Needs the openmm-torch stack (``pip install "mlcalc[openmm-torch]"``).
- ``"python"``: ``openmm.PythonForce`` (OpenMM >= 8.5) with any torch, as openmm-ml >= 1.6 runs its
  own models.

The force's name says which one was built (``mlcalc:NAME:TorchForce``); :func:`implementation_of`
reads it back from any force of a System, also after serialisation.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import openmm
import torch

from mlcalc.openmm.pythonforce import create_python_force
from mlcalc.openmm.region import PotentialLike, TopologyOrNumbers, ml_region
from mlcalc.openmm.torchforce import create_torch_force, openmmtorch_error
from mlcalc.potential import DeviceLike

#: ``implementation=`` values, and the OpenMM class each builds.
IMPLEMENTATIONS = {"torch": "TorchForce", "python": "PythonForce"}


def default_implementation() -> str:
    """``"torch"`` where openmm-torch can be imported, else ``"python"``."""
    return "torch" if openmmtorch_error() is None else "python"


def resolve_implementation(implementation: Optional[str]) -> str:
    """``None`` -> :func:`default_implementation`; anything but ``"torch"``/``"python"`` raises ValueError."""
    if implementation is None:
        return default_implementation()
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(
            f"implementation must be 'torch' (openmm-torch TorchForce), 'python' (openmm.PythonForce) or None "
            f"(the TorchForce where openmm-torch is installed, else the PythonForce), got {implementation!r}"
        )
    return implementation


def implementation_of(force: openmm.Force) -> Optional[str]:
    """``"torch"`` or ``"python"`` for a force made by :func:`create_force` (read from its name), else ``None``."""
    prefix, _, kind = force.getName().rpartition(":")
    if not prefix.startswith("mlcalc:"):
        return None
    return {cls: name for name, cls in IMPLEMENTATIONS.items()}.get(kind)


def force_class_of(force: openmm.Force) -> str:
    """``"TorchForce"`` or ``"PythonForce"``: the OpenMM class of a force made by :func:`create_force`."""
    implementation = implementation_of(force)
    if implementation is None:
        raise ValueError(f"the force {force.getName()!r} was not made by mlcalc.openmm.create_force")
    return IMPLEMENTATIONS[implementation]


def create_force(
    potential: PotentialLike,
    topology_or_atomic_numbers: TopologyOrNumbers,
    atoms: Optional[Sequence[int]] = None,
    *,
    periodic: Optional[bool] = None,
    dtype: Union[str, torch.dtype, None] = None,
    implementation: Optional[str] = None,
    cuda_graphs: bool = False,
    device: DeviceLike = None,
) -> openmm.Force:
    """An OpenMM force evaluating ``potential`` on all particles or on the subset ``atoms``.

    Args:
        potential: a :class:`mlcalc.Potential` or the path of a potential file.
        topology_or_atomic_numbers: an ``openmm.app.Topology`` or the atomic number of every particle.
        atoms: indices of the ML atoms (ML/MM); ``None`` for all.
        periodic: use the System's periodic box (minimum image). Default: whether the Topology has a
            box; required with a list of atomic numbers.
        dtype: the model's dtype inside OpenMM (default: the file's).
        implementation: ``"torch"``, ``"python"`` or ``None`` (the TorchForce where openmm-torch can be
            imported, else the PythonForce; the PythonForce for a potential loaded with ``compile=True``);
            see :mod:`mlcalc.openmm.forces`.
        cuda_graphs: the TorchForce's ``useCUDAGraphs`` property (CUDA platform only).
        device: where the PythonForce runs the model (default CUDA where torch has it); a TorchForce
            runs on the device of the OpenMM platform.

    Raises:
        ImportError: ``implementation="torch"`` without openmm-torch, or the PythonForce with OpenMM < 8.5;
            the message names what to install.
    """
    region = ml_region(potential, topology_or_atomic_numbers, atoms, periodic, dtype)
    compiled = region.potential.compiled
    implementation = "python" if implementation is None and compiled else resolve_implementation(implementation)
    if implementation == "torch" and compiled:
        raise ValueError(
            "the TorchForce runs the file's TorchScript in C++ and cannot use a compiled potential (compile=True): "
            "use implementation='python' (or None), or load the potential without compile=True"
        )
    if implementation == "torch":
        if device is not None:
            raise ValueError("device= applies to the PythonForce; a TorchForce runs on the OpenMM platform's device")
        force = create_torch_force(region, cuda_graphs)
    elif cuda_graphs:
        raise ValueError(
            "cuda_graphs=True needs the TorchForce (openmm-torch), but this builds the PythonForce; "
            'install "mlcalc[openmm-torch]" or drop cuda_graphs'
        )
    else:
        force = create_python_force(region, device)
    force.setName(f"{region.force_name}:{IMPLEMENTATIONS[implementation]}")
    return force
