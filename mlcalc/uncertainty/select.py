"""Pick the structures a committee is least sure of, for labelling (active learning).

:func:`select` reads frames (extxyz files of ``mlcalc scan``/``path``/``neb`` or any file ``ase.io.read``
reads; DCD/XTC trajectories of ``mlcalc md`` with their topology), scores each by the committee's spread
(evaluated with a committee potential, or the ``energy_uncertainty`` already in ``atoms.info``), keeps
those above a threshold or the top k, and spreads them out so that the picks are not near duplicates:

1. candidates, most uncertain first (ties: earlier input, earlier frame);
2. greedily accept a candidate unless an accepted frame of the same file lies fewer than
   ``min_separation`` frames away, or an accepted frame lies within ``min_distance`` Å in the
   descriptor below ("sphere exclusion");
3. stop after ``top`` accepted frames.

The descriptor (:func:`distance_descriptor`) is the sorted interatomic distances of each pair of
elements (minimum image when periodic), and the distance between two frames the root mean square of
the difference of those vectors, in Å. It needs no alignment, is blind to rotations, translations and
the order of atoms, and is 0 only for frames of the same shape: two frames a few femtoseconds apart
differ by a few hundredths of an Å. Frames of different compositions are never near duplicates (they
have no common descriptor), so inputs of mixed atom counts need no special handling. Greedy sphere
exclusion rather than farthest-point sampling: the most uncertain frame always comes first, each
further pick is the most uncertain one that is not a near duplicate, and ``min_distance`` is a length
one can reason about; farthest-point sampling would prefer geometric outliers whatever their spread.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
from ase import Atoms

from mlcalc.errors import ContractError, MLCalcError
from mlcalc.files import PathLike

#: ``Atoms.info`` keys written with each selected frame.
SOURCE, FRAME, ENERGY_UNCERTAINTY = "source", "frame", "energy_uncertainty"
ENERGY_UNCERTAINTY_PER_ATOM, FORCES_UNCERTAINTY_MAX, RANK = (
    "energy_uncertainty_per_atom",
    "forces_uncertainty_max",
    "selection_rank",
)
#: Trajectory formats read with MDAnalysis (with a topology); everything else goes to ``ase.io.read``.
TRAJECTORY_SUFFIXES = (".dcd", ".xtc", ".trr")
#: Frames evaluated in one call of the potential.
BATCH = 32
#: The most atoms per frame for the distance descriptor (N² distances per frame).
MAX_DESCRIPTOR_ATOMS = 2000


class SelectionError(MLCalcError, ValueError):
    """Inputs or settings of a selection that cannot give a meaningful answer."""


@dataclass
class Frame:
    """One input structure and its scores."""

    source: str  # the file it was read from
    index: int  # 0-based frame index in that file
    atoms: Atoms
    energy_uncertainty: float = math.nan  # eV
    forces_uncertainty_max: Optional[float] = None  # eV/Å, the largest atom's

    @property
    def per_atom(self) -> float:
        """Energy spread per atom, eV/atom."""
        return self.energy_uncertainty / len(self.atoms)


def read_frames(
    sources: Sequence[PathLike], topology: Optional[PathLike] = None, atoms: Optional[str] = None
) -> list[Frame]:
    """Every frame of every file in ``sources``.

    DCD/XTC/TRR files need a topology: ``topology``, else ``start.pdb`` beside them (``mlcalc md``'s
    layout); ``atoms`` is an MDAnalysis selection of the atoms to keep from them (default all; for an
    ML/MM run, the ML region). Other files are read with ``ase.io.read(path, ":")``.
    """
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    if not sources:
        raise SelectionError("no input files were given: give one or more extxyz files or trajectories")
    frames: list[Frame] = []
    for source in sources:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: check the path of the input")
        if path.suffix.lower() in TRAJECTORY_SUFFIXES:
            structures = _read_trajectory(path, topology, atoms)
        elif path.stat().st_size == 0:
            raise SelectionError(f"{path} is empty: give files with at least one structure")
        else:
            if atoms is not None:
                raise SelectionError(
                    f"an atom selection ({atoms!r}) applies to DCD/XTC trajectories, not to {path}: drop it, or cut "
                    "the structures before writing them"
                )
            import ase.io

            try:
                read = ase.io.read(path, ":")
            except Exception as exc:  # ase raises many kinds for unreadable files
                raise SelectionError(
                    f"cannot read {path} ({type(exc).__name__}: {exc}): give an extxyz file (or another format "
                    "ase.io.read reads) or a DCD/XTC trajectory with its topology"
                ) from None
            structures = read if isinstance(read, list) else [read]
        frames.extend(Frame(str(path), k, structure) for k, structure in enumerate(structures))
    if not frames:
        raise SelectionError(
            f"the inputs {[str(s) for s in sources]} hold no frames: give files with at least one structure"
        )
    return frames


def _read_trajectory(path: Path, topology: Optional[PathLike], selection: Optional[str]) -> list[Atoms]:
    import MDAnalysis

    top = Path(topology) if topology is not None else path.parent / "start.pdb"
    if not top.is_file():
        raise FileNotFoundError(
            f"{path} is a trajectory without atoms: give its topology (--topology, e.g. start.pdb of mlcalc md); "
            f"{top} does not exist"
        )
    universe = MDAnalysis.Universe(str(top), str(path))
    group = universe.atoms if selection is None else universe.select_atoms(selection)
    if len(group) == 0:
        raise SelectionError(f"the selection {selection!r} matches no atom of {top}: check it")
    try:
        elements = list(group.elements)
    except Exception:  # MDAnalysis raises NoDataError when the topology has no elements
        raise SelectionError(
            f"{top} gives no elements: use a PDB with element columns (mlcalc md writes one)"
        ) from None
    from ase.data import atomic_numbers

    numbers = [atomic_numbers.get(str(e).strip().capitalize(), 0) for e in elements]
    if 0 in numbers:
        bad = elements[numbers.index(0)]
        raise SelectionError(f"{top} has atoms of unknown element {bad!r}: fix its element columns")
    structures = []
    for ts in universe.trajectory:
        dimensions = ts.dimensions
        periodic = dimensions is not None and float(np.prod(dimensions[:3])) > 0
        structures.append(
            Atoms(
                numbers=numbers,
                positions=group.positions.astype(np.float64),
                cell=dimensions if periodic else None,
                pbc=periodic,
            )
        )
    return structures


def score_frames(frames: Sequence[Frame], potential=None, forces: bool = False) -> None:
    """Fill each frame's ``energy_uncertainty`` (eV) and, with ``forces``, ``forces_uncertainty_max``
    (eV/Å): evaluated with the committee ``potential`` (a path, ``"demo"`` or a :class:`mlcalc.Potential`),
    else read from ``atoms.info["energy_uncertainty"]`` and ``atoms.arrays["forces_uncertainty"]``."""
    if potential is None:
        for frame in frames:
            value = frame.atoms.info.get(ENERGY_UNCERTAINTY)
            if value is None:
                raise SelectionError(
                    f"frame {frame.index} of {frame.source} records no energy_uncertainty: give a committee "
                    "potential (--potential FILE) to evaluate the frames"
                )
            frame.energy_uncertainty = float(value)
            if forces:
                spread = frame.atoms.arrays.get("forces_uncertainty")
                if spread is None:
                    raise SelectionError(
                        f"frame {frame.index} of {frame.source} records no forces_uncertainty: give a committee "
                        "potential (--potential FILE) to evaluate them, or drop the force threshold"
                    )
                frame.forces_uncertainty_max = float(np.max(spread))
        return
    from mlcalc.potential import Potential, load

    loaded = potential if isinstance(potential, Potential) else load(potential, device="cpu")
    if not loaded.metadata.committee:
        raise ContractError(
            f"potential {loaded.name!r} is a single model: it has no spread to select frames by. Give a committee "
            "(mlcalc.export([model1, model2, ...], path)), or omit the potential to use the energy_uncertainty "
            "recorded in the frames"
        )
    for start in range(0, len(frames), BATCH):
        chunk = frames[start : start + BATCH]
        results = loaded.evaluate(
            [frame.atoms for frame in chunk], forces=forces, stress=False, force_uncertainty=forces
        )
        for frame, result in zip(chunk, results):
            frame.energy_uncertainty = float(result["energy_uncertainty"])
            if forces:
                frame.forces_uncertainty_max = float(np.max(result["forces_uncertainty"]))


def distance_descriptor(atoms: Atoms) -> tuple[tuple, np.ndarray]:
    """``(key, vector)``: the sorted interatomic distances (Å, minimum image when periodic) of each pair of
    elements, concatenated in element order; ``key`` (the sorted atomic numbers) says which vectors compare."""
    if len(atoms) > MAX_DESCRIPTOR_ATOMS:
        raise SelectionError(
            f"a frame has {len(atoms)} atoms: the distance descriptor (min_distance) takes at most "
            f"{MAX_DESCRIPTOR_ATOMS}; select the atoms that matter (an MDAnalysis selection) or use min_separation"
        )
    numbers = atoms.numbers
    key = tuple(sorted(int(z) for z in numbers))
    if len(atoms) < 2:
        return key, np.zeros(0)
    distances = atoms.get_all_distances(mic=bool(atoms.pbc.any()))
    i, j = np.triu_indices(len(atoms), 1)
    low, high = np.minimum(numbers[i], numbers[j]), np.maximum(numbers[i], numbers[j])
    order = np.lexsort((distances[i, j], high, low))  # by element pair, then by distance
    return key, distances[i, j][order]


def _descriptor_distance(a: tuple[tuple, np.ndarray], b: tuple[tuple, np.ndarray]) -> float:
    """Root-mean-square difference (Å) of two descriptors; infinite for different compositions."""
    if a[0] != b[0]:
        return math.inf
    if a[1].size == 0:
        return 0.0
    return float(np.sqrt(np.mean((a[1] - b[1]) ** 2)))


def pick(
    frames: Sequence[Frame],
    *,
    threshold: Optional[float] = None,
    top: Optional[int] = None,
    per_atom: bool = False,
    force_threshold: Optional[float] = None,
    min_separation: int = 1,
    min_distance: Optional[float] = None,
) -> list[Frame]:
    """The scored frames to label, most uncertain first (the module doc says how)."""
    check_settings(threshold, top, force_threshold, min_separation, min_distance)
    if force_threshold is not None and any(f.forces_uncertainty_max is None for f in frames):
        raise SelectionError("force_threshold needs the frames' forces_uncertainty: score them with forces=True")

    def energy_score(frame: Frame) -> float:
        return frame.per_atom if per_atom else frame.energy_uncertainty

    def force_score(frame: Frame) -> float:
        value = frame.forces_uncertainty_max
        return math.nan if value is None else value

    by_forces = force_threshold is not None and threshold is None
    candidates = []
    for order, frame in enumerate(frames):
        above_energy = threshold is not None and energy_score(frame) > threshold
        above_forces = force_threshold is not None and force_score(frame) > force_threshold
        if (threshold is None and force_threshold is None) or above_energy or above_forces:
            score = force_score(frame) if by_forces else energy_score(frame)
            candidates.append((-score, order, frame))
    candidates.sort(key=lambda item: (item[0], item[1]))
    chosen: list[Frame] = []
    descriptors: dict[int, tuple[tuple, np.ndarray]] = {}
    for _, _order, frame in candidates:
        if top is not None and len(chosen) >= top:
            break
        if any(c.source == frame.source and abs(c.index - frame.index) < min_separation for c in chosen):
            continue
        if min_distance is not None:
            descriptors[id(frame)] = mine = distance_descriptor(frame.atoms)
            if any(_descriptor_distance(mine, descriptors[id(c)]) < min_distance for c in chosen):
                continue
        chosen.append(frame)
    return chosen


def check_settings(
    threshold: Optional[float],
    top: Optional[int],
    force_threshold: Optional[float],
    min_separation: int,
    min_distance: Optional[float],
) -> None:
    """Refuse settings that cannot select anything meaningful, naming the fix."""
    if threshold is None and top is None and force_threshold is None:
        raise SelectionError(
            "nothing says which frames to pick: give a threshold (eV; --threshold), a force threshold (eV/Å; "
            "--force-threshold) or a number of frames (--top K)"
        )
    for name, value, unit in (
        ("threshold", threshold, "eV"),
        ("force_threshold", force_threshold, "eV/Å"),
        ("min_distance", min_distance, "Å"),
    ):
        if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise SelectionError(f"{name} must be a finite number above 0, in {unit}; got {value!r}")
    if top is not None and (isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 1):
        raise SelectionError(f"top (k) is the number of frames to pick, 1 or more; got {top!r}")
    if isinstance(min_separation, bool) or not isinstance(min_separation, (int, np.integer)) or min_separation < 1:
        raise SelectionError(
            f"min_separation is a number of frames, 1 or more (1: neighbouring frames allowed); got {min_separation!r}"
        )


def labelled_copy(frame: Frame, rank: int) -> Atoms:
    """The frame's structure alone (no model energies or forces that could pass for labels) with its provenance
    in ``info``: source file, frame index, spread (eV; per atom, eV/atom; largest force spread, eV/Å), rank."""
    atoms = frame.atoms
    copy = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    copy.info[SOURCE] = frame.source
    copy.info[FRAME] = frame.index
    copy.info[ENERGY_UNCERTAINTY] = frame.energy_uncertainty
    copy.info[ENERGY_UNCERTAINTY_PER_ATOM] = frame.per_atom
    if frame.forces_uncertainty_max is not None:
        copy.info[FORCES_UNCERTAINTY_MAX] = frame.forces_uncertainty_max
    copy.info[RANK] = rank
    return copy


def select(
    sources: Union[PathLike, Sequence[PathLike]],
    output: Optional[PathLike] = None,
    *,
    potential=None,
    threshold: Optional[float] = None,
    top: Optional[int] = None,
    per_atom: bool = False,
    force_threshold: Optional[float] = None,
    min_separation: int = 1,
    min_distance: Optional[float] = None,
    topology: Optional[PathLike] = None,
    atoms: Optional[str] = None,
) -> list[Atoms]:
    """Frames of ``sources`` to label next, most uncertain first, with their provenance in ``info``.

    Args:
        sources: extxyz files (``mlcalc scan``/``path``/``neb`` outputs, any file ``ase.io.read`` reads) and
            DCD/XTC trajectories of ``mlcalc md`` (:func:`read_frames`; ``topology``, ``atoms`` for those).
        output: extxyz file to write them to (atomically; nothing is written when none is selected).
        potential: a committee file (or ``"demo"``-like name, or :class:`mlcalc.Potential`) that scores
            the frames; ``None`` reads the ``energy_uncertainty`` recorded in each frame's ``info``.
        threshold: eV (eV/atom with ``per_atom``); frames whose committee energy spread exceeds it.
        top: at most this many frames (alone: the k most uncertain).
        per_atom: score by the energy spread divided by the number of atoms.
        force_threshold: eV/Å; frames whose largest per-atom force spread exceeds it (a frame above either
            threshold is a candidate; with this alone, candidates rank by the force spread).
        min_separation: frames of one file closer than this in index are not both picked.
        min_distance: Å; frames closer than this in the distance descriptor are not both picked.

    Raises:
        SelectionError: no input or no frames, no criterion, bad numbers, no recorded spread.
        ContractError: ``potential`` is a single model.
    """
    check_settings(threshold, top, force_threshold, min_separation, min_distance)
    frames = read_frames([sources] if isinstance(sources, (str, os.PathLike)) else list(sources), topology, atoms)
    score_frames(frames, potential, forces=force_threshold is not None)
    chosen = pick(
        frames,
        threshold=threshold,
        top=top,
        per_atom=per_atom,
        force_threshold=force_threshold,
        min_separation=min_separation,
        min_distance=min_distance,
    )
    selected = [labelled_copy(frame, rank) for rank, frame in enumerate(chosen)]
    if output is not None and selected:
        from mlcalc.workflows.output import write_images_atomic

        write_images_atomic(output, selected)
    return selected
