"""mlcalc.analysis against hand-computed values on synthetic trajectories."""

from __future__ import annotations

import json

import MDAnalysis
import numpy as np
import pytest
from MDAnalysis.coordinates.memory import MemoryReader
from MDAnalysis.lib.distances import calc_dihedrals

from mlcalc.analysis import (
    assign_states,
    backbone_torsions,
    compare,
    distance_histogram,
    power_spectrum,
    radius_of_gyration,
    rmsf,
    state_statistics,
    velocities_from_positions,
)
from mlcalc.analysis.report import analyze
from mlcalc.analysis.spectrum import SPEED_OF_LIGHT_CM_PER_PS


def universe(names, resnames, resids, coordinates, dt=1.0, masses=None, box=None):
    """An in-memory Universe with one residue per distinct resid; coordinates [frames, atoms, 3] Å."""
    resids = np.asarray(resids)
    unique = list(dict.fromkeys(resids.tolist()))
    u = MDAnalysis.Universe.empty(len(names), len(unique), atom_resindex=[unique.index(r) for r in resids])
    u.add_TopologyAttr("name", names)
    u.add_TopologyAttr("resname", [resnames[list(resids).index(r)] for r in unique])
    u.add_TopologyAttr("resid", unique)
    u.add_TopologyAttr("segid", ["A"])
    u.add_TopologyAttr("masses", masses if masses is not None else np.ones(len(names)))
    dimensions = None if box is None else np.tile(box, (len(coordinates), 1))
    u.load_new(np.asarray(coordinates, np.float32), format=MemoryReader, dt=dt, dimensions=dimensions)
    return u


def place(a, b, c, bond, angle, torsion):
    """The point d with |cd| = bond, angle bcd and dihedral abcd (degrees), by the NeRF construction."""
    angle, torsion = np.radians(angle), np.radians(torsion)
    bc = (c - b) / np.linalg.norm(c - b)
    n = np.cross(b - a, bc)
    n /= np.linalg.norm(n)
    local = bond * np.array([-np.cos(angle), np.sin(angle) * np.cos(torsion), np.sin(angle) * np.sin(torsion)])
    return c + np.column_stack([bc, np.cross(n, bc), n]) @ local


def backbone(phis, psis, omega=180.0):
    """N, CA, C of len(phis) residues with the given φ/ψ (the first φ and last ψ are undefined)."""
    atoms = [np.zeros(3), np.array([1.458, 0, 0]), np.array([1.458 + 0.55, 1.42, 0])]
    for k in range(1, len(phis)):
        n = place(atoms[-3], atoms[-2], atoms[-1], 1.33, 116.2, psis[k - 1])
        ca = place(atoms[-2], atoms[-1], n, 1.458, 121.7, omega)
        c = place(atoms[-1], n, ca, 1.525, 111.2, phis[k])
        atoms += [n, ca, c]
    return np.array(atoms)


def test_phi_psi_of_a_known_geometry():
    frames = [(-75.0, 145.0), (-60.0, -45.0), (60.0, 45.0), (-150.0, 170.0)]
    coordinates = [backbone([0.0, phi, 0.0, 0.0], [psi0, psi, 0.0, 0.0]) for phi, psi in frames for psi0 in [150.0]]
    names = ["N", "CA", "C"] * 4
    u = universe(names, ["ALA"] * 12, np.repeat([1, 2, 3, 4], 3), coordinates)
    angles, labels = backbone_torsions(u.atoms)
    assert labels == ["ALA2", "ALA3"]
    # float32 coordinates: 1e-3 degree.
    np.testing.assert_allclose(angles[:, 0, 0], [f[0] for f in frames], atol=1e-3)
    np.testing.assert_allclose(angles[:, 0, 1], [f[1] for f in frames], atol=1e-3)
    # And MDAnalysis agrees with the construction on the dihedral of the first residue's ψ.
    x = np.asarray(coordinates[0])
    assert np.degrees(calc_dihedrals(x[0], x[1], x[2], x[3])) == pytest.approx(150.0, abs=1e-4)  # float32 inside


@pytest.mark.parametrize(
    "phi, psi, state",
    [
        (-75, 145, "PII"),
        (-120, 130, "beta"),
        (170, 170, "beta"),  # wraps through 180 in both
        (-170, -170, "beta"),
        (-60, -45, "alphaR"),
        (150, 0, "alphaR"),  # alpha_R's phi range wraps too
        (60, 45, "alphaL"),
        (60, 150, "P"),
        (100, -100, "P"),
        (-90, 50, "PII"),
        (
            -60,
            -100,
            "alphaR",
        ),  # where Table 4's P_II and alpha_R overlap  # lower bounds belong to a region, upper bounds to the next
        (20, 0, "alphaL"),
    ],
)
def test_table4_regions(phi, psi, state):
    assert assign_states(phi, psi) == state


