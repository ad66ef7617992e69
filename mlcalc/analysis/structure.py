"""Per-atom RMSF, radius of gyration and interatomic-distance distributions (as in Tölkes's nanomotor study, 2025)."""

from __future__ import annotations

from typing import Optional

import numpy as np
from MDAnalysis.analysis import align
from MDAnalysis.analysis.rms import RMSF
from MDAnalysis.lib.distances import self_distance_array


def rmsf(atomgroup, superpose: bool = True) -> np.ndarray:
    """Root-mean-square fluctuation of each atom about its mean position, in Å.

    With ``superpose`` the frames are first fitted (rotation and translation) onto the average
    structure with MDAnalysis's ``AverageStructure`` and ``AlignTraj``, as MDAnalysis's RMSF recipe
    does, so that tumbling of the molecule is not counted as fluctuation. The fit works on an
    in-memory copy of the group's coordinates as the trajectory gives them (after its transformations,
    e.g. :func:`mlcalc.analysis.report.make_whole`); the files are not touched.
    """
    if superpose:
        import MDAnalysis
        from MDAnalysis.coordinates.memory import MemoryReader

        frames = np.array([atomgroup.positions.copy() for _ in atomgroup.universe.trajectory])
        universe = MDAnalysis.Merge(atomgroup)
        universe.load_new(frames, format=MemoryReader)
        average = align.AverageStructure(universe, ref_frame=0).run()
        align.AlignTraj(universe, average.results.universe, in_memory=True).run()
        atomgroup = universe.atoms
    return np.asarray(RMSF(atomgroup).run().results.rmsf, dtype=float)


def radius_of_gyration(atomgroup) -> np.ndarray:
    """Mass-weighted radius of gyration of ``atomgroup`` in each frame, in Å."""
    return np.array([atomgroup.radius_of_gyration() for _ in atomgroup.universe.trajectory])


def distance_histogram(
    atomgroup, bins: int = 100, range_: Optional[tuple[float, float]] = None, periodic: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Normalised distribution of all interatomic distances within ``atomgroup`` over all frames.

    Returns (bin centres in Å, probability density in 1/Å over ``range_``; default 0 to the longest
    distance). ``periodic`` uses minimum-image distances. The counts accumulate frame by frame: memory
    holds one frame's distances whatever the number of frames.
    """
    trajectory = atomgroup.universe.trajectory

    def distances(timestep) -> np.ndarray:
        return self_distance_array(atomgroup.positions, box=timestep.dimensions if periodic else None)

    if range_ is None:
        range_ = (0.0, max(float(distances(timestep).max()) for timestep in trajectory))
    edges = np.linspace(range_[0], range_[1], bins + 1)
    counts = np.zeros(bins)
    for timestep in trajectory:
        counts += np.histogram(distances(timestep), bins=edges)[0]
    density = counts / (counts.sum() * np.diff(edges)) if counts.sum() else counts
    return 0.5 * (edges[1:] + edges[:-1]), density
