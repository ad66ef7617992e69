"""Stage 1: sample geometries of each family with GFN2-xTB dynamics and constrained scans.

Near minima: Langevin MD (ASE) at several temperatures, driven by GFN2-xTB. Across barriers (MD near minima never
visits them: Vassilev-Galindo et al., J. Chem. Phys. 154, 094119 (2021)): relaxed scans with ASE ``FixInternals`` +
BFGS — the butane C-C-C-C torsion, the azobenzene C-N=N-C torsion (rotation path) and the N···C distance across one
N (inversion path: it grows to its largest value when the C-N=N angle is linear), the alanine-dipeptide φ/ψ grid —
each scan point followed by randomly displaced copies (``Atoms.rattle``). Writes training/data/samples.npz.
"""

from __future__ import annotations

import time
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np
from ase import Atoms, units
from ase.build import molecule
from ase.constraints import FixInternals
from ase.io import read
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary
from ase.neighborlist import natural_cutoffs
from ase.optimize import BFGS
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from training.common import FAMILIES, GEOMETRIES, SAMPLES, SEED, atomic_write_npz, xtb_calculator

#: Atom indices of the torsions in the shipped xyz files (RDKit keeps the SMILES order of heavy atoms).
AZOBENZENE_CNNC = (3, 6, 7, 8)
ALANINE_PHI = (1, 3, 4, 6)
ALANINE_PSI = (3, 4, 6, 8)
WATER_DENSITY = 0.0334  # molecules per Å^3 (1 g/cm^3)


def bonds(atoms: Atoms) -> np.ndarray:
    """Covalent bonds (i < j) of a molecule: distance below 1.2 × the sum of covalent radii."""
    radii = np.array(natural_cutoffs(atoms, mult=1.2))
    distances = np.linalg.norm(atoms.positions[:, None] - atoms.positions[None], axis=-1)
    i, j = np.nonzero(np.triu(distances < radii[:, None] + radii[None], k=1))
    return np.stack([i, j], axis=1)


def water_bonds(atoms: Atoms) -> np.ndarray:
    """O-H bonds of waters stored as O, H, H triples (periodic boxes, where ``bonds`` would ignore images)."""
    oxygens = np.arange(0, len(atoms), 3)
    return np.concatenate([np.stack([oxygens, oxygens + 1], 1), np.stack([oxygens, oxygens + 2], 1)])


def side_of(atoms: Atoms, a: int, b: int) -> List[int]:
    """Atoms on b's side of the bond a-b (the fragment a torsion about a-b moves)."""
    pairs = [p for p in bonds(atoms) if set(p) != {a, b}]
    pairs = np.array(pairs)
    n = len(atoms)
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    return [k for k in range(n) if label[k] == label[b]]


def phenyl_twisted(azobenzene: Atoms, cnnc: float, twist: float) -> Atoms:
    """A copy of azobenzene with C-N=N-C set to ``cnnc`` and each ring's C-C-N=N to ``twist`` (degrees)."""
    c1, n1, n2, c2 = AZOBENZENE_CNNC
    atoms = azobenzene.copy()
    atoms.set_dihedral(c1, n1, n2, c2, cnnc, indices=side_of(atoms, n1, n2))
    pairs = bonds(atoms)
    for ring_carbon, near, far in ((c1, n1, n2), (c2, n2, n1)):
        bonded = [int(k) for p in pairs if ring_carbon in p for k in p if k != ring_carbon]
        ortho = next(k for k in bonded if atoms.numbers[k] == 6)
        atoms.set_dihedral(ortho, ring_carbon, near, far, twist, indices=side_of(atoms, near, ring_carbon))
    return atoms


def butane() -> Tuple[Atoms, Tuple[int, int, int, int]]:
    """trans-butane (ase.build) and its C-C-C-C torsion indices, in chain order."""
    atoms = molecule("trans-butane")
    carbons = [k for k in range(len(atoms)) if atoms.numbers[k] == 6]
    pairs = bonds(atoms)
    neighbours = {c: [int(x) for p in pairs for x in p if c in p and x != c and atoms.numbers[x] == 6] for c in carbons}
    chain = [next(c for c in carbons if len(neighbours[c]) == 1)]
    while len(chain) < 4:
        chain.append(next(x for x in neighbours[chain[-1]] if x not in chain))
    return atoms, tuple(chain)


def geometry(name: str) -> Atoms:
    return read(GEOMETRIES / f"{name}.xyz")


