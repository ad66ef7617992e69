"""ASE calculator for mlcalc potential files."""

from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np
from ase import Atoms
from ase.calculators.calculator import all_changes

from mlcalc.files import PathLike
from mlcalc.potential import DeviceLike, DtypeLike, Potential, load
from mlcalc.state_check import ExactStateCheck


class MLCalculator(ExactStateCheck):
    """ASE calculator for an mlcalc potential (eV, Å).

    Energy, per-atom energies, forces and, for cells of non-zero volume, stress (Voigt, eV/Å³,
    stress = (1/V) ∂E/∂ε) come from one forward and one backward pass and are cached until the
    atoms change, since ASE asks for one property at a time.

    A calculator without files (ASE's ``BaseCalculator``). Its ``parameters`` (and ``todict()``, which
    ASE writes into trajectories and databases) record what made the numbers: the potential as given,
    its name, the SHA-256 of its file, dtype, device and skin.

    Args:
        potential: a :class:`mlcalc.Potential` or the path of a potential file (or a bundled name).
        device: "cpu", "cuda", … (default: the potential's device, or CUDA when available).
        dtype: "float32", "float64" or a ``torch.dtype`` (default: the potential's dtype).
        skin: Verlet skin in Å (default 0: a new graph at every call). With a skin, pairs within
            cutoff + skin are kept and reused while no atom has moved skin/2 or more and the cell,
            periodic flags and atoms are unchanged (:class:`mlcalc.verlet.VerletList`); the results
            equal a fresh graph's to rounding. ``neighbor_builds`` and ``neighbor_reuses`` count calls.
        use_cache: as in ASE (``False``: evaluate at every request).
        compile: run the model through ``torch.compile`` (a file exported with ``compilable=True``; see
            :func:`mlcalc.load`); for a :class:`~mlcalc.Potential`, load it with ``compile=True`` instead.

    A committee file (``potential.metadata.committee`` members) also gives ``energy_uncertainty`` (eV: the
    standard deviation of the members' energies) and ``energy_committee`` [M] (eV) at every call, and
    ``forces_uncertainty`` [N] (eV/Å: per atom, sqrt(1/M Σ_m |F_m - F|²)) when asked for, e.g.
    ``calc.get_property("forces_uncertainty", atoms)``: it costs one backward pass per member.
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"]
    #: Properties a committee file adds (contract 1.3).
    committee_properties = ["energy_uncertainty", "forces_uncertainty", "energy_committee"]
    nolabel = True

    def __init__(
        self,
        potential: Union[Potential, PathLike],
        *,
        device: DeviceLike = None,
        dtype: DtypeLike = None,
        skin: float = 0.0,
        use_cache: bool = True,
        compile: bool = False,
    ):
        if isinstance(potential, Potential):
            if compile and not potential.compiled:
                raise ValueError(
                    "compile=True applies to a potential file; this Potential was loaded without it: "
                    "pass mlcalc.load(path, compile=True), or the path itself"
                )
            if device is not None or dtype is not None:
                potential = potential.to(device=device, dtype=dtype)
        else:
            potential = load(potential, device=device, dtype=dtype, compile=compile)
        if skin < 0 or not np.isfinite(skin):
            raise ValueError(f"skin is a length in Å, zero or positive; got {skin!r}")
        fingerprint = potential.fingerprint()
        parameters = {
            "potential": potential.source if potential.source is not None else potential.name,
            "name": potential.name,
            "sha256": fingerprint["sha256"],
            "dtype": fingerprint["dtype"],
            "device": str(potential.device),
            "skin": float(skin),
        }
        if potential.compiled:
            parameters["compiled"] = True
        super().__init__(parameters=parameters, use_cache=use_cache)
        self.potential = potential
        self.verlet = potential.verlet_list(skin) if skin > 0 else None
        if potential.metadata.committee:
            self.implemented_properties = [*type(self).implemented_properties, *self.committee_properties]

    def todict(self) -> dict:
        """The parameters (see the class docstring): what ASE records for this calculator."""
        return dict(self.parameters)

    def __repr__(self) -> str:
        shown = ", ".join(f"{key}={self.parameters[key]!r}" for key in ("dtype", "device", "skin"))
        return f"MLCalculator({self.parameters['potential']!r}, {shown})"

    @property
    def neighbor_builds(self) -> int:
        """Graphs built for the Verlet list so far (0 without a skin)."""
        return self.verlet.builds if self.verlet is not None else 0

    @property
    def neighbor_reuses(self) -> int:
        """Calls that reused the Verlet list's candidates (0 without a skin)."""
        return self.verlet.reuses if self.verlet is not None else 0

    def calculate(
        self,
        atoms: Optional[Atoms] = None,
        properties: Sequence[str] = ("energy",),
        system_changes: Sequence[str] = all_changes,
    ) -> None:
        # Calculator.calculate would also stat the directory of a file-based calculator on disk at
        # every call (slow on network file systems); this one writes no files.
        if atoms is not None:
            self.atoms = atoms.copy()
        uncertainty = "forces_uncertainty" in properties  # one backward pass per member: only when asked
        verlet = None if uncertainty else self.verlet
        self.results = self.potential.evaluate(self.atoms, verlet=verlet, force_uncertainty=uncertainty)[0]

    def calculate_batch(self, images: Sequence[Atoms]) -> list[dict]:
        """Evaluate many structures in one model call; one results dict per structure, with the
        keys and units of :attr:`results`. The calculator's own cache is left untouched."""
        return self.potential.evaluate(images)
