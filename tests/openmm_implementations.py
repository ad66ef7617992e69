"""The two OpenMM force implementations, for parametrised tests: the TorchForce runs where openmm-torch imports."""

from __future__ import annotations

import pytest

from mlcalc.openmm import openmmtorch_error

#: Why the TorchForce cannot run here (``None`` where openmm-torch imports).
OPENMMTORCH_MISSING = openmmtorch_error()

needs_openmmtorch = pytest.mark.skipif(
    OPENMMTORCH_MISSING is not None,
    reason=f"openmm-torch cannot be imported here ({OPENMMTORCH_MISSING}); the TorchForce stack "
    '(pip install ".[openmm-torch,test]") runs this',
)

#: ``implementation=`` values: both where openmm-torch imports, else the TorchForce skipped with the reason.
IMPLEMENTATIONS = [pytest.param("torch", marks=needs_openmmtorch), "python"]
