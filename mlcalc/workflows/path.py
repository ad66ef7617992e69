"""Dihedral-driven reaction paths (Philip, Zhou & Nebgen, arXiv:2211.07181, eqs. 8–11).

From an initial structure C_i and a final structure C_f, a guiding dihedral D is driven from
θ_i = D(C_i) to θ_f = D(C_f) through I intermediates, θ_n = θ_i + n α Δθ with α = 1/(I + 1) and
Δθ = θ_f − θ_i (the shorter way round unless asked otherwise). Intermediate n is the constrained
minimum with D = θ_n, optimised from intermediate n − 1. Optionally a second (adjacent) dihedral is
driven along with it from its initial to its final value, to force the molecule through the
transition; each intermediate is then re-optimised with only the guiding dihedral fixed.

Output: the path (initial structure, intermediates, final structure) with energies, the barrier
(highest point minus the initial structure, eV and kcal/mol), the profile (CSV/JSON/PNG), the
structures (extxyz), and :func:`path_rmsd` to compare two paths (Philip et al., Fig. 5). Resumable like
a scan: completed optimisations are checkpointed in ``output``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
from ase import Atoms
from ase.build import minimize_rotation_and_translation
from ase.calculators.calculator import BaseCalculator
from ase.calculators.singlepoint import SinglePointCalculator
from ase.optimize.optimize import Optimizer

from mlcalc.errors import InvalidStructureError
from mlcalc.files import PathLike, write_csv_atomic, write_json_atomic
from mlcalc.units import EV_TO_KCAL_MOL
from mlcalc.workflows.endpoints import bond_changes, check_same_atoms, prepare_endpoint
from mlcalc.workflows.fragments import check_dihedrals_in_one_molecule, check_no_clash
from mlcalc.workflows.internal import Dihedral, check_coordinates, wrap
from mlcalc.workflows.output import Checkpoint, keep_uncertainty, write_images_atomic
from mlcalc.workflows.plotting import plot_path
from mlcalc.workflows.profile import EnergyProfile
from mlcalc.workflows.scan import parameters_record
from mlcalc.workflows.series import Step, StepResult, run_series

DIRECTIONS = ("shortest", "increasing", "decreasing")


@dataclass
class PathResult(EnergyProfile):
    """Outcome of :func:`dihedral_path`.

    Attributes:
        guide: the guiding dihedral.
        images: initial structure, intermediates, final structure, each with a ``SinglePointCalculator``
            (energy in eV, forces in eV/Å) and ``info["guide_deg"]``.
        guide_values: the guiding dihedral of each image, degrees, unwrapped along the path.
        converged_images: per image, whether its optimisation converged (endpoints: their own check).
        intermediates: the :class:`StepResult` of each final intermediate optimisation.
    """

    guide: Dihedral
    images: list[Atoms]
    guide_values: list[float]
    converged_images: list[bool]
    intermediates: list[StepResult]

    @property
    def converged(self) -> bool:
        """True when every intermediate converged."""
        return all(self.converged_images)

    def rows(self) -> list[dict]:
        energies = self.energies
        relative = energies - energies[0]
        rows = [
            {
                "image": n,
                "guide_deg": theta,
                "energy_eV": e,
                "relative_eV": r,
                "relative_kcal_mol": r * EV_TO_KCAL_MOL,
                "converged": ok,
            }
            for n, (theta, e, r, ok) in enumerate(zip(self.guide_values, energies, relative, self.converged_images))
        ]
        return self.add_uncertainty(rows)

    def write(self, directory: PathLike) -> Path:
        """Write ``path.csv``, ``path.json``, ``path.extxyz`` and ``path.png`` into ``directory``."""
        directory = Path(directory)
        rows = self.rows()
        write_csv_atomic(directory / "path.csv", list(rows[0]), rows, digits=10)
        write_json_atomic(
            directory / "path.json",
            {
                "guide": self.guide.name,
                "barrier_eV": self.barrier,
                "barrier_kcal_mol": self.barrier * EV_TO_KCAL_MOL,
                "converged": self.converged,
                "images": rows,
            },
        )
        write_images_atomic(directory / "path.extxyz", self.images)
        relative = (np.asarray(self.energies) - self.energies[0]) * EV_TO_KCAL_MOL
        plot_path(
            self.guide_values,
            relative,
            self.converged_images,
            self.guide.axis_label,
            self.barrier * EV_TO_KCAL_MOL,
            directory / "path.png",
            uncertainty_kcal_mol=None if self.uncertainties is None else self.uncertainties * EV_TO_KCAL_MOL,
        )
        return directory


def driven_targets(theta_initial: float, theta_final: float, n_intermediates: int, direction: str) -> list[float]:
    """θ_n = θ_i + n α Δθ for n = 1..I, α = 1/(I + 1) (degrees, unwrapped). ``direction``: ``"shortest"``
    (Δθ wrapped into [−180°, 180°)), ``"increasing"`` (Δθ in (0°, 360°]) or ``"decreasing"``."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    delta = wrap(theta_final - theta_initial)
    if direction == "increasing" and delta <= 0:
        delta += 360.0
    elif direction == "decreasing" and delta >= 0:
        delta -= 360.0
    alpha = 1.0 / (n_intermediates + 1)
    return [theta_initial + n * alpha * delta for n in range(1, n_intermediates + 1)]


