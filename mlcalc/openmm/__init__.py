"""OpenMM integration: mlcalc potentials inside OpenMM systems.

``create_force`` returns an openmm-torch ``TorchForce`` (or an ``openmm.PythonForce`` with
``implementation="python"``) for all particles or an ML subset; ``create_system`` builds a
whole-system ML ``openmm.System`` from a ``Topology``; ``create_mixed_system`` makes an ML/MM
System out of an MM one (mechanical embedding).
"""

from mlcalc.openmm.mixed import create_mixed_system
from mlcalc.openmm.torchforce import TorchForceModule, atomic_numbers, create_force, create_system, openmmtorch

__all__ = ["TorchForceModule", "atomic_numbers", "create_force", "create_mixed_system", "create_system", "openmmtorch"]
