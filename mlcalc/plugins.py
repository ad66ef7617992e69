"""Model-family adapters: how mlcalc finds them and the interface they implement.

An adapter turns a model trained in another package (TorchANI, hippynn, SchNetPack, MACE, ...) into
an mlcalc potential file. Each lives in its own distribution (``plugins/<family>`` in the repository)
that depends on its family's package and registers an :class:`Adapter` instance under the entry-point
group :data:`ENTRY_POINT_GROUP`. mlcalc finds adapters through :mod:`importlib.metadata` and imports
one only when it is asked for, so the core never imports a heavy model package itself.

>>> import mlcalc.plugins
>>> mlcalc.plugins.available()                                 # installed adapters, nothing imported
>>> mlcalc.plugins.export("mace", "my.model", "my-mace.pt")    # or: mlcalc export --from mace ...
"""

from __future__ import annotations

import abc
import importlib.metadata
import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence, Union

import torch

from mlcalc import torchscript
from mlcalc.contract import Metadata, dtype_name
from mlcalc.errors import FamilyVersionError, PluginError
from mlcalc.files import PathLike

#: Entry-point group under which model-family adapters register an :class:`Adapter` instance.
ENTRY_POINT_GROUP = "mlcalc.plugins"


@dataclass
class Conversion:
    """What an adapter makes of a family model: a contract model and the metadata to export it with.

    ``model`` follows the mlcalc contract (``forward(inputs) -> {"energies": ...}``) and holds no
    reference to the family package that TorchScript would need at run time.
    """

    model: torch.nn.Module
    cutoff: float
    species: Sequence[int]
    length_unit: str
    energy_unit: str
    dtype: str
    name: str
    description: str = ""
    references: Sequence[str] = ()
    extra: dict[str, Any] = field(default_factory=dict)


