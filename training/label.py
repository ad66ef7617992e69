"""Stage 2: label every sampled structure with GFN2-xTB energies (eV) and forces (eV/Å), tblite.

Writes training/data/labelled.npz: the samples plus ``energy`` [S] and ``forces`` [N_total, 3].
Resumes: partial results are checkpointed to training/data/labelled.partial.npz every 200 structures.
"""

from __future__ import annotations

import time

import numpy as np
from ase import Atoms

from training.common import DATA, LABELLED, SAMPLES, atomic_write_npz, xtb_calculator

PARTIAL = DATA / "labelled.partial.npz"


def structures(data) -> list:
    offsets = np.concatenate([[0], np.cumsum(data["n_atoms"])])
    return [
        Atoms(
            numbers=data["numbers"][offsets[s] : offsets[s + 1]],
            positions=data["positions"][offsets[s] : offsets[s + 1]],
            cell=data["cell"][s],
            pbc=data["pbc"][s],
        )
        for s in range(len(data["n_atoms"]))
    ]


def main() -> None:
    data = dict(np.load(SAMPLES))
    frames = structures(data)
    energies, forces = [], []
    if PARTIAL.exists():
        partial = np.load(PARTIAL)
        energies = list(partial["energy"])
        forces = list(np.split(partial["forces"], np.cumsum(data["n_atoms"][: len(energies)])[:-1]))
        print(f"resuming after {len(energies)} structures")
    began = time.perf_counter()
    for index in range(len(energies), len(frames)):
        atoms = frames[index]
        atoms.calc = xtb_calculator()
        energies.append(atoms.get_potential_energy())
        forces.append(atoms.get_forces())
        if (index + 1) % 200 == 0:
            atomic_write_npz(PARTIAL, energy=np.array(energies), forces=np.concatenate(forces))
            print(f"{index + 1}/{len(frames)} in {time.perf_counter() - began:.0f} s", flush=True)
    atomic_write_npz(LABELLED, **data, energy=np.array(energies), forces=np.concatenate(forces))
    PARTIAL.unlink(missing_ok=True)
    print(f"labelled {len(frames)} structures in {time.perf_counter() - began:.0f} s -> {LABELLED}")


if __name__ == "__main__":
    main()
