"""PNG plots of scans, paths and NEB bands (matplotlib's object API: no pyplot state, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from mlcalc.workflows.output import PathLike, write_atomic

if TYPE_CHECKING:
    from mlcalc.workflows.neb import NEBResult
    from mlcalc.workflows.path import PathResult
    from mlcalc.workflows.scan import ScanResult


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


def plot_scan(result: "ScanResult", path: PathLike) -> Path:
    """Profile (1D: relative energy against the scanned value, each direction a line) or energy map (2D)."""
    from mlcalc.workflows.units import EV_TO_KCAL_MOL

    coordinates = result.coordinates
    relative = result.relative_energies * EV_TO_KCAL_MOL
    targets = result.targets
    converged = [p.converged for p in result.points]
    if len(coordinates) == 1:
        figure, axes = _figure()
        tags = [p.step.tag for p in result.points]
        for tag, style in (("forward", "o-"), ("backward", "s--")):
            chosen = np.array([t == tag for t in tags])
            if chosen.any():
                order = np.argsort(targets[chosen, 0], kind="stable")
                axes.plot(targets[chosen, 0][order], relative[chosen][order], style, label=tag, markersize=4)
        _mark_unconverged(axes, targets[:, 0], relative, converged)
        axes.set_xlabel(coordinates[0].axis_label)
        axes.set_ylabel("relative energy (kcal/mol)")
        if coordinates[0].unit == "deg" and np.ptp(targets[:, 0]) > 180:
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
    axes.set_xlabel(coordinates[0].axis_label)
    axes.set_ylabel(coordinates[1].axis_label)
    axes.set_title("relaxed 2D scan")
    return _save(figure, path)


def plot_path(result: "PathResult", path: PathLike) -> Path:
    """Relative energy (kcal/mol) along a dihedral-driven path against the guiding dihedral."""
    from mlcalc.workflows.units import EV_TO_KCAL_MOL

    figure, axes = _figure()
    x = np.asarray(result.guide_values)
    y = (np.asarray(result.energies) - result.energies[0]) * EV_TO_KCAL_MOL
    axes.plot(x, y, "o-", markersize=4)
    _mark_unconverged(axes, x, y, result.converged_images)
    axes.set_xlabel(result.guide.axis_label)
    axes.set_ylabel("energy relative to the initial structure (kcal/mol)")
    axes.set_title(f"dihedral-driven path: barrier {result.barrier * EV_TO_KCAL_MOL:.2f} kcal/mol")
    if (~np.asarray(result.converged_images)).any():
        axes.legend(frameon=False)
    return _save(figure, path)


def plot_neb(result: "NEBResult", path: PathLike) -> Path:
    """ASE's NEB band plot (energies against the reaction coordinate, with ASE's force-based spline)."""
    from ase.mep import NEBTools

    figure, axes = _figure()
    NEBTools(result.images).plot_band(ax=axes)
    axes.set_title(("" if result.converged else "NOT CONVERGED: ") + axes.get_title())
    return _save(figure, path)
