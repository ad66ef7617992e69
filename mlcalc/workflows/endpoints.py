"""Endpoints of a barrier path or an NEB: minima of the potential, relaxed or checked.

A barrier is the highest image minus the initial structure, so an initial structure above its own
minimum understates it (ASE's unrelaxed ``trans-butane``: 2.08 instead of 2.28 kcal/mol with the demo
potential), and an endpoint with a clash overstates it without limit. Each endpoint is therefore
relaxed (unconstrained, to the workflow's ``fmax``) unless its largest force is already below
``fmax``; with ``relax=False`` an endpoint that is not a minimum is refused instead. A relaxation that
breaks or forms a covalent bond (a clash, atoms in the wrong order, a saddle point given as an
endpoint) is refused too: the path would no longer connect the structures the user gave.

Each returned endpoint records ``info["relaxation_eV"]`` (energy change, eV, 0 when it was already a
minimum) and ``info["relaxation_rmsd_A"]`` (RMSD of the move, Å).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from ase import Atoms
from ase.calculators.calculator import BaseCalculator

from mlcalc.errors import InvalidStructureError
from mlcalc.workflows.errors import NotConvergedError
from mlcalc.workflows.fragments import bond_pairs, check_no_clash
from mlcalc.workflows.optimize import optimize

#: How many broken or formed bonds an error message lists.
SHOWN_BONDS = 5


def largest_force(forces: np.ndarray) -> tuple[float, int]:
    """Largest per-atom force (eV/Å) of ``forces`` [N, 3] and the atom it acts on."""
    norms = np.linalg.norm(forces, axis=1)
    atom = int(np.argmax(norms))
    return float(norms[atom]), atom


def relax_endpoint(
    atoms: Atoms, calc: BaseCalculator, fmax: float = 0.01, steps: int = 1000, *, name: str = "endpoint"
) -> Atoms:
    """The unconstrained minimum of ``atoms`` (a copy) that keeps its covalent bonds.

    Raises:
        NotConvergedError: no minimum within ``steps`` optimiser steps.
        InvalidStructureError: the relaxation broke or formed a covalent bond.
    """
    start = atoms.copy()
    start.calc = None
    result = optimize(start, calc, [], fmax=fmax, steps=steps)
    if not result.converged:
        raise NotConvergedError(
            f"the {name} structure did not relax to a minimum in {steps} steps (largest force {result.fmax:.3g} "
            f"eV/Å, fmax {fmax:g}): check it for clashes, or allow more steps"
        )
    _check_bonds_kept(start, result.atoms, name)
    relaxed = result.atoms
    start.calc = calc
    relaxed.info["relaxation_eV"] = result.energy - start.get_potential_energy()
    relaxed.info["relaxation_rmsd_A"] = float(np.sqrt(((relaxed.positions - atoms.positions) ** 2).sum(axis=1).mean()))
    return relaxed


def prepare_endpoint(
    atoms: Atoms,
    calc: BaseCalculator,
    *,
    name: str,
    relax: bool = True,
    fmax: float = 0.01,
    steps: int = 1000,
    forces: Optional[np.ndarray] = None,
) -> Atoms:
    """``atoms`` (a copy) when it is already a minimum (largest force ≤ ``fmax``, eV/Å); otherwise its
    relaxed minimum (``relax=True``) or an :class:`InvalidStructureError` naming the atom and force.

    ``forces`` (eV/Å, ``FixAtoms`` atoms zeroed) when already computed with ``calc``; else computed here.
    """
    check_no_clash(atoms, name)
    work = atoms.copy()
    if forces is None:
        work.calc = calc
        forces = work.get_forces()
    force, atom = largest_force(forces)
    if force <= fmax:
        work.calc = None
        work.info.update(relaxation_eV=0.0, relaxation_rmsd_A=0.0)
        return work
    if not relax:
        raise InvalidStructureError(
            f"the {name} structure is not a minimum of this potential: the force on atom {atom} "
            f"({atoms.get_chemical_symbols()[atom]}) is {force:.3g} eV/Å, above fmax {fmax:g} eV/Å, so a barrier "
            f"measured from it would be off by its relaxation energy. Relax it first (the default: leave out "
            "relax_endpoints=False / --no-relax-endpoints)"
        )
    return relax_endpoint(atoms, calc, fmax, steps, name=name)


def check_same_atoms(initial: Atoms, final: Atoms) -> None:
    """Refuse endpoints with different atoms or atoms in another order, naming the first difference."""
    if len(initial) != len(final):
        raise ValueError(
            f"the initial and final structures have different atoms ({initial.get_chemical_formula()}, "
            f"{len(initial)} atoms; {final.get_chemical_formula()}, {len(final)}): give two structures of the same "
            "atoms in the same order"
        )
    differ = np.flatnonzero(initial.numbers != final.numbers)
    if len(differ):
        k = int(differ[0])
        raise ValueError(
            f"atom {k} is {initial.get_chemical_symbols()[k]} in the initial structure but "
            f"{final.get_chemical_symbols()[k]} in the final one ({len(differ)} atoms differ): put the final "
            "structure's atoms in the initial's order"
        )


def bond_changes(initial: Atoms, final: Atoms) -> str:
    """The covalent bonds (ASE's radii) that only one of two structures of the same atoms has, described
    ("" when they are bonded alike). Atoms of one element in another order show up here."""
    return _describe_changes(
        initial, _bonds(initial), _bonds(final), "only in the initial structure", "only in the final"
    )


def _bonds(atoms: Atoms) -> set[tuple[int, int]]:
    return {(int(i), int(j)) for i, j in bond_pairs(atoms).tolist()}


def _describe_changes(atoms: Atoms, old: set, new: set, gone: str, added: str) -> str:
    symbols = atoms.get_chemical_symbols()

    def show(pairs: set) -> str:
        listed = sorted(pairs)
        text = ", ".join(f"{i}-{j} ({symbols[i]}-{symbols[j]})" for i, j in listed[:SHOWN_BONDS])
        return text + (f" and {len(listed) - SHOWN_BONDS} more" if len(listed) > SHOWN_BONDS else "")

    changes = []
    if old - new:
        changes.append(f"{gone} {show(old - new)}")
    if new - old:
        changes.append(f"{added} {show(new - old)}")
    return "; ".join(changes)


def _check_bonds_kept(before: Atoms, after: Atoms, name: str) -> None:
    changes = _describe_changes(before, _bonds(before), _bonds(after), "broke", "formed")
    if not changes:
        return
    raise InvalidStructureError(
        f"relaxing the {name} structure {changes} (0-based atom indices; bonds by ASE's covalent "
        "radii): it is not near a minimum with the bonds it has. Check it for a clash, atoms in another order "
        "than the other endpoint, or a saddle point given as an endpoint"
    )
