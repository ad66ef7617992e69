"""Nudged elastic band with ASE's ``DyNEB``/``NEB``, every band evaluated in one model call.

The band, tangents (improved tangent by default), climbing image, dynamic relaxation (DyNEB), IDPP
interpolation and optimisers are ASE's own, unchanged. :class:`~mlcalc.workflows.band.BandCalculator`
only changes how images get their energies and forces: all images that moved since the last
evaluation go through the calculator together (one ``calculate_batch`` call for an
:class:`mlcalc.MLCalculator`), and each image's results are cached.

Outputs (``write``): ``neb.extxyz`` (the band with energies and forces), ``neb.json`` and ``neb.csv``
(reaction coordinate, energies, barrier in eV and kcal/mol), ``neb.png`` (ASE's band plot).
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np
from ase import Atoms
from ase.calculators.calculator import BaseCalculator
from ase.calculators.singlepoint import SinglePointCalculator
from ase.mep import DyNEB
from ase.optimize.optimize import Optimizer

from mlcalc.files import PathLike, write_csv_atomic, write_json_atomic
from mlcalc.units import EV_TO_KCAL_MOL
from mlcalc.workflows.band import BandCalculator
from mlcalc.workflows.endpoints import bond_changes, check_same_atoms, prepare_endpoint
from mlcalc.workflows.fragments import check_no_clash
from mlcalc.workflows.output import keep_uncertainty, write_images_atomic
from mlcalc.workflows.plotting import plot_neb
from mlcalc.workflows.profile import EnergyProfile

NEB_OPTIMIZERS = ("FIRE", "BFGS", "LBFGS", "MDMin", "FIRE2")
INTERPOLATIONS = ("idpp", "linear")


@dataclass
class NEBResult(EnergyProfile):
    """Outcome of :func:`run_neb`.

    Attributes:
        images: the band, initial and final structures included, each with a ``SinglePointCalculator``
            holding its energy (eV) and forces (eV/Å).
        converged: True when the NEB forces fell below ``fmax`` within ``steps``.
        fmax: largest NEB force on an image at the end, eV/Å.
        steps: optimiser iterations.
        band_evaluations: NEB force evaluations (``get_forces`` calls of the band).
        calculator_calls: calls to the calculator (batched: one per band evaluation that moved anything).
    """

    images: list[Atoms]
    converged: bool
    fmax: float
    steps: int
    band_evaluations: int
    calculator_calls: int

    @property
    def reverse_barrier(self) -> float:
        """Highest image minus the final structure, eV."""
        energies = self.energies
        return float(energies.max() - energies[-1])

    @property
    def reaction_coordinate(self) -> np.ndarray:
        """Cumulative distance along the band (Å), as ASE's ``fit_images`` measures it."""
        from ase.utils.forcecurve import fit_images

        return np.asarray(fit_images(self.images).path)

    def rows(self) -> list[dict]:
        energies = self.energies
        relative = energies - energies[0]
        rows = [
            {
                "image": n,
                "reaction_coordinate_A": s,
                "energy_eV": e,
                "relative_eV": r,
                "relative_kcal_mol": r * EV_TO_KCAL_MOL,
            }
            for n, (s, e, r) in enumerate(zip(self.reaction_coordinate, energies, relative))
        ]
        return self.add_uncertainty(rows)

    def write(self, directory: PathLike) -> Path:
        """Write ``neb.extxyz``, ``neb.csv``, ``neb.json`` and ``neb.png`` into ``directory``."""
        directory = Path(directory)
        rows = self.rows()
        write_images_atomic(directory / "neb.extxyz", self.images)
        write_csv_atomic(directory / "neb.csv", list(rows[0]), rows, digits=10)
        write_json_atomic(
            directory / "neb.json",
            {
                "barrier_eV": self.barrier,
                "barrier_kcal_mol": self.barrier * EV_TO_KCAL_MOL,
                "reverse_barrier_eV": self.reverse_barrier,
                "reaction_energy_eV": float(self.energies[-1] - self.energies[0]),
                "converged": self.converged,
                "fmax_eV_per_A": self.fmax,
                "steps": self.steps,
                "band_evaluations": self.band_evaluations,
                "calculator_calls": self.calculator_calls,
                "images": rows,
            },
        )
        plot_neb(self.images, self.converged, directory / "neb.png", uncertainty_eV=self.uncertainties)
        return directory


def make_band(
    initial: Atoms,
    final: Atoms,
    n_images: int = 7,
    *,
    interpolation: str = "idpp",
    mic: Optional[bool] = None,
) -> list[Atoms]:
    """``n_images`` interior images between copies of ``initial`` and ``final``, interpolated
    linearly or by ASE's IDPP (image-dependent pair potential), minimum image in periodic cells."""
    from ase.mep import NEB, idpp_interpolate, interpolate

    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
    if n_images < 1:
        raise ValueError(f"a band needs at least one interior image, got n_images={n_images}")
    check_same_atoms(initial, final)
    check_no_clash(initial, "initial")
    check_no_clash(final, "final")
    changes = bond_changes(initial, final)
    if changes:
        warnings.warn(
            f"the endpoints are bonded differently ({changes}; 0-based indices): right for a reaction, but for a "
            "change of conformation the final structure's atoms are in another order, and the band would pull "
            "atoms through each other: put them in the initial's order",
            stacklevel=2,
        )
    mic = bool(initial.pbc.any()) if mic is None else mic
    images = [initial.copy() for _ in range(n_images + 1)] + [final.copy()]
    for image in images:
        image.calc = None
    interpolate(images, mic=mic, apply_constraint=False)
    if interpolation == "idpp":
        # an NEB object with its method named: a plain list makes ASE warn about its default method
        idpp_interpolate(NEB(images, method="improvedtangent"), traj=None, log=None, mic=mic)
    return images


