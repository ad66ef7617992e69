"""mlcalc md refuses bad inputs before it writes a run, with errors that name the problem.

(A selection splitting a constrained bond and elements the potential lacks are tested on
``create_mixed_system`` and ``create_force`` in tests/test_mixed.py and tests/test_openmm.py.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from openmm import unit
from test_md_pipeline import write_argon

import mlcalc
from mlcalc.errors import InvalidStructureError
from mlcalc.md.config import MDConfig
from mlcalc.md.pipeline import Run

TRIALANINE = Path(__file__).parents[1] / "examples" / "trialanine.pdb"

#: Ethanol's heavy atoms as an unknown residue, without hydrogens.
BARE_LIGAND = """\
HETATM    1  C1  LIG A   1       0.000   0.000   0.000  1.00  0.00           C
HETATM    2  C2  LIG A   1       1.520   0.000   0.000  1.00  0.00           C
HETATM    3  O1  LIG A   1       2.000   1.350   0.000  1.00  0.00           O
CONECT    1    2
CONECT    2    1    3
CONECT    3    2
END
"""


@pytest.fixture(scope="module")
def morse_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "morse.pt"
    mlcalc.export(mlcalc.models.Morse(epsilon=0.0104, rho0=6.0, r0=3.8, rcut1=1.6, rcut2=2.2), path)  # 8.36 Å
    return path


def start_fails(config: MDConfig, match: str) -> None:
    with pytest.raises(InvalidStructureError, match=match):
        Run.start(config)
    assert not Path(config.output).exists(), "a refused run left an output directory behind"


@pytest.mark.parametrize(
    "mode, add_hydrogens, match",
    [
        ("mlmm", True, r"cannot add hydrogens: No template found for residue 0 \(LIG\)"),
        ("ml", True, r"residue\(s\) LIG 1 contain carbon but no hydrogens"),
        ("mlmm", False, r"has no template for residue\(s\) LIG: ML/MM needs MM parameters"),
    ],
)
def test_missing_hydrogens_and_unknown_residues(tmp_path, morse_file, mode, add_hydrogens, match):
    structure = tmp_path / "ligand.pdb"
    structure.write_text(BARE_LIGAND)
    config = MDConfig(
        structure=str(structure),
        potential=str(morse_file),
        output=str(tmp_path / "run"),
        mode=mode,
        add_hydrogens=add_hydrogens,
        solvate=False,
    )
    start_fails(config, match)


def test_box_too_small_for_the_ml_cutoff(tmp_path):
    """108 argon atoms in a 17.7 Å box and a potential with a 9 Å cutoff: atoms would see their own images."""
    potential = tmp_path / "lj9.pt"
    mlcalc.export(mlcalc.models.LennardJones(sigma=3.405, epsilon=0.0103, cutoff=9.0), potential)
    config = MDConfig(
        structure=str(write_argon(tmp_path / "argon.pdb")),
        potential=str(potential),
        output=str(tmp_path / "run"),
        mode="ml",
        solvate=False,
        add_hydrogens=False,
    )
    start_fails(config, r"box is 1\.770 nm wide, less than twice the ML potential's \(.+\) cutoff \(0\.9 nm\)")


def test_box_too_small_for_the_mm_cutoff(tmp_path, morse_file):
    """Solvated trialanine with 0.7 nm of padding (a 1.8 nm box, wide enough for the 0.84 nm ML cutoff) and a 1.2 nm
    MM cutoff."""
    config = MDConfig(
        structure=str(TRIALANINE),
        potential=str(morse_file),
        output=str(tmp_path / "run"),
        padding=0.7,
        mm_cutoff=1.2,
    )
    start_fails(config, r"less than twice the MM nonbonded cutoff \(1\.2 nm\)")


def test_sdf_solute_is_read_with_its_bonds_and_hydrogens(tmp_path):
    """An SDF written by RDKit, hydrogens included or left implicit: the topology holds RDKit's atoms,
    bonds and coordinates (Å in the file, nm in OpenMM)."""
    Chem = pytest.importorskip("rdkit.Chem")
    from rdkit.Chem import AllChem

    from mlcalc.md.prepare import read_structure

    ethanol = Chem.AddHs(Chem.MolFromSmiles("CCO"))
    AllChem.EmbedMolecule(ethanol, randomSeed=1)
    explicit = tmp_path / "ethanol.sdf"
    Chem.MolToMolFile(ethanol, str(explicit))
    topology, positions = read_structure(explicit)
    assert [a.element.atomic_number for a in topology.atoms()] == [a.GetAtomicNum() for a in ethanol.GetAtoms()]
    assert topology.getNumBonds() == ethanol.GetNumBonds() == 8
    np.testing.assert_allclose(
        positions.value_in_unit(unit.angstrom), ethanol.GetConformer().GetPositions(), rtol=0, atol=1e-4
    )  # the MOL format stores 4 decimals
    heavy = tmp_path / "ethanol-no-h.sdf"
    Chem.MolToMolFile(Chem.RemoveHs(ethanol), str(heavy))
    topology, _ = read_structure(heavy)
    assert sorted(a.element.symbol for a in topology.atoms()) == sorted("CCOHHHHHH")
