"""mlcalc.keep_freed_memory: large tensors come from malloc's heap, and stay there once freed.

Each check runs in a fresh process (malloc's settings are the process's own) and reads glibc's own
account (``mallinfo2``: bytes mapped apart and bytes in use in the heap, each less its value before;
the heap's size) while a 64 MB tensor is alive and after it is freed: with glibc's defaults such
a block (larger than glibc's largest mmap threshold, 32 MB) is a separate mapping, unmapped when freed,
so the next one is faulted in afresh page by page. (Counting the page faults themselves is not reliable
on this project's virtual machines, whose kernel reclaims idle pages of a process in the background;
``python benchmarks/allocator.py`` measures the time.)
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

import mlcalc.cli
from mlcalc.allocator import ENVIRONMENT_VARIABLE

glibc = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's"
)

BLOCK = 64 * 2**20
PROBE = """
import ctypes, json, sys
import torch
import mlcalc


class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
applied = mlcalc.keep_freed_memory() if sys.argv[1] == "keep" else None
before = libc.mallinfo2()
block = torch.empty(8 * 2**20, dtype=torch.float64)
block.fill_(1.0)
alive = libc.mallinfo2()
del block
freed = libc.mallinfo2()
print(json.dumps({"applied": applied, "mapped": alive.hblkhd - before.hblkhd,
                  "heap_in_use": alive.uordblks - before.uordblks, "heap_alive": alive.arena,
                  "heap_freed": freed.arena}))
"""


def probe(variant: str, **environment: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **environment}
    out = subprocess.run([sys.executable, "-c", PROBE, variant], check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


@glibc
def test_large_blocks_come_from_the_heap_and_stay_there():
    default = probe("default")
    kept = probe("keep", **{ENVIRONMENT_VARIABLE: "1"})
    assert kept["applied"] is True
    # glibc's defaults: the 64 MB block is a mapping of its own (unmapped when freed)
    assert default["mapped"] >= BLOCK and default["heap_in_use"] < BLOCK // 2
    # kept: the heap holds the block, and gives none of its memory back once the tensor is freed
    assert kept["mapped"] < BLOCK // 2 and kept["heap_in_use"] >= BLOCK
    assert kept["heap_freed"] >= kept["heap_alive"]


@glibc
def test_switched_off_by_the_environment():
    off = probe("keep", **{ENVIRONMENT_VARIABLE: "0"})
    assert off["applied"] is False and off["mapped"] >= BLOCK


def test_the_command_line_applies_it(monkeypatch, capsys):
    """mlcalc's own process keeps freed memory (recorded here, not applied to the test process)."""
    calls = []
    monkeypatch.setattr(mlcalc.cli, "keep_freed_memory", lambda: calls.append(True) or True)
    assert mlcalc.cli.main(["info", "demo"]) == 0
    assert calls == [True] and "demo" in capsys.readouterr().out
