"""PNG plots with matplotlib (Agg backend, no display needed), written atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mlcalc.analysis.secondary import REGIONS
from mlcalc.files import write_atomic


def _save(figure, path: Path) -> None:
    import matplotlib.pyplot as plt

    write_atomic(path, lambda tmp: figure.savefig(tmp, format="png", dpi=120))
    plt.close(figure)


def _figure(*args, **kwargs):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def plot_ramachandran(angles: np.ndarray, labels: list[str], path: Path) -> None:
    """One φ/ψ histogram per residue with the regions of Hedelius's TrIP thesis, Table 4, outlined."""
    figure, axes = _figure(1, len(labels), figsize=(4.2 * len(labels), 4), squeeze=False)
    for k, (axis, label) in enumerate(zip(axes[0], labels)):
        axis.hist2d(angles[:, k, 0], angles[:, k, 1], bins=72, range=[[-180, 180], [-180, 180]], cmin=1, cmap="viridis")
        for name, (phi_low, phi_high, psi_low, psi_high) in REGIONS.items():
            phi_mid = phi_low + ((phi_high - phi_low) % 360) / 2
            psi_mid = psi_low + ((psi_high - psi_low) % 360) / 2
            axis.text((phi_mid + 180) % 360 - 180, (psi_mid + 180) % 360 - 180, name, ha="center", color="grey")
        for value in (-90, 20, 130):
            axis.axvline(value, color="grey", lw=0.5)
        for value in (-110, -90, -40, 50, 120):
            axis.axhline(value, color="grey", lw=0.3, ls=":")
        axis.set(xlim=(-180, 180), ylim=(-180, 180), xlabel="φ (deg)", ylabel="ψ (deg)", title=label)
    figure.tight_layout()
    _save(figure, path)


def plot_overview(result: dict, path: Path) -> None:
    """RMSF per atom, radius of gyration over frames, distance distribution and power spectrum."""
    figure, axes = _figure(2, 2, figsize=(10, 7))
    axes[0, 0].plot(result["rmsf"], ".-")
    axes[0, 0].set(xlabel="atom", ylabel="RMSF (Å)")
    axes[0, 1].plot(result["rg"])
    axes[0, 1].set(xlabel="frame", ylabel="radius of gyration (Å)")
    if "distance_density" in result:
        axes[1, 0].plot(result["distance_centres"], result["distance_density"])
    axes[1, 0].set(xlabel="interatomic distance (Å)", ylabel="density (1/Å)")
    axes[1, 1].plot(*result["spectrum"])
    axes[1, 1].set(xlabel="wavenumber (cm⁻¹)", ylabel="VACF power (normalised)")
    figure.tight_layout()
    _save(figure, path)
