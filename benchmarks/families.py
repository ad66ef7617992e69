"""Each model family's own ASE calculator against mlcalc's ``MLCalculator`` on the adapter's export (issue 22).

    python benchmarks/families.py                   # ~3 minutes on 2 CPU cores; results/families.json
    python benchmarks/families.py --malloc default  # glibc's malloc settings; results/families-default-malloc.json
    python benchmarks/families.py --quick           # small models, float64, 2 calls each: checks the script (~1 min)

By default the process keeps freed memory for reuse (:func:`mlcalc.keep_freed_memory`, as the ``mlcalc``
command line does), for both calculators alike: with glibc's settings a 600-atom box's tensors are paged
in again at every call, and the two calculators' times scatter by ±20 % from call to call.

For TorchANI (ANI-2x architecture, 8 networks), hippynn (HIP-NN, 64 features), SchNetPack (PaiNN, 128
features x 3 interactions) and MACE (ScaleShiftMACE, 2 interactions, 64x0e, max_ell 3, correlation 3),
each built with its family's own constructors and random weights (nothing is downloaded), in float32
and float64: the family's ASE calculator and ``MLCalculator`` on the adapter's export, on a 53-atom
peptide (pentaalanine, open) and a 600-atom periodic water box, called in turn (a, b, a, b, ...) with
every atom moved before each call (to the same positions for both). Each call is
``calc.calculate(atoms, ["energy", "forces"], all_changes)``: what an MD step asks for, computed once
whatever the calculator caches. Energies and forces of the two must agree to round-off at every call
(the largest differences are recorded; the script exits with 1 where they do not). Then OpenMM, on the
peptide: mlcalc's ``PythonForce`` against openmm-ml's ``MLPotential("mace")`` (MACE) or openmm-ml's
``MLPotential("ase")`` with the family's calculator (the others), time per Verlet step.

Times are minima over the calls, CPU (``time.process_time``: user + system) and wall; ratios are mlcalc /
family, also over each half of the calls (how far other load moves them). The system time and page faults
of every call are recorded too. torch, BLAS and OpenMM run on one thread. The family calculators run
with their defaults but for the choices in the JSON's ``notes``; hippynn's calculator keeps a Verlet list
(skin 1 Å), so ``MLCalculator`` gets the same skin.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # SpkCalculator and openmm-ml load pickled models
os.environ.setdefault("TORCHANI_NO_WARN_EXTENSIONS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import resource  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable, Optional  # noqa: E402

import ase.io  # noqa: E402
import numpy as np  # noqa: E402
import openmm  # noqa: E402
import torch  # noqa: E402
from ase import Atoms, units  # noqa: E402
from ase.calculators.calculator import Calculator, all_changes  # noqa: E402
from common import _version, environment, water_box  # noqa: E402
from openmm import app, unit  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import mlcalc  # noqa: E402
import mlcalc.openmm  # noqa: E402
import mlcalc.plugins  # noqa: E402
from mlcalc.units import ANGSTROM_PER_NM, EV_PER_KJ_PER_MOL  # noqa: E402

TRIALANINE_PDB = Path(__file__).parents[1] / "examples" / "trialanine.pdb"
DTYPES = ("float32", "float64")
FAMILIES = ("torchani", "hippynn", "schnetpack", "mace")
PACKAGES = {"torchani": "torchani", "hippynn": "hippynn", "schnetpack": "schnetpack", "mace": "mace-torch"}
DISPLACEMENT = 0.02  # Å, standard deviation of the random move of every atom before each call
# Largest accepted differences between the family and mlcalc, relative to |E| and to the largest force
# component: round-off of the same operations summed in another order (cf. tests/plugins).
TOLERANCES = {"float64": {"energy": 1e-12, "forces": 1e-9}, "float32": {"energy": 1e-5, "forces": 1e-3}}


@dataclass
class Built:
    """A family model in one dtype: its own calculator, the mlcalc export and how to compare them."""

    own: Callable[[bool], Calculator]  # a new calculator, for a periodic structure or not
    path: Path
    skin: float = 0.0  # Å, the family calculator's Verlet skin, given to MLCalculator as well
    openmm_own: Optional[Callable[[app.Topology], openmm.System]] = None
    openmm_own_kj_per_ev: float = 1 / EV_PER_KJ_PER_MOL  # the eV -> kJ/mol factor that openmm_own uses
    notes: dict = field(default_factory=dict)


def peptide() -> Atoms:
    """Pentaalanine (zwitterion, 53 atoms, no cell): ``examples/trialanine.pdb`` with its middle residue
    repeated twice by the rigid motion that takes residue 1's backbone (N, CA, C) onto residue 2's."""
    pdb = ase.io.read(TRIALANINE_PDB)
    lines = [line for line in TRIALANINE_PDB.read_text().splitlines() if line.startswith("ATOM")]
    names = np.array([line[12:16].strip() for line in lines])
    residues = np.array([int(line[22:26]) for line in lines])

    def backbone(r: int) -> np.ndarray:
        return np.stack([pdb.positions[(residues == r) & (names == name)][0] for name in ("N", "CA", "C")])

    source, target = backbone(1), backbone(2)
    u, _, vt = np.linalg.svd((source - source.mean(0)).T @ (target - target.mean(0)))
    rotation = vt.T @ np.diag([1.0, 1.0, np.sign(np.linalg.det(vt.T @ u.T))]) @ u.T

    def move(x: np.ndarray) -> np.ndarray:
        return (x - source.mean(0)) @ rotation.T + target.mean(0)

    middle = pdb.positions[residues == 2]
    positions = [pdb.positions[residues == 1], middle, move(middle), move(move(middle))]
    positions.append(move(move(pdb.positions[residues == 3])))
    numbers = [pdb.numbers[residues == r] for r in (1, 2, 2, 2, 3)]
    return Atoms(numbers=np.concatenate(numbers), positions=np.concatenate(positions))


# --- the four families, built with their own constructors ------------------------------------------


def torchani_model(dtype: torch.dtype, neighborlist: str, members: int = 8) -> torch.nn.Module:
    """ANI-2x's architecture as ``torchani.models.ANI2x`` assembles it (an ensemble of ``members``
    networks, parameters frozen as ANI2x does), random weights."""
    from torchani.arch import Assembler
    from torchani.utils import SYMBOLS_2X

    torch.manual_seed(0)
    assembler = Assembler()
    assembler.set_symbols(SYMBOLS_2X)
    assembler.set_global_cutoff_fn("cosine")
    assembler.set_aev_computer(radial="ani2x", angular="ani2x", strategy="pyaev")
    assembler.set_atomic_networks(ctor="ani2x")
    assembler.set_neighborlist(neighborlist)
    assembler.set_gsaes_as_self_energies("wb97x-631gd")
    model = assembler.assemble(members)
    model.requires_grad_(False)
    return model.to(dtype)


def build_torchani(dtype: torch.dtype, folder: Path, quick: bool) -> Built:
    """ANI-2x's architecture, 8 networks (1 with ``quick``)."""
    members = 1 if quick else 8
    model = torchani_model(dtype, "all_pairs", members)
    path = folder / f"ani-{dtype}.pt"
    mlcalc.plugins.export("torchani", model, path, dtype=str(dtype).replace("torch.", ""))

    def own(periodic: bool) -> Calculator:
        # ANI2x's default neighbour list is all pairs; for a periodic box TorchANI's cell list is faster.
        return torchani_model(dtype, "cell_list" if periodic else "all_pairs", members).ase()

    def openmm_own(topology: app.Topology) -> openmm.System:
        from openmmml import MLPotential

        return MLPotential("ase").createSystem(topology, calculator=own(topology.getPeriodicBoxVectors() is not None))

    notes = {"neighborlist": "all_pairs (open), cell_list (periodic)"}
    return Built(own, path, openmm_own=openmm_own, notes=notes)