def langevin(atoms: Atoms, temperature: float, steps: int, every: int, rng: np.random.Generator) -> List[Atoms]:
    """Frames of GFN2-xTB Langevin MD (0.5 fs, friction 10/ps) at ``temperature`` K."""
    atoms = atoms.copy()
    atoms.calc = xtb_calculator()
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
    Stationary(atoms)
    dynamics = Langevin(atoms, 0.5 * units.fs, temperature_K=temperature, friction=0.01 / units.fs, rng=rng)
    frames: List[Atoms] = []
    dynamics.attach(lambda: frames.append(atoms.copy()), interval=every)
    dynamics.run(steps)
    return frames[1:]


def relax(atoms: Atoms, constraint=None, fmax: float = 0.05, steps: int = 150, calculator=None) -> Atoms:
    """BFGS relaxation (GFN2-xTB unless ``calculator``), with an optional constraint; returns an
    unconstrained copy with the calculator's results attached (``atoms.calc``)."""
    atoms = atoms.copy()
    if constraint is not None:
        atoms.set_constraint(constraint)
    atoms.calc = calculator if calculator is not None else xtb_calculator()
    BFGS(atoms, logfile=None).run(fmax=fmax, steps=steps)
    energy = atoms.get_potential_energy()
    relaxed = atoms.copy()
    relaxed.set_constraint()
    relaxed.info["energy"] = energy
    return relaxed


def with_rattles(atoms: Atoms, rng: np.random.Generator, stdevs: Sequence[float] = (0.03, 0.06)) -> List[Atoms]:
    """The structure and one randomly displaced copy per standard deviation (Å)."""
    frames = [atoms]
    for stdev in stdevs:
        copy = atoms.copy()
        copy.positions += rng.normal(0.0, stdev, copy.positions.shape)
        frames.append(copy)
    return frames


def torsion_scan(
    atoms: Atoms, torsion: Sequence[int], angles: Sequence[float], fmax: float = 0.05, calculator=None, steps: int = 150
) -> List[Atoms]:
    """Relaxed scan: each angle set from the previous relaxed point (moving the a3 side), then relaxed."""
    a, b, c, d = torsion
    moving = side_of(atoms, b, c)
    points = []
    current = atoms
    for angle in angles:
        start = current.copy()
        start.set_dihedral(a, b, c, d, angle, indices=moving)
        current = relax(start, FixInternals(dihedrals_deg=[[angle, list(torsion)]]), fmax, steps, calculator)
        points.append(current)
    return points


def distance_scan(
    atoms: Atoms,
    pair: Tuple[int, int],
    distances: Sequence[float],
    fmax: float = 0.05,
    calculator=None,
    steps: int = 150,
) -> List[Atoms]:
    """Relaxed scan of the distance ``pair`` (Å): each point starts from the previous one."""
    points = []
    current = atoms
    for distance in distances:
        start = current.copy()
        start.set_distance(pair[0], pair[1], distance, fix=0)
        current = relax(start, FixInternals(bonds=[[distance, list(pair)]]), fmax, steps, calculator)
        points.append(current)
    return points


def water_molecules(count: int, centres: np.ndarray, rng: np.random.Generator) -> Atoms:
    """``count`` randomly oriented waters with their oxygens at ``centres``."""
    system = Atoms()
    for centre in centres[:count]:
        water = molecule("H2O")
        water.rotate(rng.uniform(0, 360), rng.normal(size=3))
        water.translate(centre - water.positions[0])
        system += water
    return system


def water_cluster(size: int, rng: np.random.Generator) -> Atoms:
    """A compact cluster: each new oxygen 2.8 Å from a random earlier one, ≥ 2.6 Å from all."""
    centres = [np.zeros(3)]
    while len(centres) < size:
        direction = rng.normal(size=3)
        candidate = centres[rng.integers(len(centres))] + 2.8 * direction / np.linalg.norm(direction)
        if min(np.linalg.norm(candidate - c) for c in centres) >= 2.6:
            centres.append(candidate)
    return water_molecules(size, np.array(centres), rng)


def water_box(per_side: int, rng: np.random.Generator) -> Atoms:
    """per_side³ waters on a jittered cubic grid at 1 g/cm³, periodic."""
    count = per_side**3
    length = (count / WATER_DENSITY) ** (1 / 3)
    grid = (np.indices((per_side,) * 3).reshape(3, -1).T + 0.5) * length / per_side
    atoms = water_molecules(count, grid + rng.normal(0, 0.1, grid.shape), rng)
    atoms.cell = [length] * 3
    atoms.pbc = True
    return atoms