def dihedral_path(
    initial: Atoms,
    final: Atoms,
    calc: BaseCalculator,
    guide: Dihedral,
    n_intermediates: int = 19,
    *,
    partner: Optional[Dihedral] = None,
    direction: str = "shortest",
    backend: str = "scipy",
    fmax: float = 0.01,
    steps: int = 500,
    optimizer: Union[str, type[Optimizer]] = "BFGS",
    output: Optional[PathLike] = None,
    resume: bool = True,
    progress: bool = False,
    relax_endpoints: bool = True,
) -> PathResult:
    """Drive ``guide`` from its value in ``initial`` to its value in ``final`` (Philip et al., eqs. 8–11).

    Args:
        initial, final: the endpoint structures (same atoms, same order). Each is relaxed to a minimum
            of ``calc`` unless its largest force is already below ``fmax`` (see
            :mod:`mlcalc.workflows.endpoints`); the barrier is measured from the relaxed initial structure.
        calc: any ASE calculator.
        guide: the guiding dihedral (0-based indices; leave ``target`` unset).
        n_intermediates: I, the number of intermediates (α = 1/(I + 1)).
        partner: a second dihedral driven from its initial to its final value along with the guide;
            each intermediate is then re-optimised with only the guide fixed.
        direction: ``"shortest"``, ``"increasing"`` or ``"decreasing"`` way from θ_i to θ_f.
        backend: ``"scipy"`` (trust-constr, as in Philip et al.) or ``"ase"``.
        fmax, steps, optimizer: as for :func:`mlcalc.workflows.optimize` (eV/Å).
        output: directory for the outputs and checkpoint (``None``: nothing written, no resuming).
        resume: continue from the checkpoint in ``output``.
        progress: show a progress bar.
        relax_endpoints: ``False`` uses the endpoints as given and refuses one that is not a minimum.
    """
    check_same_atoms(initial, final)
    check_no_clash(initial, "initial")
    check_no_clash(final, "final")
    changes = bond_changes(initial, final)
    if changes:
        raise InvalidStructureError(
            f"the initial and final structures are bonded differently ({changes}; 0-based indices): a "
            "dihedral-driven path changes a conformation, not bonds. Put the final structure's atoms in the "
            "initial's order (atoms of one element swapped?), or use an NEB for a reaction"
        )
    if n_intermediates < 1:
        raise ValueError(f"n_intermediates must be at least 1 (--intermediates), got {n_intermediates}")
    if not isinstance(guide, Dihedral) or (partner is not None and not isinstance(partner, Dihedral)):
        raise TypeError("the guide (and partner) of a dihedral-driven path must be Dihedral objects")
    if guide.target is not None or (partner is not None and partner.target is not None):
        raise ValueError("the driven dihedrals take their targets from the endpoints: leave target unset")
    coordinates = [guide] if partner is None else [guide, partner]
    for structure in (initial, final):
        check_coordinates(structure, coordinates)
        check_dihedrals_in_one_molecule(structure, coordinates)
    initial, final = (
        prepare_endpoint(structure, calc, name=name, relax=relax_endpoints, fmax=fmax, steps=max(steps, 1000))
        for structure, name in ((initial, "initial"), (final, "final"))
    )
    targets = [driven_targets(c.value(initial), c.value(final), n_intermediates, direction) for c in coordinates]
    plan = [
        Step(targets={i: t[n] for i, t in enumerate(targets)}, start="initial" if n == 0 else n - 1, tag="driven")
        for n in range(n_intermediates)
    ]
    if partner is not None:  # re-optimise each with only the guide fixed
        plan += [Step(targets={0: targets[0][n]}, start=n, tag="relaxed") for n in range(n_intermediates)]
    options: dict[str, Any] = dict(backend=backend, fmax=fmax, steps=steps, optimizer=optimizer)
    checkpoint = None
    if output is not None:
        parameters = parameters_record("dihedral_path", initial, calc, coordinates, [], plan, options)
        parameters["final"] = parameters_record("", final, calc, [], [], [], {})["structure"]
        checkpoint = Checkpoint(Path(output) / "checkpoint", parameters, resume=resume)
    results = run_series(
        {"initial": initial},
        calc,
        coordinates,
        plan,
        checkpoint=checkpoint,
        progress=progress,
        description="dihedral-driven path",
        **options,
    )
    chosen = results[-n_intermediates:]
    endpoints = [_evaluate(initial, calc), _evaluate(final, calc)]
    images = [endpoints[0], *[r.atoms for r in chosen], endpoints[1]]
    theta_initial = guide.value(initial)
    theta_final = theta_initial + (targets[0][0] - theta_initial) * (n_intermediates + 1)  # θ_i + Δθ, unwrapped
    guide_values = [theta_initial, *targets[0], theta_final]
    converged = [True, *[r.converged for r in chosen], True]
    for image, theta in zip(images, guide_values):
        image.info["guide_deg"] = theta
    result = PathResult(guide, images, guide_values, converged, chosen)
    if output is not None:
        result.write(output)
    return result


