"""openmm-ml plugin: mlcalc potential files as ``openmmml.MLPotential("mlcalc", model=PATH)``.

Registered under the ``openmmml.potentials`` entry-point group (see ``pyproject.toml``), so that after
installing mlcalc and openmm-ml (1.7, the release for OpenMM 8.5)::

    from openmmml import MLPotential
    potential = MLPotential("mlcalc", model="model.pt")          # or a mlcalc.Potential
    system = potential.createSystem(topology)                    # whole-system ML
    mixed = potential.createMixedSystem(topology, mm_system, ml_atoms, interpolate=True)

Both add the force of :func:`mlcalc.openmm.create_force` (nm, kJ/mol): an openmm-torch ``TorchForce``,
or an ``openmm.PythonForce`` with ``implementation="python"``. The keywords ``implementation``,
``dtype`` and ``cuda_graphs`` may be given to ``MLPotential`` (defaults for every System) or to
``createSystem``/``createMixedSystem`` (for that System). openmm-ml builds the rest itself: masses, box
and ``CMMotionRemover`` in ``createSystem``; removed MM terms, exceptions and ``lambda_interpolate`` in
``createMixedSystem`` (its interpolation approximates the removed internal nonbonded energy by plain
Coulomb and LJ; :func:`mlcalc.openmm.create_mixed_system` restores it exactly).

The classes implement openmm-ml's ``MLPotentialImplFactory.createImpl`` and ``MLPotentialImpl.addForces``
(all that openmm-ml calls) without subclassing them: openmm-ml loads its entry points while ``openmmml``
is being imported, so a plugin module that imported ``openmmml`` would, when imported first, make that
import fail on its own half-initialised self. Nothing in mlcalc imports openmm-ml.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional

import openmm
from openmm import app

from mlcalc.openmm.torchforce import PotentialLike, create_force
from mlcalc.potential import Potential, load

#: Keywords of :func:`mlcalc.openmm.create_force` that ``MLPotential`` and ``createSystem`` accept.
OPTIONS = ("implementation", "dtype", "cuda_graphs")


class MLCalcPotentialImplFactory:
    """Creates :class:`MLCalcPotentialImpl` objects for ``MLPotential("mlcalc", model=..., **options)``."""

    def createImpl(self, name: str, model: Optional[PotentialLike] = None, **options: Any) -> "MLCalcPotentialImpl":
        if model is None:
            raise TypeError(f"MLPotential({name!r}) needs model=: the path of an mlcalc potential file or a Potential")
        return MLCalcPotentialImpl(model, **options)


class MLCalcPotentialImpl:
    """Adds the force of one mlcalc potential to the Systems openmm-ml builds.

    Args:
        model: the path of a potential file (loaded and validated once, here) or a :class:`mlcalc.Potential`.
        options: defaults for ``implementation`` (``"torch"`` or ``"python"``), ``dtype`` and ``cuda_graphs``.
    """

    def __init__(self, model: PotentialLike, **options: Any):
        self.options = _checked(options)
        self.potential = model if isinstance(model, Potential) else load(model, device="cpu")

    def addForces(
        self,
        topology: app.Topology,
        system: openmm.System,
        atoms: Optional[Iterable[int]],
        forceGroup: int,
        **args: Any,
    ) -> None:
        """Add the ML force for ``atoms`` (``None``: all) of ``topology`` to ``system``, in ``forceGroup``."""
        options = {**self.options, **_checked(args)}
        force = create_force(self.potential, topology, None if atoms is None else list(atoms), **options)
        force.setForceGroup(forceGroup)
        system.addForce(force)


def _checked(options: dict) -> dict:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise TypeError(f"the mlcalc openmm-ml potential does not take {unknown}; it takes {list(OPTIONS)}")
    return options
