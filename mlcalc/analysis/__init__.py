"""Trajectory analysis on MDAnalysis: backbone torsions and secondary structure (Hedelius, TrIP thesis, BYU 2024), RMSF,
radius of gyration, interatomic distances, VACF power spectra and Pearson comparisons (Tölkes, nanomotor
trajectories, 2025). Full citations: docs/references.md.

Every function takes an ``MDAnalysis.Universe`` or ``AtomGroup`` (or plain arrays where noted);
:func:`mlcalc.analysis.report.analyze` runs them all and writes CSV/JSON tables and PNG plots.
"""

from mlcalc.analysis.compare import compare
from mlcalc.analysis.secondary import REGIONS, assign_states, state_statistics
from mlcalc.analysis.spectrum import power_spectrum, velocities_from_positions
from mlcalc.analysis.structure import distance_histogram, radius_of_gyration, rmsf
from mlcalc.analysis.torsions import backbone_torsions

__all__ = [
    "REGIONS",
    "assign_states",
    "backbone_torsions",
    "compare",
    "distance_histogram",
    "power_spectrum",
    "radius_of_gyration",
    "rmsf",
    "state_statistics",
    "velocities_from_positions",
]
