"""OpenMM integration: mlcalc potentials inside OpenMM systems.

``create_force`` returns the potential as an OpenMM force for all particles or an ML subset: the
openmm-torch ``TorchForce`` where openmm-torch is installed, else an ``openmm.PythonForce`` (choose
with ``implementation=``); ``create_system`` builds a whole-system ML ``openmm.System`` from a
``Topology``; ``create_mixed_system`` makes an ML/MM System out of an MM one (mechanical embedding);
``choose_platform`` gives a platform with thread counts that leave torch its cores; ``UncertaintyReporter``
writes a committee's energy spread along a run and can stop it above a threshold.
"""

from mlcalc.openmm.forces import create_force, default_implementation, implementation_of
from mlcalc.openmm.mixed import create_mixed_system
from mlcalc.openmm.platforms import choose_platform
from mlcalc.openmm.region import atomic_numbers
from mlcalc.openmm.system import create_system
from mlcalc.openmm.torchforce import TorchForceModule, openmmtorch_error
from mlcalc.openmm.uncertainty import UncertaintyReporter

__all__ = [
    "TorchForceModule",
    "UncertaintyReporter",
    "atomic_numbers",
    "choose_platform",
    "create_force",
    "create_mixed_system",
    "create_system",
    "default_implementation",
    "implementation_of",
    "openmmtorch_error",
]
