"""The bundled demo potential (mlcalc.load("demo")) and the HIP-NN model it is made of.

References: a direct numpy evaluation of the HIP-NN equations (1–7) of Philip, Zhou & Nebgen (arXiv:2211.07181)
written with explicit loops over atoms and neighbours, independent of the torch model's vectorised code; central
finite differences for forces; OpenMM's TorchForce against the ASE calculator for the same file.
"""

from __future__ import annotations

import math

import numpy as np
import openmm
import pytest
import torch
from ase import Atoms
from ase.build import molecule
from ase.neighborlist import neighbor_list
from openmm import app, unit

import mlcalc
from mlcalc.data import BUNDLED_MODELS
from mlcalc.models.hipnn import HIPNN, non_hierarchicality, structure_non_hierarchicality
from mlcalc.openmm import create_system
from mlcalc.units import EV_PER_KJ_PER_MOL


@pytest.fixture(scope="module")
def demo() -> mlcalc.Potential:
    return mlcalc.load("demo", device="cpu")


def formamide_and_water() -> Atoms:
    """H, C, N, O together: formamide next to a water molecule (open boundaries)."""
    atoms = molecule("CH3CONH2")
    water = molecule("H2O")
    water.translate([0.0, 0.0, 3.2])
    return atoms + water


def small_water_box() -> Atoms:
    """8 waters in a periodic cube of 6.2 Å (cell narrower than twice the 5 Å cutoff: all images)."""
    rng = np.random.default_rng(3)
    atoms = Atoms(cell=[6.2] * 3, pbc=True)
    for corner in np.indices((2, 2, 2)).reshape(3, -1).T:
        water = molecule("H2O")
        water.rotate(rng.uniform(0, 360), rng.normal(size=3))
        water.translate((corner + 0.25) * 3.1)
        atoms += water
    return atoms


def test_demo_loads_by_name_with_its_metadata(demo):
    assert "demo" in BUNDLED_MODELS
    assert demo.species == (1, 6, 7, 8)
    assert demo.cutoff == pytest.approx(5.0, abs=0)
    assert demo.metadata.dtype == "float64" and demo.metadata.energy_unit == "eV"
    assert mlcalc.read_metadata("demo").name == demo.name


def test_unknown_name_lists_the_bundled_potentials():
    with pytest.raises(FileNotFoundError, match=r"not the name of a bundled potential \(demo\)"):
        mlcalc.load("no-such-potential")


def test_demo_refuses_elements_it_was_not_trained_for(demo):
    with pytest.raises(mlcalc.UnsupportedElementError, match="S"):
        demo.evaluate(molecule("SH2"))


def test_demo_forces_are_minus_the_energy_gradient(demo):
    """Richardson-extrapolated central differences, h = 1e-4 and 5e-5 Å: truncation error O(h⁴) (the
    plain h = 1e-4 Å difference is off by up to 1.7e-6 eV/Å here, falling 4× per halving of h), round-off
    ~1e-16 × 514 eV / h ≈ 1e-9 eV/Å."""
    atoms = formamide_and_water()
    forces = demo.evaluate(atoms)[0]["forces"]

    def central_difference(atom: int, axis: int, h: float) -> float:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[atom, axis] += h
        minus.positions[atom, axis] -= h
        return -(demo.evaluate(plus)[0]["energy"] - demo.evaluate(minus)[0]["energy"]) / (2 * h)

    for atom, axis in [(0, 0), (2, 1), (3, 2), (6, 2)]:
        numeric = (4 * central_difference(atom, axis, 5e-5) - central_difference(atom, axis, 1e-4)) / 3
        assert forces[atom, axis] == pytest.approx(numeric, abs=1e-8)


def test_demo_in_mlcalculator_and_openmm_torchforce_agree(demo):
    """Same file, two engines, periodic water box: equal to float64 round-off (1e-10 relative)."""
    atoms = small_water_box()
    atoms.calc = mlcalc.MLCalculator(demo)
    energy, forces = atoms.get_potential_energy(), atoms.get_forces()
    topology = app.Topology()
    chain = topology.addChain()
    for z in atoms.numbers:
        topology.addAtom("X", app.element.Element.getByAtomicNumber(int(z)), topology.addResidue("HOH", chain))
    topology.setPeriodicBoxVectors(atoms.cell.array / 10 * unit.nanometer)
    system = create_system(topology, demo, remove_cm_motion=False)
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(atoms.positions / 10)
    state = context.getState(getEnergy=True, getForces=True)
    mm_energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) * EV_PER_KJ_PER_MOL
    mm_forces = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
    assert mm_energy == pytest.approx(energy, rel=1e-10)
    np.testing.assert_allclose(mm_forces * EV_PER_KJ_PER_MOL / 10, forces, atol=1e-10 * np.abs(forces).max())


