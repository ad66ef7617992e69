"""mlcalc's TorchScript calls, without torch's deprecation notice at every one of them.

PyTorch marks ``torch.jit.script``, ``save`` and ``load`` deprecated from 2.11 on ("Please switch to
torch.export") and warns at every call: a DeprecationWarning in 2.11-2.13, a FutureWarning (shown to
every user by default) from 2.14. mlcalc uses TorchScript on purpose: a potential file is a
TorchScript archive, the only format that openmm-torch's C++ ``TorchForce`` and LAMMPS-style hosts
load without Python. So these wrappers ignore exactly that notice, for the duration of mlcalc's own
call; a user's own ``torch.jit`` calls still warn, and every other warning passes through (torch's
"not supported in Python 3.14+" notice among them).

``warnings.catch_warnings`` swaps the process's filter list while it is active: another thread that
warns during one of these calls sees the same filters plus this one ignore rule.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from typing import IO, Any, ContextManager, Iterator, Optional, Union

import torch

from mlcalc.errors import ExtensionError

#: TorchScript namespaces of extension libraries that potential files are known to use, and the pip
#: package whose shared library registers each.
EXTENSION_PACKAGES = {
    "metatomic": "metatomic-torch",
    "metatensor": "metatensor-torch",
    "featomic": "featomic-torch",
    "torch_scatter": "torch-scatter",
    "torch_sparse": "torch-sparse",
    "torch_cluster": "torch-cluster",
}
#: How TorchScript names an operator or a class that no loaded library registers, when it loads a file.
UNKNOWN = (
    re.compile(r"Unknown builtin op: (?P<namespace>\w+)::(?P<name>\w+)"),
    re.compile(r"Unknown type name '__torch__\.torch\.classes\.(?P<namespace>\w+)\.(?P<name>\w+)'"),
)
#: The message torch >= 2.11 gives for torch.jit.script, .save, .load (and .trace, .interface), whatever its category.
DEPRECATION_MESSAGE = r"`torch\.jit\.\w+` is deprecated"


@contextlib.contextmanager
def quiet_deprecation() -> Iterator[None]:
    """Ignore torch's TorchScript deprecation notice inside the ``with`` block only."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=DEPRECATION_MESSAGE)
        yield


def unoptimized() -> ContextManager[None]:
    """Run the TorchScript calls inside the ``with`` block on the graph executor's plain plan (this thread).

    TorchScript's profiling executor instruments each method's first calls, then builds an optimised plan
    with symbolic derivatives. For a model differentiated for its forces that plan is no faster in
    steady state (MACE: 3-5 % slower, its backward allocates and copies more) and its first calls cost
    5-50x a later one. The plain plan runs the same operators under eager autograd. A method's plan is
    chosen at its first call: a method first called without this block keeps the optimised one.
    """
    return torch.jit.optimized_execution(False)


def script(obj: Any) -> Any:
    """``torch.jit.script(obj)``."""
    with quiet_deprecation():
        return torch.jit.script(obj)


def save(module: torch.jit.ScriptModule, f: Union[str, IO[bytes]], extra_files: Optional[dict] = None) -> None:
    """``torch.jit.save(module, f, _extra_files=extra_files)``."""
    with quiet_deprecation():
        torch.jit.save(module, f, _extra_files=extra_files or {})


def missing_extension(message: str) -> Optional[str]:
    """What to do about a TorchScript load error ``message`` that names an operator or class no loaded
    library registers (``Unknown builtin op: ns::name``, ``Unknown type name
    '__torch__.torch.classes.ns.Name'``); None for any other error."""
    for pattern in UNKNOWN:
        found = pattern.search(message)
        if found is None:
            continue
        namespace, name = found.group("namespace"), found.group("name")
        package = EXTENSION_PACKAGES.get(namespace)
        where = (
            f"`pip install {package}` (mlcalc loads metatomic's libraries itself; for the others, import the "
            "package before loading)"
            if package
            else f"install the package that provides the '{namespace}' operators and import it (or "
            "torch.ops.load_library its shared library) before loading"
        )
        return (
            f"it calls '{namespace}::{name}', which no library loaded in this process registers with torch: the "
            f"file needs the C++ extension that defines the '{namespace}' namespace; {where}"
        )
    return None


def load(f: Union[str, IO[bytes]], map_location: Union[str, torch.device, None] = None) -> torch.jit.ScriptModule:
    """``torch.jit.load(f, map_location=map_location)``.

    Raises:
        ExtensionError: the file calls operators or classes of an extension library not loaded here.
    """
    with quiet_deprecation():
        try:
            return torch.jit.load(f, map_location=map_location)
        except RuntimeError as exc:
            advice = missing_extension(str(exc))
            if advice is None:
                raise
            name = f if isinstance(f, str) else "this TorchScript file"
            raise ExtensionError(f"{name} cannot be loaded: {advice}") from exc
