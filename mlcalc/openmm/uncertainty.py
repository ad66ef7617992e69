"""A committee's energy spread along an OpenMM simulation: written to CSV, and a run stopped above a threshold.

The ML force (TorchForce or PythonForce) computes the committee's mean energy and forces; this reporter
evaluates the spread on the positions OpenMM hands it every ``reportInterval`` steps (one extra forward
pass of the ML region per report, no backward pass) with the same potential file.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import IO, Optional, Sequence, Union

import numpy as np
from openmm import unit

from mlcalc.errors import ContractError, UncertaintyExceededError
from mlcalc.files import PathLike
from mlcalc.openmm.region import PotentialLike, TopologyOrNumbers, ml_region
from mlcalc.units import ANGSTROM_PER_NM, EV_PER_KJ_PER_MOL

#: The CSV columns.
COLUMNS = ("step", "time_ps", "energy_uncertainty_eV", "energy_uncertainty_kJ_mol")


class UncertaintyReporter:
    """An OpenMM reporter: the energy spread (standard deviation of the members' energies) of a committee
    potential on the ML atoms, every ``report_interval`` steps, as CSV rows (:data:`COLUMNS`).

    Args:
        file: a path (created, or appended to with ``append=True``) or an open text stream.
        report_interval: steps between reports.
        potential: the committee file (or :class:`mlcalc.Potential`) the System's ML force uses.
        topology_or_atomic_numbers, atoms, periodic: as in :func:`mlcalc.openmm.create_force`.
        max_uncertainty: eV; a report above it raises :class:`mlcalc.errors.UncertaintyExceededError`
            (``Simulation.step`` stops there, the row is written first). ``None``: only record.
        append: add rows to an existing file (a resumed run) instead of starting a new one.

    Raises:
        ContractError: the potential is a single model (it has no spread).
    """

    def __init__(
        self,
        file: Union[PathLike, IO[str]],
        report_interval: int,
        potential: PotentialLike,
        topology_or_atomic_numbers: TopologyOrNumbers,
        atoms: Optional[Sequence[int]] = None,
        *,
        periodic: Optional[bool] = None,
        max_uncertainty: Optional[float] = None,
        append: bool = False,
    ):
        if int(report_interval) < 1:
            raise ValueError(f"report_interval is a number of steps, 1 or more; got {report_interval!r}")
        if max_uncertainty is not None and not max_uncertainty > 0:
            raise ValueError(f"max_uncertainty is an energy in eV above 0, got {max_uncertainty!r}")
        self.region = ml_region(potential, topology_or_atomic_numbers, atoms, periodic, None)
        if not self.region.potential.metadata.committee:
            raise ContractError(
                f"potential {self.region.potential.name!r} is a single model: it has no energy spread to report; "
                "export a committee (mlcalc.export([model1, model2, ...], path)) to use this reporter"
            )
        self.report_interval = int(report_interval)
        self.max_uncertainty = max_uncertainty
        self._stream: IO[str]
        if isinstance(file, (str, os.PathLike)):
            path = Path(file)
            header = not (append and path.exists() and path.stat().st_size > 0)
            self._stream, self._own = open(path, "a" if append else "w", newline=""), True
        else:
            header, self._stream, self._own = not append, file, False
        self._writer = csv.writer(self._stream, lineterminator="\n")
        if header:
            self._writer.writerow(COLUMNS)
        self.last: Optional[float] = None  # the latest spread, eV

    def describeNextReport(self, simulation) -> dict:  # noqa: N802 (OpenMM's reporter API)
        steps = self.report_interval - simulation.currentStep % self.report_interval
        return {"steps": steps, "periodic": False, "include": ["positions"]}

    def report(self, simulation, state) -> None:
        """Evaluate the spread on ``state``'s positions, write a row, and stop the run above the threshold."""
        positions = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer) * ANGSTROM_PER_NM
        if self.region.indices is not None:
            positions = positions[self.region.indices]
        if self.region.periodic:
            cell = state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer) * ANGSTROM_PER_NM
        else:
            cell = np.zeros((3, 3))
        pbc = np.full(3, self.region.periodic)
        out = self.region.potential.evaluate_arrays(
            np.asarray(self.region.atomic_numbers), positions, cell, pbc, forces=False, stress=False
        )
        sigma = float(out["energy_uncertainty"][0])
        self.last = sigma
        step = simulation.currentStep
        time_ps = state.getTime().value_in_unit(unit.picosecond)
        self._writer.writerow([step, repr(time_ps), repr(sigma), repr(sigma / EV_PER_KJ_PER_MOL)])
        self._stream.flush()
        if self.max_uncertainty is not None and sigma > self.max_uncertainty:
            raise UncertaintyExceededError(
                f"the committee's energy spread reached {sigma:.4g} eV at step {step} ({time_ps:g} ps), above "
                f"max_uncertainty = {self.max_uncertainty:g} eV: the simulation left the region the potential "
                "was trained for. The structures up to here are trustworthy; label the latest ones and retrain, "
                "or raise the threshold if this spread is acceptable"
            )

    def close(self) -> None:
        """Close the file (when the reporter opened it)."""
        if self._own:
            self._stream.close()
