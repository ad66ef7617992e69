"""mlcalc: run TorchScript machine-learned interatomic potentials in ASE and OpenMM.

>>> import mlcalc
>>> mlcalc.export(mlcalc.models.LennardJones(sigma=3.405, epsilon=0.0104, cutoff=8.5), "argon.pt")
>>> calc = mlcalc.MLCalculator("argon.pt")

The names below load on first use (PEP 562), so that ``import mlcalc`` and ``mlcalc --help`` do not
import torch.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import TYPE_CHECKING

from mlcalc._version import __version__

if TYPE_CHECKING:
    from mlcalc import models
    from mlcalc.allocator import keep_freed_memory
    from mlcalc.calculator import MLCalculator
    from mlcalc.contract import CONTRACT_VERSION, Metadata
    from mlcalc.errors import (
        CompileError,
        ContractError,
        DeviceError,
        ExtensionError,
        InvalidStructureError,
        MLCalcError,
        PluginError,
        UnitError,
        UnsupportedElementError,
    )
    from mlcalc.export import export
    from mlcalc.neighbors import neighbor_list
    from mlcalc.potential import Potential, load, read_metadata

#: Public name -> the module that defines it.
_LAZY = {
    "CONTRACT_VERSION": "mlcalc.contract",
    "CompileError": "mlcalc.errors",
    "ContractError": "mlcalc.errors",
    "DeviceError": "mlcalc.errors",
    "ExtensionError": "mlcalc.errors",
    "InvalidStructureError": "mlcalc.errors",
    "MLCalcError": "mlcalc.errors",
    "MLCalculator": "mlcalc.calculator",
    "Metadata": "mlcalc.contract",
    "PluginError": "mlcalc.errors",
    "Potential": "mlcalc.potential",
    "UnitError": "mlcalc.errors",
    "UnsupportedElementError": "mlcalc.errors",
    "export": "mlcalc.export",
    "keep_freed_memory": "mlcalc.allocator",
    "load": "mlcalc.potential",
    "neighbor_list": "mlcalc.neighbors",
    "read_metadata": "mlcalc.potential",
}

__all__ = [
    "CONTRACT_VERSION",
    "CompileError",
    "ContractError",
    "DeviceError",
    "ExtensionError",
    "InvalidStructureError",
    "MLCalcError",
    "MLCalculator",
    "Metadata",
    "PluginError",
    "Potential",
    "UnitError",
    "UnsupportedElementError",
    "__version__",
    "export",
    "keep_freed_memory",
    "load",
    "models",
    "neighbor_list",
    "read_metadata",
]


def __getattr__(name: str) -> object:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    elif not name.startswith("__") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        value = importlib.import_module(f"{__name__}.{name}")  # a submodule: mlcalc.models, mlcalc.units, ...
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """Keeps ``mlcalc.export`` the function: importing the submodule of that name (``mlcalc.export``,
    e.g. by ``from mlcalc.export import export`` elsewhere) would otherwise bind the module over it."""

    def __setattr__(self, name: str, value: object) -> None:
        if not (name in _LAZY and isinstance(value, types.ModuleType)):
            super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
