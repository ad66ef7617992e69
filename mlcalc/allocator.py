"""Freed memory kept for reuse: large tensors without fresh pages at every call.

glibc's malloc serves blocks larger than its mmap threshold (at most 32 MB) with fresh pages from the
kernel and returns them when freed, and gives the top of its heap back once more than the trim threshold
is free. A model on a box of a thousand atoms allocates and frees such blocks at every call (padded
neighbour features, edge tensors and their gradients), so every call pays the kernel to map and zero
them again: one page fault per 4 kB. :func:`keep_freed_memory` turns both off (``mallopt``:
``M_MMAP_MAX = 0``, ``M_TRIM_THRESHOLD`` 2 GB), as ``MALLOC_MMAP_MAX_=0`` and ``MALLOC_TRIM_THRESHOLD_``
in the environment would before start-up: freed blocks go back to the heap and the next call reuses
them. The process then keeps its peak memory until it exits, as PyTorch's CUDA caching allocator does on
a GPU.

Measured with ``python benchmarks/allocator.py`` (the bundled demo on water boxes, forces from the ASE
calculator, one thread; results/allocator.json): see docs/performance.md.

The ``mlcalc`` command line and mlcalc's Dask workers apply it to their own processes; a script calls
:func:`keep_freed_memory` itself. ``MLCALC_KEEP_FREED_MEMORY=0`` turns it off everywhere.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

#: Set to 0 to leave malloc's settings alone (the command line and the Dask workers then do too).
ENVIRONMENT_VARIABLE = "MLCALC_KEEP_FREED_MEMORY"
#: glibc's ``mallopt`` parameters (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
#: Free memory at the top of the heap beyond which glibc gives it back to the kernel, bytes (the largest
#: value ``mallopt``'s int takes, rounded down to whole MB: 2 GB).
TRIM_THRESHOLD = 2047 * 2**20


def keep_freed_memory() -> bool:
    """Keep freed memory in this process for reuse (glibc only; see the module's docstring).

    Returns:
        True when applied; False on another C library (macOS, musl, Windows: nothing changes) or when
        ``$MLCALC_KEEP_FREED_MEMORY`` is 0.

    Raises:
        OSError: glibc refused a setting (``mallopt`` returned 0).
    """
    if os.environ.get(ENVIRONMENT_VARIABLE, "").strip() == "0":
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    for name, parameter, value in (
        ("M_MMAP_MAX", M_MMAP_MAX, 0),
        ("M_TRIM_THRESHOLD", M_TRIM_THRESHOLD, TRIM_THRESHOLD),
    ):
        if libc.mallopt(ctypes.c_int(parameter), ctypes.c_int(value)) != 1:
            raise OSError(f"glibc's mallopt refused {name}={value}: set {ENVIRONMENT_VARIABLE}=0 to leave malloc alone")
    return True
