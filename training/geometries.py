"""Build the starting geometries shipped in training/geometries/ (needs RDKit; run once).

RDKit embeds each molecule from its SMILES (ETKDG, fixed seed) and MMFF-relaxes it; GFN2-xTB (tblite)
then relaxes it with ASE's BFGS. The xyz files are committed, so the other stages need no RDKit:
``pip install rdkit && python -m training geometries``.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.io import write
from ase.optimize import BFGS

from training.common import GEOMETRIES, SEED, xtb_calculator

SMILES = {
    "azobenzene_trans": "c1ccc(cc1)/N=N/c1ccccc1",
    "azobenzene_cis": r"c1ccc(cc1)/N=N\c1ccccc1",
    # Ace-Ala-NMe; the backbone starts in C7eq (phi, psi = -80, 80) via the embedding seed and the relaxation.
    "alanine_dipeptide": "CC(=O)N[C@@H](C)C(=O)NC",
}


def embed(smiles: str) -> Atoms:
    from rdkit import Chem
    from rdkit.Chem import AllChem

    molecule = Chem.AddHs(Chem.MolFromSmiles(smiles))
    if AllChem.EmbedMolecule(molecule, randomSeed=SEED % 2**31) != 0:
        raise RuntimeError(f"RDKit could not embed {smiles}")
    AllChem.MMFFOptimizeMolecule(molecule)
    positions = molecule.GetConformer().GetPositions()
    numbers = [atom.GetAtomicNum() for atom in molecule.GetAtoms()]
    return Atoms(numbers=numbers, positions=np.asarray(positions))


def main() -> None:
    GEOMETRIES.mkdir(exist_ok=True)
    for name, smiles in SMILES.items():
        atoms = embed(smiles)
        atoms.calc = xtb_calculator()
        BFGS(atoms, logfile=None).run(fmax=0.01, steps=500)
        atoms.info = {"source": f"RDKit ETKDG+MMFF from {smiles}, GFN2-xTB (tblite) BFGS fmax 0.01 eV/A"}
        atoms.calc = None
        write(GEOMETRIES / f"{name}.xyz", atoms, format="extxyz")
        print(name, len(atoms), "atoms")


if __name__ == "__main__":
    main()
