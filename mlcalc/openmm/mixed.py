"""ML/MM by mechanical embedding: :func:`create_mixed_system`, shaped like openmm-ml's ``createMixedSystem``.

The ML potential replaces the MM terms *among* the ML atoms; every interaction that involves an MM
atom (solvent-solvent, solute-solvent) stays MM. Starting from an MM ``System``:

1. bonded terms (bonds, angles, torsions, CMAP, their Custom* forms) whose atoms are all ML are removed;
2. ``NonbondedForce``: every ML-ML pair becomes an exception with zero charge product and epsilon;
   ``CustomNonbondedForce``: every ML-ML pair becomes an exclusion;
3. constraints between two ML atoms are removed (``remove_constraints``);
4. the ML force (``TorchForce`` or ``PythonForce``) is added for the ML atoms, periodic when the MM System is.

With ``interpolate=True`` the ML force and the removed MM terms go into a ``CustomCVForce`` with
energy ``lambda_interpolate*ML + (1-lambda_interpolate)*MM_internal`` (global parameter, default 1).
MM_internal is the exact energy the changes above removed, for every ``NonbondedForce`` method but
LJPME: plain exceptions, the cut-off (and switched, reaction-field or Ewald direct-space) ordinary
pairs under periodic minimum image, and the Ewald exclusion correction ``erf(alpha r)/r`` that OpenMM
applies at the unwrapped distance. So ``lambda_interpolate=0`` reproduces the MM System's energy.
(openmm-ml instead approximates the internal nonbonded energy by plain Coulomb and LJ without
cutoff or periodicity, which differs for ML regions that span more than the cutoff.)

Other forces (CMMotionRemover, barostats, implicit solvent, external and centroid restraints) are
kept unchanged, as MM, like openmm-ml does; polarizable (AMOEBA, HIPPO, Drude) forces are refused.
"""

from __future__ import annotations

import copy
import math
import re
import warnings
import xml.etree.ElementTree as ET
from typing import Iterable, Optional, Sequence, Union

import openmm
import torch
from openmm import app

from mlcalc.errors import InvalidStructureError
from mlcalc.openmm.forces import create_force
from mlcalc.openmm.molecules import add_molecule_bonds
from mlcalc.openmm.region import PotentialLike, ml_indices
from mlcalc.potential import DeviceLike

#: Coulomb constant 1/(4 pi eps0) in kJ/mol nm / e^2, as OpenMM >= 8.2 defines it (SimTKOpenMMRealType.h).
ONE_4PI_EPS0 = 138.93545764438198

#: Forces whose terms are removed when all their particles are ML atoms.
BONDED_FORCES = (
    "HarmonicBondForce",
    "HarmonicAngleForce",
    "PeriodicTorsionForce",
    "RBTorsionForce",
    "CMAPTorsionForce",
    "CustomBondForce",
    "CustomAngleForce",
    "CustomTorsionForce",
    "CustomCompoundBondForce",
)
_TERM_CONTAINERS = ("Bonds", "Angles", "Torsions")
_PARTICLE_ATTRIBUTE = re.compile(r"^(p\d+|[ab]\d)$")  # p1..pN; CMAP torsions a1..a4, b1..b4
_REFUSED_PREFIXES = ("Amoeba", "Hippo", "Drude")


