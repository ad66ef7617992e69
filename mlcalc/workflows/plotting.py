"""PNG plots of scans, paths and NEB bands (matplotlib's object API: no pyplot state, no display needed).

The functions take plain arrays, not the result classes: results import this module, never the reverse.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from ase import Atoms

from mlcalc.files import PathLike, write_atomic


def _figure(size=(6.0, 4.0)):
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, layout="constrained")
    return figure, figure.add_subplot()


def _save(figure, path: PathLike) -> Path:
    return write_atomic(path, lambda tmp: figure.savefig(tmp, format="png", dpi=150))


def _mark_unconverged(axes, x: np.ndarray, y: np.ndarray, converged: Sequence[bool]) -> None:
    bad = ~np.asarray(converged, dtype=bool)
    if bad.any():
        axes.plot(x[bad], y[bad], "x", color="red", markersize=9, label="not converged")


def plot_scan(
    targets: np.ndarray,
    relative_kcal_mol: np.ndarray,
    converged: Sequence[bool],
    tags: Sequence[str],
    axis_labels: Sequence[str],
    path: PathLike,
    *,
    degrees: bool = True,
    uncertainty_kcal_mol: Optional[np.ndarray] = None,
) -> Path:
    """Profile (1D: relative energy against the scanned value, each direction a line) or energy map (2D).

    Args:
        targets: ``(n_points, n_coordinates)`` scanned values (degrees or Å).
        relative_kcal_mol: ``(n_points,)`` energies relative to the lowest converged point.
        converged: per point; unconverged points get a red cross.
        tags: per point, ``"forward"`` or ``"backward"`` (1D scans in both directions).
        axis_labels: one per coordinate.
        degrees: the first coordinate is an angle (ticks every 60°).
        uncertainty_kcal_mol: ``(n_points,)`` a committee's energy spread, drawn as a band of ±1σ (1D).
    """
    relative = np.asarray(relative_kcal_mol)
    if len(axis_labels) == 1:
        figure, axes = _figure()
        for tag, style in (("forward", "o-"), ("backward", "s--")):
            chosen = np.array([t == tag for t in tags])
            if chosen.any():
                order = np.argsort(targets[chosen, 0], kind="stable")
                x, y = targets[chosen, 0][order], relative[chosen][order]
                line = axes.plot(x, y, style, label=tag, markersize=4)[0]
                if uncertainty_kcal_mol is not None:
                    sigma = np.asarray(uncertainty_kcal_mol)[chosen][order]
                    axes.fill_between(x, y - sigma, y + sigma, color=line.get_color(), alpha=0.2, linewidth=0)
        _mark_unconverged(axes, targets[:, 0], relative, converged)
        axes.set_xlabel(axis_labels[0])
        axes.set_ylabel("relative energy (kcal/mol)")
        if degrees and np.ptp(targets[:, 0]) > 180:
            axes.set_xticks(np.arange(np.floor(targets[:, 0].min() / 60) * 60, targets[:, 0].max() + 1, 60))
        axes.legend(frameon=False)
        axes.set_title("relaxed scan")
        return _save(figure, path)
    figure, axes = _figure((6.0, 5.0))
    grid1 = np.unique(targets[:, 0])
    grid2 = np.unique(targets[:, 1])
    energy = np.full((len(grid2), len(grid1)), np.nan)
    for (a, b), e in zip(targets, relative):
        i, j = np.searchsorted(grid2, b), np.searchsorted(grid1, a)
        energy[i, j] = e if np.isnan(energy[i, j]) else min(energy[i, j], e)
    mesh = axes.pcolormesh(grid1, grid2, energy, shading="nearest", cmap="viridis")
    figure.colorbar(mesh, ax=axes, label="relative energy (kcal/mol)")
    _mark_unconverged(axes, targets[:, 0], targets[:, 1], converged)
    axes.set_xlabel(axis_labels[0])
    axes.set_ylabel(axis_labels[1])
    axes.set_title("relaxed 2D scan")
    return _save(figure, path)


def plot_path(
    guide_values: Sequence[float],
    relative_kcal_mol: Sequence[float],
    converged: Sequence[bool],
    axis_label: str,
    barrier_kcal_mol: float,
    path: PathLike,
    *,
    uncertainty_kcal_mol: Optional[np.ndarray] = None,
) -> Path:
    """Energy relative to the initial structure (kcal/mol) along a dihedral-driven path against the guiding
    dihedral (degrees); a committee's spread as a band of ±1σ."""
    figure, axes = _figure()
    x = np.asarray(guide_values)
    y = np.asarray(relative_kcal_mol)
    line = axes.plot(x, y, "o-", markersize=4)[0]
    if uncertainty_kcal_mol is not None:
        sigma = np.asarray(uncertainty_kcal_mol)
        axes.fill_between(x, y - sigma, y + sigma, color=line.get_color(), alpha=0.2, linewidth=0, label="±1σ")
    _mark_unconverged(axes, x, y, converged)
    axes.set_xlabel(axis_label)
    axes.set_ylabel("energy relative to the initial structure (kcal/mol)")
    axes.set_title(f"dihedral-driven path: barrier {barrier_kcal_mol:.2f} kcal/mol")
    if not all(converged) or uncertainty_kcal_mol is not None:
        axes.legend(frameon=False)
    return _save(figure, path)


def plot_neb(
    images: Sequence[Atoms], converged: bool, path: PathLike, *, uncertainty_eV: Optional[np.ndarray] = None
) -> Path:
    """ASE's NEB band plot of ``images`` (with their energies and forces): energies against the reaction
    coordinate, with ASE's force-based spline; a committee's spread as a band of ±1σ (eV)."""
    from ase.mep import NEBTools
    from ase.utils.forcecurve import fit_images

    figure, axes = _figure()
    tools = NEBTools(list(images))
    tools.plot_band(ax=axes)
    if uncertainty_eV is not None:
        fit = fit_images(list(images))  # the image positions (Å) and energies (eV, relative) ASE plots
        sigma = np.asarray(uncertainty_eV)
        axes.fill_between(fit.path, fit.energies - sigma, fit.energies + sigma, alpha=0.2, linewidth=0)
    axes.set_title(("" if converged else "NOT CONVERGED: ") + axes.get_title())
    return _save(figure, path)