def test_regions_tile_the_plane():
    phi, psi = np.meshgrid(np.arange(-180, 180, 0.5), np.arange(-180, 180, 0.5))
    states = assign_states(phi, psi)
    assert set(np.unique(states)) == {"beta", "PII", "alphaR", "alphaL", "P"}
    # Areas (deg^2) by hand from Table 4 (phi span x psi span, P_II's psi range cut where alpha_R takes over).
    area = {name: (states == name).sum() * 0.25 for name in ("beta", "PII", "alphaR", "alphaL", "P")}
    assert area == {"beta": 140 * 200, "PII": 110 * 200, "alphaR": 250 * 160, "alphaL": 110 * 210, "P": 110 * 150}


def test_state_statistics_wrap_around_180():
    phi = np.array([170.0, -170.0, -75.0, -75.0])
    psi = np.array([175.0, -175.0, 140.0, 150.0])
    rows = {row["state"]: row for row in state_statistics(phi, psi)}
    assert rows["beta"]["population_percent"] == 50.0 and rows["PII"]["population_percent"] == 50.0
    assert abs(rows["beta"]["phi_mean"]) == pytest.approx(180.0)  # circular mean, not 0
    assert rows["PII"]["psi_mean"] == pytest.approx(145.0)
    # Two values +-5 deg about the mean: R = cos 5°, circular std = sqrt(-2 ln R).
    assert rows["PII"]["psi_std"] == pytest.approx(np.degrees(np.sqrt(-2 * np.log(np.cos(np.radians(5))))))


def test_rmsf_of_a_known_motion():
    """Atoms oscillating sinusoidally with amplitudes A over whole periods: RMSF = A/sqrt(2)."""
    amplitudes = np.array([0.0, 0.3, 0.6, 1.2])
    t = np.arange(40) / 40
    base = np.array([[0, 0, 0], [3, 0, 0], [0, 3, 0], [0, 0, 3]], float)
    coordinates = base + amplitudes[None, :, None] * np.sin(2 * np.pi * t)[:, None, None] * np.array([1, 0, 0])
    u = universe(["A"] * 4, ["X"] * 4, [1] * 4, coordinates)
    # float32 coordinates: 1e-6 Å.
    np.testing.assert_allclose(rmsf(u.atoms, superpose=False), amplitudes / np.sqrt(2), atol=1e-6)


def test_rmsf_ignores_rigid_tumbling():
    base = np.array([[0, 0, 0], [1.5, 0, 0], [0, 2.0, 0], [0, 0, 2.5]], float)
    frames = []
    for angle in np.linspace(0, np.pi, 20):
        rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
        frames.append(base @ rotation.T + [angle, 2 * angle, 0])
    u = universe(["A"] * 4, ["X"] * 4, [1] * 4, frames)
    assert rmsf(u.atoms, superpose=False).max() > 0.5
    assert rmsf(u.atoms).max() < 1e-5  # float32 round-off after superposition


def test_radius_of_gyration_and_distances():
    d = np.array([2.0, 3.0, 4.0])
    coordinates = [[[0, 0, 0], [x, 0, 0]] for x in d]
    u = universe(["A", "B"], ["X", "X"], [1, 1], coordinates, masses=[3.0, 3.0])
    np.testing.assert_allclose(radius_of_gyration(u.atoms), d / 2, rtol=1e-6)
    centres, density = distance_histogram(u.atoms, bins=20, range_=(0, 5))
    width = 0.25
    assert density.sum() * width == pytest.approx(1.0)
    expected = np.zeros(20)
    expected[[8, 12, 16]] = 1 / 3 / width  # 2.0, 3.0, 4.0 fall at the start of bins 8, 12, 16
    np.testing.assert_allclose(density, expected)


def test_minimum_image_distances():
    coordinates = [[[0.25, 0, 0], [9.75, 0, 0]]] * 3
    u = universe(["A", "B"], ["X", "X"], [1, 1], coordinates, box=[10, 10, 10, 90, 90, 90])
    centres, density = distance_histogram(u.atoms, bins=10, range_=(0, 10), periodic=True)
    assert centres[density.argmax()] == pytest.approx(0.5)  # the 0.5 Å image, not 9.5 Å
    centres, density = distance_histogram(u.atoms, bins=10, range_=(0, 10))
    assert centres[density.argmax()] == pytest.approx(9.5)