def create_mixed_system(
    topology: app.Topology,
    system: openmm.System,
    atoms: Iterable[int],
    potential: PotentialLike,
    remove_constraints: bool = True,
    force_group: int = 0,
    interpolate: bool = False,
    *,
    implementation: Optional[str] = None,
    dtype: Union[str, torch.dtype, None] = None,
    cuda_graphs: bool = False,
    device: DeviceLike = None,
) -> openmm.System:
    """A new System in which ``potential`` computes the internal energy of ``atoms`` (mechanical embedding).

    Args:
        topology: the Topology ``system`` was built from (elements of the ML atoms).
        system: an all-MM System; it is not modified. The ML force is periodic when it is
            (``usesPeriodicBoundaryConditions``), with the System's box, whether or not the Topology has one.
        atoms: indices of the ML atoms.
        potential: a :class:`mlcalc.Potential` or the path of a potential file.
        remove_constraints: remove constraints between two ML atoms.
        force_group: force group of the ML force (or of the ``CustomCVForce`` when interpolating).
        interpolate: add global parameter ``lambda_interpolate`` (0 = MM, 1 = ML/MM) through a ``CustomCVForce``.
        implementation, dtype, cuda_graphs, device: as in :func:`mlcalc.openmm.create_force`.

    Raises:
        InvalidStructureError: a constraint joins an ML atom to an MM atom (the selection splits a
            constrained group: select whole molecules).
        ValueError: bad indices, a Topology that does not match the System, an unsupported force.
    """
    n = system.getNumParticles()
    if topology.getNumAtoms() != n:
        raise ValueError(
            f"the topology has {topology.getNumAtoms()} atoms but the system {n} particles: pass the Topology the "
            "System was built from (forcefield.createSystem(topology))"
        )
    ml = ml_indices(list(atoms), n) or []  # never None: atoms is a list
    ml_set = set(ml)
    _check_forces(system)
    _check_constraints(system, topology, ml_set)
    _warn_cut_bonds(topology, ml_set)

    mixed = _copy_without_terms(system, ml_set, remove_constraints)
    for force in mixed.getForces():
        if isinstance(force, openmm.NonbondedForce):
            for a in range(len(ml)):
                for b in range(a):
                    force.addException(ml[a], ml[b], 0.0, 1.0, 0.0, True)
        elif isinstance(force, openmm.CustomNonbondedForce):
            excluded = {frozenset(force.getExclusionParticles(k)) for k in range(force.getNumExclusions())}
            for a in range(len(ml)):
                for b in range(a):
                    if frozenset((ml[a], ml[b])) not in excluded:
                        force.addExclusion(ml[a], ml[b])

    ml_force = create_force(
        potential,
        topology,
        ml,
        periodic=system.usesPeriodicBoundaryConditions(),
        dtype=dtype,
        implementation=implementation,
        cuda_graphs=cuda_graphs,
        device=device,
    )
    if system.usesPeriodicBoundaryConditions():
        add_molecule_bonds(mixed, topology, ml)  # the ML region's MM bonds are gone: keep its molecules whole
    if not interpolate:
        ml_force.setForceGroup(force_group)
        mixed.addForce(ml_force)
        return mixed

    internal = _internal_mm_forces(system, ml)
    cv = openmm.CustomCVForce("")
    cv.addGlobalParameter("lambda_interpolate", 1.0)
    cv.addCollectiveVariable("ml", ml_force)
    names = []
    for k, force in enumerate(internal):
        names.append(f"mm{k + 1}")
        cv.addCollectiveVariable(names[-1], force)
    mm_sum = "+".join(names) if names else "0"
    cv.setEnergyFunction(f"lambda_interpolate*ml + (1-lambda_interpolate)*({mm_sum})")
    cv.setName("mlcalc:interpolation")
    cv.setForceGroup(force_group)
    mixed.addForce(cv)
    return mixed


def _check_forces(system: openmm.System) -> None:
    for force in system.getForces():
        name = type(force).__name__
        if name.startswith(_REFUSED_PREFIXES):
            raise ValueError(
                f"the MM system holds a {name}: mechanical embedding here supports fixed-charge force fields only "
                "(polarizable AMOEBA, HIPPO and Drude forces cannot be split into ML and MM parts)"
            )


def _describe(topology_atoms: Sequence[app.topology.Atom], index: int) -> str:
    atom = topology_atoms[index]
    return f"atom {index} ({atom.name} of {atom.residue.name} {atom.residue.id})"


def _check_constraints(system: openmm.System, topology: app.Topology, ml: set[int]) -> None:
    split = []
    for k in range(system.getNumConstraints()):
        i, j, _ = system.getConstraintParameters(k)
        if (i in ml) != (j in ml):
            split.append((i, j) if i in ml else (j, i))
    if split:
        atoms = list(topology.atoms())
        shown = "; ".join(f"{_describe(atoms, i)} with {_describe(atoms, j)}" for i, j in split[:5])
        raise InvalidStructureError(
            f"the ML atom selection splits {len(split)} constrained bond(s): {shown}. "
            "A constraint cannot be half ML and half MM: select whole molecules (all atoms of each residue), "
            "or build the MM system without those constraints"
        )


