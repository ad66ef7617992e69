"""The parameters of an MD run (:class:`MDConfig`), from keywords, the command line or a JSON/TOML file."""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
from pathlib import Path
from typing import Optional

from mlcalc.files import write_json_atomic

MODES = ("ml", "mlmm")
BOX_SHAPES = ("cube", "octahedron", "dodecahedron")
TRAJECTORY_FORMATS = ("dcd", "xtc")

#: Numeric settings: their unit, the lowest value allowed, whether that value itself is allowed, and
#: whether they count something (whole numbers).
NUMBERS: dict[str, tuple[str, float, bool, bool]] = {
    "ph": ("pH units", -math.inf, False, False),
    "padding": ("nm", 0.0, False, False),
    "n_waters": ("waters", 1, True, True),
    "ionic_strength": ("mol/L", 0.0, True, False),
    "mm_cutoff": ("nm", 0.0, False, False),
    "temperature": ("K", 0.0, False, False),
    "pressure": ("bar", 0.0, False, False),
    "friction": ("1/ps", 0.0, True, False),
    "timestep_fs": ("fs", 0.0, False, False),
    "barostat_interval": ("steps", 1, True, True),
    "minimize_iterations": ("iterations", -1, True, True),  # -1 skips minimisation, 0 runs it to convergence
    "nvt": ("ps", 0.0, True, False),
    "npt": ("ps", 0.0, True, False),
    "production": ("ps", 0.0, True, False),
    "trajectory_interval": ("ps", 0.0, False, False),
    "state_interval": ("ps", 0.0, False, False),
    "checkpoint_interval": ("ps", 0.0, False, False),
    "seed": ("", -math.inf, False, True),
    "max_temperature": ("K", 0.0, False, False),
    "max_uncertainty": ("eV", 0.0, False, False),
}
#: Numeric settings that may be None (unset).
UNSET_ALLOWED = ("padding", "n_waters", "max_temperature", "max_uncertainty")


@dataclasses.dataclass
class MDConfig:
    """One MD run. Lengths in nm, times in ps unless the name says otherwise.

    ``mode="ml"`` evaluates every atom (solvent included) with the potential; ``mode="mlmm"``
    evaluates ``ml_selection`` with it and everything else with ``forcefield`` (mechanical embedding).
    ``ml_selection``: ``"solute"`` (all residues but water and ions), ``"resname ALA GLY"`` or
    ``"index 0-32 40"``. Stage lengths of 0 skip the stage; ``minimize_iterations=0`` minimises to
    convergence and ``-1`` skips minimisation. Stage lengths and intervals must be whole numbers of
    time steps. ``max_temperature`` (K; default 5 × ``temperature``) stops a run that blew up (see
    :mod:`mlcalc.md.guard`). ``max_uncertainty`` (eV; a committee potential only) records the committee's
    energy spread in ``uncertainty.csv`` every ``state_interval`` and stops the run when it passes this
    value (:class:`mlcalc.errors.UncertaintyExceededError`). Solvation adds ``padding`` nm of water
    (default 1.0) or ``n_waters`` waters.
    Numbers out of range (:data:`NUMBERS`) are refused with a message naming the setting.
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
    padding: Optional[float] = None  # nm; 1.0 when n_waters is not given either
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
    max_uncertainty: Optional[float] = None  # eV: the committee's energy spread that stops the run

    def __post_init__(self) -> None:
        self.forcefield = (self.forcefield,) if isinstance(self.forcefield, str) else tuple(self.forcefield)
        for name, (unit, lowest, inclusive, whole) in NUMBERS.items():
            check_number(name, getattr(self, name), unit, lowest, inclusive, whole)
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
            (
                not (self.solvate and self.padding is not None and self.n_waters is not None),
                f"padding = {self.padding} nm and n_waters = {self.n_waters} were both given: give one of them",
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
        write_json_atomic(path, self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> "MDConfig":
        fields = dataclasses.fields(cls)
        known = {field.name for field in fields}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown MD settings {unknown}; known: {sorted(known)}: check their spelling")
        required = [
            f.name for f in fields if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        missing = [name for name in required if name not in data]
        if missing:
            options = " and ".join(f"--{name}" if name != "structure" else "STRUCTURE" for name in missing)
            raise ValueError(
                f"the MD settings lack {missing}: give them in the config file or on the command line ({options})"
            )
        return cls(**data)

    @classmethod
    def from_file(cls, path: Path, **overrides) -> "MDConfig":
        """Read a JSON or TOML (Python >= 3.11) file; ``overrides`` (not None) take precedence."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"config file {path} does not exist: give the path of a JSON or TOML file of MD settings"
            )
        toml = path.suffix == ".toml"
        if toml:
            try:
                import tomllib
            except ImportError as exc:  # Python 3.10
                raise ValueError("TOML config files need Python >= 3.11; use JSON") from exc
        try:
            data = tomllib.loads(path.read_text()) if toml else json.loads(path.read_text())
        except ValueError as exc:  # json.JSONDecodeError and tomllib.TOMLDecodeError are ValueErrors
            form = "TOML (name = value lines)" if toml else 'a JSON object ({"name": value, ...})'
            raise ValueError(f"cannot read the config file {path} ({exc}): write it as {form}") from None
        if not isinstance(data, dict):
            raise ValueError(
                f"the config file {path} holds a {type(data).__name__}, not a table of settings: write a JSON object "
                '({"name": value, ...}) of MDConfig fields'
            )
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(data)


def check_number(name: str, value: object, unit: str, lowest: float, inclusive: bool, whole: bool) -> None:
    """Raise a ValueError naming setting ``name`` unless ``value`` is a finite number (a whole one if ``whole``)
    of at least (``inclusive``) or above ``lowest``; ``None`` passes for the settings in :data:`UNSET_ALLOWED`."""
    if value is None and name in UNSET_ALLOWED:
        return
    in_unit = f", in {unit}" if unit else ""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number{in_unit}, got {value!r}: write the number alone{in_unit}")
    if not math.isfinite(value):
        raise ValueError(f"{name} is {value!r}: give a finite number{in_unit}")
    if whole and not float(value).is_integer():
        raise ValueError(f"{name} = {value!r} is not a whole number: give a whole number{in_unit}")
    if value < lowest or (value == lowest and not inclusive):
        bound = f"{'of at least' if inclusive else 'above'} {lowest:g}{' ' + unit if unit else ''}"
        raise ValueError(f"{name} = {value!r}{' ' + unit if unit else ''} is out of range: give a value {bound}")
