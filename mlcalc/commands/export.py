"""``mlcalc export --from FAMILY SOURCE OUTPUT``: convert a model of another package to an mlcalc file."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "export",
        help="convert a model of another package (TorchANI, hippynn, SchNetPack, MACE; or a TorchScript file "
        "exported for LAMMPS, e.g. SevenNet's) into an mlcalc potential file",
        description="Convert a model trained in another package into an mlcalc potential file, with the "
        "adapter of that family (installed separately, e.g. `pip install ./plugins/torchani`), or import a "
        "TorchScript file another tool exported for LAMMPS (--from torchscript recognises its kind; no family "
        "package needed).",
        epilog="examples: mlcalc export --from torchani ani.pt ani-mlcalc.pt; "
        "mlcalc export --from torchscript deployed_serial.pt sevennet.pt",
    )
    parser.add_argument("source", nargs="?", help="the family's model file or checkpoint")
    parser.add_argument("output", nargs="?", type=Path, help="the mlcalc file to write")
    parser.add_argument(
        "--from",
        dest="family",
        metavar="FAMILY",
        help="the model's family or foreign TorchScript format (see --list), e.g. torchani, sevennet-lammps; "
        "torchscript: recognise a foreign TorchScript file by its metadata",
    )
    parser.add_argument(
        "--list", action="store_true", help="list the installed adapters and the foreign TorchScript formats, and exit"
    )
    parser.add_argument("--dtype", choices=["float32", "float64"], help="dtype of the file (default: the model's)")
    parser.add_argument("--name", help="name recorded in the file's metadata")
    parser.add_argument("--description", help="description recorded in the file's metadata")
    parser.add_argument("--length-unit", help="the model's length unit, for families that do not record it")
    parser.add_argument("--energy-unit", help="the model's energy unit, for families that do not record it")
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a family-specific option of the adapter (repeatable; `--from FAMILY --option help` lists them)",
    )
    parser.add_argument(
        "--compilable",
        action="store_true",
        help="also store the model as a torch.export program, for mlcalc.load(FILE, compile=True) (torch.compile)",
    )
    parser.add_argument(
        "--allow-untested-version",
        action="store_true",
        help="convert even if the installed family package is a version the adapter was not tested with",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import mlcalc.foreign
    import mlcalc.plugins
    from mlcalc.errors import PluginError

    if args.list:
        installed = mlcalc.plugins.available()
        width = max(len(name) for name in [*installed, *mlcalc.foreign.FORMATS]) + 1
        for family, distribution in installed.items():
            print(f"{family:<{width}} {distribution}")
        if not installed:
            print("no adapters installed; e.g. `pip install ./plugins/torchani` from the mlcalc repository")
        for kind in mlcalc.foreign.FORMATS.values():
            source = f"TorchScript from {kind.family} {kind.checked_versions}, {kind.exporter}"
            print(f"{kind.name:<{width}} {source} (built in)")
        return 0
    if args.family is None:
        raise PluginError("name the model's family with --from FAMILY (installed: see `mlcalc export --list`)")
    if args.family == "torchscript" or args.family in mlcalc.foreign.FORMATS:
        return _import_foreign(args)
    adapter = mlcalc.plugins.get(args.family)
    if args.option == ["help"]:
        for key, text in adapter.options.items():
            print(f"{key:<20} {text}")
        if not adapter.options:
            print(f"the {adapter.name} adapter has no options")
        return 0
    if args.source is None or args.output is None:
        raise PluginError("give the model file to convert and the mlcalc file to write: SOURCE OUTPUT")
    metadata = adapter.export(
        args.source,
        args.output,
        dtype=args.dtype,
        name=args.name,
        description=args.description,
        length_unit=args.length_unit,
        energy_unit=args.energy_unit,
        allow_untested_version=args.allow_untested_version,
        compilable=args.compilable,
        **_options(args.option),
    )
    print(
        f"wrote {args.output}: {metadata.name}, cutoff {metadata.cutoff:g} {metadata.length_unit}, "
        f"species {' '.join(metadata.symbols)}, {metadata.energy_unit}, {metadata.dtype}"
    )
    return 0


def _import_foreign(args: argparse.Namespace) -> int:
    """``--from torchscript`` or ``--from <foreign format>``: import a TorchScript file made for LAMMPS."""
    import mlcalc.foreign
    from mlcalc.errors import PluginError

    ignored = [
        flag for flag, value in (("--length-unit", args.length_unit), ("--energy-unit", args.energy_unit)) if value
    ]
    if ignored:
        raise PluginError(f"{', '.join(ignored)}: a foreign TorchScript file records its own units; leave them out")
    if args.option == ["help"]:
        kinds = (
            mlcalc.foreign.FORMATS.values() if args.family == "torchscript" else [mlcalc.foreign.FORMATS[args.family]]
        )
        for kind in kinds:
            for key, text in kind.options.items():
                print(f"{kind.name}: {key:<12} {text}")
            if not kind.options:
                print(f"{kind.name}: no options")
        return 0
    if args.compilable:
        raise PluginError(
            "--compilable: a foreign TorchScript file has no Python model for torch.export to trace, so its import "
            "runs through TorchScript only; leave out --compilable"
        )
    if args.source is None or args.output is None:
        raise PluginError("give the TorchScript file to import and the mlcalc file to write: SOURCE OUTPUT")
    metadata = mlcalc.foreign.import_torchscript(
        args.source,
        args.output,
        None if args.family == "torchscript" else args.family,
        name=args.name,
        description=args.description,
        dtype=args.dtype,
        allow_untested_version=args.allow_untested_version,
        options=_options(args.option),
    )
    print(
        f"wrote {args.output}: {metadata.name} ({metadata.extra['family']} {metadata.extra['family_version']}), "
        f"cutoff {metadata.cutoff:g} {metadata.length_unit}, {len(metadata.species)} elements, "
        f"{metadata.energy_unit}, {metadata.dtype}"
    )
    return 0


def _options(items: list[str]) -> dict[str, str]:
    """``--option KEY=VALUE`` (repeatable) as keyword options (dashes in keys as underscores)."""
    from mlcalc.errors import PluginError

    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise PluginError(f"--option takes KEY=VALUE, got {item!r}")
        options[key.replace("-", "_")] = value
    return options
