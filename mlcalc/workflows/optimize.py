"""Constrained geometry optimisation with fixed distances, angles and dihedrals, on any ASE calculator.

Two back-ends minimise the same energy under the same constraints and report the same quantities:

- ``"ase"``: :class:`~mlcalc.workflows.constraints.FixInternalCoordinates` (ASE's ``FixInternals``
  position correction, with forces projected onto the constraint surface without touching
  unconstrained atoms) and an ASE optimiser (BFGS by default);
- ``"scipy"``: ``scipy.optimize.minimize(method="trust-constr")`` with the internal coordinates as
  equality constraints and their analytic Jacobians (as in Philip, Zhou & Nebgen's dihedral-driven
  paths), followed by a Gauss–Newton projection that makes the constraints exact to 1e-10.

Convergence means both: every constraint within ``constraint_tol`` (rad or Å; default 1e-6) of its
target, and the largest per-atom force after removing the constraint-gradient components (and zeroing
``FixAtoms`` atoms) at most ``fmax``. The result says which; nothing unconverged is reported as converged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
from ase import Atoms
from ase.calculators.calculator import BaseCalculator
from ase.calculators.singlepoint import SinglePointCalculator
from ase.constraints import FixAtoms
from ase.optimize.optimize import Optimizer

from mlcalc.files import PathLike, write_json_atomic
from mlcalc.workflows.constraints import (
    FixInternalCoordinates,
    constrained_forces,
    fixed_atoms,
    max_force,
)
from mlcalc.workflows.errors import ConstraintNotHeldError, NotConvergedError
from mlcalc.workflows.fragments import (
    bond_pairs,
    check_dihedrals_in_one_molecule,
    check_no_clash,
    moving_group,
    set_coordinate,
)
from mlcalc.workflows.internal import (
    InternalCoordinate,
    check_coordinates,
    constraint_errors,
    jacobian,
    resolve_targets,
)
from mlcalc.workflows.output import keep_uncertainty, write_images_atomic

BACKENDS = ("ase", "scipy")
ASE_OPTIMIZERS = ("BFGS", "LBFGS", "FIRE", "BFGSLineSearch", "GPMin")


@dataclass
class OptimizationResult:
    """Outcome of :func:`optimize`.

    Attributes:
        atoms: the final structure (a copy: the input is not modified), with a ``SinglePointCalculator``
            holding its energy and (unprojected) forces and the input's ``FixAtoms`` constraints.
        energy: potential energy, eV.
        fmax: largest per-atom force on the constraint surface, eV/Å.
        constraint_errors: value − target of each constraint (radians for angles, Å for distances).
        converged: True only when ``fmax`` and every constraint error are within the tolerances.
        steps: optimiser iterations.
        constraints: the constrained coordinates with their targets.
    """

    atoms: Atoms
    energy: float
    fmax: float
    constraint_errors: np.ndarray
    converged: bool
    steps: int
    backend: str
    message: str
    constraints: list[InternalCoordinate] = field(default_factory=list)

    @property
    def max_constraint_error(self) -> float:
        """Largest |value − target| over the constraints (radians or Å); 0 without constraints."""
        return float(np.abs(self.constraint_errors).max()) if len(self.constraint_errors) else 0.0

    def write(self, directory: PathLike) -> Path:
        """Write ``optimized.extxyz`` (the structure, energy and forces) and ``optimized.json`` (energy eV,
        fmax eV/Å, convergence, constraints and their errors) into ``directory``."""
        directory = Path(directory)
        write_images_atomic(directory / "optimized.extxyz", [self.atoms])
        write_json_atomic(
            directory / "optimized.json",
            {
                "energy_eV": self.energy,
                "fmax_eV_per_A": self.fmax,
                "converged": self.converged,
                "steps": self.steps,
                "backend": self.backend,
                "message": self.message,
                "constraints": [c.name for c in self.constraints],
                "constraint_errors": self.constraint_errors.tolist(),
            },
        )
        return directory

    def raise_if_not_converged(self) -> "OptimizationResult":
        """Return ``self``, or raise :class:`NotConvergedError` with the reason."""
        if not self.converged:
            raise NotConvergedError(self.message)
        return self


def optimize(
    atoms: Atoms,
    calc: BaseCalculator,
    constraints: Sequence[InternalCoordinate] = (),
    *,
    backend: str = "ase",
    fmax: float = 0.01,
    steps: int = 1000,
    optimizer: Union[str, type[Optimizer]] = "BFGS",
    constraint_tol: float = 1e-6,
    logfile: Optional[str] = None,
    move_fragments: bool = True,
) -> OptimizationResult:
    """Minimise the energy of ``atoms`` with ``calc`` while holding internal coordinates at their targets.

    Args:
        atoms: the starting structure (not modified). ``FixAtoms`` constraints are honoured.
        calc: any ASE calculator (e.g. :class:`mlcalc.MLCalculator`, ``tblite.ase.TBLite``).
        constraints: ``Distance``/``Angle``/``Dihedral`` objects (0-based indices); a ``target`` of ``None``
            keeps the starting value. Targets away from the starting value are first reached by rotating
            or shifting the group on one side of the bond rigidly (``move_fragments``), then exactly.
        backend: ``"ase"`` or ``"scipy"`` (trust-constr; dense, for molecules up to a few hundred atoms).
        fmax: force tolerance on the constraint surface, eV/Å.
        steps: maximum optimiser iterations.
        optimizer: ASE optimiser name or class (``"ase"`` back-end only).
        constraint_tol: tolerance of the constraints, radians (angles) or Å (distances).
        logfile: ASE optimiser log (``"-"`` for stdout); ``None`` keeps quiet.
        move_fragments: reach new targets by rigid group moves before optimising (see above).

    Returns:
        An :class:`OptimizationResult`; check ``converged`` (or call ``raise_if_not_converged()``).

    Raises:
        InvalidStructureError: two atoms clash (closer than any chemical bond).
        InternalCoordinateError: a bad coordinate, or a dihedral across molecules.
    """
    constraints = list(constraints)
    check_coordinates(atoms, constraints)
    check_dihedrals_in_one_molecule(atoms, constraints)
    check_no_clash(atoms, "starting")
    return optimize_unchecked(
        atoms,
        calc,
        constraints,
        backend=backend,
        fmax=fmax,
        steps=steps,
        optimizer=optimizer,
        constraint_tol=constraint_tol,
        logfile=logfile,
        move_fragments=move_fragments,
    )


def optimize_unchecked(
    atoms: Atoms,
    calc: BaseCalculator,
    constraints: Sequence[InternalCoordinate],
    *,
    backend: str = "ase",
    fmax: float = 0.01,
    steps: int = 1000,
    optimizer: Union[str, type[Optimizer]] = "BFGS",
    constraint_tol: float = 1e-6,
    logfile: Optional[str] = None,
    move_fragments: bool = True,
) -> OptimizationResult:
    """:func:`optimize` without its clash and molecule checks, for workflows that checked their input
    structure once (a scan's later points may stretch bonds that those checks read)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if not (fmax > 0 and constraint_tol > 0 and steps >= 0):
        raise ValueError(f"need fmax > 0, constraint_tol > 0 and steps >= 0, got {fmax}, {constraint_tol}, {steps}")
    constraints = list(constraints)
    check_coordinates(atoms, constraints)
    fixed = fixed_atoms(atoms, constraints)
    work = atoms.copy()
    work.calc = None
    targets = resolve_targets(work, constraints)
    if move_fragments:
        impose_targets(work, targets)
    if backend == "ase":
        steps_taken = _optimize_ase(work, calc, targets, optimizer=optimizer, fmax=fmax, steps=steps, logfile=logfile)
    else:
        steps_taken = _optimize_scipy(work, calc, targets, fixed, fmax=fmax, steps=steps)
    return _result(work, calc, targets, fixed, fmax, constraint_tol, steps_taken, backend)


def impose_targets(atoms: Atoms, targets: Sequence[InternalCoordinate], bonds: Optional[np.ndarray] = None) -> None:
    """Move groups rigidly so that each coordinate starts at its target (in place, one after the other)."""
    moving = [c for c in targets if abs(c.error(atoms)) > 1e-12]
    if not moving:
        return
    bonds = bond_pairs(atoms) if bonds is None else bonds
    for coordinate in moving:
        set_coordinate(atoms, coordinate, coordinate.required_target, moving_group(atoms, coordinate, bonds))


def _optimize_ase(
    work: Atoms,
    calc: BaseCalculator,
    targets: list[InternalCoordinate],
    *,
    optimizer: Union[str, type[Optimizer]],
    fmax: float,
    steps: int,
    logfile: Optional[str],
) -> int:
    optimizer_class = _optimizer_class(optimizer)
    kept = [c for c in work.constraints]  # FixAtoms only (checked)
    if targets:
        kept.append(FixInternalCoordinates(targets, mic=bool(work.pbc.any())))
    work.set_constraint(kept)
    try:
        work.set_positions(work.get_positions())  # ASE's Newton correction onto the targets
    except ConstraintNotHeldError:
        raise NotConvergedError(
            f"could not bring {', '.join(c.name for c in targets)} to their targets from the starting structure "
            "(ASE's FixInternals correction did not converge); approach them in smaller steps (a scan or a "
            "path does this)"
        ) from None
    work.calc = calc
    dynamics = optimizer_class(work, logfile=logfile)
    dynamics.run(fmax=fmax, steps=steps)
    return int(dynamics.nsteps)


def _optimizer_class(optimizer: Union[str, type[Optimizer]]) -> type[Optimizer]:
    if not isinstance(optimizer, str):
        return optimizer
    import ase.optimize

    if optimizer not in ASE_OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {ASE_OPTIMIZERS} or an ASE Optimizer class, got {optimizer!r}")
    return getattr(ase.optimize, optimizer)


def _optimize_scipy(
    work: Atoms, calc: BaseCalculator, targets: list[InternalCoordinate], fixed: np.ndarray, *, fmax: float, steps: int
) -> int:
    """trust-constr from the current positions, then an exact projection; restarted (within ``steps``
    iterations) while the projected structure is above ``fmax``."""
    from scipy.optimize import BFGS, NonlinearConstraint, minimize

    free = ~fixed
    work.set_constraint()  # fixed atoms are simply not variables
    work.calc = calc

    def place(x: np.ndarray) -> None:
        if not np.array_equal(work.positions[free].ravel(), x):
            positions = work.positions.copy()
            positions[free] = x.reshape(-1, 3)
            work.set_positions(positions)

    def energy_and_gradient(x: np.ndarray) -> tuple[float, np.ndarray]:
        place(x)
        return work.get_potential_energy(), -work.get_forces()[free].ravel()

    def values(x: np.ndarray) -> np.ndarray:
        place(x)
        return constraint_errors(work, targets)

    def gradients(x: np.ndarray) -> np.ndarray:
        place(x)
        return jacobian(work, targets)[:, free, :].reshape(len(targets), -1)

    # The constraints' Hessians are approximated by BFGS from a unit initial scale (rad/Å², the order of
    # a dihedral's curvature). SciPy's default "auto" scale is taken from the first step; when that step
    # hardly changes the constraint gradients (measured: a symmetric butane at 180°) it comes out ~1e12
    # and trust-constr stalls with steps of 1e-13 Å.
    constraint_hessian = BFGS(init_scale=1.0)
    constraints = [NonlinearConstraint(values, 0.0, 0.0, jac=gradients, hess=constraint_hessian)] if targets else []
    # trust-constr stops when the infinity norm of the Lagrangian gradient (per Cartesian component)
    # and the constraint violation are below gtol; a per-atom norm below fmax needs components below
    # fmax/√3. Half of that leaves room for the final projection onto the constraints.
    gtol = 0.5 * fmax / math.sqrt(3.0)
    iterations = 0
    for _ in range(4):
        if iterations >= steps:
            break
        result = minimize(
            energy_and_gradient,
            work.positions[free].ravel(),
            jac=True,
            hess=BFGS(),
            method="trust-constr",
            constraints=constraints,
            options={"gtol": gtol, "xtol": 1e-10, "maxiter": steps - iterations, "initial_tr_radius": 0.1},
        )
        iterations += int(result.nit)
        place(result.x)
        _project_onto_constraints(work, targets, free)
        if max_force(constrained_forces(work, work.get_forces(), targets, fixed)) <= fmax:
            break
    return iterations


def _project_onto_constraints(
    work: Atoms, targets: list[InternalCoordinate], free: np.ndarray, tol: float = 1e-10, max_iterations: int = 50
) -> None:
    """Smallest change of the free positions that satisfies every constraint (Gauss–Newton)."""
    for _ in range(max_iterations):
        errors = constraint_errors(work, targets)
        if not len(errors) or np.abs(errors).max() < tol:
            return
        rows = jacobian(work, targets)[:, free, :].reshape(len(targets), -1)
        step = np.linalg.lstsq(rows, errors, rcond=None)[0]
        positions = work.positions.copy()
        positions[free] -= step.reshape(-1, 3)
        work.set_positions(positions)


def _result(
    work: Atoms,
    calc: BaseCalculator,
    targets: list[InternalCoordinate],
    fixed: np.ndarray,
    fmax: float,
    constraint_tol: float,
    steps: int,
    backend: str,
) -> OptimizationResult:
    work.calc = calc
    energy = work.get_potential_energy()
    raw_forces = work.get_forces(apply_constraint=False)
    reached_fmax = max_force(constrained_forces(work, raw_forces, targets, fixed))
    errors = constraint_errors(work, targets)
    worst = float(np.abs(errors).max()) if len(errors) else 0.0
    converged = reached_fmax <= fmax and worst <= constraint_tol
    if converged:
        message = f"converged in {steps} steps: fmax {reached_fmax:.2e} eV/Å"
    else:
        reasons = []
        if reached_fmax > fmax:
            reasons.append(f"fmax {reached_fmax:.3g} eV/Å > {fmax:g}")
        if worst > constraint_tol:
            reasons.append(f"a constraint is {worst:.3g} off its target (> {constraint_tol:g} rad or Å)")
        message = f"did not converge in {steps} steps ({backend} back-end): {'; '.join(reasons)}"
    final = work.copy()
    final.set_constraint(FixAtoms(mask=fixed) if fixed.any() else None)
    final.calc = SinglePointCalculator(final, energy=energy, forces=raw_forces)
    keep_uncertainty(final, calc)
    return OptimizationResult(
        atoms=final,
        energy=float(energy),
        fmax=reached_fmax,
        constraint_errors=errors,
        converged=converged,
        steps=steps,
        backend=backend,
        message=message,
        constraints=list(targets),
    )
