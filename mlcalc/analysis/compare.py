"""Compare two trajectories of the same molecule by Pearson correlations (as in Tölkes, 2025)."""

from __future__ import annotations

import numpy as np
from scipy.stats import pearsonr


def _pearson(a: np.ndarray, b: np.ndarray, what: str) -> float:
    a, b = np.ravel(a), np.ravel(b)
    if a.shape != b.shape:
        raise ValueError(f"cannot correlate {what}: {a.shape[0]} values against {b.shape[0]}")
    return float(pearsonr(a, b).statistic)


def compare(first: dict, second: dict) -> dict[str, float]:
    """Pearson r of every quantity the two analysis results (from :func:`mlcalc.analysis.report.analyze`) share.

    Per-atom RMSF and the distance and radius-of-gyration distributions are compared element-wise;
    the spectra on the first one's wavenumber grid (interpolated, since frame counts may differ).
    """
    result = {}
    for key in ("rmsf", "distance_density"):
        if key in first and key in second:
            result[key] = _pearson(first[key], second[key], key)
    if "rg" in first and "rg" in second:
        low = min(np.min(first["rg"]), np.min(second["rg"]))
        high = max(np.max(first["rg"]), np.max(second["rg"]))
        hist = [np.histogram(x["rg"], bins=50, range=(low, high), density=True)[0] for x in (first, second)]
        result["rg_distribution"] = _pearson(hist[0], hist[1], "rg")
    if "spectrum" in first and "spectrum" in second:
        grid, power = first["spectrum"]
        other = np.interp(grid, *second["spectrum"])
        result["spectrum"] = _pearson(power, other, "spectrum")
    return result
