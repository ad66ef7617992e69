"""Per-atom RMSF, radius of gyration and interatomic-distance distributions (seed 001)."""

from __future__ import annotations

from typing import Optional

import numpy as np
from MDAnalysis.analysis import align
from MDAnalysis.analysis.rms import RMSF
from MDAnalysis.lib.distances import self_distance_array


def rmsf(atomgroup, superpose: bool = True) -> np.ndarray:
    """Root-mean-square fluctuation of each atom about its mean position, in Å.

    With ``superpose`` the frames are first fitted (rotation and translation) onto the average
    structure with MDAnalysis's ``AlignTraj`` (in memory; the files are not touched), so that
    tumbling of the molecule is not counted as fluctuation.
    """
    universe = atomgroup.universe
    if superpose:
        # AlignTraj needs a reference: the average structure, as MDAnalysis's RMSF recipe does.
        average = align.AverageStructure(universe, select=_indices_selection(atomgroup), ref_frame=0).run()
        universe = universe.copy()
        align.AlignTraj(universe, average.results.universe, select=_indices_selection(atomgroup), in_memory=True).run()
        atomgroup = universe.atoms[atomgroup.indices]
    return np.asarray(RMSF(atomgroup).run().results.rmsf, dtype=float)


def _indices_selection(atomgroup) -> str:
    return "index " + " ".join(str(i) for i in atomgroup.indices)


def radius_of_gyration(atomgroup) -> np.ndarray:
    """Mass-weighted radius of gyration of ``atomgroup`` in each frame, in Å."""
    return np.array([atomgroup.radius_of_gyration() for _ in atomgroup.universe.trajectory])


def distance_histogram(
    atomgroup, bins: int = 100, range_: Optional[tuple[float, float]] = None, periodic: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Normalised distribution of all interatomic distances within ``atomgroup`` over all frames.

    Returns (bin centres in Å, probability density in 1/Å). ``periodic`` uses minimum-image distances.
    """
    distances = []
    for timestep in atomgroup.universe.trajectory:
        box = timestep.dimensions if periodic else None
        distances.append(self_distance_array(atomgroup.positions, box=box))
    values = np.concatenate(distances)
    density, edges = np.histogram(values, bins=bins, range=range_, density=True)
    return 0.5 * (edges[1:] + edges[:-1]), density