def sample_butane(rng: np.random.Generator) -> List[Tuple[Atoms, str]]:
    atoms, torsion = butane()
    atoms = relax(atoms, fmax=0.01)
    frames = []
    for temperature in (300, 600, 900):
        frames += [(f, f"md{temperature}") for f in langevin(atoms, temperature, 1000, 10, rng)]
    for point in torsion_scan(atoms, torsion, np.arange(180.0, 180.0 - 360.0, -15.0)):
        frames += [(f, "scan") for f in with_rattles(point, rng)]
    return frames


def sample_azobenzene(rng: np.random.Generator) -> List[Tuple[Atoms, str]]:
    trans, cis = geometry("azobenzene_trans"), geometry("azobenzene_cis")
    frames = []
    for start in (trans, cis):
        for temperature in (300, 600):
            frames += [(f, f"md{temperature}") for f in langevin(start, temperature, 1000, 10, rng)]
    for point in torsion_scan(trans, AZOBENZENE_CNNC, np.arange(170.0, -1.0, -10.0)):
        frames += [(f, "rotation") for f in with_rattles(point, rng)]
    _, n1, n2, c2 = AZOBENZENE_CNNC
    for start in (cis, trans):
        d0 = start.get_distance(n1, c2)
        linear = start.get_distance(n1, n2) + start.get_distance(n2, c2)
        for point in distance_scan(start, (n1, c2), np.linspace(d0, linear - 0.005, 10)[1:]):
            frames += [(f, "inversion") for f in with_rattles(point, rng)]
    return frames


def sample_alanine_dipeptide(rng: np.random.Generator) -> List[Tuple[Atoms, str]]:
    start = geometry("alanine_dipeptide")
    frames = []
    for temperature in (300, 600):
        frames += [(f, f"md{temperature}") for f in langevin(start, temperature, 1000, 10, rng)]
    phi_side = side_of(start, ALANINE_PHI[1], ALANINE_PHI[2])
    psi_side = side_of(start, ALANINE_PSI[1], ALANINE_PSI[2])
    for phi in np.arange(-180.0, 180.0, 45.0):
        for psi in np.arange(-180.0, 180.0, 45.0):
            atoms = start.copy()
            atoms.set_dihedral(*ALANINE_PHI, phi, indices=phi_side)
            atoms.set_dihedral(*ALANINE_PSI, psi, indices=psi_side)
            constraint = FixInternals(dihedrals_deg=[[phi, list(ALANINE_PHI)], [psi, list(ALANINE_PSI)]])
            point = relax(atoms, constraint, fmax=0.1, steps=60)
            frames += [(f, "phipsi") for f in with_rattles(point, rng, (0.04,))]
    return frames


def sample_water_cluster(rng: np.random.Generator) -> List[Tuple[Atoms, str]]:
    frames = []
    for size in (2, 3, 4, 5, 6):
        cluster = relax(water_cluster(size, rng), fmax=0.05, steps=100)
        for temperature in (200, 350):
            frames += [(f, f"md{temperature}") for f in langevin(cluster, temperature, 1000, 20, rng)]
    return frames


def tip3p_box_frames(box: Atoms, frames: int, interval_ps: float, seed: int) -> List[Atoms]:
    """Snapshots of flexible-TIP3P MD (OpenMM, PME, 300 K, 0.5 fs) of a periodic water box.

    Periodic GFN2-xTB costs ~25 s per call for 27 waters here, far too much for MD, so liquid water is
    sampled with a classical force field and only labelled with GFN2-xTB.
    """
    import openmm
    from openmm import app, unit

    topology = app.Topology()
    chain = topology.addChain()
    for _ in range(0, len(box), 3):
        residue = topology.addResidue("HOH", chain)
        o = topology.addAtom("O", app.element.oxygen, residue)
        for name in ("H1", "H2"):
            topology.addBond(o, topology.addAtom(name, app.element.hydrogen, residue))
    topology.setPeriodicBoxVectors(box.cell.array / 10 * unit.nanometer)
    cutoff = 0.49 * min(box.cell.lengths()) / 10
    system = app.ForceField("amber14/tip3p.xml").createSystem(
        topology, nonbondedMethod=app.PME, nonbondedCutoff=cutoff * unit.nanometer, constraints=None, rigidWater=False
    )
    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 0.5 * unit.femtosecond)
    integrator.setRandomNumberSeed(seed)
    simulation = app.Simulation(topology, system, integrator, openmm.Platform.getPlatformByName("CPU"))
    simulation.context.setPositions(box.positions / 10)
    simulation.minimizeEnergy(maxIterations=200)
    simulation.context.setVelocitiesToTemperature(300 * unit.kelvin, seed)
    simulation.step(20000)  # 10 ps
    snapshots = []
    for _ in range(frames):
        simulation.step(int(round(interval_ps * 2000)))
        positions = simulation.context.getState(getPositions=True).getPositions(asNumpy=True)
        snapshot = box.copy()
        snapshot.positions = positions.value_in_unit(unit.angstrom)
        snapshots.append(snapshot)
    return snapshots


