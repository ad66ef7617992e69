"""Batched NEB: a 7-atom Lennard-Jones cluster rearrangement (pentagonal bipyramid → capped
octahedron) through our exported LJ potential, one model call per band, against ASE's own per-image
NEB with ASE's own ``LennardJones``."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.lj import LennardJones
from ase.mep import NEB
from ase.optimize import BFGS, FIRE
from reference_parameters import CUTOFF, EPSILON, SIGMA

import mlcalc
from mlcalc.workflows.band import BandCalculator
from mlcalc.workflows.neb import make_band, run_neb

R0 = 2 ** (1 / 6) * SIGMA  # LJ pair minimum, Å


def ase_lj() -> LennardJones:
    return LennardJones(sigma=SIGMA, epsilon=EPSILON, rc=CUTOFF)  # shifted at rc, as mlcalc's shift=True


def relaxed(positions: np.ndarray) -> Atoms:
    atoms = Atoms("Ar7", positions=positions)
    atoms.calc = ase_lj()
    BFGS(atoms, logfile=None).run(fmax=1e-8)
    atoms.calc = None
    return atoms


def lj7_endpoints() -> tuple[Atoms, Atoms]:
    """The pentagonal bipyramid (atoms 0-4 the ring, 5-6 the apexes) and the capped octahedron made
    by moving ring atom 0 onto the face of atoms 1, 4 and 5 of the octahedron the others close into."""
    ring = np.radians(72.0 * np.arange(5))
    radius = R0 / (2 * np.sin(np.pi / 5))
    height = np.sqrt(R0**2 - radius**2)
    bipyramid = np.vstack(
        [np.c_[radius * np.cos(ring), radius * np.sin(ring), np.zeros(5)], [[0, 0, height]], [[0, 0, -height]]]
    )
    a = R0 / np.sqrt(2)
    square = np.radians([45.0, 135.0, 225.0, 315.0])
    octahedron = np.vstack([np.c_[a * np.cos(square), a * np.sin(square), np.zeros(4)], [[0, 0, a]], [[0, 0, -a]]])
    face = octahedron[[0, 3, 4]].mean(axis=0)
    cap = face + face / np.linalg.norm(face) * R0 * np.sqrt(2 / 3)
    return relaxed(bipyramid), relaxed(np.vstack([cap, octahedron]))


class CountingCalculator(mlcalc.MLCalculator):
    """Records every model call; the per-structure path must not be used."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.batches: list[int] = []

    def calculate_batch(self, images):
        self.batches.append(len(images))
        return super().calculate_batch(images)

    def calculate(self, *args, **kwargs):
        raise AssertionError("a band image was evaluated on its own")


def test_lj7_batched_neb_matches_ase_per_image_neb_with_one_model_call_per_band(lj_path):
    initial, final = lj7_endpoints()
    for atoms, minimum in ((initial, -16.1597074841), (final, -15.5893663765)):  # ε; shifted at the cutoff
        atoms.calc = ase_lj()
        assert atoms.get_potential_energy() / EPSILON == pytest.approx(minimum, abs=1e-9)
    n_images, fmax = 5, 1e-4
    # ASE alone: one ASE LennardJones per image
    reference = make_band(initial, final, n_images)
    for image in reference:
        image.calc = ase_lj()
    neb = NEB(reference, climb=True, method="improvedtangent")
    assert FIRE(neb, logfile=None).run(fmax=fmax, steps=1000)
    reference_energies = np.array([image.get_potential_energy() for image in reference])
    # ours: the exported LJ, the whole band per model call
    calc = CountingCalculator(lj_path, device="cpu")
    band = make_band(initial, final, n_images)
    seen = []
    original = BandCalculator.update

    def spy(self, requesting, requesting_calc):
        seen.append(np.array([image.positions for image in self.images]))
        return original(self, requesting, requesting_calc)

    BandCalculator.update = spy
    try:
        result = run_neb(band, calc, climb=True, fmax=fmax, steps=1000, optimizer="FIRE")
    finally:
        BandCalculator.update = original
    assert result.converged and result.fmax < fmax
    # Same band and barrier as ASE: forces agree to ~1e-13 relative, so the optimisers follow the
    # same trajectory; 1e-9 Å and 1e-10 eV leave room for round-off growing over ~80 FIRE steps.
    np.testing.assert_allclose([i.positions for i in result.images], [i.positions for i in reference], atol=1e-9)
    np.testing.assert_allclose(result.energies, reference_energies, rtol=0, atol=1e-10)
    assert result.barrier == pytest.approx(reference_energies.max() - reference_energies[0], abs=1e-10)
    assert 1.0 < result.barrier / EPSILON < 1.1  # a real saddle, not a band stuck in a minimum
    # One batched model call per band evaluation that moved anything, holding exactly the changed images:
    # all 7 images at first, then the 5 interior ones; never an image twice for the same positions.
    assert calc.batches == [n_images + 2] + [n_images] * (len(calc.batches) - 1)
    assert len(calc.batches) == len(seen) == result.calculator_calls == result.steps + 1
    distinct = {band.tobytes() for band in seen}
    assert len(distinct) == len(seen)
    assert result.band_evaluations >= len(seen)  # ASE asks for forces more often than positions change


def test_band_calculator_works_with_any_ase_calculator_and_never_repeats_a_structure():
    initial, final = lj7_endpoints()
    band = make_band(initial, final, 3, interpolation="linear")
    calc = ase_lj()
    evaluator = BandCalculator(calc, band)
    neb = NEB(band, method="improvedtangent")
    forces = neb.get_forces()
    assert evaluator.calls == evaluator.evaluations == 5  # one call per image, no batching without calculate_batch
    np.testing.assert_array_equal(neb.get_forces(), forces)
    assert evaluator.calls == 5  # nothing moved: all cached
    band[2].positions[0, 0] += 0.01
    neb.get_forces()
    assert evaluator.calls == 6  # only the moved image
    check = band[2].copy()
    check.calc = ase_lj()
    np.testing.assert_array_equal(band[2].get_forces(), check.get_forces())


def test_neb_outputs_and_bad_input(lj_path, tmp_path):
    initial, final = lj7_endpoints()
    band = make_band(initial, final, 3)
    result = run_neb(band, mlcalc.MLCalculator(lj_path, device="cpu"), fmax=0.05, steps=200, output=tmp_path)
    for name in ("neb.extxyz", "neb.csv", "neb.json", "neb.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert result.converged
    with pytest.raises(ValueError, match="same atoms in the same order"):
        make_band(initial, Atoms("Ar6", positions=final.positions[:6]), 3)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        run_neb(band, ase_lj(), optimizer="Newton")