def build_hippynn(dtype: torch.dtype, folder: Path, quick: bool, compilable: bool = False) -> Built:
    """HIP-NN, 64 features (8 with ``quick``), 20 sensitivities, 2 interaction layers of 3 atom layers,
    cutoff 5 Å, hippynn's defaults otherwise (residual blocks, softplus)."""
    from hippynn.graphs import GraphModule, inputs, networks, targets
    from hippynn.interfaces.ase_interface import calculator_from_model

    torch.manual_seed(0)
    species = inputs.SpeciesNode(db_name="Z")
    positions = inputs.PositionsNode(db_name="R")
    network = networks.Hipnn(
        "HIPNN",
        (species, positions),
        module_kwargs=dict(
            possible_species=[0, 1, 6, 7, 8],
            n_features=8 if quick else 64,
            n_sensitivities=20,
            dist_soft_min=0.85,
            dist_soft_max=4.5,
            dist_hard_max=5.0,
            n_interaction_layers=2,
            n_atom_layers=3,
        ),
    )
    henergy = targets.HEnergyNode("HEnergy", network)
    model = GraphModule([species, positions], [henergy.mol_energy]).to(dtype)
    path = folder / f"hipnn-{dtype}.pt"
    mlcalc.plugins.export("hippynn", model, path, dtype=str(dtype).replace("torch.", ""), compilable=compilable)

    def calculator(periodic: bool = False) -> Calculator:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "no charge node found"
            calc = calculator_from_model(model, en_unit=units.kcal / units.mol)
        calc.to(dtype)
        return calc

    def openmm_own(topology: app.Topology) -> openmm.System:
        from openmmml import MLPotential

        return MLPotential("ase").createSystem(topology, calculator=calculator())

    import hippynn.custom_kernels

    kernels = hippynn.custom_kernels.CUSTOM_KERNELS_ACTIVE
    return Built(calculator, path, skin=calculator()._skin, openmm_own=openmm_own, notes={"custom_kernels": kernels})


