"""Stage 2b (active learning): sample with a candidate potential, label what it visits with GFN2-xTB.

``python -m training explore --potential CANDIDATE.pt [--round 1]`` runs Langevin MD driven by the
candidate (fast) for every family — the molecules at 300–900 K, water clusters of 2–8 molecules,
periodic 27-water boxes at 300 and 400 K — keeping frames every 50 fs up to and including the first one
in which a covalent bond of the start has stretched past 1.6× (or the last one before two atoms come
within 0.6 Å of each other), and energy minimisations of periodic water boxes: exactly the regions
where the candidate is wrong and the GFN2-xTB data were silent. From round 3 on also the candidate's
own relaxed azobenzene rotation and inversion scans (group ``azobenzene_paths``), where a candidate can
find a barrier path of its own that GFN2-xTB puts much higher; round 3 ran only that group.
Liquid water is labelled both as open clusters carved around a centre water (cheap) and as a few
whole periodic boxes (periodic GFN2-xTB, ~25 s each), so the model also sees bulk energies. Each
group of the round is cached in ``training/data/explore{round}_GROUP.npz`` (a rerun resumes; the
sampled frames are kept in ``explore_frames/`` until labelled); all rounds are merged into
``training/data/explored.npz``, which training reads next to ``labelled.npz`` (origins
``explore{round}-…`` keep the first split unchanged: see dataset.split).
"""

from __future__ import annotations

import argparse
import time
from typing import Callable, Dict, List, Tuple

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import CalculationFailed
from ase.geometry import find_mic
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary
from ase.optimize import FIRE

import mlcalc
from mlcalc.workflows import Dihedral, Distance, relaxed_scan
from training.common import DATA, EXPLORED, SEED, atomic_write_npz, xtb_calculator
from training.label import structures
from training.sample import (
    AZOBENZENE_CNNC,
    bonds,
    butane,
    carve_cluster,
    geometry,
    pack,
    phenyl_twisted,
    relax,
    tip3p_box_frames,
    water_bonds,
    water_box,
    water_cluster,
    with_rattles,
)

FRAME_INTERVAL_FS = 50.0
BROKEN_STRETCH = 1.6  # a bond longer than this × its start length ends the run
#: Two atoms closer than this (Å; H2's bond is 0.74 Å) end the run, that frame left out: one such frame
#: (0.09 Å, 46,556 kcal/mol/Å from GFN2-xTB) outweighed every other training structure in the loss.
COLLISION_DISTANCE = 0.6
PERIODIC_BOXES_PER_RUN = 6
PER_ATOM = ("numbers", "positions")  # the per-atom arrays of a packed file


def covalent_pairs(atoms: Atoms) -> np.ndarray:
    """The start's covalent bonds: O-H of O,H,H water triples for waters, else by covalent radii."""
    if atoms.pbc.any() or set(atoms.numbers.tolist()) == {1, 8}:
        return water_bonds(atoms)
    return bonds(atoms)


def candidate_md(
    potential: mlcalc.Potential, atoms: Atoms, temperature: float, picoseconds: float, rng: np.random.Generator
) -> List[Atoms]:
    """Frames of Langevin MD (0.5 fs, friction 10/ps) driven by the candidate, every 50 fs, until a bond
    breaks (that frame included) or two atoms collide (that frame left out)."""
    atoms = atoms.copy()
    atoms.calc = mlcalc.MLCalculator(potential)
    pairs = covalent_pairs(atoms)
    start = _lengths(atoms, pairs)
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
    Stationary(atoms)
    dynamics = Langevin(atoms, 0.5 * units.fs, temperature_K=temperature, friction=0.01 / units.fs, rng=rng)
    frames: List[Atoms] = []
    every = int(round(FRAME_INTERVAL_FS / 0.5))
    for _ in range(int(round(picoseconds * 1000 / FRAME_INTERVAL_FS))):
        dynamics.run(every)
        if _shortest_distance(atoms) < COLLISION_DISTANCE:
            break
        frame = atoms.copy()
        frame.calc = None
        frames.append(frame)
        if (_lengths(atoms, pairs) / start).max() > BROKEN_STRETCH:
            break
    return frames


def _shortest_distance(atoms: Atoms) -> float:
    """The shortest interatomic distance (Å, minimum image where periodic)."""
    distances = atoms.get_all_distances(mic=bool(atoms.pbc.any()))
    np.fill_diagonal(distances, np.inf)
    return float(distances.min())


def _lengths(atoms: Atoms, pairs: np.ndarray) -> np.ndarray:
    _, lengths = find_mic(atoms.positions[pairs[:, 1]] - atoms.positions[pairs[:, 0]], atoms.cell, atoms.pbc)
    return lengths


