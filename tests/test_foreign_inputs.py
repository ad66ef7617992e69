"""Foreign TorchScript files that mlcalc cannot honour are refused with what was found and what is
supported. The files here are small scripted modules carrying a SevenNet deployment's metadata (the
checks read the metadata before the model runs), so these tests need no SevenNet."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Union

import pytest
import torch
from torch import Tensor

import mlcalc
import mlcalc.foreign
from mlcalc import torchscript
from mlcalc.cli import main
from mlcalc.errors import FamilyVersionError, PluginError

SEVENNET = {
    "chemical_symbols_to_index": "Cl Na",
    "cutoff": "5.0",
    "num_species": "2",
    "model_type": "E3_equivariant_model",
    "version": "0.13.0",
    "dtype": "single",
    "flashTP": "no",
    "oeq": "no",
    "time": "2026-12-03",
}


class Pairwise(torch.nn.Module):
    """Stands in for a deployment: per-atom energies from ``edge_vec`` the way SevenNet's are keyed."""

    def forward(self, data: Dict[str, Tensor]) -> Dict[str, Tensor]:
        energies = torch.zeros(data["x"].shape[0], dtype=data["edge_vec"].dtype)
        inverse_r6 = 1.0 / (data["edge_vec"] * data["edge_vec"]).sum(dim=1).pow(3)
        energies = energies.index_add(0, data["edge_index"][0], inverse_r6)
        return {"atomic_energy": energies.unsqueeze(1), "inferred_total_energy": energies.sum()}


def deployment(tmp_path: Path, name: str = "deployed.pt", **changes: str) -> Path:
    extra = {key: value for key, value in {**SEVENNET, **changes}.items() if value is not None}
    path = tmp_path / name
    torchscript.save(torchscript.script(Pairwise()), str(path), extra_files=extra)
    return path


def test_a_file_with_sevennets_metadata_imports_and_runs(tmp_path):
    metadata = mlcalc.foreign.import_torchscript(deployment(tmp_path), tmp_path / "out.pt")
    assert metadata.species == (11, 17) and metadata.cutoff == 5.0 and metadata.dtype == "float32"
    assert metadata.extra["family"] == "SevenNet" and metadata.extra["family_version"] == "0.13.0"
    from ase.build import bulk

    atoms = bulk("NaCl", "rocksalt", a=5.64) * (2, 2, 2)
    atoms.calc = mlcalc.MLCalculator(tmp_path / "out.pt", device="cpu")
    assert atoms.get_potential_energy() > 0


