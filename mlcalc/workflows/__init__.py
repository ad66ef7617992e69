"""ASE workflows that take any ASE calculator (an :class:`mlcalc.MLCalculator` being the usual one).

- :func:`optimize`: constrained optimisation with fixed distances, angles and dihedrals (ASE or SciPy
  trust-constr back-end), correct in periodic solvated boxes;
- :func:`relaxed_scan`: 1D and 2D relaxed scans, resumable;
- :func:`dihedral_path`: dihedral-driven reaction paths (Philip, Zhou & Nebgen, arXiv:2211.07181) and :func:`path_rmsd`;
- :func:`run_neb` / :func:`make_band`: ASE's NEB with every band evaluated in one batched call.

Atom indices are 0-based; angles in degrees, distances in Å, energies in eV.
"""

from mlcalc.workflows.endpoints import prepare_endpoint, relax_endpoint
from mlcalc.workflows.errors import (
    CheckpointError,
    ConstraintNotHeldError,
    InternalCoordinateError,
    NotConvergedError,
    StructureFileError,
)
from mlcalc.workflows.internal import Angle, Dihedral, Distance
from mlcalc.workflows.neb import NEBResult, make_band, run_neb
from mlcalc.workflows.optimize import OptimizationResult, optimize
from mlcalc.workflows.path import PathResult, dihedral_path, path_rmsd
from mlcalc.workflows.scan import ScanResult, relaxed_scan

__all__ = [
    "Angle",
    "CheckpointError",
    "ConstraintNotHeldError",
    "Dihedral",
    "Distance",
    "InternalCoordinateError",
    "NEBResult",
    "NotConvergedError",
    "OptimizationResult",
    "PathResult",
    "ScanResult",
    "StructureFileError",
    "dihedral_path",
    "make_band",
    "optimize",
    "path_rmsd",
    "prepare_endpoint",
    "relax_endpoint",
    "relaxed_scan",
    "run_neb",
]
