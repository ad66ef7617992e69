"""The potential as an openmm-torch ``TorchForce`` (a C++ force: no Python in the MD loop).

OpenMM passes a TorchForce all N positions in nm (float64 and unwrapped on the Reference and CPU
platforms, possibly float32 and wrapped per molecule on CUDA) and, when periodic, the box vectors
in nm; it expects the energy in kJ/mol. :class:`TorchForceModule` converts units, selects the ML
atoms and calls the file's own graph builder, so the numbers equal :class:`mlcalc.MLCalculator`'s.
It returns the forces too (``setOutputsForces``), from the file's ``compute`` (a gradient with
respect to the positions only): left to itself, openmm-torch's Reference and CPU kernel calls
``energy.backward()``, which also accumulates a gradient for every model parameter at every step.

openmm-torch is optional (``pip install "mlcalc[openmm-torch]"``): it is imported the first time a
TorchForce is asked for, never when the PythonForce is used.
"""

import functools
import logging
import re
from typing import Any, Optional, Sequence, Tuple

import openmm
import torch
from torch import Tensor

from mlcalc import torchscript
from mlcalc.openmm.region import DEFAULT_BOX_REFUSAL, OPENMM_DEFAULT_BOX_NM, MLRegion

#: How to get the TorchForce where openmm-torch is missing or does not load.
INSTALL_HINT = (
    'install the TorchForce stack with pip install "mlcalc[openmm-torch]" (torch 2.9, OpenMM 8.4-8.5, '
    'openmmtorch 1.5), or pass implementation="python" to evaluate the potential through openmm.PythonForce'
)


@functools.lru_cache(maxsize=1)
def _import_openmmtorch() -> Tuple[Optional[Any], Optional[str]]:
    """``(openmmtorch, None)``, or ``(None, why it cannot be imported)``.

    Hides the root-logger warning of the deprecated ``simtk.openmm`` shim that openmmtorch 1.5
    imports (it concerns openmmtorch's code, not our users'), and loads openmm-torch's kernel
    plugins again where ``import openmm`` ran before torch had loaded its CUDA libraries.
    """

    def not_simtk_notice(record: logging.LogRecord) -> bool:
        return "importing 'simtk.openmm' is deprecated" not in record.getMessage()

    root = logging.getLogger()
    root.addFilter(not_simtk_notice)
    try:
        import openmmtorch
    except ImportError as exc:  # not installed, or its CUDA-12 torch libraries do not load with this torch
        return None, str(exc)
    finally:
        root.removeFilter(not_simtk_notice)
    _reload_torch_kernels()
    return openmmtorch, None


def openmmtorch_error() -> Optional[str]:
    """Why openmm-torch cannot be used here, or ``None`` where it can."""
    return _import_openmmtorch()[1]


def _reload_torch_kernels() -> None:
    """Load openmm-torch's kernel plugins that failed because ``openmm`` was imported before ``torch``.

    ``import openmm`` loads every plugin at once; openmm-torch's (PyPI 1.5) link ``libnvrtc.so.12``,
    which is not on the loader's path until torch has loaded its CUDA libraries. A script that
    imports openmm first would then fail at Context creation with "No Platform supports all the
    requested kernels". torch is loaded by now, so load the failed plugins again. Plugins that
    still fail (OpenCL without libOpenCL, say) belong to platforms that cannot run here anyway.
    """
    for failure in openmm.Platform.getPluginLoadFailures():
        match = re.match(r"Error loading library (\S*libOpenMMTorch\w*\.so\w*): ", failure)
        if match:
            try:
                openmm.Platform.loadPluginLibrary(match.group(1))
            except Exception:  # still failing: see the docstring
                pass


