"""mlcalc: run TorchScript machine-learned interatomic potentials in ASE and OpenMM.

>>> import mlcalc
>>> mlcalc.export(mlcalc.models.LennardJones(sigma=3.405, epsilon=0.0104, cutoff=8.5), "argon.pt")
>>> calc = mlcalc.MLCalculator("argon.pt")
"""

from mlcalc import models
from mlcalc._version import __version__
from mlcalc.calculator import MLCalculator
from mlcalc.contract import CONTRACT_VERSION, Metadata
from mlcalc.errors import ContractError, InvalidStructureError, MLCalcError, UnitError, UnsupportedElementError
from mlcalc.export import export
from mlcalc.neighbors import neighbor_list
from mlcalc.potential import Potential, load, read_metadata

__all__ = [
    "CONTRACT_VERSION",
    "ContractError",
    "InvalidStructureError",
    "MLCalcError",
    "MLCalculator",
    "Metadata",
    "Potential",
    "UnitError",
    "UnsupportedElementError",
    "__version__",
    "export",
    "load",
    "models",
    "neighbor_list",
    "read_metadata",
]
