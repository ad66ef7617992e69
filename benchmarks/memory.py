"""Peak resident memory of one cell-list graph build, measured in a fresh process.

``python benchmarks/memory.py N`` prints one JSON line for an N-atom water box (cutoff 5 Å,
float64), in MiB: the resident set just before the build, its peak during the build (Linux: the
peak counter ``VmHWM`` is reset through ``/proc/self/clear_refs`` first, so that importing torch
does not hide the build's peak; elsewhere ``ru_maxrss``), and the size of the returned graph.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

MIB = 1024.0  # ru_maxrss and /proc/self/status are in KiB on Linux


def _status_kib(field: str) -> float:
    with open("/proc/self/status") as f:
        return float(next(line.split()[1] for line in f if line.startswith(field + ":")))


def _reset_peak() -> bool:
    """Reset the peak-RSS counter (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def measure(n_atoms: int) -> dict:
    """Run in this process: build the structure and warm the builder up on a small box first."""
    import torch
    from common import water_box

    from mlcalc.graph import MAX_IMAGES, PAIR_CHUNK, build_graph

    builder = torch.jit.script(build_graph)

    def arguments(atoms):
        return (
            torch.tensor(atoms.positions),
            torch.tensor(atoms.cell.array).unsqueeze(0),
            torch.tensor(atoms.pbc).unsqueeze(0),
            torch.zeros(len(atoms), dtype=torch.long),
            5.0,
            PAIR_CHUNK,
            MAX_IMAGES,
            "cell",
        )

    small = arguments(water_box(600))
    for _ in range(3):
        builder(*small)
    args = arguments(water_box(n_atoms))
    reset = _reset_peak()
    before = _status_kib("VmRSS") / MIB if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / MIB
    edges, shifts = builder(*args)
    peak = _status_kib("VmHWM") / MIB if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / MIB
    output = (edges.numel() * edges.element_size() + shifts.numel() * shifts.element_size()) / 2**20
    return {
        "n_atoms": int(args[0].shape[0]),
        "edges": int(edges.shape[1]),
        "rss_before_mib": before,
        "peak_rss_during_build_mib": peak,
        "build_increase_mib": peak - before,
        "output_mib": output,
        "peak_counter": "VmHWM after clear_refs" if reset else "ru_maxrss",
    }


def in_subprocess(n_atoms: int, threads: int) -> dict:
    """:func:`measure` in a fresh Python process (a clean peak-RSS counter)."""
    script = Path(__file__).resolve()
    result = subprocess.run(
        [sys.executable, str(script), str(n_atoms), str(threads)],
        capture_output=True,
        text=True,
        check=True,
        cwd=script.parent,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    import torch

    torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else torch.get_num_threads())
    print(json.dumps(measure(int(sys.argv[1]))))
