"""Evaluate a band of images in one model call, with one cached result per image.

ASE's NEB classes ask each image for its energy and forces, one image at a time. With one calculator
per image that is one model call per image; with one shared calculator it is worse, since a calculator
caches only the last structure it saw (measured: 3 images × 5 steps → 85 calls instead of 20).
:class:`BandCalculator` gives every image a small :class:`ImageCalculator` that holds that image's
results. The first image that needs new results asks the band, which sends **every image whose
positions changed** through the real calculator in one call (``calculate_batch`` of
:class:`mlcalc.MLCalculator`, one forward and backward pass for the whole band) and stores each
image's part. The other images then find their results cached. ASE's NEB code (climbing image,
tangents, DyNEB, IDPP, the optimisers) runs unchanged: it only sees ordinary calculators.

A calculator without ``calculate_batch`` (tblite, any ASE calculator) is called once per changed
image, still never twice for the same structure.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
from ase import Atoms
from ase.calculators.calculator import BaseCalculator, all_changes

from mlcalc.state_check import ExactStateCheck

#: Properties an image can hold; the band stores whatever the real calculator returns of these.
BAND_PROPERTIES = ("energy", "free_energy", "energies", "forces", "stress")


class BandCalculator:
    """Attach to ``images`` (in place) per-image calculators that evaluate the band together.

    Args:
        calc: the real calculator. With a ``calculate_batch(images) -> list[dict]`` method (as
            :class:`mlcalc.MLCalculator` has) all changed images go through it in one call; otherwise
            its ``get_potential_energy`` and ``get_forces`` are called per changed image.
        images: the band (the list object the NEB holds); each image gets an :class:`ImageCalculator`.

    Attributes:
        calls: calls made to the real calculator (batched: one per band evaluation).
        evaluations: structures evaluated in total.
    """

    def __init__(self, calc: BaseCalculator, images: Sequence[Atoms]):
        self.calc = calc
        self.images = images
        batch = getattr(calc, "calculate_batch", None)
        self.calculate_batch: Optional[Callable[[list[Atoms]], list[dict]]] = batch if callable(batch) else None
        self.batched = self.calculate_batch is not None
        self.calls = 0
        self.evaluations = 0
        for image in images:
            image.calc = ImageCalculator(self)

    def update(self, requesting: Atoms, requesting_calc: "ImageCalculator") -> None:
        """Evaluate every image of the band whose cached results are missing or out of date, and
        ``requesting`` (whose calculator is ``requesting_calc``), in one call when the calculator batches."""
        members = [(a, a.calc) for a in self.images if isinstance(a.calc, ImageCalculator) and a.calc.band is self]
        stale = [(a, calc) for a, calc in members if a is not requesting and calc.is_stale(a)]
        stale.append((requesting, requesting_calc))
        structures = [a for a, _ in stale]
        if self.calculate_batch is not None:
            results = self.calculate_batch(structures)
            self.calls += 1
        else:
            results = []
            for atoms in structures:
                energy = self.calc.get_potential_energy(atoms)
                results.append({"energy": energy, "forces": np.array(self.calc.get_forces(atoms), copy=True)})
                self.calls += 1
        self.evaluations += len(structures)
        for (atoms, calc), result in zip(stale, results):
            calc.store(atoms, result)


class ImageCalculator(ExactStateCheck):
    """One image's view of a :class:`BandCalculator`: holds that image's results; asks the band to
    evaluate (all changed images at once) when its image has moved."""

    implemented_properties = list(BAND_PROPERTIES)

    def __init__(self, band: BandCalculator):
        super().__init__()
        self.band = band

    def is_stale(self, atoms: Atoms) -> bool:
        """True when the cached results do not belong to ``atoms`` as it is now."""
        return self.atoms is None or "forces" not in self.results or bool(self.check_state(atoms))

    def store(self, atoms: Atoms, result: dict) -> None:
        """Cache ``result`` (eV, eV/Å) as the results of ``atoms`` as it is now."""
        self.atoms = atoms.copy()
        results = {k: (np.array(v, copy=True) if isinstance(v, np.ndarray) else v) for k, v in result.items()}
        results = {k: v for k, v in results.items() if k in BAND_PROPERTIES or k == "energy_uncertainty"}
        results.setdefault("free_energy", results["energy"])
        self.results = results

    def calculate(
        self, atoms: Optional[Atoms] = None, properties: Sequence[str] = ("energy",), system_changes=all_changes
    ) -> None:
        self.band.update(atoms if atoms is not None else self.atoms, self)
