"""Reference potentials written against the mlcalc contract.

They carry their own metadata (``mlcalc_metadata``), so ``mlcalc.export(model, path)`` needs no
further arguments, and they are the ground truth of the test suite: each is checked against
ASE's and OpenMM's own implementation of the same physics.
"""

from mlcalc.models.committee import Committee
from mlcalc.models.lennard_jones import LennardJones
from mlcalc.models.morse import Morse

__all__ = ["Committee", "LennardJones", "Morse"]