def carve_cluster(box: Atoms, centre: int, radius: float) -> Atoms:
    """The waters of a periodic O,H,H box whose oxygen lies within ``radius`` Å (minimum image) of water
    ``centre``'s oxygen, made whole around it, as an open cluster."""
    oxygens = np.arange(0, len(box), 3)
    vectors = box.get_distances(3 * centre, oxygens, mic=True, vector=True)
    cluster = Atoms()
    for oxygen, vector in zip(oxygens, vectors):
        if np.linalg.norm(vector) < radius:
            water = box[oxygen : oxygen + 3]
            water.positions -= water.positions[0]
            water.positions[1:] = water.positions[0] + box.get_distances(
                oxygen, [oxygen + 1, oxygen + 2], mic=True, vector=True
            )
            water.positions += box.positions[3 * centre] + vector
            water.cell = np.zeros((3, 3))
            water.pbc = False
            cluster += water
    return cluster


def sample_water_liquid(rng: np.random.Generator) -> List[Tuple[Atoms, str]]:
    """Open clusters carved from flexible-TIP3P liquid water: each centre water in a bulk-like shell."""
    frames = []
    for snapshot in tip3p_box_frames(water_box(3, rng), 100, 0.25, seed=1):
        for centre in rng.choice(27, 2, replace=False):
            frames.append((carve_cluster(snapshot, int(centre), 4.6), "tip3p300"))
    return frames


def sample_water_box(rng: np.random.Generator) -> List[Tuple[Atoms, str]]:
    """A few periodic 27-water boxes (flexible-TIP3P snapshots), labelled periodic: held out for testing."""
    return [(frame, "tip3p300") for frame in tip3p_box_frames(water_box(3, rng), 8, 1.0, seed=2)]


SAMPLERS: Dict[str, Callable[[np.random.Generator], List[Tuple[Atoms, str]]]] = {
    "butane": sample_butane,
    "azobenzene": sample_azobenzene,
    "alanine_dipeptide": sample_alanine_dipeptide,
    "water_cluster": sample_water_cluster,
    "water_liquid": sample_water_liquid,
    "water_box": sample_water_box,
}


def pack(frames: List[Tuple[Atoms, str, str]]) -> Dict[str, np.ndarray]:
    """Concatenated arrays of variable-size structures: per-atom arrays and per-structure arrays."""
    return {
        "n_atoms": np.array([len(a) for a, _, _ in frames]),
        "numbers": np.concatenate([a.numbers for a, _, _ in frames]),
        "positions": np.concatenate([a.positions for a, _, _ in frames]),
        "cell": np.array([a.cell.array for a, _, _ in frames]),
        "pbc": np.array([a.pbc for a, _, _ in frames]),
        "family": np.array([family for _, family, _ in frames]),
        "origin": np.array([origin for _, _, origin in frames]),
    }


def main(families: Sequence[str] = FAMILIES) -> None:
    """Sample every family (each cached in training/data/samples_FAMILY.npz, so a rerun resumes)."""
    parts = []
    for index, family in enumerate(families):
        cache = SAMPLES.with_name(f"samples_{family}.npz")
        if not cache.exists():
            began = time.perf_counter()
            new = SAMPLERS[family](np.random.default_rng(SEED + index))
            atomic_write_npz(cache, **pack([(atoms, family, origin) for atoms, origin in new]))
            print(f"{family}: {len(new)} structures in {time.perf_counter() - began:.0f} s", flush=True)
        parts.append(dict(np.load(cache)))
    merged = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    atomic_write_npz(SAMPLES, **merged)
    print(f"wrote {len(merged['n_atoms'])} structures to {SAMPLES}")


if __name__ == "__main__":
    main()
