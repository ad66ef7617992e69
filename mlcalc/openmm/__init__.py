"""OpenMM integration: mlcalc potentials inside OpenMM systems.

``create_force`` returns an openmm-torch ``TorchForce`` for all particles or an ML subset;
``create_system`` builds a whole-system ML ``openmm.System`` from a ``Topology``.
"""

from mlcalc.openmm.torchforce import TorchForceModule, atomic_numbers, create_force, create_system, openmmtorch

__all__ = ["TorchForceModule", "atomic_numbers", "create_force", "create_system", "openmmtorch"]
