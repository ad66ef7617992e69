"""ASE calculator for mlcalc potential files."""

from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from mlcalc.potential import DeviceLike, DtypeLike, PathLike, Potential, load


class MLCalculator(Calculator):
    """ASE calculator for an mlcalc potential (eV, Å).

    Energy, per-atom energies, forces and, for cells of non-zero volume, stress (Voigt, eV/Å³,
    stress = (1/V) ∂E/∂ε) come from one forward and one backward pass and are cached until the
    atoms change, since ASE asks for one property at a time.

    Args:
        potential: a :class:`mlcalc.Potential` or the path of a potential file.
        device: "cpu", "cuda", … (default: the potential's device, or CUDA when available).
        dtype: "float32", "float64" or a ``torch.dtype`` (default: the potential's dtype).
        skin: Verlet skin in Å (default 0: a new graph at every call). With a skin, pairs within
            cutoff + skin are kept and reused while no atom has moved skin/2 or more and the cell,
            periodic flags and atoms are unchanged (:class:`mlcalc.verlet.VerletList`); the results
            equal a fresh graph's to rounding. ``neighbor_builds`` and ``neighbor_reuses`` count calls.
        **kwargs: passed to ``ase.calculators.calculator.Calculator``.
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"]
    nolabel = True

    def __init__(
        self,
        potential: Union[Potential, PathLike],
        device: DeviceLike = None,
        dtype: DtypeLike = None,
        skin: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(potential, Potential):
            if device is not None or dtype is not None:
                potential = potential.to(device=device, dtype=dtype)
        else:
            potential = load(potential, device=device, dtype=dtype)
        self.potential = potential
        if skin < 0 or not np.isfinite(skin):
            raise ValueError(f"skin is a length in Å, zero or positive; got {skin!r}")
        self.verlet = potential.verlet_list(skin) if skin > 0 else None

    @property
    def neighbor_builds(self) -> int:
        """Graphs built for the Verlet list so far (0 without a skin)."""
        return self.verlet.builds if self.verlet is not None else 0

    @property
    def neighbor_reuses(self) -> int:
        """Calls that reused the Verlet list's candidates (0 without a skin)."""
        return self.verlet.reuses if self.verlet is not None else 0

    def check_state(self, atoms: Atoms, tol: float = 1e-15) -> list[str]:
        """ASE's check, by exact comparison of the same arrays (ASE's tolerant comparison took ~80 µs
        per call, 5% of a 100-atom evaluation); ASE's own when the atoms differ in length or in which
        arrays they hold."""
        old = self.atoms
        if old is None or len(old) != len(atoms) or old.arrays.keys() != atoms.arrays.keys():
            return super().check_state(atoms, tol)
        changes = [
            name for name in _CHECKED_ARRAYS if name in old.arrays and _differ(old.arrays[name], atoms.arrays[name])
        ]
        if _differ(old.cell.array, atoms.cell.array):
            changes.append("cell")
        if _differ(old.pbc, atoms.pbc):
            changes.append("pbc")
        return [name for name in changes if name not in self.ignored_changes] if self.ignored_changes else changes

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
        self.results = self.potential.evaluate(self.atoms, verlet=self.verlet)[0]

    def calculate_batch(self, images: Sequence[Atoms]) -> list[dict]:
        """Evaluate many structures in one model call; one results dict per structure, with the
        keys and units of :attr:`results`. The calculator's own cache is left untouched."""
        return self.potential.evaluate(images)


_CHECKED_ARRAYS = [name for name in all_changes if name not in ("cell", "pbc")]


#: Arrays up to this many elements are compared as bytes (5x faster than ``==`` at 300 elements,
#: slower from a few thousand on, where copying them into bytes costs more than the comparison).
_BYTES_COMPARISON_MAX_SIZE = 1024


def _differ(old: np.ndarray, new: np.ndarray) -> bool:
    """Whether ``new`` differs from ``old`` in shape, dtype or any value (bit for bit when small)."""
    if old.shape != new.shape or old.dtype != new.dtype:
        return True
    if old.size <= _BYTES_COMPARISON_MAX_SIZE:
        return old.tobytes() != new.tobytes()
    return not (old == new).all()