def build_schnetpack(dtype: torch.dtype, folder: Path, quick: bool, compilable: bool = False) -> Built:
    """PaiNN, 128 features x 3 interactions (16 x 1 with ``quick``), 20 Bessel functions, cosine cutoff
    5 Å, Atomwise energy."""
    from mlcalc_schnetpack import import_schnetpack

    spk = import_schnetpack()
    from schnetpack.interfaces import SpkCalculator

    torch.manual_seed(0)
    cutoff = 5.0
    features, interactions = (16, 1) if quick else (128, 3)
    representation = spk.representation.PaiNN(
        features,
        interactions,
        radial_basis=spk.nn.BesselRBF(n_rbf=20, cutoff=cutoff),
        cutoff_fn=spk.nn.CosineCutoff(cutoff),
    )
    model = spk.model.NeuralNetworkPotential(
        representation=representation,
        input_modules=[spk.atomistic.PairwiseDistances()],
        output_modules=[spk.atomistic.Atomwise(n_in=features, output_key="energy"), spk.atomistic.Forces()],
        postprocessors=[],
    ).to(dtype)
    saved = folder / f"painn-{dtype}"
    torch.save(model, saved)
    path = folder / f"painn-{dtype}.pt"
    mlcalc.plugins.export(
        "schnetpack", saved, path, dtype=str(dtype).replace("torch.", ""), species="H,C,N,O", compilable=compilable
    )

    def calculator(periodic: bool = False) -> Calculator:
        # SchNetPack's fastest CPU neighbour list (its default is ASE's).
        return SpkCalculator(
            str(saved), neighbor_list=spk.transform.MatScipyNeighborList(cutoff), energy_unit="kcal/mol", dtype=dtype
        )

    def openmm_own(topology: app.Topology) -> openmm.System:
        from openmmml import MLPotential

        return MLPotential("ase").createSystem(topology, calculator=calculator())

    return Built(calculator, path, openmm_own=openmm_own, notes={"neighbor_list": "MatScipyNeighborList"})