@pytest.mark.parametrize(
    "changes, problem",
    [
        ({"cutoff": None}, r"lacks the metadata \['cutoff'\].*deploy it again"),
        ({"num_species": "3"}, r"contradicts itself: num_species is '3' but chemical_symbols_to_index lists 2"),
        ({"comm_size": "4"}, r"parallel SevenNet deployment.*without -p"),
        ({"flashTP": "yes"}, r"deployed with flashTP.*without -flashTP"),
        ({"dtype": "half"}, r"dtype 'half'; supported: \['double', 'single'\]"),
        ({"cutoff": "-1"}, r"cutoff '-1', not a positive number"),
        ({"chemical_symbols_to_index": "Na Xx"}, r"unknown element symbols \['Xx'\]"),
        ({"model_type": "other"}, r"model_type 'other'; supported: 'E3_equivariant_model'"),
    ],
)
def test_metadata_that_is_missing_or_contradicts_itself_is_refused(tmp_path, changes, problem):
    with pytest.raises(PluginError, match=problem):
        mlcalc.foreign.import_torchscript(deployment(tmp_path, **changes), tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()


def test_a_version_whose_format_may_have_changed_is_refused_unless_allowed(tmp_path):
    path = deployment(tmp_path, version="0.9.2")
    with pytest.raises(FamilyVersionError, match=r"SevenNet 0\.9\.2.*checked with SevenNet >=0\.13,<0\.14"):
        mlcalc.foreign.import_torchscript(path, tmp_path / "out.pt")
    with pytest.warns(UserWarning, match="importing anyway"):
        mlcalc.foreign.import_torchscript(path, tmp_path / "out.pt", allow_untested_version=True)


def test_unknown_kinds_and_other_files_are_refused_with_what_is_supported(tmp_path, lj_path):
    plain = tmp_path / "plain.pt"
    torchscript.save(torchscript.script(Pairwise()), str(plain))
    with pytest.raises(PluginError, match=r"kind mlcalc does not know \(its extra files: none\)\. Supported: sevennet"):
        mlcalc.foreign.import_torchscript(plain, tmp_path / "out.pt")
    with pytest.raises(PluginError, match="already an mlcalc potential file"):
        mlcalc.foreign.import_torchscript(lj_path, tmp_path / "out.pt")
    pickled = tmp_path / "pickled.pt"
    torch.save({"weights": torch.zeros(2)}, pickled)
    with pytest.raises(PluginError, match=r"not a TorchScript file.*family's adapter"):
        mlcalc.foreign.import_torchscript(pickled, tmp_path / "out.pt")
    with pytest.raises(FileNotFoundError, match="no such file"):
        mlcalc.foreign.import_torchscript(tmp_path / "missing.pt", tmp_path / "out.pt")
    with pytest.raises(PluginError, match=r"unknown foreign TorchScript kind 'nequip'; supported"):
        mlcalc.foreign.import_torchscript(deployment(tmp_path), tmp_path / "out.pt", "nequip")
    with pytest.raises(
        PluginError, match=r"float32 file, as its tool exported it; mlcalc does not convert.*leave out dtype"
    ):
        mlcalc.foreign.import_torchscript(deployment(tmp_path), tmp_path / "out.pt", dtype="float64")


EXTENSION_DEPLOYMENT = """
import json
import sys
from typing import Dict

import torch
from torch import Tensor

library = torch.library.Library("mlcalc_test_foreign", "DEF")
library.define("scale(Tensor x) -> Tensor")
library.impl("scale", lambda x: 2.0 * x, "CompositeExplicitAutograd")


class Accelerated(torch.nn.Module):
    def forward(self, data: Dict[str, Tensor]) -> Dict[str, Tensor]:
        energies = torch.ops.mlcalc_test_foreign.scale((data["edge_vec"] ** 2).sum(1))
        return {"atomic_energy": energies.unsqueeze(1), "inferred_total_energy": energies.sum()}


extra = json.loads(sys.argv[2])
torch.jit.save(torch.jit.script(Accelerated()), sys.argv[1], _extra_files=extra)
"""


def test_a_deployment_needing_an_extension_names_it(tmp_path):
    """A deployment whose model calls a C++ extension's operator (registered only where it was written)
    is refused at import with the operator and what to load, and nothing is written."""
    import json
    import subprocess
    import sys

    source, script = tmp_path / "accelerated.pt", tmp_path / "deploy.py"  # TorchScript reads the source
    script.write_text(EXTENSION_DEPLOYMENT)
    subprocess.run([sys.executable, str(script), str(source), json.dumps(SEVENNET)], check=True, capture_output=True)
    with pytest.raises(
        mlcalc.ExtensionError, match=r"accelerated\.pt cannot be loaded: it calls 'mlcalc_test_foreign::scale'"
    ):
        mlcalc.foreign.import_torchscript(source, tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()


def test_command_line_import(tmp_path, capsys):
    source = deployment(tmp_path)
    assert main(["export", "--from", "torchscript", str(source), str(tmp_path / "a.pt")]) == 0
    assert "wrote" in capsys.readouterr().out and mlcalc.load(tmp_path / "a.pt").metadata.species == (11, 17)
    assert main(["export", "--from", "sevennet-lammps", str(source), str(tmp_path / "b.pt")]) == 0
    assert main(["export", "--list"]) == 0
    assert "sevennet-lammps" in capsys.readouterr().out
    assert main(["export", "--from", "torchscript", str(source), str(tmp_path / "c.pt"), "--energy-unit", "meV"]) != 0
    assert "records its own units" in capsys.readouterr().err


def test_export_works_after_torch_geometric_replaced_torch_index_select(tmp_path, monkeypatch):
    """torch_geometric (imported by SevenNet, among others) replaces ``torch.index_select`` and
    ``torch.select`` with Python functions TorchScript cannot compile; mlcalc's graph builder must not
    call them by those names."""
    original_index_select, original_select = torch.index_select, torch.select

    def index_select(input: Tensor, dim: Union[int, str], index: Tensor, out: Optional[Tensor] = None) -> Tensor:
        return original_index_select(input, dim, index)

    def select(input: Tensor, dim: Union[int, str], index: int) -> Tensor:
        return original_select(input, dim, index)

    monkeypatch.setattr(torch, "index_select", index_select)
    monkeypatch.setattr(torch, "select", select)
    metadata = mlcalc.foreign.import_torchscript(deployment(tmp_path), tmp_path / "out.pt")
    assert metadata.species == (11, 17)
