"""The starting structure: read a solute, add hydrogens, solvate (OpenMM ``Modeller``, RDKit for SDF)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
from openmm import app, unit

from mlcalc.errors import InvalidStructureError

WATER_AND_IONS = {"HOH", "WAT", "SOL", "NA", "CL", "K", "MG", "CA", "Na+", "Cl-", "K+"}


def read_structure(path) -> tuple[app.Topology, unit.Quantity]:
    """Topology and positions of a PDB, mmCIF/PDBx or SDF/MOL file (SDF through RDKit)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.exists():
        raise FileNotFoundError(f"structure file {path} does not exist: check the path (a PDB, mmCIF or SDF file)")
    if suffix in (".pdb", ".ent"):
        structure = app.PDBFile(str(path))
    elif suffix in (".cif", ".mmcif", ".pdbx"):
        structure = app.PDBxFile(str(path))
    elif suffix in (".sdf", ".mol"):
        return _read_sdf(path)
    else:
        raise ValueError(f"cannot read {path}: give a .pdb, .cif/.mmcif/.pdbx or .sdf/.mol file")
    return structure.topology, structure.positions


def _read_sdf(path: Path) -> tuple[app.Topology, unit.Quantity]:
    """The first molecule of an SDF as one residue ``UNL``, hydrogens added by RDKit where missing."""
    try:
        from rdkit import Chem
    except ImportError as exc:
        raise ImportError("reading SDF files needs RDKit: pip install rdkit") from exc
    molecule = Chem.MolFromMolFile(str(path), removeHs=False)
    if molecule is None:
        raise InvalidStructureError(f"RDKit could not read a molecule from {path}")
    if any(atom.GetNumImplicitHs() for atom in molecule.GetAtoms()):
        molecule = Chem.AddHs(molecule, addCoords=True)
    topology = app.Topology()
    residue = topology.addResidue("UNL", topology.addChain())
    atoms = []
    counts: dict[str, int] = {}
    for atom in molecule.GetAtoms():
        symbol = atom.GetSymbol()
        counts[symbol] = counts.get(symbol, 0) + 1
        element = app.element.Element.getByAtomicNumber(atom.GetAtomicNum())
        atoms.append(topology.addAtom(f"{symbol}{counts[symbol]}", element, residue))
    for bond in molecule.GetBonds():
        topology.addBond(atoms[bond.GetBeginAtomIdx()], atoms[bond.GetEndAtomIdx()])
    positions = np.asarray(molecule.GetConformer().GetPositions()) / 10.0  # Å -> nm
    return topology, positions * unit.nanometer


def add_hydrogens(
    topology: app.Topology, positions, forcefield: Optional[app.ForceField], ph: float = 7.0
) -> tuple[app.Topology, unit.Quantity]:
    """Hydrogens from OpenMM's templates (``Modeller.addHydrogens``), with errors that name unknown residues.

    With a force field (ML/MM) every residue must match one of its templates; without one (whole-system
    ML) residues unknown to OpenMM's hydrogen definitions must already carry their hydrogens.
    """
    modeller = app.Modeller(topology, positions)
    try:
        modeller.addHydrogens(forcefield, pH=ph)
    except ValueError as exc:
        raise InvalidStructureError(
            f"cannot add hydrogens: {exc} Give a structure with all hydrogens (e.g. an SDF with explicit "
            "hydrogens) and force-field templates for non-standard residues, or rename the residue"
        ) from exc
    known = app.Modeller._residueHydrogens
    bare = [
        r
        for r in modeller.topology.residues()
        if r.name not in known
        and r.name not in WATER_AND_IONS
        and any(a.element is not None and a.element.symbol == "C" for a in r.atoms())
        and not any(a.element is app.element.hydrogen for a in r.atoms())
    ]
    if bare:
        names = ", ".join(f"{r.name} {r.id}" for r in bare[:5])
        raise InvalidStructureError(
            f"residue(s) {names} contain carbon but no hydrogens, and OpenMM has no hydrogen template for them: "
            "give the structure with explicit hydrogens (an SDF or a PDB written by a tool that adds them)"
        )
    return modeller.topology, modeller.positions


def check_templates(topology: app.Topology, forcefield: app.ForceField, files) -> None:
    """A clear error for residues the MM force field has no template for (ML/MM needs MM parameters for all)."""
    unmatched = forcefield.getUnmatchedResidues(topology)
    if unmatched:
        names = ", ".join(sorted({r.name for r in unmatched}))
        raise InvalidStructureError(
            f"the force field {list(files)} has no template for residue(s) {names}: ML/MM needs MM parameters "
            "for every atom (the solute's for its interactions with the solvent). Add a template (e.g. GAFF via "
            "openmmforcefields), check that hydrogens are present, or use mode='ml'"
        )


def solvate(
    topology: app.Topology,
    positions,
    forcefield: app.ForceField,
    water_model: str = "tip3p",
    box_shape: str = "cube",
    padding: Optional[float] = 1.0,
    n_waters: Optional[int] = None,
    ionic_strength: float = 0.0,
) -> tuple[app.Topology, unit.Quantity]:
    """Water (and neutralising ions) around the solute in a cubic, octahedral or dodecahedral box.

    ``padding`` in nm between the solute and the box faces, or ``n_waters`` molecules.
    """
    modeller = app.Modeller(topology, positions)
    kwargs = dict(model=water_model, boxShape=box_shape, ionicStrength=ionic_strength * unit.molar, neutralize=True)
    if n_waters is not None:
        modeller.addSolvent(forcefield, numAdded=int(n_waters), **kwargs)
    else:
        modeller.addSolvent(forcefield, padding=(1.0 if padding is None else padding) * unit.nanometer, **kwargs)
    return modeller.topology, modeller.positions


def solute_atoms(topology: app.Topology) -> list[int]:
    return [atom.index for atom in topology.atoms() if atom.residue.name not in WATER_AND_IONS]


def select_atoms(topology: app.Topology, selection: str) -> list[int]:
    """``"solute"``, ``"all"``, ``"resname A B"`` or ``"index 0-32 40"`` as a list of atom indices."""
    words = selection.split()
    if selection.strip() == "solute":
        atoms = solute_atoms(topology)
    elif selection.strip() == "all":
        atoms = list(range(topology.getNumAtoms()))
    elif words and words[0] == "resname":
        atoms = [a.index for a in topology.atoms() if a.residue.name in words[1:]]
    elif words and words[0] == "index":
        atoms = []
        for word in words[1:]:
            first, _, last = word.partition("-")
            try:
                atoms += list(range(int(first), int(last or first) + 1))
            except ValueError:
                raise ValueError(
                    f"cannot read {word!r} in the ML selection {selection!r}: give 0-based atom indices and ranges, "
                    "e.g. 'index 0-32 40'"
                ) from None
        outside = [i for i in atoms if not 0 <= i < topology.getNumAtoms()]
        if outside:
            raise ValueError(
                f"the ML selection {selection!r} names atoms outside the structure's 0..{topology.getNumAtoms() - 1} "
                f"({', '.join(map(str, outside[:3]))}, ...): give 0-based indices of the prepared structure (start.pdb)"
            )
    else:
        raise ValueError(f"cannot read the ML selection {selection!r}: use solute, all, 'resname ...' or 'index ...'")
    if not atoms:
        names = sorted({residue.name for residue in topology.residues()})
        raise ValueError(
            f"the ML selection {selection!r} matches no atoms: the structure's residues are {names[:20]}; "
            "select some of them (resname ...), or atoms by 0-based index (index ...)"
        )
    return atoms
