"""The OpenMM platform a run uses, with thread counts chosen on purpose (see :mod:`mlcalc.threads`)."""

from __future__ import annotations

from typing import Optional

import openmm

from mlcalc.errors import DeviceError
from mlcalc.threads import openmm_platform_properties


def platform_names() -> list[str]:
    """The platforms this OpenMM can use, fastest first."""
    platforms = [openmm.Platform.getPlatform(i) for i in range(openmm.Platform.getNumPlatforms())]
    return [p.getName() for p in sorted(platforms, key=lambda p: -p.getSpeed())]


def choose_platform(name: Optional[str] = None, threads: Optional[int] = None) -> tuple[openmm.Platform, dict]:
    """The platform ``name`` (default: the fastest there is) and its properties.

    On the CPU platform, ``Threads`` follows :func:`mlcalc.threads.resolve_threads` instead of
    OpenMM's default (every core), which fights torch's threads for the same cores.

    Raises:
        DeviceError: no platform of that name here (a CUDA platform without a GPU or driver, say).
    """
    available = platform_names()
    if name is None:
        name = available[0]
    if name not in available:
        raise DeviceError(
            f"OpenMM has no {name} platform here (available: {', '.join(available)}); "
            "CUDA and OpenCL need a GPU with its driver and OpenMM's plugin for it: choose one of the available ones"
        )
    return openmm.Platform.getPlatformByName(name), openmm_platform_properties(name, threads)
