"""The parameters of an MD run (:class:`MDConfig`), from keywords, the command line or a JSON/TOML file."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Optional

from mlcalc.md.files import write_json

MODES = ("ml", "mlmm")
BOX_SHAPES = ("cube", "octahedron", "dodecahedron")
TRAJECTORY_FORMATS = ("dcd", "xtc")


@dataclasses.dataclass
class MDConfig:
    """One MD run. Lengths in nm, times in ps unless the name says otherwise.

    ``mode="ml"`` evaluates every atom (solvent included) with the potential; ``mode="mlmm"``
    evaluates ``ml_selection`` with it and everything else with ``forcefield`` (mechanical embedding).
    ``ml_selection``: ``"solute"`` (all residues but water and ions), ``"resname ALA GLY"`` or
    ``"index 0-32 40"``. Stage lengths of 0 skip the stage; ``minimize_iterations=0`` minimises to
    convergence and ``-1`` skips minimisation. Stage lengths and intervals must be whole numbers of
    time steps. ``max_temperature`` (K; default 5 × ``temperature``) stops a run that blew up (see
    :mod:`mlcalc.md.guard`).
    """

    structure: str
    potential: str
    output: str = "md"
    mode: str = "mlmm"
    ml_selection: str = "solute"
    forcefield: tuple[str, ...] = ("amber14-all.xml", "amber14/tip3pfb.xml")
    water_model: str = "tip3p"
    add_hydrogens: bool = True
    ph: float = 7.0
    solvate: bool = True
    box_shape: str = "cube"
    padding: Optional[float] = 1.0
    n_waters: Optional[int] = None
    ionic_strength: float = 0.0  # mol/L of NaCl on top of neutralising ions
    mm_cutoff: float = 1.0
    temperature: float = 300.0  # K
    pressure: float = 1.0  # bar
    friction: float = 1.0  # 1/ps
    timestep_fs: float = 0.5
    barostat_interval: int = 25  # steps
    minimize_iterations: int = 0
    nvt: float = 100.0
    npt: float = 100.0
    production: float = 1000.0
    trajectory_interval: float = 1.0
    state_interval: float = 1.0
    checkpoint_interval: float = 10.0
    trajectory_format: str = "dcd"
    platform: Optional[str] = None
    implementation: Optional[str] = None  # None: the TorchForce where openmm-torch is installed, else the PythonForce
    seed: int = 1
    max_temperature: Optional[float] = None

    def __post_init__(self) -> None:
        self.forcefield = tuple(self.forcefield)
        checks = [
            (self.mode in MODES, f"mode must be one of {MODES}, got {self.mode!r}"),
            (self.box_shape in BOX_SHAPES, f"box_shape must be one of {BOX_SHAPES}, got {self.box_shape!r}"),
            (
                self.trajectory_format in TRAJECTORY_FORMATS,
                f"trajectory_format must be one of {TRAJECTORY_FORMATS}, got {self.trajectory_format!r}",
            ),
            (
                self.implementation in (None, "torch", "python"),
                "implementation must be 'torch', 'python' or omitted (the TorchForce where openmm-torch is installed)",
            ),
            (self.timestep_fs > 0 and self.temperature > 0 and self.friction >= 0, "need timestep, temperature > 0"),
            (min(self.nvt, self.npt, self.production) >= 0, "stage lengths must be >= 0 ps"),
            (
                min(self.trajectory_interval, self.state_interval, self.checkpoint_interval) > 0,
                "report and checkpoint intervals must be > 0 ps",
            ),
            (
                not (self.solvate and self.padding is not None and self.n_waters is not None),
                "give either padding or n_waters for solvation, not both",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        if self.max_temperature is not None and not self.max_temperature > self.temperature:
            raise ValueError(
                f"max_temperature ({self.max_temperature:g} K) must exceed temperature ({self.temperature:g} K)"
            )
        for name in ("nvt", "npt", "production", "trajectory_interval", "state_interval", "checkpoint_interval"):
            picoseconds = getattr(self, name)
            steps = picoseconds / self.timestep_ps
            if abs(steps - round(steps)) > 1e-6 * max(1.0, steps):
                raise ValueError(
                    f"{name} = {picoseconds:g} ps is {steps:g} time steps of {self.timestep_fs:g} fs, not a whole "
                    f"number: use a multiple of the time step (e.g. {max(1, round(steps)) * self.timestep_ps:g} ps)"
                )

    @property
    def temperature_limit(self) -> float:
        """K above which a run counts as blown up: ``max_temperature``, else 5 × ``temperature``."""
        return self.max_temperature if self.max_temperature is not None else 5.0 * self.temperature

    @property
    def timestep_ps(self) -> float:
        return self.timestep_fs * 1e-3

    def steps(self, picoseconds: float) -> int:
        """Number of steps in ``picoseconds`` (rounded to the nearest step)."""
        return int(round(picoseconds / self.timestep_ps))

    def interval_steps(self, picoseconds: float) -> int:
        return max(1, self.steps(picoseconds))

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["forcefield"] = list(self.forcefield)
        return data

    def save(self, path: Path) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, data: dict) -> "MDConfig":
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown MD settings {unknown}; known: {sorted(known)}")
        return cls(**data)

    @classmethod
    def from_file(cls, path: Path, **overrides) -> "MDConfig":
        """Read a JSON or TOML (Python >= 3.11) file; ``overrides`` (not None) take precedence."""
        path = Path(path)
        if path.suffix == ".toml":
            try:
                import tomllib
            except ImportError as exc:  # Python 3.10
                raise ValueError("TOML config files need Python >= 3.11; use JSON") from exc
            data = tomllib.loads(path.read_text())
        else:
            data = json.loads(path.read_text())
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(data)
