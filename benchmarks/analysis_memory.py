"""Peak memory of ``mlcalc analyze``'s distance histogram against the number of frames.

``python benchmarks/analysis_memory.py`` runs :func:`mlcalc.analysis.structure.distance_histogram` on
the 3,341 protein atoms of MDAnalysisTests' adenylate kinase in water (GRO/XTC, 10 frames), the XTC
chained 1, 4 and 10 times (10, 40 and 100 frames), each in a fresh process, and writes
``results/analysis-memory.json``: the peak resident memory the histogram adds (MiB) for each length.
It must not grow with the frames: one frame's 5.6 million pair distances (44 MiB in float64) are
alive at a time. (Before, every frame's distances were kept: 9.3 GB for 98 frames of this protein.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from common import environment
from memory import MIB, _reset_peak, _status_kib

CHAINS = (1, 4, 10)


def measure(chains: int) -> dict:
    """Run in this process: the histogram over the XTC chained ``chains`` times."""
    import MDAnalysis as mda
    from MDAnalysisTests.datafiles import GRO, XTC

    from mlcalc.analysis.structure import distance_histogram

    universe = mda.Universe(GRO, [XTC] * chains)
    protein = universe.select_atoms("protein")
    distance_histogram(universe.select_atoms("protein and name CA"), bins=10)  # warm up the code paths
    if not _reset_peak():
        raise RuntimeError("needs Linux's /proc/self/clear_refs to reset the peak-memory counter")
    before = _status_kib("VmRSS") / MIB
    distance_histogram(protein, bins=200)
    peak = _status_kib("VmHWM") / MIB
    return {
        "frames": len(universe.trajectory),
        "atoms": len(protein),
        "pairs_per_frame": len(protein) * (len(protein) - 1) // 2,
        "rss_before_mib": before,
        "peak_increase_mib": peak - before,
    }


def in_subprocess(chains: int) -> dict:
    script = Path(__file__).resolve()
    result = subprocess.run(
        [sys.executable, str(script), str(chains)], capture_output=True, text=True, check=True, cwd=script.parent
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    rows = [in_subprocess(chains) for chains in CHAINS]
    record = {"environment": environment(), "runs": rows}
    output = Path(__file__).parent / "results" / "analysis-memory.json"
    output.write_text(json.dumps(record, indent=2) + "\n")
    print(f"{'frames':>6} {'peak increase (MiB)':>20}")
    for row in rows:
        print(f"{row['frames']:>6} {row['peak_increase_mib']:>20.1f}")
    print(f"wrote {output}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        print(json.dumps(measure(int(sys.argv[1]))))
    else:
        main()
