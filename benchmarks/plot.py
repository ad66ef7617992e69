"""Log-log plot of neighbour-list time against system size, every implementation on one plot."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LABELS = {
    "mlcalc_cell_list": "mlcalc cell list (TorchScript, float64)",
    "mlcalc_cell_list_float32": "mlcalc cell list (TorchScript, float32)",
    "mlcalc_brute": "mlcalc brute force O(N²) (TorchScript)",
    "vesin": "vesin 0.6 (C++)",
    "matscipy": "matscipy (C)",
    "ase": "ASE neighbor_list (numpy)",
}


def plot_neighbors(rows: list[dict], path: Path, title: str) -> None:
    """One line per implementation: minimum time (ms) against number of atoms."""
    fig, ax = plt.subplots(figsize=(7, 5))
    for name, label in LABELS.items():
        points = sorted((r["n_atoms"], 1e3 * r["min_s"]) for r in rows if r["implementation"] == name)
        if points:
            ax.plot(*zip(*points), marker="o", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("atoms (water-like box, 0.1 atoms/Å³)")
    ax.set_ylabel("time per full neighbour list (ms)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