def test_spectrum_peak_of_a_known_oscillation():
    """x(t) = A sin(2 pi f t) at 1000 cm^-1, written every fs; velocities by central differences."""
    wavenumber = 1000.0
    frequency = wavenumber * SPEED_OF_LIGHT_CM_PER_PS  # 1/ps
    dt = 0.001
    t = np.arange(4000) * dt
    positions = np.zeros((len(t), 2, 3))
    positions[:, 0, 0] = 0.1 * np.sin(2 * np.pi * frequency * t)
    positions[:, 1, 1] = 5.0 + 0.05 * np.cos(2 * np.pi * frequency * t)
    velocities = velocities_from_positions(positions, dt)
    # Central differences of a sinusoid: v = A w sin(w dt)/(w dt) cos(...), 1.7 % low at this frequency.
    exact = 0.1 * 2 * np.pi * frequency * np.cos(2 * np.pi * frequency * t[1:-1])
    ratio = np.sin(2 * np.pi * frequency * dt) / (2 * np.pi * frequency * dt)
    np.testing.assert_allclose(velocities[:, 0, 0], exact * ratio, atol=1e-9)
    grid, power = power_spectrum(velocities, dt)
    spacing = grid[1] - grid[0]  # 1/(2 T dt) in cm^-1: 4.2 cm^-1
    assert abs(grid[power.argmax()] - wavenumber) <= spacing / 2
    assert power.max() == 1.0


def test_velocities_across_the_periodic_boundary():
    positions = np.array([[[9.8, 0, 0]], [[9.9, 0, 0]], [[0.0, 0, 0]], [[0.1, 0, 0]]])
    boxes = np.tile([10.0, 10, 10, 90, 90, 90], (4, 1))
    np.testing.assert_allclose(velocities_from_positions(positions, 0.5, boxes)[:, 0, 0], [0.2, 0.2], atol=1e-12)


def test_analyze_writes_tables_and_compare(tmp_path):
    rng = np.random.default_rng(0)
    phis = rng.normal(-75, 10, 30)
    psis = rng.normal(145, 10, 30)
    coordinates = [backbone([0, phi, 0], [145.0, psi, 0]) for phi, psi in zip(phis, psis)]
    u = universe(["N", "CA", "C"] * 3, ["ALA"] * 9, np.repeat([1, 2, 3], 3), coordinates, dt=0.01)
    result = analyze(u, tmp_path / "a", selection="all")
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["frames"] == 30
    assert {row["state"]: row["count"] for row in summary["states"]}["PII"] == int(
        ((phis >= -90) & (phis < 20) & (psis >= 50)).sum()
    )
    for name in ("torsions.csv", "states.csv", "rmsf.csv", "rg.csv", "distances.csv", "spectrum.csv"):
        assert (tmp_path / "a" / name).stat().st_size > 0
    for name in ("ramachandran.png", "overview.png"):
        assert (tmp_path / "a" / name).read_bytes()[:4] == b"\x89PNG"
    assert not list((tmp_path / "a").glob(".*tmp")), "temporary files left behind"
    same = compare(result, result)
    assert same == pytest.approx({"rmsf": 1.0, "distance_density": 1.0, "rg_distribution": 1.0, "spectrum": 1.0})


@pytest.fixture(scope="module")
def adenylate_kinase_in_water():
    """MDAnalysisTests' adenylate kinase in water with NA+ ions (GROMACS GRO/XTC, 47,681 atoms, 10 frames)."""
    datafiles = pytest.importorskip("MDAnalysisTests.datafiles")
    return datafiles.GRO, datafiles.XTC


def test_solute_leaves_out_water_and_ions_in_any_case(adenylate_kinase_in_water):
    from mlcalc.analysis.report import select

    universe = MDAnalysis.Universe(*adenylate_kinase_in_water)
    assert {residue.resname for residue in universe.residues if residue.resname.startswith("NA")} == {"NA+"}
    solute = select(universe, "solute")
    np.testing.assert_array_equal(solute.indices, universe.select_atoms("protein").indices)


@pytest.mark.slow
def test_molecules_are_made_whole_before_measuring(adenylate_kinase_in_water):
    """Rg and RMSF of the protein, split across the box in the files, against MDAnalysis by hand on unwrapped
    coordinates (bonds guessed, unwrap, superposition on the average structure)."""
    from MDAnalysis.analysis import align
    from MDAnalysis.analysis.rms import RMSF
    from MDAnalysis.transformations import unwrap

    from mlcalc.analysis.report import analyze

    result = analyze(MDAnalysis.Universe(*adenylate_kinase_in_water), distance_range=None, plots=False)
    universe = MDAnalysis.Universe(*adenylate_kinase_in_water)
    protein = universe.select_atoms("protein")
    split = np.array([protein.radius_of_gyration() for _ in universe.trajectory])
    protein.guess_bonds()
    universe.trajectory.add_transformations(unwrap(protein))
    rg = np.array([protein.radius_of_gyration() for _ in universe.trajectory])
    assert np.abs(split - rg).max() > 1.0, "the files should hold the protein split across the box"
    np.testing.assert_allclose(result["rg"], rg, rtol=1e-6)
    average = align.AverageStructure(universe, select="protein", ref_frame=0).run()
    # the same unwrapped universe (bond guessing is the slow part), aligned in memory onto its average
    align.AlignTraj(universe, average.results.universe, select="protein", in_memory=True).run()
    expected = RMSF(protein).run().results.rmsf
    np.testing.assert_allclose(result["rmsf"], expected, rtol=1e-4, atol=1e-4)