def _evaluate(atoms: Atoms, calc: BaseCalculator) -> Atoms:
    """A copy of ``atoms`` with a ``SinglePointCalculator`` holding ``calc``'s energy and forces."""
    work = atoms.copy()
    work.calc = calc
    energy, forces = work.get_potential_energy(), work.get_forces(apply_constraint=False)
    copy = atoms.copy()
    copy.calc = SinglePointCalculator(copy, energy=energy, forces=forces)
    return keep_uncertainty(copy, calc)


def path_rmsd(images_a: Sequence[Atoms], images_b: Sequence[Atoms]) -> np.ndarray:
    """Root-mean-square distance (Å) between corresponding images of two paths after the optimal
    rotation and translation (ASE's ``minimize_rotation_and_translation``), as in Philip et al.'s Fig. 5."""
    if len(images_a) != len(images_b):
        raise ValueError(
            f"the paths have different numbers of images ({len(images_a)} and {len(images_b)}): compare paths with "
            "the same number of intermediates"
        )
    values = []
    for a, b in zip(images_a, images_b):
        if len(a) != len(b) or (a.numbers != b.numbers).any():
            raise ValueError(
                "corresponding images must have the same atoms in the same order: compare paths of the same molecule"
            )
        moved = b.copy()
        minimize_rotation_and_translation(a, moved)
        values.append(float(np.sqrt(((moved.positions - a.positions) ** 2).sum(axis=1).mean())))
    return np.array(values)