def _warn_cut_bonds(topology: app.Topology, ml: set[int]) -> None:
    cut = [(a, b) for a, b in topology.bonds() if (a.index in ml) != (b.index in ml)]
    if cut:
        a, b = cut[0]
        warnings.warn(
            f"the ML region is bonded covalently to MM atoms at {len(cut)} bond(s), e.g. {a.name} ({a.residue.name} "
            f"{a.residue.id}) - {b.name} ({b.residue.name} {b.residue.id}); mechanical embedding adds no link atoms, "
            "so the ML potential sees an open valence there",
            stacklevel=3,
        )


def _term_particles(term: ET.Element) -> list[int]:
    return [int(value) for key, value in term.attrib.items() if _PARTICLE_ATTRIBUTE.match(key)]


def _filter_terms(force: ET.Element, ml: set[int], keep_internal: bool) -> int:
    """Remove the terms of a bonded force element in place: the internal (all-ML) ones, or all the
    others when ``keep_internal``. Returns how many terms remain."""
    remaining = 0
    for container in _TERM_CONTAINERS:
        for terms in force.findall(container):
            for term in list(terms):
                internal = all(p in ml for p in _term_particles(term))
                if internal != keep_internal:
                    terms.remove(term)
                else:
                    remaining += 1
    return remaining


def _copy_without_terms(system: openmm.System, ml: set[int], remove_constraints: bool) -> openmm.System:
    """A copy of ``system`` without bonded terms among ML atoms (and their constraints)."""
    root = ET.fromstring(openmm.XmlSerializer.serialize(system))
    for force in root.findall("./Forces/Force"):
        if force.get("type") in BONDED_FORCES:
            _filter_terms(force, ml, keep_internal=False)
    if remove_constraints:
        for constraints in root.findall("./Constraints"):
            for constraint in list(constraints):
                if int(constraint.get("p1", -1)) in ml and int(constraint.get("p2", -1)) in ml:
                    constraints.remove(constraint)
    return openmm.XmlSerializer.deserialize(ET.tostring(root, encoding="unicode"))


def _internal_mm_forces(system: openmm.System, ml: list[int]) -> list[openmm.Force]:
    """Forces computing exactly the MM energy that :func:`create_mixed_system` removed."""
    ml_set = set(ml)
    forces: list[openmm.Force] = []
    for element in ET.fromstring(openmm.XmlSerializer.serialize(system)).findall("./Forces/Force"):
        if element.get("type") in BONDED_FORCES and _filter_terms(element, ml_set, keep_internal=True):
            forces.append(openmm.XmlSerializer.deserialize(ET.tostring(element, encoding="unicode")))
    for force in system.getForces():
        if isinstance(force, openmm.NonbondedForce):
            forces += _internal_nonbonded(force, ml)
        elif isinstance(force, openmm.CustomNonbondedForce):
            forces.append(_internal_custom_nonbonded(force, ml_set))
    return forces


def _lennard_jones(switch: Optional[tuple[float, float]]) -> str:
    lj = "4*epsilon*((sigma/r)^12-(sigma/r)^6)"
    if switch is None:
        return lj
    start, cutoff = switch
    x = f"((r-{start!r})/({cutoff!r}-{start!r}))"
    return f"{lj}*select(step(r-{start!r}), 1-10*{x}^3+15*{x}^4-6*{x}^5, 1)"


def _pair_force(expression: str, periodic: bool, pairs: list[tuple[int, int, float, float, float]]) -> openmm.Force:
    force = openmm.CustomBondForce(expression)
    for name in ("chargeProd", "sigma", "epsilon"):
        force.addPerBondParameter(name)
    for i, j, charge_product, sigma, epsilon in pairs:
        force.addBond(i, j, [charge_product, sigma, epsilon])
    force.setUsesPeriodicBoundaryConditions(periodic)
    return force