def test_non_hierarchicality_is_the_share_of_the_higher_orders():
    """R = Σ_{n≥1} (E^n)² / Σ_n (E^n)², E^n summed over each structure's atoms: a 3-4-5 hand example."""
    terms = torch.tensor([[1.0, 2.0, 1.0], [2.0, 1.0, -1.0], [5.0, 0.0, 0.0]], dtype=torch.float64)
    batch = torch.tensor([0, 0, 1])
    # structure 0: E^0 = 3, E^1 = 3, E^2 = 0 → 9 / 18; structure 1: 0 / 25
    assert non_hierarchicality(terms, batch, 2).tolist() == [0.5, 0.0]


def test_demo_non_hierarchicality_per_structure(demo):
    atoms = formamide_and_water()
    out = demo.module.forward(
        torch.as_tensor(atoms.numbers),
        torch.as_tensor(atoms.positions),
        torch.zeros(3, 3, dtype=torch.float64),
        torch.zeros(3, dtype=torch.bool),
    )
    per_order = out["hierarchical_energies"].sum(dim=0).detach().numpy()
    assert out["energies"].sum().item() == pytest.approx(per_order.sum(), rel=1e-14)
    expected = (per_order[1:] ** 2).sum() / (per_order**2).sum()
    assert structure_non_hierarchicality(demo, atoms) == pytest.approx(expected, rel=1e-12)
    assert 0.0 < expected < 0.01  # a molecule like the training data: the orders decay


def test_demo_keeps_liquid_water_molecular(demo):
    """An energy minimisation (100 iterations, OpenMM) of 32 waters in a periodic 1 nm box leaves every O-H bond
    shorter than 1.2 Å (measured 0.98 Å). A 64-feature candidate trained in issue 7 failed this: its minimisation
    pulled protons off (O-H 1.78 Å, energy falling by 14 eV), as its MD did at once."""
    from mlcalc.demo.water import water_box

    modeller = water_box(1.0)
    system = create_system(modeller.topology, demo)
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("CPU"))
    context.setPositions(modeller.positions)
    openmm.LocalEnergyMinimizer.minimize(context, 1.0, 100)
    positions = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.angstrom)
    box = 10.0 * np.array(modeller.topology.getPeriodicBoxVectors().value_in_unit(unit.nanometer))
    atoms = Atoms(numbers=[a.element.atomic_number for a in modeller.topology.atoms()], positions=positions, cell=box)
    atoms.pbc = True
    oxygens = np.flatnonzero(atoms.numbers == 8)
    assert len(oxygens) == 32 and (atoms.numbers[oxygens + 1] == 1).all() and (atoms.numbers[oxygens + 2] == 1).all()
    lengths = [atoms.get_distances(o, [o + 1, o + 2], mic=True) for o in oxygens]
    assert np.max(lengths) < 1.2


def test_demo_water_npt_repeats_with_its_seed(demo):
    """The main job's NPT run is a function of its seed: the barostat's volume moves are seeded too (OpenMM's
    default seed, 0, draws a new one for every Context, and the demo's water runs differed from run to run)."""
    from mlcalc.demo.water import water_npt

    first, again = (water_npt(demo, 0.1, seed=3) for _ in range(2))
    assert len(first.densities) == 2
    np.testing.assert_array_equal(first.densities, again.densities)
    np.testing.assert_array_equal(first.temperatures, again.temperatures)


# --- HIP-NN against a direct numpy evaluation of Philip et al.'s equations ---------------------------------


