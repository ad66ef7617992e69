"""TorchScript potentials other tools export for LAMMPS, made into mlcalc files.

Such files leave the neighbour list to the host, which is what mlcalc's graph builder does. An import
reads the file's own metadata (its extra files: cutoff, element order, precision, the exporting
tool's version), wraps the foreign module in a contract model that translates mlcalc's graph into the
inputs it expects, and writes an ordinary mlcalc file: it then runs in ASE and in OpenMM (either force)
without the family's Python package.

>>> import mlcalc.foreign
>>> mlcalc.foreign.import_torchscript("deployed_serial.pt", "sevennet.pt")
$ mlcalc export --from torchscript deployed_serial.pt sevennet.pt              # the same

Supported formats are in :data:`FORMATS`; anything else is refused with what was found.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

from mlcalc.contract import METADATA_FILE, Metadata
from mlcalc.errors import FamilyVersionError, PluginError
from mlcalc.files import PathLike
from mlcalc.foreign import mace_lammps, metatomic, nequip, sevennet
from mlcalc.foreign.files import code_modules, extra_files
from mlcalc.plugins import version_in


@dataclass(frozen=True)
class ForeignFormat:
    """A kind of foreign TorchScript file: how to recognise it and make a contract model of it.

    ``recognises(extra, modules)`` reads the archive's extra files and the Python modules of its code.
    ``convert(path, extra, **options)`` returns the model, the metadata fields (``cutoff``, ``species``,
    units, ``dtype``, ``extra``) and ``family_version``, the version of the tool that wrote the file
    (``None`` where the format does not record it: then it cannot be checked, and the metadata says so).
    ``options``: the keyword options ``convert`` takes, with what each means (``--option KEY=VALUE``).
    """

    name: str
    family: str
    checked_versions: str
    exporter: str
    recognises: Callable[[dict[str, bytes], set[str]], bool]
    convert: Callable[..., dict]
    options: dict[str, str] = field(default_factory=dict)


FORMATS: dict[str, ForeignFormat] = {
    sevennet.NAME: ForeignFormat(
        sevennet.NAME,
        sevennet.FAMILY,
        sevennet.CHECKED_VERSIONS,
        "`sevenn get_model` (serial LAMMPS deployment)",
        sevennet.recognises,
        sevennet.convert,
    ),
    mace_lammps.NAME: ForeignFormat(
        mace_lammps.NAME,
        mace_lammps.FAMILY,
        mace_lammps.CHECKED_VERSIONS,
        "`mace_create_lammps_model` (pair_style mace)",
        mace_lammps.recognises,
        mace_lammps.convert,
    ),
    nequip.NAME: ForeignFormat(
        nequip.NAME,
        nequip.FAMILY,
        nequip.CHECKED_VERSIONS,
        "`nequip-compile --mode torchscript` (NequIP and Allegro, `pair_style nequip`/`allegro`)",
        nequip.recognises,
        nequip.convert,
        {"type_map": "the element of each type name that is not an element symbol: TYPE:SYMBOL,... (e.g. Cs:C)"},
    ),
    metatomic.NAME: ForeignFormat(
        metatomic.NAME,
        metatomic.FAMILY,
        metatomic.CHECKED_VERSIONS,
        "`AtomisticModel.save` of metatomic-torch (needs metatomic-torch's libraries wherever it runs)",
        metatomic.recognises,
        metatomic.convert,
        {"variant": "the energy output's variant to use, energy/VARIANT (default: the plain energy output)"},
    ),
}


def detect(path: PathLike) -> ForeignFormat:
    """The format of the TorchScript file ``path``, from its extra files (the file is not run)."""
    extra = extra_files(path)
    if METADATA_FILE in extra:
        raise PluginError(f"{path} is already an mlcalc potential file: load it as it is (mlcalc.load, --potential)")
    modules = code_modules(path)
    found = [f for f in FORMATS.values() if f.recognises(extra, modules)]
    if not found:
        supported = "; ".join(f"{f.name}: {f.family} {f.checked_versions} via {f.exporter}" for f in FORMATS.values())
        raise PluginError(
            f"{path} is a TorchScript file of a kind mlcalc does not know (its extra files: "
            f"{sorted(extra) or 'none'}). Supported: {supported}. An mlcalc file loads directly "
            "(mlcalc.load); a Python model needs its family's adapter (mlcalc export --list)"
        )
    return found[0]


def import_torchscript(
    path: PathLike,
    output: PathLike,
    kind: Optional[str] = None,
    *,
    name: Optional[str] = None,
    description: Optional[str] = None,
    dtype: Optional[str] = None,
    allow_untested_version: bool = False,
    options: Optional[Mapping[str, Any]] = None,
) -> Metadata:
    """Write the foreign TorchScript file ``path`` as the mlcalc file ``output``; return its metadata.

    Args:
        kind: a name in :data:`FORMATS`; ``None`` recognises it from the file's metadata.
        name, description: recorded in the metadata (default: the family and the source file).
        dtype: must be the file's own precision when given (a SevenNet file's weights are frozen constants).
        allow_untested_version: import a file written by a version of the tool outside
            ``checked_versions`` (with a warning) instead of refusing it.
        options: the format's options (:attr:`ForeignFormat.options`), e.g. ``{"type_map": {"Cs": "C"}}``
            for a NequIP model whose type names are not elements.
    """
    from mlcalc.export import export

    extra = extra_files(path)
    if kind is None:
        chosen = detect(path)
    elif kind in FORMATS:
        chosen = FORMATS[kind]
        if not chosen.recognises(extra, code_modules(path)):
            raise PluginError(
                f"{path} is not a {chosen.family} file ({chosen.exporter}): its extra files are {sorted(extra)}; "
                "leave out the kind to let mlcalc recognise it"
            )
    else:
        raise PluginError(f"unknown foreign TorchScript kind {kind!r}; supported: {sorted(FORMATS)}")
    options = dict(options or {})
    unknown = sorted(set(options) - set(chosen.options))
    if unknown:
        known = ", ".join(f"{k} ({v})" for k, v in chosen.options.items()) or "none"
        raise PluginError(f"the {chosen.name} import has no option(s) {unknown}; its options: {known}")
    fields = chosen.convert(path, extra, **options)
    version = fields.pop("family_version")
    checked = version is None or version_in(version, chosen.checked_versions)
    if version is None:
        version = "(version not recorded in the file)"
    if not checked:
        message = (
            f"{path} was written by {chosen.family} {version}; mlcalc's {chosen.name} import was checked with "
            f"{chosen.family} {chosen.checked_versions}, and the format may have changed"
        )
        if not allow_untested_version:
            raise FamilyVersionError(
                message + ": export it with a checked version, or pass allow_untested_version=True "
                "(--allow-untested-version) and compare the result with the family's own calculator"
            )
        warnings.warn(message + "; importing anyway, as asked", stacklevel=2)
    if dtype is not None and dtype != fields["dtype"]:
        raise PluginError(
            f"{path} is a {fields['dtype']} file, as its tool exported it; mlcalc does not convert a foreign file to "
            f"{dtype}: leave out dtype, or export the model again in {dtype} with {chosen.family}"
        )
    extra_fields = {"family": chosen.family, "foreign_format": chosen.name, "family_version": version}
    extra_fields.update(fields.pop("extra"))
    return export(
        fields.pop("model"),
        output,
        name=name or f"{chosen.name}:{_stem(path)}",
        description=description or f"{chosen.family} {version} TorchScript file {_stem(path)}, imported by mlcalc",
        extra=extra_fields,
        **fields,
    )


def _stem(path: PathLike) -> str:
    import os

    return os.path.basename(os.fspath(path))