def _internal_nonbonded(force: openmm.NonbondedForce, ml: list[int]) -> list[openmm.Force]:
    """CustomBondForces equal to the ML-ML part of ``force`` that becoming exceptions removes."""
    method = force.getNonbondedMethod()
    if method == openmm.NonbondedForce.LJPME:
        raise ValueError("interpolate=True does not support NonbondedForce.LJPME; use PME for the MM system")
    if force.getNumParticleParameterOffsets() or force.getNumExceptionParameterOffsets():
        raise ValueError("interpolate=True does not support NonbondedForce parameter offsets")
    particles = [force.getParticleParameters(i) for i in ml]
    charge = {i: p[0]._value for i, p in zip(ml, particles)}
    sigma = {i: p[1]._value for i, p in zip(ml, particles)}
    epsilon = {i: p[2]._value for i, p in zip(ml, particles)}
    exceptions = {}
    ml_set = set(ml)
    for k in range(force.getNumExceptions()):
        i, j, q, s, e = force.getExceptionParameters(k)
        if i in ml_set and j in ml_set:
            exceptions[frozenset((i, j))] = (i, j, q._value, s._value, e._value)
    ordinary = []
    for a in range(len(ml)):
        for b in range(a):
            i, j = ml[a], ml[b]
            if frozenset((i, j)) not in exceptions:
                ordinary.append(
                    (i, j, charge[i] * charge[j], 0.5 * (sigma[i] + sigma[j]), math.sqrt(epsilon[i] * epsilon[j]))
                )
    plain = f"{ONE_4PI_EPS0!r}*chargeProd/r + {_lennard_jones(None)}"
    # OpenMM computes exceptions with plain Coulomb and LJ, no cutoff, periodic only on request.
    kept = [p for p in exceptions.values() if p[2] != 0.0 or p[4] != 0.0]
    forces = [_pair_force(plain, force.getExceptionsUsePeriodicBoundaryConditions(), kept)] if kept else []
    if method == openmm.NonbondedForce.NoCutoff:
        return forces + ([_pair_force(plain, False, ordinary)] if ordinary else [])
    cutoff = force.getCutoffDistance()._value
    switch = (force.getSwitchingDistance()._value, cutoff) if force.getUseSwitchingFunction() else None
    lj = _lennard_jones(switch)
    periodic = method != openmm.NonbondedForce.CutoffNonPeriodic
    if method in (openmm.NonbondedForce.CutoffNonPeriodic, openmm.NonbondedForce.CutoffPeriodic):
        dielectric = force.getReactionFieldDielectric()
        krf = (dielectric - 1) / ((2 * dielectric + 1) * cutoff**3)
        crf = 3 * dielectric / ((2 * dielectric + 1) * cutoff)
        coulomb = f"{ONE_4PI_EPS0!r}*chargeProd*(1/r + {krf!r}*r^2 - {crf!r})"
        direct = f"step({cutoff!r}-r)*({coulomb} + {lj})"
        return forces + ([_pair_force(direct, periodic, ordinary)] if ordinary else [])
    # Ewald and PME: direct space erfc(alpha r)/r within the cutoff, at the minimum-image distance; the
    # reciprocal-space exclusion correction erf(alpha r)/r that an excluded pair gets, at the distance
    # of the unwrapped positions (measured on the Reference platform), so non-periodic.
    alpha = force.getPMEParameters()[0]._value if method == openmm.NonbondedForce.PME else 0.0
    if alpha == 0.0:  # OpenMM's choice from the error tolerance (NonbondedForceImpl::calcPMEParameters)
        alpha = math.sqrt(-math.log(2 * force.getEwaldErrorTolerance())) / cutoff
    direct = f"step({cutoff!r}-r)*({ONE_4PI_EPS0!r}*chargeProd*erfc({alpha!r}*r)/r + {lj})"
    correction = f"{ONE_4PI_EPS0!r}*chargeProd*erf({alpha!r}*r)/r"
    charged = [p for p in ordinary if p[2] != 0.0]
    if ordinary:
        forces.append(_pair_force(direct, True, ordinary))
    if charged:
        forces.append(_pair_force(correction, False, charged))
    return forces


def _internal_custom_nonbonded(force: openmm.CustomNonbondedForce, ml: set[int]) -> openmm.Force:
    """A copy of ``force`` restricted to ML-ML pairs (its own exclusions, cutoff and switching kept)."""
    internal = copy.deepcopy(force)
    internal.setUseLongRangeCorrection(False)  # the mixed system keeps the original's correction
    if internal.getNumInteractionGroups() == 0:
        internal.addInteractionGroup(sorted(ml), sorted(ml))
    for k in range(internal.getNumInteractionGroups()):
        first, second = internal.getInteractionGroupParameters(k)
        internal.setInteractionGroupParameters(k, [i for i in first if i in ml], [i for i in second if i in ml])
    return internal
