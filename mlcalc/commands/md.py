"""``mlcalc md``: solvated molecular dynamics in OpenMM with a potential file (whole-system ML or ML/MM)."""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from mlcalc.commands.arguments import positive_int


def number_in(unit: str):
    """An ``argparse`` type: a number in ``unit``, refusing one written with a unit ("300K") by name."""

    def convert(text: str) -> float:
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be a number in {unit}, got {text!r}: write the number alone"
            ) from None

    return convert


#: Command-line options -> MDConfig fields (type and help); every field of MDConfig can also come from --config.
OPTIONS = {
    "potential": (str, "potential file (mlcalc.export)"),
    "output": (str, "output directory (default md)"),
    "mode": (str, "ml: the potential for every atom; mlmm: for --ml-selection, the force field for the rest"),
    "ml_selection": (str, "ML atoms for mlmm: solute (default), 'resname ALA', 'index 0-32'"),
    "padding": (number_in("nm"), "solvent padding, nm (default 1.0)"),
    "n_waters": (positive_int, "number of waters instead of a padding"),
    "box_shape": (str, "cube (default), octahedron or dodecahedron"),
    "temperature": (number_in("K"), "K (default 300)"),
    "pressure": (number_in("bar"), "bar (default 1)"),
    "friction": (number_in("1/ps"), "Langevin friction, 1/ps (default 1)"),
    "timestep_fs": (number_in("fs"), "fs (default 0.5)"),
    "nvt": (number_in("ps"), "NVT equilibration, ps (default 100)"),
    "npt": (number_in("ps"), "NPT equilibration, ps (default 100)"),
    "production": (number_in("ps"), "production, ps (default 1000)"),
    "trajectory_interval": (number_in("ps"), "ps between trajectory frames (default 1)"),
    "state_interval": (number_in("ps"), "ps between state.csv rows (default 1)"),
    "checkpoint_interval": (number_in("ps"), "ps between checkpoints (default 10)"),
    "trajectory_format": (str, "dcd (default) or xtc"),
    "platform": (str, "OpenMM platform (default: the fastest)"),
    "implementation": (
        str,
        "torch (openmm-torch TorchForce) or python (openmm.PythonForce); default: torch where openmm-torch imports",
    ),
    "seed": (int, "random seed"),
    "max_temperature": (
        number_in("K"),
        "K above which the run counts as blown up and stops (default 5 x --temperature)",
    ),
    "max_uncertainty": (
        number_in("eV"),
        "eV: with a committee potential, record its energy spread in uncertainty.csv and stop the run (exit 1) "
        "when the spread passes this value; with --resume, continue with this threshold instead",
    ),
}


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "md",
        help="solvated NPT molecular dynamics in OpenMM (minimise, NVT, NPT, production), resumable",
        description="Prepare (hydrogens, solvent), minimise, equilibrate (NVT, NPT) and run production MD. "
        "Outputs in the output directory: config.json, start.pdb, state.csv, trajectory.dcd/xtc, "
        "checkpoint-STEP.chk with its manifest checkpoint.json, final.pdb (uncertainty.csv with --max-uncertainty). "
        "A killed run continues with --resume DIR; a run that blew up, or whose committee spread passed "
        "--max-uncertainty, stops with exit status 1 and keeps its last good checkpoint.",
    )
    parser.add_argument("structure", nargs="?", help="solute: PDB, mmCIF or SDF")
    parser.add_argument(
        "--config", type=Path, help="JSON or TOML file of MD settings (fields of mlcalc.md.config.MDConfig)"
    )
    parser.add_argument("--resume", type=Path, metavar="DIR", help="continue the run in DIR from its last checkpoint")
    parser.add_argument(
        "--restart",
        type=Path,
        metavar="DIR",
        help="run DIR again from its first step (deletes its checkpoints and outputs)",
    )
    parser.add_argument("--no-solvate", dest="solvate", action="store_const", const=False, help="keep the box as given")
    parser.add_argument(
        "--no-hydrogens", dest="add_hydrogens", action="store_const", const=False, help="do not add hydrogens"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    for name, (kind, text) in OPTIONS.items():
        flags = ["--" + name.replace("_", "-")] + (["-o"] if name == "output" else [])
        parser.add_argument(*flags, dest=name, type=kind, help=text)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mlcalc.md.config import MDConfig
    from mlcalc.md.pipeline import Run

    if args.resume is not None and args.restart is not None:
        raise ValueError("give --resume or --restart, not both")
    settings = {name: getattr(args, name) for name in (*OPTIONS, "structure", "solvate", "add_hydrogens")}
    given = {name: value for name, value in settings.items() if value is not None}
    if args.resume is not None:
        timestep_fs = given.pop("timestep_fs", None)
        max_uncertainty = given.pop("max_uncertainty", None)
        if given or args.config is not None:
            options = sorted(given) + (["config"] if args.config is not None else [])
            raise ValueError(
                f"--resume continues a run with its own settings (a shorter --timestep-fs and a new "
                f"--max-uncertainty aside), but {options} "
                f"were given too: drop them, or run it again from the start with them: mlcalc md --restart "
                f"{args.resume} ..."
            )
        md = Run.resume(args.resume, timestep_fs=timestep_fs, max_uncertainty=max_uncertainty)
    elif args.restart is not None:
        md = Run.restart(args.restart, **given)
    else:
        if args.config is not None:
            config = MDConfig.from_file(args.config, **settings)
        else:
            missing = [name for name in ("structure", "potential") if settings[name] is None]
            if missing:
                raise ValueError(f"give {' and '.join(missing)} (or a --config file)")
            config = MDConfig(**{k: v for k, v in settings.items() if v is not None})
        md = Run.start(config)
    stop = StopOnInterrupt()
    try:
        with stop:
            md.run(progress=not args.quiet, stop_requested=stop.requested)
    except KeyboardInterrupt:
        print(
            f"\nmlcalc md: interrupted at step {md.simulation.currentStep}; continue from the last checkpoint (step "
            f"{md.checkpoint_step}) with: mlcalc md --resume {md.directory}",
            file=sys.stderr,
        )
        return 130
    done = {field.name: getattr(md.config, field.name) for field in dataclasses.fields(md.config)}
    print(f"mlcalc md: {md.simulation.currentStep} steps done; outputs in {md.directory} ({done['mode']} mode)")
    return 0


class StopOnInterrupt:
    """Within ``with``: the first Ctrl-C (SIGINT) only asks the run to stop at its next look (``requested``),
    since a KeyboardInterrupt raised inside OpenMM's C++ code would surface as an OpenMMException; a second
    Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.asked = False
        self.previous: Any = None  # the SIGINT handler to restore

    def requested(self) -> bool:
        return self.asked

    def _ask(self, signum, frame) -> None:
        self.asked = True
        signal.signal(signal.SIGINT, self.previous)

    def __enter__(self) -> "StopOnInterrupt":
        if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread
            self.previous = signal.signal(signal.SIGINT, self._ask)
        return self

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
