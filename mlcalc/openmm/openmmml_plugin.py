"""openmm-ml plugin: mlcalc potential files as ``openmmml.MLPotential("mlcalc", model=PATH)``.

Registered under the ``openmmml.potentials`` entry-point group (see ``pyproject.toml``), so that after
installing mlcalc and openmm-ml (1.8 with OpenMM 8.6, 1.7 with OpenMM 8.5; ``pip install "mlcalc[openmm-ml]"``)::

    from openmmml import MLPotential
    potential = MLPotential("mlcalc", model="model.pt")          # or a mlcalc.Potential
    system = potential.createSystem(topology)                    # whole-system ML
    mixed = potential.createMixedSystem(topology, mm_system, ml_atoms, interpolate=True)

Both add the force of :func:`mlcalc.openmm.create_force` (nm, kJ/mol): the TorchForce where
openmm-torch is installed, else an ``openmm.PythonForce``. The keywords ``implementation``, ``dtype``,
``cuda_graphs``, ``device`` and ``periodic`` may be given to ``MLPotential`` (defaults for every
System) or to ``createSystem``/``createMixedSystem`` (for that System). openmm-ml builds the rest
itself: masses, box and ``CMMotionRemover`` in ``createSystem``; removed MM terms, exceptions,
link atoms (1.8) and ``lambda_interpolate`` in ``createMixedSystem`` (its interpolation approximates
the removed internal nonbonded energy by plain Coulomb and LJ; :func:`mlcalc.openmm.create_mixed_system`
restores it exactly).

The ML force is periodic when the Topology has a box or the System it is added to is periodic. With
``interpolate=True`` openmm-ml adds it to an empty System first: if the Topology has no box then,
periodicity cannot be known and ``periodic=True`` or ``False`` must be given.

The classes implement what openmm-ml calls (``MLPotentialImplFactory.createImpl``;
``MLPotentialImpl.addForces``, and in 1.8 ``getSupportedEmbeddings`` and ``getMLLongRange``) without
subclassing them: openmm-ml loads its entry points while ``openmmml`` is being imported, so a plugin
module that imported ``openmmml`` would, when imported first, make that import fail on its own
half-initialised self. Nothing in mlcalc imports openmm-ml.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional

import openmm
from openmm import app

from mlcalc.openmm.forces import create_force
from mlcalc.openmm.region import PotentialLike
from mlcalc.potential import Potential, load

#: Keywords of :func:`mlcalc.openmm.create_force` that ``MLPotential`` and ``createSystem`` accept.
OPTIONS = ("implementation", "dtype", "cuda_graphs", "device", "periodic")

#: openmm-ml's own options of its embeddings, which it passes on to ``addForces`` too.
EMBEDDING_OPTIONS = ("linkAtomDistances",)


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
        options: defaults for the keywords in :data:`OPTIONS`, as in :func:`mlcalc.openmm.create_force`.
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
        options["periodic"] = _periodic(topology, system, options.get("periodic"))
        force = create_force(self.potential, topology, None if atoms is None else list(atoms), **options)
        force.setForceGroup(forceGroup)
        system.addForce(force)

    def getSupportedEmbeddings(self) -> list[str]:
        """No embedding of its own: openmm-ml's generic ones (mechanical) apply (openmm-ml >= 1.8)."""
        return []

    def getMLLongRange(self) -> bool:
        """``False``: an mlcalc potential is local (a cutoff graph); PME stays with the MM side (openmm-ml >= 1.8)."""
        return False


def _checked(options: dict) -> dict:
    unknown = sorted(set(options) - set(OPTIONS) - set(EMBEDDING_OPTIONS))
    if unknown:
        raise TypeError(f"the mlcalc openmm-ml potential does not take {unknown}; it takes {list(OPTIONS)}")
    return {key: value for key, value in options.items() if key in OPTIONS}


def _periodic(topology: app.Topology, system: openmm.System, periodic: Optional[bool]) -> bool:
    """Whether the ML force uses the box: the Topology's box or the System's periodicity, unless given."""
    has_box = topology.getPeriodicBoxVectors() is not None
    if system.getNumParticles() == 0 and not has_box and periodic is None:
        raise ValueError(
            "openmm-ml builds the ML force in an empty System here (interpolate=True), and the Topology has no box, "
            "so mlcalc cannot tell whether the MM System is periodic: pass periodic=True (or False) to "
            "createMixedSystem, or set the Topology's box (topology.setPeriodicBoxVectors(...))"
        )
    found = has_box or system.usesPeriodicBoundaryConditions()
    if periodic is None:
        return found
    if system.getNumParticles() and bool(periodic) != found:
        raise ValueError(
            f"periodic={periodic} contradicts the System, which is {'' if found else 'not '}periodic "
            "(its forces or the Topology's box say so): drop periodic= to follow the System"
        )
    return bool(periodic)