def numpy_hipnn_energies(
    model: HIPNN, atoms: Atoms, cutoff: float, activation: str = "softplus", residual: bool = False
) -> np.ndarray:
    """Per-atom energy terms Ê_i^n [N, orders] from Philip et al. eqs. 2–7, with explicit loops (open boundaries);
    ``activation="shifted_softplus"``: f = softplus − ln 2; ``residual``: on-site layers add f(W z + B) to z."""
    shift = np.log(2.0) if activation == "shifted_softplus" else 0.0
    params = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    f = lambda x: np.log1p(np.exp(x)) - shift  # noqa: E731  eq. 3's f
    species = np.searchsorted([1, 6, 7, 8], atoms.numbers)
    z = np.eye(4)[species]  # z⁰: one-hot species
    terms = [params["self_energies"][species]]  # Ê^0
    n = len(atoms)
    for block in range(len(model.interactions)):
        p = f"interactions.{block}."
        mu, sigma = params[p + "sensitivity.mu"], params[p + "sensitivity.sigma"]
        V = params[p + "interaction"]  # V[ν, b, a]
        W, B = params[p + "self_interaction.weight"], params[p + "self_interaction.bias"]  # W[a, b]
        new = np.zeros((n, W.shape[0]))
        for i in range(n):
            pre = W @ z[i] + B
            for j in range(n):
                if j == i:
                    continue
                r = np.linalg.norm(atoms.positions[j] - atoms.positions[i])
                phi = math.cos(0.5 * math.pi * r / cutoff) ** 2 if r <= cutoff else 0.0  # eq. 7
                s = np.exp(-((1 / r - 1 / mu) ** 2) / (2 * sigma**-2.0)) * phi  # eq. 6
                v = np.einsum("v,vba->ab", s, V)  # eq. 5
                pre += v @ z[j]  # eq. 4
            new[i] = f(pre)
        z = new
        for layer in range(len(model.onsites[block])):
            q = f"onsites.{block}.{layer}."
            activated = f(z @ params[q + "weight"].T + params[q + "bias"])  # eq. 3
            z = z + activated if residual else activated
        terms.append(z @ params[f"heads.{block}.weight"][0] + params[f"heads.{block}.bias"][0])
    return np.stack(terms, axis=1)


@pytest.mark.parametrize(
    "activation, residual", [("softplus", False), ("shifted_softplus", True), ("shifted_softplus", False)]
)
def test_hipnn_equals_seed_equations_evaluated_in_numpy(tmp_path, activation, residual):
    """A random small HIP-NN (float64) on 5 H/C/N/O atoms, one pair beyond the 3 Å cutoff: equal to 1e-12."""
    torch.manual_seed(0)
    model = HIPNN(
        n_features=5,
        n_interactions=2,
        n_onsite=1,
        n_sensitivities=4,
        cutoff=3.0,
        activation=activation,
        residual=residual,
    )
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))  # break the initial symmetries
    atoms = Atoms("HCNOH", positions=[[0, 0, 0], [1.1, 0, 0], [1.6, 1.2, 0.1], [2.9, 1.0, -0.4], [4.4, 0.7, 0.9]])
    expected = numpy_hipnn_energies(model, atoms, 3.0, activation, residual)
    i, j, d = neighbor_list("ijD", atoms, 3.0)
    assert len(i) < len(atoms) * (len(atoms) - 1)  # some pairs lie beyond the cutoff
    inputs = {
        "species": torch.as_tensor(np.searchsorted([1, 6, 7, 8], atoms.numbers)),
        "positions": torch.as_tensor(atoms.positions),
        "edge_index": torch.as_tensor(np.stack([i, j])),
        "edge_vectors": torch.as_tensor(d),
    }
    found = model(inputs)
    np.testing.assert_allclose(found["hierarchical_energies"].detach().numpy(), expected, rtol=1e-12, atol=1e-14)
    mlcalc.export(model, tmp_path / "tiny.pt")
    result = mlcalc.load(tmp_path / "tiny.pt", device="cpu").evaluate(atoms)[0]
    assert result["energy"] == pytest.approx(expected.sum(), rel=1e-12)
    np.testing.assert_allclose(result["energies"], expected.sum(axis=1), rtol=1e-12, atol=1e-14)


def test_hipnn_refuses_an_unknown_activation():
    with pytest.raises(ValueError, match="activation must be one of"):
        HIPNN(activation="relu")


def test_info_finds_the_bundled_potential_by_name(capsys):
    from mlcalc.cli import main

    assert main(["info", "demo"]) == 0
    assert "mlcalc-demo-hipnn-gfn2xtb" in capsys.readouterr().out


def test_water_density_drift_is_a_least_squares_line_and_decides_equilibrated():
    from scipy.stats import linregress

    from mlcalc.demo.water import WaterResult

    times = np.arange(1, 41) * 0.05
    noise = np.random.default_rng(3).normal(0.0, 0.01, times.size)

    def result(densities: np.ndarray) -> WaterResult:
        zeros = np.zeros_like(times)
        return WaterResult(32, times, densities, zeros, zeros, zeros, 0.0, 0.0, 1.0, "PythonForce", "CPU")

    falling, flat = result(0.957 - 0.09 * times + noise), result(0.997 + noise)
    for water in (falling, flat):
        half = times[20:]
        fit = linregress(half, water.densities[20:])
        assert water.density_drift == pytest.approx(fit.slope * (half[-1] - half[0]), rel=1e-10)
    assert not falling.density_equilibrated  # falls 0.09 g/cm³ per ps: 0.086 over the second half
    assert flat.density_equilibrated