def build_mace(dtype: torch.dtype, folder: Path, quick: bool) -> Built:
    """ScaleShiftMACE: 2 residual interactions, 64x0e, max_ell 3, correlation 3, 8 Bessel functions,
    radial MLP 64x3, r_max 5 Å (the MACE-OFF/MP "small" shape at half their 96/128 channels), H C N O;
    8x0e, max_ell 1, correlation 2 with ``quick``."""
    from e3nn import o3
    from mace import modules
    from mace.calculators import MACECalculator

    torch.manual_seed(0)
    residual = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
    model = modules.ScaleShiftMACE(
        r_max=5.0,
        num_bessel=8,
        num_polynomial_cutoff=5,
        max_ell=1 if quick else 3,
        interaction_cls=residual,
        interaction_cls_first=residual,
        num_interactions=2,
        num_elements=4,
        hidden_irreps=o3.Irreps("8x0e" if quick else "64x0e"),
        MLP_irreps=o3.Irreps("16x0e"),
        atomic_energies=np.array([-13.6, -1029.0, -1484.0, -2041.0]),
        avg_num_neighbors=20.0,
        atomic_numbers=[1, 6, 7, 8],
        correlation=2 if quick else 3,
        gate=torch.nn.functional.silu,
        radial_MLP=[16] if quick else [64, 64, 64],
        atomic_inter_scale=1.0,
        atomic_inter_shift=0.0,
    ).to(dtype)
    saved = folder / f"mace-{dtype}.model"
    torch.save(model, saved)
    path = folder / f"mace-{dtype}.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlcalc.plugins.export("mace", model, path, dtype=str(dtype).replace("torch.", ""))
    dtype_name = str(dtype).replace("torch.", "")

    def openmm_own(topology: app.Topology) -> openmm.System:
        from openmmml import MLPotential

        precision = "single" if dtype == torch.float32 else "double"
        potential = MLPotential("mace", modelPath=str(saved))
        return potential.createSystem(topology, precision=precision, returnEnergyType="energy")

    def calculator(periodic: bool) -> Calculator:
        return MACECalculator(models=model, default_dtype=dtype_name, device="cpu")

    # openmm-ml's MACE force converts eV to kJ/mol with 96.4853, not 96.485332...: undone before comparing.
    return Built(calculator, path, openmm_own=openmm_own, openmm_own_kj_per_ev=96.4853)


BUILDERS = {
    "torchani": build_torchani,
    "hippynn": build_hippynn,
    "schnetpack": build_schnetpack,
    "mace": build_mace,
}


# --- timing -----------------------------------------------------------------------------------------


