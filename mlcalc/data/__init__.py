"""Potentials shipped inside the package, loadable by name: ``mlcalc.load("demo")``.

``demo``: a small HIP-NN trained on GFN2-xTB energies and forces of H, C, N, O molecules and water
(built by ``training/`` in the repository; see the model card, docs/model-card.md). A demonstration, not a
production potential.
"""

from __future__ import annotations

import os
from pathlib import Path

from mlcalc.files import PathLike

#: Bundled potentials: name → file in this folder.
BUNDLED_MODELS = {"demo": "demo.pt"}


def bundled_model_path(name: str) -> Path:
    """Path of the bundled potential ``name``; a clear error lists the bundled names otherwise."""
    if name not in BUNDLED_MODELS:
        raise KeyError(f"no bundled potential named {name!r}; bundled potentials: {', '.join(sorted(BUNDLED_MODELS))}")
    path = Path(__file__).with_name(BUNDLED_MODELS[name])
    if not path.is_file():
        raise FileNotFoundError(f"the bundled potential {name!r} is missing ({path}): reinstall mlcalc")
    return path


def resolve_potential_path(path: PathLike) -> Path:
    """``path`` itself when it names a file; else the bundled potential of that name.

    A name that is neither an existing file nor a bundled potential (a directory among them) raises
    FileNotFoundError naming both possibilities and listing the bundled names.
    """
    if Path(path).is_file():
        return Path(path)
    if os.fspath(path) in BUNDLED_MODELS:  # "demo", or Path("demo") from a command line
        return bundled_model_path(os.fspath(path))
    bundled = ", ".join(sorted(BUNDLED_MODELS))
    if Path(path).is_dir():
        raise FileNotFoundError(
            f"{path} is a directory, not a potential file: give the path of a file written by mlcalc.export, "
            f"or the name of a bundled potential ({bundled})"
        )
    raise FileNotFoundError(
        f"potential file {path} does not exist, and it is not the name of a bundled potential ({bundled}): "
        "check the path, or give the name of a bundled potential"
    )