def explore_molecules(potential: mlcalc.Potential, rng: np.random.Generator) -> Dict[str, List[Tuple[Atoms, str]]]:
    systems = {
        "butane": [butane()[0]],
        "azobenzene": [geometry("azobenzene_trans"), geometry("azobenzene_cis")],
        "alanine_dipeptide": [geometry("alanine_dipeptide")],
    }
    found: Dict[str, List[Tuple[Atoms, str]]] = {}
    for family, starts in systems.items():
        found[family] = []
        for start in starts:
            for temperature in (300, 600, 900):
                picoseconds = 12.0 / len(starts)
                frames = candidate_md(potential, start, temperature, picoseconds, rng)
                found[family] += [(f, f"md{temperature}") for f in frames]
    return found


def explore_water_clusters(potential: mlcalc.Potential, rng: np.random.Generator) -> List[Tuple[Atoms, str]]:
    found = []
    for size in range(2, 9):
        for temperature in (200, 350):
            frames = candidate_md(potential, water_cluster(size, rng), temperature, 5.0, rng)
            found += [(f, f"md{temperature}") for f in frames]
    return found


def explore_water_boxes(potential: mlcalc.Potential, rng: np.random.Generator) -> Dict[str, List[Tuple[Atoms, str]]]:
    """Carved clusters (``water_liquid``) and a few whole boxes (``water_box``) from candidate MD of
    27-water boxes started from equilibrated flexible-TIP3P liquid."""
    liquid, boxes = [], []
    starts = tip3p_box_frames(water_box(3, rng), 2, 5.0, seed=int(rng.integers(1 << 30)))
    for start, temperature in zip(starts, (300, 400)):
        frames = candidate_md(potential, start, temperature, 10.0, rng)
        for frame in frames:
            for centre in rng.choice(27, 2, replace=False):
                liquid.append((carve_cluster(frame, int(centre), 4.6), f"md{temperature}"))
        picks = np.unique(np.linspace(0, len(frames) - 1, PERIODIC_BOXES_PER_RUN).round().astype(int))
        boxes += [(frames[k], f"md{temperature}") for k in picks]
    return {"water_liquid": liquid, "water_box": boxes}


def explore_water_minimisation(
    potential: mlcalc.Potential, rng: np.random.Generator
) -> Dict[str, List[Tuple[Atoms, str]]]:
    """Frames along an energy minimisation (ASE FIRE, 150 steps) driven by the candidate of the
    periodic water boxes the demo and its test minimise (OpenMM Modeller, 1.0 and 1.2 nm): a candidate
    with a spurious minimum at stretched O-H bonds walks into it here. Carved clusters every 5 steps;
    four whole boxes of the 1.0 nm run."""
    from openmm import unit

    from mlcalc.demo.water import water_box as modeller_box

    liquid, boxes = [], []
    for box_nm in (1.0, 1.2):
        modeller = modeller_box(box_nm)
        atoms = Atoms(
            numbers=[a.element.atomic_number for a in modeller.topology.atoms()],
            positions=modeller.positions.value_in_unit(unit.angstrom),
            cell=10.0 * np.array(modeller.topology.getPeriodicBoxVectors().value_in_unit(unit.nanometer)),
            pbc=True,
        )
        atoms.calc = mlcalc.MLCalculator(potential)
        frames: List[Atoms] = []
        optimizer = FIRE(atoms, logfile=None)
        optimizer.attach(lambda frames=frames, atoms=atoms: frames.append(atoms.copy()), interval=5)
        optimizer.run(fmax=0.01, steps=150)
        n_waters = len(atoms) // 3
        for frame in frames:
            frame.calc = None
            for centre in rng.choice(n_waters, 3, replace=False):
                liquid.append((carve_cluster(frame, int(centre), 4.6), f"minimise{box_nm:g}nm"))
        if box_nm == 1.0:
            picks = np.unique(np.linspace(0, len(frames) - 1, 4).round().astype(int))
            boxes += [(frames[k], "minimise1nm") for k in picks]
    return {"water_liquid": liquid, "water_box": boxes}


def explore_azobenzene_paths(
    potential: mlcalc.Potential, rng: np.random.Generator
) -> Dict[str, List[Tuple[Atoms, str]]]:
    """The candidate's own cis ⇄ trans paths: relaxed C-N=N-C rotation scans (10° steps) and N···C inversion scans
    (up to the linear C-N=N angle) from its cis and trans minima, each point with two displaced copies. The first data's
    scans were relaxed with GFN2-xTB; a candidate relaxed along the same coordinate can find a lower path of its own
    where it is wrong (such regions need their own samples: Vassilev-Galindo et al., J. Chem. Phys. 154, 094119
    (2021)). Measured on v8: GFN2-xTB gives 16.1 kcal/mol on v8's inversion path, v8 9.4."""
    calculator = mlcalc.MLCalculator(potential)
    cis = relax(phenyl_twisted(geometry("azobenzene_cis"), 10.0, 40.0), fmax=0.01, steps=1000, calculator=calculator)
    trans = relax(geometry("azobenzene_trans"), fmax=0.01, steps=1000, calculator=calculator)
    _, n1, n2, c2 = AZOBENZENE_CNNC
    frames: List[Tuple[Atoms, str]] = []
    for start, angles in ((cis, np.arange(20.0, 171.0, 10.0)), (trans, np.arange(170.0, 9.0, -10.0))):
        points = _scan_until_failure(start, calculator, Dihedral(*AZOBENZENE_CNNC), angles)
        frames += [(f, "rotation") for point in points for f in with_rattles(point, rng)]
    for start in (cis, trans):
        linear = start.get_distance(n1, n2) + start.get_distance(n2, c2)
        distances = np.linspace(start.get_distance(n1, c2), linear - 0.002, 12)[1:]
        points = _scan_until_failure(start, calculator, Distance(n1, c2), distances)
        frames += [(f, "inversion") for point in points for f in with_rattles(point, rng)]
    return {"azobenzene": frames}