class TorchForceModule(torch.nn.Module):
    """``forward(positions [N, 3] nm, boxvectors [3, 3] nm = None) -> (energy, forces)``: the energy in
    kJ/mol and the forces on all N particles in kJ/mol/nm (zero on particles outside the ML atoms),
    in the dtype of ``positions``; for a TorchForce with ``setOutputsForces(True)``.

    Args:
        potential: the potential file's TorchScript module (model units).
        atomic_numbers: of the ML atoms.
        indices: which of the N particles are the ML atoms, or ``None`` for all of them.
        length_scale: model length units per nm.
        energy_scale: kJ/mol per model energy unit.
        dtype: the model's dtype.
        check_default_box: refuse OpenMM's default 2 nm box (see :class:`mlcalc.openmm.region.MLRegion`).
    """

    atomic_numbers: Tensor
    indices: Tensor
    length_scale: Tensor
    no_cell: Tensor
    no_pbc: Tensor
    all_pbc: Tensor
    default_box: Tensor

    def __init__(
        self,
        potential: torch.nn.Module,
        atomic_numbers: Sequence[int],
        indices: Optional[Sequence[int]],
        length_scale: float,
        energy_scale: float,
        dtype: torch.dtype,
        check_default_box: bool = False,
    ):
        super().__init__()
        self.potential: Any = potential  # a ScriptModule: its contract methods are found at run time
        self.select = indices is not None
        self.register_buffer("atomic_numbers", torch.tensor(list(atomic_numbers), dtype=torch.long))
        self.register_buffer("indices", torch.tensor(list(indices) if indices is not None else [], dtype=torch.long))
        # Buffers, so that module.to(device) moves them; made once, not at every step.
        self.register_buffer("length_scale", torch.tensor(length_scale, dtype=dtype))
        self.register_buffer("no_cell", torch.zeros((3, 3), dtype=dtype))
        self.register_buffer("no_pbc", torch.zeros(3, dtype=torch.bool))
        self.register_buffer("all_pbc", torch.ones(3, dtype=torch.bool))
        self.register_buffer("default_box", OPENMM_DEFAULT_BOX_NM * torch.eye(3, dtype=dtype))
        self.check_default_box = check_default_box
        self.default_box_refusal = DEFAULT_BOX_REFUSAL  # an attribute: TorchScript reads no global strings
        self.energy_scale = float(energy_scale)
        self.force_scale = float(energy_scale) * float(length_scale)  # kJ/mol/nm per model force unit

    def forward(self, positions: Tensor, boxvectors: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        ml_positions = positions.index_select(0, self.indices) if self.select else positions
        ml_positions = ml_positions.detach()
        if self.length_scale.dtype != torch.float64 and ml_positions.shape[0] > 0:
            # Relative to the first ML atom before the cast: float32 keeps the digits that matter.
            ml_positions = ml_positions - ml_positions[0]
        ml_positions = ml_positions.to(self.length_scale.dtype) * self.length_scale
        if boxvectors is None:
            cell, pbc = self.no_cell, self.no_pbc
        else:
            box = boxvectors.detach().to(ml_positions.dtype)
            if self.check_default_box and bool(torch.equal(box, self.default_box)):
                raise RuntimeError(self.default_box_refusal)
            cell, pbc = box * self.length_scale, self.all_pbc
        out = self.potential.compute(self.atomic_numbers, ml_positions, cell, pbc, None, True, False)
        energy = out["energy"].sum() * self.energy_scale
        ml_forces = (out["forces"] * self.force_scale).to(positions.dtype)
        if not self.select:
            return energy, ml_forces
        forces = torch.zeros(positions.shape, dtype=positions.dtype, device=positions.device)
        return energy, forces.index_copy(0, self.indices, ml_forces)


def create_torch_force(region: MLRegion, cuda_graphs: bool) -> openmm.Force:
    """An openmm-torch ``TorchForce`` for ``region``; ``cuda_graphs`` sets ``useCUDAGraphs`` (CUDA only).

    Raises:
        ImportError: openmm-torch cannot be imported here (the message says how to get it).
    """
    openmmtorch, error = _import_openmmtorch()
    if openmmtorch is None:
        raise ImportError(f"the TorchForce needs openmm-torch, which cannot be imported here ({error}): {INSTALL_HINT}")
    potential = region.potential
    module = TorchForceModule(
        potential.script_module,
        region.atomic_numbers,
        region.indices,
        length_scale=region.length_scale,
        energy_scale=region.energy_scale,
        dtype=potential.dtype,
        check_default_box=region.check_default_box,
    )
    force = openmmtorch.TorchForce(torchscript.script(module))
    force.setOutputsForces(True)
    force.setUsesPeriodicBoundaryConditions(region.periodic)
    force.setProperty("useCUDAGraphs", "true" if cuda_graphs else "false")
    return force
