"""Dihedral-driven path against climbing-image NEB on the same transition (butane anti → gauche, GFN2-xTB)."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import molecule
from tblite.ase import TBLite
from threadpoolctl import threadpool_limits

from mlcalc.units import EV_TO_KCAL_MOL
from mlcalc.workflows import Dihedral, dihedral_path, make_band, optimize, path_rmsd, relax_endpoint, run_neb

CCCC = Dihedral(0, 1, 2, 3)


def gfn2() -> TBLite:
    return TBLite(method="GFN2-xTB", verbosity=0)


@pytest.fixture(scope="module")
def endpoints():
    with threadpool_limits(1, user_api="openmp"):
        anti = relax_endpoint(molecule("trans-butane"), gfn2(), fmax=1e-3)
        start = optimize(anti, gfn2(), [CCCC.with_target(65.0)], fmax=1e-2).atoms
        gauche = relax_endpoint(start, gfn2(), fmax=1e-3)
    return anti, gauche


@pytest.mark.slow
def test_driven_path_is_continuous_and_its_barrier_matches_climbing_image_neb(endpoints, tmp_path):
    anti, gauche = endpoints
    with threadpool_limits(1, user_api="openmp"):
        path = dihedral_path(anti, gauche, gfn2(), CCCC, 11, backend="ase", fmax=2e-3, output=tmp_path / "path")
        band = make_band(anti, gauche, 7)
        neb = run_neb(band, gfn2(), climb=True, fmax=0.01, steps=2000, optimizer="FIRE")
    assert path.converged and neb.converged
    # The guide passes through its targets: 180° → gauche in 12 equal steps of ~9.6°.
    steps = np.diff(path.guide_values)
    assert np.allclose(steps, steps[0]) and abs(steps[0]) < 10.0
    for image, theta in zip(path.images, path.guide_values):
        assert abs((image.get_dihedral(0, 1, 2, 3) - theta + 180) % 360 - 180) < 1e-4
    # Continuous: neighbouring images differ by a small move and a small energy change.
    rmsd_steps = [path_rmsd([a], [b])[0] for a, b in zip(path.images[:-1], path.images[1:])]
    assert max(rmsd_steps) < 0.15  # Å, ~ the methyl end moving by 1.5 Å × 9.6° per step
    energies = path.energies * EV_TO_KCAL_MOL
    assert np.abs(np.diff(energies)).max() < 0.5 * (energies.max() - energies[0])
    # Barriers: the constrained-minimum path's highest point sits within ~E''·(Δθ/2)²/2 ≈ 0.03 kcal/mol
    # of the saddle for a ~3.5 kcal/mol, cos(3θ)-shaped barrier sampled every 9.6°; the climbing image
    # converged to fmax 0.01 eV/Å adds an error of the same order.
    path_barrier, neb_barrier = path.barrier * EV_TO_KCAL_MOL, neb.barrier * EV_TO_KCAL_MOL
    assert 2.0 < neb_barrier < 5.0  # GFN2-xTB butane anti → gauche
    assert path_barrier == pytest.approx(neb_barrier, abs=0.1)
    assert path_barrier <= neb_barrier + 0.02  # constrained minima never rise above the saddle
    for name in ("path.csv", "path.json", "path.extxyz", "path.png"):
        assert (tmp_path / "path" / name).stat().st_size > 0
