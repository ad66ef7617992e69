"""Does a predicted spread rank and size the real errors? Spearman's rank correlation and equal-count bins.

:func:`calibration` compares a per-structure uncertainty (a committee's energy spread in eV, HIP-NN's
dimensionless non-hierarchicality, ...) with the absolute error against reference labels:

- Spearman's rank correlation ρ between the spread and |error| (``scipy.stats.spearmanr``; average
  ranks for ties) says whether larger spreads come with larger errors (1: the same order, 0: none);
- the points sorted by spread (stable sort, so ties keep their input order) and cut into ``bins``
  groups of equal count (sizes differ by at most one, the larger groups first, as ``numpy.array_split``)
  give the mean spread and the mean |error| of each group: a calibrated spread in the errors' unit has
  mean |error| ≈ √(2/π) × spread for Gaussian errors.

A constant spread (or constant error) ranks nothing: it is refused rather than returned as a NaN ρ.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from mlcalc.errors import MLCalcError
from mlcalc.files import PathLike


class CalibrationError(MLCalcError, ValueError):
    """Inputs :func:`calibration` cannot compare."""


@dataclass(frozen=True)
class Calibration:
    """Result of :func:`calibration`; spreads and errors in the units they were given in."""

    spearman: float  # Spearman's rank correlation of spread and |error|, -1..1
    p_value: float  # of the null hypothesis "no rank correlation" (scipy.stats.spearmanr)
    count: int  # points
    bin_spread: np.ndarray  # [bins] mean spread of each equal-count bin, ascending
    bin_error: np.ndarray  # [bins] mean |error| of each bin
    bin_count: np.ndarray  # [bins] points in each bin

    def as_dict(self) -> dict:
        return {
            "spearman": self.spearman,
            "p_value": self.p_value,
            "count": self.count,
            "bins": [
                {"mean_spread": float(s), "mean_abs_error": float(e), "count": int(n)}
                for s, e, n in zip(self.bin_spread, self.bin_error, self.bin_count)
            ],
        }


def calibration(predicted_spread, true_error, bins: int = 10) -> Calibration:
    """Spearman's ρ of ``predicted_spread`` and ``|true_error|``, and their means in ``bins`` equal-count bins
    ordered by spread (the module doc says how ties and uneven counts go).

    Raises:
        CalibrationError: shapes differ, non-finite values, fewer than 2 points per bin (or 3 in all),
            ``bins`` not a whole number of at least 1, or a constant spread or error.
    """
    spread = np.asarray(predicted_spread, dtype=np.float64).ravel()
    error = np.abs(np.asarray(true_error, dtype=np.float64).ravel())
    if spread.shape != error.shape:
        raise CalibrationError(
            f"predicted_spread has {spread.size} values and true_error {error.size}: give one of each per point"
        )
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise CalibrationError(f"bins is a number of equal-count bins, 1 or more; got {bins!r}")
    if not (np.isfinite(spread).all() and np.isfinite(error).all()):
        raise CalibrationError("predicted_spread and true_error must be finite: drop the points with NaN or inf")
    if spread.size < max(3, 2 * bins):
        raise CalibrationError(
            f"{spread.size} points are too few for {bins} bins of at least 2 points each (and a rank correlation "
            f"needs 3): give more points or at most {max(spread.size // 2, 1)} bins"
        )
    for name, values in (("predicted_spread", spread), ("|true_error|", error)):
        if np.all(values == values[0]):
            raise CalibrationError(
                f"{name} is {values[0]:g} for every point: a constant ranks nothing, so the rank correlation is "
                "undefined; check that the spread (or error) was computed per point"
            )
    from scipy.stats import spearmanr

    result = spearmanr(spread, error)
    order = np.argsort(spread, kind="stable")
    groups = np.array_split(order, bins)
    return Calibration(
        spearman=float(result.statistic),
        p_value=float(result.pvalue),
        count=int(spread.size),
        bin_spread=np.array([spread[g].mean() for g in groups]),
        bin_error=np.array([error[g].mean() for g in groups]),
        bin_count=np.array([len(g) for g in groups]),
    )


def plot_calibration(
    result: Calibration,
    path: PathLike,
    *,
    spread=None,
    error=None,
    spread_label: str = "predicted spread",
    error_label: str = "|error|",
    title: Optional[str] = None,
    identity: bool = False,
    log: bool = False,
) -> Path:
    """Write a PNG of the binned mean |error| against the mean spread (and, given ``spread`` and ``error``,
    every point behind it); ``identity`` draws y = x (for a spread in the errors' unit); ``log``: both axes
    logarithmic (points at 0 are left out). Returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    figure, axes = plt.subplots(figsize=(4.6, 3.6), dpi=100)
    if spread is not None and error is not None:
        axes.scatter(np.ravel(spread), np.abs(np.ravel(error)), s=4, alpha=0.25, color="0.55", lw=0, label="points")
    axes.plot(result.bin_spread, result.bin_error, "o-", color="C0", label=f"{len(result.bin_count)} equal-count bins")
    if identity:
        top = max(float(result.bin_spread.max()), float(result.bin_error.max()))
        axes.plot([0, top], [0, top], "k--", lw=0.8, label="y = x")
    if log:
        axes.set_xscale("log")
        axes.set_yscale("log")
    axes.set_xlabel(spread_label)
    axes.set_ylabel(error_label)
    axes.set_title(title or f"Spearman ρ = {result.spearman:.2f} (n = {result.count})", fontsize=10)
    axes.legend(fontsize=8, frameon=False)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path
