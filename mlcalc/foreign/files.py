"""Read what a TorchScript archive says about itself without running it: its extra files.

A TorchScript file is a zip archive; ``torch.jit.save(..., _extra_files=...)`` stores each extra file
as ``<archive>/extra/<name>``. Tools that export models for LAMMPS record their metadata there (the
cutoff, the element order, the precision), which is how :mod:`mlcalc.foreign` recognises them.
"""

from __future__ import annotations

import os
import zipfile

from mlcalc.errors import PluginError
from mlcalc.files import PathLike


def extra_files(path: PathLike) -> dict[str, bytes]:
    """The extra files of the TorchScript archive ``path``, by name (empty when it has none).

    Raises:
        FileNotFoundError: no such file.
        PluginError: not a TorchScript archive (not a zip with ``data.pkl`` and ``constants.pkl``).
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path}")
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if not any(name.endswith("/constants.pkl") for name in names):
                raise PluginError(
                    f"{path} is not a TorchScript file (a zip archive without TorchScript's constants.pkl: saved "
                    "with torch.save, a pickled model or state dict?); such a model needs its family's adapter "
                    "(mlcalc export --list), a TorchScript file is what torch.jit.save writes"
                )
            return {
                name.split("/extra/", 1)[1]: archive.read(name)
                for name in names
                if "/extra/" in name and not name.endswith("/")
            }
    except zipfile.BadZipFile as exc:
        raise PluginError(
            f"{path} is not a TorchScript file (not a zip archive: {exc}); a file saved with torch.save (a "
            "pickled model or state dict) needs its family's adapter instead (mlcalc export --list)"
        ) from exc


def code_modules(path: PathLike) -> set[str]:
    """The Python modules whose TorchScript code the archive holds, e.g. ``mace.calculators.lammps_mace``
    (from its ``code/__torch__/`` entries; the file is not run)."""
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    modules = set()
    for name in names:
        if "/code/__torch__/" in name and name.endswith(".py"):
            modules.add(name.split("/code/__torch__/", 1)[1][: -len(".py")].replace("/", "."))
    return modules


def text(extra: dict[str, bytes], name: str) -> str:
    """An extra file decoded as UTF-8 and stripped."""
    return extra[name].decode("utf-8", errors="replace").strip()