def moved_positions(atoms: Atoms, count: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` copies of ``atoms``' positions with every atom moved by a random DISPLACEMENT."""
    rng = np.random.default_rng(seed)
    return [atoms.positions + rng.normal(0.0, DISPLACEMENT, atoms.positions.shape) for _ in range(count)]


def interleaved(calls: dict[str, Callable[[int], object]], count: int, warmup: int) -> dict[str, dict]:
    """Run each call for k = 0..count-1 in turn (a, b, a, b, ...) after ``warmup`` untimed rounds: the
    CPU (user + system) and wall time (s) and the page faults of every call, the time minima and
    medians, and every result."""
    for k in range(warmup):
        for call in calls.values():
            call(k)
    out = {name: {"cpu_s": [], "wall_s": [], "system_s": [], "page_faults": [], "results": []} for name in calls}
    for k in range(warmup, warmup + count):
        for name, call in calls.items():
            before, c0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.process_time(), time.perf_counter()
            out[name]["results"].append(call(k))
            wall, cpu, after = (
                time.perf_counter() - t0,
                time.process_time() - c0,
                resource.getrusage(resource.RUSAGE_SELF),
            )
            out[name]["wall_s"].append(wall)
            out[name]["cpu_s"].append(cpu)
            out[name]["system_s"].append(after.ru_stime - before.ru_stime)
            out[name]["page_faults"].append(after.ru_minflt - before.ru_minflt)
    for timing in out.values():
        for key in ("cpu", "wall"):
            timing[f"{key}_min_s"] = min(timing[f"{key}_s"])
            timing[f"{key}_median_s"] = float(np.median(timing[f"{key}_s"]))
    return out


def ratio_of_halves(timings: dict[str, dict]) -> list[float]:
    """mlcalc / family ratio of the CPU-time minima over the first and over the second half of the calls:
    how far the ratio moves with the machine's other load."""
    own, ml = timings["own"]["cpu_s"], timings["mlcalc"]["cpu_s"]
    half = len(own) // 2
    return [min(ml[:half]) / min(own[:half]), min(ml[half:]) / min(own[half:])] if half else []


def agreement(own: list[tuple[float, np.ndarray]], ml: list[tuple[float, np.ndarray]], dtype: str) -> dict:
    """Largest differences of energy (eV) and forces (eV/Å) over the calls, absolute and relative to
    |E| and to the largest force component, and whether they are within TOLERANCES."""
    de = max(abs(a[0] - b[0]) for a, b in zip(own, ml))
    df = max(float(np.abs(a[1] - b[1]).max()) for a, b in zip(own, ml))
    energy_scale = max(abs(a[0]) for a in own)
    force_scale = max(float(np.abs(a[1]).max()) for a in own)
    out = {
        "max_energy_difference_ev": de,
        "max_force_difference_ev_per_a": df,
        "energy_relative": de / energy_scale,
        "forces_relative": df / force_scale,
    }
    limits = TOLERANCES[dtype]
    out["within_round_off"] = bool(
        out["energy_relative"] <= limits["energy"] and out["forces_relative"] <= limits["forces"]
    )
    return out


def ase_call(calc: Calculator, atoms: Atoms, positions: list[np.ndarray]) -> Callable[[int], tuple]:
    """``call(k)``: energy (eV) and forces (eV/Å) of ``calc`` at ``positions[k]``."""

    def call(k: int) -> tuple[float, np.ndarray]:
        atoms.positions = positions[k]
        calc.calculate(atoms, ["energy", "forces"], all_changes)
        return float(calc.results["energy"]), np.array(calc.results["forces"], dtype=np.float64)

    return call


def time_ase(built: Built, atoms: Atoms, dtype: str, calls: int, warmup: int) -> dict:
    """The family's calculator and MLCalculator on the same moved structures, interleaved."""
    ml = mlcalc.MLCalculator(str(built.path), device="cpu", skin=built.skin)
    positions = moved_positions(atoms, warmup + calls)
    timings = interleaved(
        {
            "own": ase_call(built.own(bool(atoms.pbc.any())), atoms.copy(), positions),
            "mlcalc": ase_call(ml, atoms.copy(), positions),
        },
        calls,
        warmup,
    )
    check = agreement(timings["own"].pop("results"), timings["mlcalc"].pop("results"), dtype)
    return {"timings": timings, "agreement": check, "cpu_ratio_halves": ratio_of_halves(timings)}


def topology_of(atoms: Atoms) -> app.Topology:
    """One residue per atom, elements from ``atoms``, the box where periodic."""
    topology = app.Topology()
    chain = topology.addChain()
    for z in atoms.numbers:
        residue = topology.addResidue("X", chain)
        topology.addAtom("X", app.element.Element.getByAtomicNumber(int(z)), residue)
    if atoms.pbc.all():
        topology.setPeriodicBoxVectors(atoms.cell.array / ANGSTROM_PER_NM * unit.nanometer)
    return topology


def time_openmm(built: Built, atoms: Atoms, dtype: str, calls: int, warmup: int, steps: int) -> dict:
    """Verlet steps (0.5 fs, CPU platform, 1 thread) with mlcalc's PythonForce and with the family
    through openmm-ml, interleaved; energies and forces compared at the start."""
    topology = topology_of(atoms)
    systems = {
        "own": built.openmm_own(topology),
        "mlcalc": mlcalc.openmm.create_system(
            topology, str(built.path), implementation="python", device="cpu", remove_cm_motion=False
        ),
    }
    contexts = {}
    platform = openmm.Platform.getPlatformByName("CPU")
    for name, system in systems.items():
        integrator = openmm.VerletIntegrator(0.5 * unit.femtosecond)
        contexts[name] = openmm.Context(system, integrator, platform, {"Threads": "1"})
        contexts[name].setPositions(atoms.positions / ANGSTROM_PER_NM)
        contexts[name].setVelocitiesToTemperature(300 * unit.kelvin, 1)
    states = {name: c.getState(getEnergy=True, getForces=True) for name, c in contexts.items()}
    ev = {"own": 1 / built.openmm_own_kj_per_ev, "mlcalc": EV_PER_KJ_PER_MOL}  # eV per OpenMM kJ/mol
    energies = {n: s.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) * ev[n] for n, s in states.items()}
    forces = {
        n: s.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer) * ev[n] / 10
        for n, s in states.items()
    }
    check = agreement([(energies["own"], forces["own"])], [(energies["mlcalc"], forces["mlcalc"])], dtype)

    def stepper(context: openmm.Context) -> Callable[[int], None]:
        return lambda k: context.getIntegrator().step(steps)

    timings = interleaved({name: stepper(c) for name, c in contexts.items()}, calls, warmup)
    for t in timings.values():
        t.pop("results")
    return {"timings": timings, "agreement": check, "cpu_ratio_halves": ratio_of_halves(timings), "steps": steps}


# --- the run ----------------------------------------------------------------------------------------


WATER_ATOMS = 600  # 200 waters, 18.2 Å


def cases(quick: bool) -> dict[str, Callable[[], Atoms]]:
    """The structures: the peptide and a periodic water box (48 atoms with ``--quick``)."""
    return {"peptide": peptide, "water box": lambda: water_box(48 if quick else WATER_ATOMS)}


def repeats(quick: bool, atoms: Atoms) -> tuple[int, int]:
    """Timed and warm-up calls per comparison. torch.compile (hippynn) optimises during the first calls; a
    large structure's minimum discounts a slow first timed call anyway."""
    if quick:
        return 2, 2
    return (20, 3) if len(atoms) < 100 else (10, 1)


def run(families: list[str], quick: bool, openmm_too: bool) -> list[dict]:
    """Every comparison of ``families``, printed as it finishes."""
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for family in families:
            for dtype_name in ("float64",) if quick else DTYPES:
                built = BUILDERS[family](getattr(torch, dtype_name), Path(folder), quick)
                for case, make in cases(quick).items():
                    atoms = make()
                    calls, warmup = repeats(quick, atoms)
                    row = {"family": family, "case": case, "n_atoms": len(atoms), "dtype": dtype_name, "engine": "ase"}
                    row.update(time_ase(built, atoms, dtype_name, calls, warmup), mlcalc_skin=built.skin)
                    row["notes"] = built.notes
                    rows.append(row)
                    print_row(row)
                    if openmm_too and case == "peptide" and built.openmm_own is not None:
                        row = {"family": family, "case": case, "n_atoms": len(atoms), "dtype": dtype_name}
                        row["engine"] = "openmm"
                        row.update(time_openmm(built, atoms, dtype_name, calls, warmup, steps=2))
                        rows.append(row)
                        print_row(row)
    return rows


def summary(row: dict) -> dict:
    """The table's numbers: family and mlcalc CPU ms (per call; per step in OpenMM), the mlcalc/family
    ratios of the CPU and wall minima, and the ratio's range over the two halves of the calls."""
    t = row["timings"]
    per = row.get("steps", 1)
    return {
        "own_ms": 1e3 * t["own"]["cpu_min_s"] / per,
        "mlcalc_ms": 1e3 * t["mlcalc"]["cpu_min_s"] / per,
        "ratio_cpu": t["mlcalc"]["cpu_min_s"] / t["own"]["cpu_min_s"],
        "ratio_wall": t["mlcalc"]["wall_min_s"] / t["own"]["wall_min_s"],
        "ratio_halves": row["cpu_ratio_halves"],
        "page_faults_per_call": {name: int(np.median(t[name]["page_faults"])) for name in ("own", "mlcalc")},
    }


COLUMNS = f"{'family':11}{'engine':7}{'case':15}{'dtype':8}{'own ms':>9}{'mlcalc ms':>10}{'ratio':>7}{'wall':>6}"
HEADER = COLUMNS + "  halves     |dE|/|E| |dF|/max|F|"


def print_row(row: dict) -> None:
    """One line of the table (CPU times; OpenMM per step)."""
    s, a = summary(row), row["agreement"]
    halves = "-".join(f"{r:.2f}" for r in sorted(s["ratio_halves"])) or "-"
    print(
        f"{row['family']:11}{row['engine']:7}{row['case'] + ' ' + str(row['n_atoms']):15}{row['dtype']:8}"
        f"{s['own_ms']:9.2f}{s['mlcalc_ms']:10.2f}{s['ratio_cpu']:7.2f}{s['ratio_wall']:6.2f}  {halves:9}  "
        f"{a['energy_relative']:.0e}  {a['forces_relative']:.0e}"
        + ("" if a["within_round_off"] else "  NOT ROUND-OFF"),
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small models and structures, float64, 2 calls each")
    parser.add_argument(
        "--families", default=",".join(FAMILIES), help="comma-separated subset of " + ",".join(FAMILIES)
    )
    parser.add_argument("--no-openmm", action="store_true", help="the ASE comparisons only")
    parser.add_argument(
        "--malloc",
        choices=("kept", "default"),
        default="kept",
        help="kept: mlcalc.keep_freed_memory() first, for both calculators (default); default: glibc's settings",
    )
    parser.add_argument("--out", type=Path, help="JSON file (default: results/families[-default-malloc].json)")
    args = parser.parse_args()
    kept = mlcalc.keep_freed_memory() if args.malloc == "kept" else False
    name = "families.json" if args.malloc == "kept" else "families-default-malloc.json"
    args.out = args.out or Path(__file__).parent / "results" / name
    families = [f for f in args.families.split(",") if f]
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        parser.error(f"unknown families {unknown}; choose from {', '.join(FAMILIES)}")
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    logging.disable(logging.WARNING)  # mace, schnetpack and openmm-ml log model details at INFO
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    start = time.perf_counter()
    print(HEADER)
    with threadpool_limits(1):
        rows = run(families, args.quick, not args.no_openmm)
    record = {
        "environment": {
            **environment(),
            **{package: _version(package) for package in PACKAGES.values()},
            "openmmml": _version("openmmml"),
            "mlcalc": mlcalc.__version__,
        },
        "quick": args.quick,
        "freed_memory_kept": kept,
        "displacement_a": DISPLACEMENT,
        "tolerances": TOLERANCES,
        "seconds": time.perf_counter() - start,
        "rows": [{**row, "summary": summary(row)} for row in rows],
    }
    if not args.quick:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=1))
        print(f"wrote {args.out} ({record['seconds']:.0f} s)")
    if not all(row["agreement"]["within_round_off"] for row in rows):
        raise SystemExit("some results differ by more than round-off: see above")


if __name__ == "__main__":
    main()
