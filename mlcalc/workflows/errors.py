"""Exceptions of the workflows. Each message names the problem and the fix."""

from __future__ import annotations

from mlcalc.errors import MLCalcError


class InternalCoordinateError(MLCalcError, ValueError):
    """An internal coordinate is ill-defined: indices out of range or repeated, collinear atoms."""


class ConstraintNotHeldError(MLCalcError, ValueError):
    """ASE's position correction found no positions near an optimiser step that meet every constraint."""


class StructureFileError(MLCalcError, ValueError):
    """A structure file cannot be read, or holds something a workflow cannot use."""


class NotConvergedError(MLCalcError, RuntimeError):
    """An optimisation stopped before reaching its force and constraint tolerances."""


class CheckpointError(MLCalcError, ValueError):
    """An output directory holds a checkpoint of a different run."""