def load_saved_model(path: PathLike, family: str, model_kind: str, also: str = "") -> torch.nn.Module:
    """The model a family's training saved with ``torch.save(model, path)``.

    Unpickling runs code from the file (``weights_only=False``, which whole-model files need): load
    only files you trust. Raises ``FileNotFoundError``, or :class:`PluginError` for a file that
    ``torch.load`` cannot read or that holds a dictionary (a state dict or checkpoint) instead of a model.

    Args:
        path: the file.
        family: the adapter's name, for the messages.
        model_kind: what to build from a state dict, e.g. "the MACE model".
        also: other inputs the adapter reads, for the message (e.g. "and hippynn experiment directories").
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path}: give the path of the {family} model file")
    try:
        # a pickled model with scripted parts (e3nn's) loads them through TorchScript
        with torchscript.quiet_deprecation():
            loaded = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # a file of another kind can fail in many ways
        raise PluginError(
            f"{path} could not be read with torch.load ({exc}); the {family} adapter reads models saved with "
            f"torch.save(model, path){' ' + also if also else ''}"
        ) from exc
    if isinstance(loaded, dict):
        raise PluginError(
            f"{path} holds a dictionary (a state dict or checkpoint), not a model: build {model_kind}, load "
            "the state dict into it and pass the model (or save it with torch.save(model, path))"
        )
    return loaded


class Adapter(abc.ABC):
    """Converts models of one family into mlcalc files. Plugins subclass it and register an instance.

    Class attributes a subclass sets:
        name: the family's name on the command line (``mlcalc export --from NAME``).
        package: the family's distribution on PyPI (its installed version is checked).
        tested_versions: PEP 440 specifier of the family versions the adapter was verified with.
        options: family-specific keyword arguments of :meth:`convert` and their help texts.
    """

    name: str = ""
    package: str = ""
    tested_versions: str = ""
    options: Mapping[str, str] = {}

    @abc.abstractmethod
    def convert(
        self,
        source: Any,
        *,
        dtype: Optional[str] = None,
        length_unit: Optional[str] = None,
        energy_unit: Optional[str] = None,
        **options: Any,
    ) -> Conversion:
        """Build the contract model from ``source`` (a model object or a checkpoint path).

        ``dtype`` ("float32"/"float64", default the model's own), ``length_unit`` and ``energy_unit``
        (the units the family model works in, where the model does not record them) come from the
        user. Raise :class:`~mlcalc.errors.PluginError` naming what is unsupported and what to do.
        """

    def family_version(self) -> str:
        """The installed version of the family package; :class:`PluginError` if it is missing."""
        try:
            return importlib.metadata.version(self.package)
        except importlib.metadata.PackageNotFoundError:
            raise PluginError(
                f"the {self.name} adapter needs the {self.package!r} package, which is not installed; "
                f"install it with `pip install '{self.package}{self.tested_versions}'`"
            ) from None

    def check_version(self, allow_untested: bool = False) -> str:
        """The installed family version; :class:`FamilyVersionError` if the adapter was not tested with it
        (a warning instead with ``allow_untested=True``)."""
        version = self.family_version()
        if not version_in(version, self.tested_versions):
            message = (
                f"{self.package} {version} is installed, but the {self.name} adapter was tested with "
                f"{self.package}{self.tested_versions}: install a tested version "
                f"(`pip install '{self.package}{self.tested_versions}'`)"
            )
            if not allow_untested:
                raise FamilyVersionError(
                    message + ", or pass allow_untested_version=True (--allow-untested-version) and compare "
                    "the exported file with the family's own calculator yourself"
                )
            import warnings

            warnings.warn(message + "; converting anyway, as asked", stacklevel=3)
        return version

    def export(
        self,
        source: Any,
        path: PathLike,
        *,
        dtype: Union[str, torch.dtype, None] = None,
        name: Optional[str] = None,
        description: Optional[str] = None,
        length_unit: Optional[str] = None,
        energy_unit: Optional[str] = None,
        allow_untested_version: bool = False,
        compilable: bool = False,
        **options: Any,
    ) -> Metadata:
        """Convert ``source`` (a model object or checkpoint path) and write the mlcalc file ``path``
        (``compilable``: with an exported program for the compiled route, see :func:`mlcalc.export`).

        Returns the written file's metadata. The family's name and version are recorded in its
        ``extra`` field.
        """
        from mlcalc.export import export

        version = self.check_version(allow_untested_version)
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            known = ", ".join(f"{k} ({v})" for k, v in self.options.items()) or "none"
            raise PluginError(f"the {self.name} adapter has no option(s) {unknown}; its options: {known}")
        name = None if dtype is None else dtype_name(dtype, PluginError)
        conversion = self.convert(source, dtype=name, length_unit=length_unit, energy_unit=energy_unit, **options)
        extra = {"family": self.name, "family_package": self.package, "family_version": version}
        extra.update(conversion.extra)
        return export(
            conversion.model,
            path,
            cutoff=conversion.cutoff,
            species=conversion.species,
            length_unit=conversion.length_unit,
            energy_unit=conversion.energy_unit,
            dtype=conversion.dtype,
            name=name or conversion.name,
            description=description or conversion.description,
            references=list(conversion.references),
            extra=extra,
            compilable=compilable,
        )


def option_bool(name: str, value: Any) -> bool:
    """An adapter's yes/no option from Python (``True``) or the command line (``"true"``, ``"no"``, ...)."""
    if isinstance(value, bool):
        return value
    words = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
    if str(value).strip().lower() not in words:
        raise PluginError(f"option {name} is true or false (yes/no, 1/0), got {value!r}")
    return words[str(value).strip().lower()]


def version_in(version: str, specifier: str) -> bool:
    """Whether ``version`` satisfies the PEP 440 ``specifier`` (an unparseable version does not)."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version

    try:
        return Version(version) in SpecifierSet(specifier)
    except InvalidVersion:
        return False


def available() -> dict[str, str]:
    """Installed adapters: family name → the distribution providing it. Imports nothing."""
    return {name: _describe(entries[0]) for name, entries in sorted(_entry_points().items())}


def get(name: str) -> Adapter:
    """The installed adapter for family ``name`` (e.g. ``"torchani"``); a clear error if there is none."""
    entries = _entry_points().get(name, [])
    if not entries:
        installed = ", ".join(sorted(_entry_points())) or "none"
        raise PluginError(
            f"no mlcalc adapter for {name!r} is installed (installed: {installed}); install the "
            f"plugin, e.g. `pip install ./plugins/{name}` from the mlcalc repository"
        )
    if len(entries) > 1:
        raise PluginError(
            f"several distributions register an mlcalc adapter named {name!r}: "
            f"{', '.join(_describe(e) for e in entries)}; uninstall all but one"
        )
    try:
        adapter = entries[0].load()
    except Exception as exc:  # a broken plugin can fail in any way on import
        raise PluginError(f"the {name} adapter ({_describe(entries[0])}) failed to load: {exc}") from exc
    if isinstance(adapter, type) and issubclass(adapter, Adapter):
        adapter = adapter()
    if not isinstance(adapter, Adapter):
        raise PluginError(
            f"entry point {entries[0].value!r} ({_describe(entries[0])}) is not an mlcalc.plugins.Adapter"
        )
    return adapter


def export(family: str, source: Any, path: PathLike, **kwargs: Any) -> Metadata:
    """Convert ``source`` with the installed adapter of ``family`` and write ``path`` (see
    :meth:`Adapter.export` for the keywords)."""
    return get(family).export(source, path, **kwargs)


def _entry_points() -> dict[str, list[importlib.metadata.EntryPoint]]:
    found: dict[str, list[importlib.metadata.EntryPoint]] = {}
    seen = set()
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        # A distribution visible on two sys.path entries lists its entry points twice.
        key = (entry.name, entry.value)
        if key not in seen:
            seen.add(key)
            found.setdefault(entry.name, []).append(entry)
    return found


def _describe(entry: importlib.metadata.EntryPoint) -> str:
    dist = getattr(entry, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else entry.value
