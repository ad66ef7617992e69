"""Write the screening library's starting structures (``inputs/*.xyz``) from SMILES with RDKit (ETKDG,
fixed seed, then MMFF94). Run once; the files are in the repository, so the example itself needs no RDKit.

    python examples/screening/make_inputs.py

The rotor of each molecule is the dihedral in ``screening.toml`` (0-based indices: RDKit keeps the
SMILES order of the heavy atoms and appends the hydrogens).
"""

from pathlib import Path

from rdkit import Chem
from rdkit.Chem import AllChem

HERE = Path(__file__).resolve().parent
LIBRARY = {
    "butane": "CCCC",  # C0-C1-C2-C3
    "pentane": "CCCCC",  # C0-C1-C2-C3
    "ethylene-glycol": "OCCO",  # O0-C1-C2-O3
    "azobenzene": "c1ccc(cc1)/N=N/c1ccccc1",  # C3-N6=N7-C8 (trans)
}


def write_xyz(name: str, smiles: str) -> Path:
    molecule = Chem.AddHs(Chem.MolFromSmiles(smiles))
    AllChem.EmbedMolecule(molecule, randomSeed=7)
    AllChem.MMFFOptimizeMolecule(molecule)
    path = HERE / "inputs" / f"{name}.xyz"
    path.parent.mkdir(exist_ok=True)
    path.write_text(Chem.MolToXYZBlock(molecule))
    return path


if __name__ == "__main__":
    for name, smiles in LIBRARY.items():
        print(write_xyz(name, smiles))
