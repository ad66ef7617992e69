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
import warnings
from typing import IO, Any, Iterator, Optional, Union

import torch

#: The message torch >= 2.11 gives for torch.jit.script, .save, .load (and .trace, .interface), whatever its category.
DEPRECATION_MESSAGE = r"`torch\.jit\.\w+` is deprecated"


@contextlib.contextmanager
def quiet_deprecation() -> Iterator[None]:
    """Ignore torch's TorchScript deprecation notice inside the ``with`` block only."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=DEPRECATION_MESSAGE)
        yield


def script(obj: Any) -> Any:
    """``torch.jit.script(obj)``."""
    with quiet_deprecation():
        return torch.jit.script(obj)


def save(module: torch.jit.ScriptModule, f: Union[str, IO[bytes]], extra_files: Optional[dict] = None) -> None:
    """``torch.jit.save(module, f, _extra_files=extra_files)``."""
    with quiet_deprecation():
        torch.jit.save(module, f, _extra_files=extra_files or {})


def load(f: Union[str, IO[bytes]], map_location: Union[str, torch.device, None] = None) -> torch.jit.ScriptModule:
    """``torch.jit.load(f, map_location=map_location)``."""
    with quiet_deprecation():
        return torch.jit.load(f, map_location=map_location)
