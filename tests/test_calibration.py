"""mlcalc.uncertainty.calibration against scipy.stats.spearmanr and equal-count bins computed by hand."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from mlcalc.uncertainty import CalibrationError, calibration, plot_calibration


def _synthetic(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian errors of standard deviation ``spread``: a calibrated spread."""
    rng = np.random.default_rng(seed)
    spread = rng.lognormal(-3, 1, n)
    return spread, rng.normal(0, spread)


def test_against_scipy_and_numpy_by_hand():
    spread, error = _synthetic(1000)
    result = calibration(spread, error, bins=8)
    expected = spearmanr(spread, np.abs(error))
    assert result.spearman == pytest.approx(expected.statistic, rel=1e-12)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-9)
    assert result.spearman > 0.3 and result.count == 1000
    order = np.argsort(spread)
    for k in range(8):
        chosen = order[k * 125 : (k + 1) * 125]
        assert result.bin_spread[k] == pytest.approx(spread[chosen].mean(), rel=1e-12)
        assert result.bin_error[k] == pytest.approx(np.abs(error[chosen]).mean(), rel=1e-12)
    assert list(result.bin_count) == [125] * 8
    # A calibrated Gaussian spread: mean |error| = sqrt(2/pi) x spread, within sampling noise (125 per bin).
    np.testing.assert_allclose(result.bin_error / result.bin_spread, np.sqrt(2 / np.pi), rtol=0.25)


def test_uneven_bins_and_ties():
    spread = np.array([3, 1, 2, 2, 2, 5, 4, 1, 0, 6, 7], float)  # 11 points, 3 bins: 4, 4, 3 (ties in input order)
    error = np.arange(11.0) - 5
    result = calibration(spread, error, bins=3)
    assert list(result.bin_count) == [4, 4, 3]
    order = np.argsort(spread, kind="stable")  # 8, 1, 7, 2 | 3, 4, 0, 6 | 5, 9, 10
    expected_error = [np.abs(error[order[a:b]]).mean() for a, b in ((0, 4), (4, 8), (8, 11))]
    np.testing.assert_allclose(result.bin_error, expected_error, rtol=1e-12)
    assert result.spearman == pytest.approx(spearmanr(spread, np.abs(error)).statistic, rel=1e-12)


@pytest.mark.parametrize(
    "spread, error, bins, message",
    [
        (np.full(20, 0.1), np.arange(20.0), 2, "predicted_spread is 0.1 for every point"),
        (np.arange(20.0), np.full(20, -2.0), 2, r"\|true_error\| is 2 for every point"),
        (np.arange(7.0), np.arange(7.0), 4, "7 points are too few for 4 bins .* at most 3 bins"),
        (np.arange(2.0), np.arange(2.0), 1, "2 points are too few"),
        (np.arange(10.0), np.arange(9.0), 2, "10 values and true_error 9"),
        (np.arange(10.0), np.arange(10.0), 0, "bins is a number of equal-count bins, 1 or more"),
        (np.r_[np.arange(9.0), np.nan], np.arange(10.0), 2, "must be finite"),
    ],
)
def test_refusals(spread, error, bins, message):
    with pytest.raises(CalibrationError, match=message):
        calibration(spread, error, bins=bins)


def test_plot(tmp_path):
    spread, error = _synthetic(200, seed=1)
    result = calibration(spread, error, bins=5)
    path = plot_calibration(result, tmp_path / "img" / "calibration.png", spread=spread, error=error, log=True)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.as_dict()["bins"][0]["count"] == 40