def _scan_until_failure(start: Atoms, calculator, coordinate, grid: np.ndarray) -> List[Atoms]:
    """Relaxed scan points (bare copies) up to the first one the candidate cannot reach: its surface
    can turn a dihedral through a linear C-N=N angle, where the dihedral constraint is undefined."""
    scan = relaxed_scan(start, calculator, coordinate, list(grid), fmax=0.01, steps=500, on_error="stop")
    if scan.stopped is not None:
        print(f"{coordinate.name} scan stopped at {scan.stopped}", flush=True)
    return [Atoms(numbers=image.numbers, positions=image.positions) for image in scan.images]


EXPLORERS: Dict[str, Callable[[mlcalc.Potential, np.random.Generator], Dict[str, List[Tuple[Atoms, str]]]]] = {
    "molecules": explore_molecules,
    "water_cluster": lambda potential, rng: {"water_cluster": explore_water_clusters(potential, rng)},
    "water_periodic": explore_water_boxes,
    "water_minimisation": explore_water_minimisation,
    "azobenzene_paths": explore_azobenzene_paths,
}
#: The round each group was added in: a round runs by default only the groups that existed then, so the
#: recorded commands of earlier rounds still make the same data.
FIRST_ROUND = {"water_minimisation": 2, "azobenzene_paths": 3}


def label(samples: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Packed samples with GFN2-xTB ``energy`` [S] (eV) and ``forces`` [N, 3] (eV/Å); the few whose SCF
    does not converge (torn-apart frames of a failing candidate) are left out and counted."""
    kept, energies, forces = [], [], []
    for index, atoms in enumerate(structures(samples)):
        atoms.calc = xtb_calculator()
        try:
            energies.append(atoms.get_potential_energy())
            forces.append(atoms.get_forces())
        except CalculationFailed:
            continue
        kept.append(index)
    print(f"labelled {len(kept)} of {len(samples['n_atoms'])} (SCF not converged for the others)", flush=True)
    per_atom = np.repeat(np.isin(np.arange(len(samples["n_atoms"])), kept), samples["n_atoms"])
    chosen = {key: value[per_atom] if key in PER_ATOM else value[kept] for key, value in samples.items()}
    return {**chosen, "energy": np.array(energies), "forces": np.concatenate(forces)}


def merge(paths) -> Dict[str, np.ndarray]:
    parts = [dict(np.load(p)) for p in paths]
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m training explore")
    parser.add_argument("--potential", required=True, help="the candidate potential file that drives the MD")
    parser.add_argument("--round", type=int, default=1, help="active-learning round (its own cache and seed)")
    parser.add_argument(
        "--groups", default=None, help="comma-separated groups to run (default: all that existed in that round)"
    )
    args = parser.parse_args()
    groups = args.groups.split(",") if args.groups else [g for g in EXPLORERS if FIRST_ROUND.get(g, 1) <= args.round]
    unknown = set(groups) - set(EXPLORERS)
    if unknown:
        raise SystemExit(f"unknown group(s) {', '.join(sorted(unknown))}: choose from {', '.join(EXPLORERS)}")
    potential = mlcalc.load(args.potential, device="cpu")
    for index, (group, explorer) in enumerate(EXPLORERS.items()):
        if group not in groups:
            continue
        cache = DATA / f"explore{args.round}_{group}.npz"
        sampled = DATA / "explore_frames" / cache.name
        if cache.exists():
            continue
        began = time.perf_counter()
        if not sampled.exists():
            found = explorer(potential, np.random.default_rng(SEED + 100 * args.round + index))
            frames = [
                (a, family, f"explore{args.round}-{origin}") for family, items in found.items() for a, origin in items
            ]
            sampled.parent.mkdir(exist_ok=True)
            atomic_write_npz(sampled, **pack(frames))
            counts = ", ".join(f"{family} {len(items)}" for family, items in found.items())
            print(f"round {args.round} {group}: sampled {counts} in {time.perf_counter() - began:.0f} s", flush=True)
        atomic_write_npz(cache, **label(dict(np.load(sampled))))
        print(f"round {args.round} {group}: done in {time.perf_counter() - began:.0f} s", flush=True)
    caches = sorted(DATA.glob("explore*_*.npz"))
    merged = merge(caches)
    atomic_write_npz(EXPLORED, **merged)
    print(f"wrote {len(merged['n_atoms'])} explored structures from {len(caches)} files to {EXPLORED}")


if __name__ == "__main__":
    main()
