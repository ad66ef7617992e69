"""Uncertainty you can act on: pick the frames a committee is least sure of (:func:`select`) and check
whether a spread ranks the real errors (:func:`calibration`). See docs/uncertainty.md."""

from mlcalc.uncertainty.calibration import Calibration, CalibrationError, calibration, plot_calibration
from mlcalc.uncertainty.select import SelectionError, select

__all__ = ["Calibration", "CalibrationError", "SelectionError", "calibration", "plot_calibration", "select"]
