"""``mlcalc info PATH``: print a potential file's metadata."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("info", help="print the metadata of a potential file")
    parser.add_argument("path", help="a file written by mlcalc.export, or a bundled name (demo)")
    parser.add_argument("--json", action="store_true", help="print the raw JSON record")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mlcalc.potential import read_metadata

    metadata = read_metadata(args.path)
    if args.json:
        print(metadata.to_json())
        return 0
    species = metadata.symbols
    rows = [
        ("name", metadata.name),
        ("description", metadata.description),
        ("contract version", metadata.contract_version),
        ("cutoff", f"{metadata.cutoff:g} {metadata.length_unit}"),
        (
            "species",
            ", ".join(species) if len(species) <= 20 else f"{len(species)} elements ({species[0]}..{species[-1]})",
        ),
        ("units", f"length {metadata.length_unit}, energy {metadata.energy_unit}"),
        ("dtype", metadata.dtype),
        (
            "committee",
            f"{metadata.committee} members (energy_uncertainty, forces_uncertainty)" if metadata.committee else "-",
        ),
        (
            "compiled route",
            f"yes: exported program of {metadata.program['bytes'] / 1e6:.1f} MB, torch "
            f"{metadata.program['torch_version']} (mlcalc.load(path, compile=True))"
            if metadata.program
            else "no (TorchScript only; export with compilable=True)",
        ),
        ("references", "; ".join(metadata.references) or "-"),
        ("authors", ", ".join(metadata.authors) or "-"),
        ("license", metadata.license or "-"),
        ("written by", f"mlcalc {metadata.mlcalc_version or '?'}, torch {metadata.torch_version or '?'}"),
    ]
    rows += [(f"extra.{k}", str(v)) for k, v in sorted(metadata.extra.items())]
    width = max(len(k) for k, _ in rows)
    print(f"{args.path}")
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")
    return 0
