"""SevenNet-0 imported from its LAMMPS deployment against SevenNet's own ASE calculator.

``python benchmarks/sevennet.py`` (needs ``pip install sevenn``; ~2 minutes) deploys SevenNet-0 with
``sevenn get_model 7net-0``, imports it (``mlcalc.foreign``) and times energy + forces + stress of both
calculators, interleaved (a, b, a, b, ...), after moving every atom before each call, one torch thread,
on bulk silicon (64 and 216 atoms) and a methanol molecule in a box. It checks that the two agree to
float32 round-off in the same run and writes ``results/sevennet.json`` and a table (min of the
process CPU times; the ratio is mlcalc / SevenNet).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from ase.build import bulk, molecule
from common import environment, paired_times


def cases() -> dict[str, Atoms]:
    methanol = molecule("CH3OH")
    methanol.center(vacuum=6.0)
    methanol.pbc = True
    return {
        "Si 64": bulk("Si", "diamond", a=5.43, cubic=True) * (2, 2, 2),
        "Si 216": bulk("Si", "diamond", a=5.43, cubic=True) * (3, 3, 3),
        "methanol in box": methanol,
    }


def _moving_call(atoms: Atoms, start: np.ndarray, rng: np.random.Generator):
    """Energy, forces and stress of ``atoms`` after moving every atom (so that nothing is cached)."""

    def run() -> None:
        atoms.positions = start + rng.normal(0.0, 0.01, start.shape)
        atoms.get_stress()
        atoms.get_forces()

    return run


def main() -> None:
    warnings.simplefilter("ignore", FutureWarning)  # torch.jit deprecation notices from sevenn's deploy
    torch.set_num_threads(1)
    from sevenn.calculator import SevenNetCalculator

    import mlcalc
    import mlcalc.foreign

    directory = Path(tempfile.mkdtemp())
    subprocess.run(
        [str(Path(sys.executable).with_name("sevenn")), "get_model", "7net-0", "-o", "deployed"],
        cwd=directory,
        check=True,
        capture_output=True,
    )
    mlcalc.foreign.import_torchscript(directory / "deployed.pt", directory / "sevennet-0.pt")
    calculators = {
        "sevennet": SevenNetCalculator("7net-0", device="cpu"),
        "mlcalc": mlcalc.MLCalculator(directory / "sevennet-0.pt", device="cpu"),
    }
    rows = []
    for name, atoms in cases().items():
        rng = np.random.default_rng(0)
        copies = {key: atoms.copy() for key in calculators}
        for key, copy in copies.items():
            copy.calc = calculators[key]

        calls = {key: _moving_call(copy, atoms.positions, rng) for key, copy in copies.items()}
        timings = paired_times(calls, repeats=15, budget_s=40.0)
        same = atoms.copy()
        same.rattle(0.02, seed=1)
        results = {}
        for key, calc in calculators.items():
            same.calc = calc
            results[key] = (same.get_potential_energy(), same.get_forces().copy())
        rows.append(
            {
                "case": name,
                "atoms": len(atoms),
                "sevennet_cpu_min_s": timings["sevennet"]["cpu_min_s"],
                "mlcalc_cpu_min_s": timings["mlcalc"]["cpu_min_s"],
                "ratio": timings["mlcalc"]["cpu_min_s"] / timings["sevennet"]["cpu_min_s"],
                "energy_difference_eV": abs(results["mlcalc"][0] - results["sevennet"][0]),
                "max_force_difference_eV_per_A": float(np.abs(results["mlcalc"][1] - results["sevennet"][1]).max()),
                "timings": timings,
            }
        )
    output = Path(__file__).parent / "results" / "sevennet.json"
    output.write_text(json.dumps({"environment": environment(), "rows": rows}, indent=2) + "\n")
    print(f"{'case':<16} {'atoms':>5} {'SevenNet ms':>12} {'mlcalc ms':>10} {'ratio':>6} {'|ΔE| eV':>9} {'max|ΔF|':>9}")
    for row in rows:
        print(
            f"{row['case']:<16} {row['atoms']:>5} {row['sevennet_cpu_min_s'] * 1e3:>12.1f} "
            f"{row['mlcalc_cpu_min_s'] * 1e3:>10.1f} {row['ratio']:>6.2f} {row['energy_difference_eV']:>9.1e} "
            f"{row['max_force_difference_eV_per_A']:>9.1e}"
        )
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
