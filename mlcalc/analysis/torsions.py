"""Backbone φ/ψ torsions per residue with MDAnalysis's ``Ramachandran``."""

from __future__ import annotations

import warnings
from typing import Optional

import numpy as np
from MDAnalysis.analysis.dihedrals import Ramachandran


def backbone_torsions(
    atomgroup, start: Optional[int] = None, stop: Optional[int] = None, step: Optional[int] = None
) -> tuple[np.ndarray, list[str]]:
    """φ and ψ in degrees, shape [frames, residues, 2], and a label (``ALA2``) per residue.

    Only residues with both a preceding and a following residue have both angles (MDAnalysis's
    ``Ramachandran`` drops the termini): for trialanine that is the central alanine.
    """
    residues = atomgroup.residues
    if len(residues) < 3:
        raise ValueError(
            f"φ/ψ need at least three residues (the termini have only one of them); the selection has {len(residues)}"
        )
    with warnings.catch_warnings():  # the docstring says it: the termini are dropped
        warnings.filterwarnings("ignore", "Cannot determine phi and psi angles for the first or last residues")
        analysis = Ramachandran(atomgroup).run(start=start, stop=stop, step=step)
    labels = [f"{r.resname}{r.resid}" for r in analysis.ag3.residues]
    return np.asarray(analysis.results.angles, dtype=float), labels