def run_neb(
    images: Sequence[Atoms],
    calc: BaseCalculator,
    *,
    climb: bool = True,
    method: str = "improvedtangent",
    k: float = 0.1,
    dynamic: bool = False,
    fmax: float = 0.01,
    steps: int = 1000,
    optimizer: Union[str, type[Optimizer]] = "FIRE",
    logfile: Optional[str] = None,
    output: Optional[PathLike] = None,
    relax_endpoints: bool = True,
    progress: bool = False,
) -> NEBResult:
    """Relax a band with ASE's NEB, evaluating every band in one calculator call.

    Args:
        images: the starting band, endpoints included (see :func:`make_band`, or the images of a
            dihedral-driven path). Copies are relaxed; the inputs are not modified.
        calc: any ASE calculator; an :class:`mlcalc.MLCalculator` evaluates the band in one batch.
        climb: climbing image (the highest image climbs to the saddle point).
        method: ASE's NEB method (``"improvedtangent"``, ``"aseneb"``, ``"eb"``, ``"spline"``, ``"string"``).
        k: spring constant, eV/Å².
        dynamic: ASE's DyNEB dynamic relaxation (images already below ``fmax`` are not moved).
        fmax: force tolerance of the NEB forces, eV/Å. The default, 0.01, brings the climbing image to
            the saddle point (at 0.05 its energy is still falling: 0.08 kcal/mol short for butane).
        steps: maximum optimiser iterations.
        optimizer: an ASE optimiser name or class.
        logfile: optimiser log (``"-"`` for stdout).
        output: directory to write the band, table and plot into (see the module docstring).
        relax_endpoints: relax an endpoint whose largest force is above ``fmax`` to its minimum (the
            interior images stay); ``False`` refuses such an endpoint instead. See
            :mod:`mlcalc.workflows.endpoints`.
        progress: show a progress bar on stderr (optimiser steps, with the band's largest force).

    Returns:
        A :class:`NEBResult`; check ``converged``.
    """
    import ase.optimize

    if len(images) < 3:
        raise ValueError(f"a band needs the two endpoints and at least one image, got {len(images)} structures")
    check_same_atoms(images[0], images[-1])
    if isinstance(optimizer, str) and optimizer not in NEB_OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {NEB_OPTIMIZERS} or an ASE Optimizer class, got {optimizer!r}")
    optimizer_class: type[Optimizer] = getattr(ase.optimize, optimizer) if isinstance(optimizer, str) else optimizer
    band = [image.copy() for image in images]
    evaluator = BandCalculator(calc, band)
    # the first band evaluation (every image in one call) gives the endpoints' forces
    for position, name in ((0, "initial"), (-1, "final")):
        forces = band[position].get_forces()
        endpoint = prepare_endpoint(
            band[position], calc, name=name, relax=relax_endpoints, fmax=fmax, steps=steps, forces=forces
        )
        if endpoint.info["relaxation_eV"] != 0.0:
            band[position].positions = endpoint.positions
        band[position].info.update(endpoint.info)
    neb = DyNEB(
        band, k=k, climb=climb, method=method, dynamic_relaxation=dynamic, fmax=fmax, scale_fmax=1.0 if dynamic else 0.0
    )
    uncounted_forces = neb.get_forces
    evaluations = _count_calls(neb)
    dynamics = optimizer_class(neb, logfile=logfile)  # type: ignore[arg-type]  # ASE optimises NEB objects too
    bar = _progress_bar(dynamics, uncounted_forces, steps, fmax) if progress else None
    try:
        converged = bool(dynamics.run(fmax=fmax, steps=steps))
    finally:
        if bar is not None:
            bar.close()
    band_evaluations = evaluations[0]
    forces = neb.get_forces()  # cached: no calculator call
    final_fmax = float(np.sqrt((forces**2).sum(axis=1)).max())
    frozen = []
    for image in band:
        copy = image.copy()
        energy, forces = image.get_potential_energy(), image.get_forces(apply_constraint=False)
        copy.calc = SinglePointCalculator(copy, energy=energy, forces=forces)
        keep_uncertainty(copy, image.calc)
        frozen.append(copy)
    result = NEBResult(
        images=frozen,
        converged=converged,
        fmax=final_fmax,
        steps=int(dynamics.nsteps),
        band_evaluations=band_evaluations,
        calculator_calls=evaluator.calls,
    )
    if output is not None:
        result.write(output)
    return result


def _progress_bar(dynamics: Optimizer, band_forces: Callable[[], np.ndarray], steps: int, fmax: float):
    """A tqdm bar over the optimiser's steps (at most ``steps``), showing the band's largest force
    (``band_forces``: the NEB's, cached after each step, so no model call)."""
    from tqdm.auto import tqdm

    bar = tqdm(total=steps, desc="NEB", unit="step", file=sys.stderr, leave=True)

    def update() -> None:
        largest = float(np.sqrt((band_forces() ** 2).sum(axis=1)).max())
        bar.set_postfix_str(f"fmax {largest:.3g} → {fmax:g} eV/Å", refresh=False)
        bar.update(1)

    dynamics.attach(update, interval=1)
    return bar


def _count_calls(neb: DyNEB) -> list[int]:
    """Count ``neb.get_forces`` calls (in a one-element list that the wrapper updates)."""
    count = [0]
    original = neb.get_forces

    def get_forces():
        count[0] += 1
        return original()

    neb.get_forces = get_forces  # type: ignore[method-assign]
    return count
