"""Small, randomly initialised NequIP and Allegro models, made with the families' own tools.

``compiled(folder, models)`` writes a training set (ASE's EMT on six small structures of H, C, O, Al
and Cu) and, for each model, a nequip configuration of a tiny ``nequip.model.NequIPGNNModel`` or
``allegro.model.AllegroModel`` (cutoff 4 Å, a few features, per-type energy scales and shifts, optionally
per-edge-type cutoffs); nequip-train's entry point trains it for one optimiser step (no weights are
downloaded) and nequip-compile's (``--mode torchscript --device cpu``) compiles its checkpoint into the
``.nequip.pth`` TorchScript file that nequip's ASE calculator and LAMMPS's ``pair_style nequip``/``allegro``
load. Those entry points refuse TorchScript with torch >= 2.10.

    python -c "import make_nequip; print(make_nequip.compiled('/tmp/m', [('allegro', 'float64', False)]))"
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ase import Atoms
from ase.build import bulk, fcc111, molecule
from ase.calculators.emt import EMT
from ase.io import write

TYPE_NAMES = ["H", "C", "O", "Al", "Cu"]
CUTOFF = 4.0

MODELS = {
    "nequip": """
    _target_: nequip.model.NequIPGNNModel
    num_layers: 2
    l_max: 2
    num_features: 4
    radial_mlp_depth: 1
    radial_mlp_width: 8
    num_bessels: 4""",
    "allegro": """
    _target_: allegro.model.AllegroModel
    l_max: 2
    num_layers: 2
    num_scalar_features: 8
    num_tensor_features: 4
    radial_chemical_embed:
      _target_: allegro.nn.TwoBodyBesselScalarEmbed
      num_bessels: 4
    allegro_mlp_hidden_layers_depth: 1
    allegro_mlp_hidden_layers_width: 8
    readout_mlp_hidden_layers_depth: 1
    readout_mlp_hidden_layers_width: 8""",
}

PER_EDGE_TYPE = """
    per_edge_type_cutoff: {H: 2.5, C: {H: 3.0, C: 3.5}, Cu: {H: 3.0, O: 3.2}}"""

CONFIG = """run: [train]
seed: 3
cutoff_radius: {cutoff}
model_type_names: {types}

data:
  _target_: nequip.data.datamodule.ASEDataModule
  seed: 3
  split_dataset:
    file_path: {data}
    train: 4
    val: 2
  transforms:
    - _target_: nequip.data.transforms.ChemicalSpeciesToAtomTypeMapper
      model_type_names: ${{model_type_names}}
      chemical_species_to_atom_type_map: {identity}
    - _target_: nequip.data.transforms.NeighborListTransform
      r_max: ${{cutoff_radius}}
  train_dataloader:
    _target_: torch.utils.data.DataLoader
    batch_size: 4
  val_dataloader:
    _target_: torch.utils.data.DataLoader
    batch_size: 2

trainer:
  _target_: lightning.Trainer
  max_steps: 1
  max_epochs: 1
  num_sanity_val_steps: 0
  limit_val_batches: 0
  enable_progress_bar: false
  logger: false
  callbacks:
    - _target_: lightning.pytorch.callbacks.ModelCheckpoint
      dirpath: {run}
      filename: last
      save_last: false

training_module:
  _target_: nequip.train.EMALightningModule
  loss:
    _target_: nequip.train.EnergyForceLoss
    per_atom_energy: true
    coeffs:
      total_energy: 1.0
      forces: 1.0
  val_metrics:
    _target_: nequip.train.EnergyForceMetrics
    coeffs:
      total_energy_mae: 1.0
      forces_mae: 1.0
  optimizer:
    _target_: torch.optim.Adam
    lr: 0.01
  model:{model}
    seed: 3
    model_dtype: {dtype}
    type_names: ${{model_type_names}}
    r_max: ${{cutoff_radius}}
    avg_num_neighbors: 20.0
    per_type_energy_shifts: {{H: -1.5, C: -3.0, O: -2.5, Al: -3.5, Cu: -4.0}}
    per_type_energy_scales: {{H: 0.5, C: 0.7, O: 0.6, Al: 0.9, Cu: 1.1}}
"""


def training_set() -> list[Atoms]:
    """Six small structures with EMT energies and forces (EMT knows H, C, O, Al and Cu)."""
    frames = []
    for seed in range(3):
        alloy = bulk("Cu", "fcc", a=3.7, cubic=True)
        alloy.symbols[[1, 2]] = "Al"
        alloy.rattle(0.1, seed=seed)
        slab = fcc111("Al", size=(2, 2, 2), vacuum=5.0)
        slab.symbols[0] = "Cu"
        slab.append("O")
        slab.positions[-1] = slab.positions[-2] + [0.0, 0.0, 1.8]
        slab.rattle(0.05, seed=seed)
        del slab.info["adsorbate_info"]  # a dict, which extxyz cannot write
        frames += [alloy, slab]
    methanol = molecule("CH3OH")
    methanol.center(vacuum=4.0)
    methanol.pbc = True
    frames[-1] = methanol
    for frame in frames:
        frame.calc = EMT()
        frame.get_forces()  # energy and forces, written by extxyz from the calculator's results
    return frames


def compiled(folder: Path, models: list[tuple[str, str, bool]]) -> dict[tuple[str, str, bool], Path]:
    """Train each ``(kind, dtype, per_edge_type)`` model ("nequip" or "allegro", "float64" or "float32", with
    per-edge-type cutoffs or not) for one step in ``folder`` and compile it; the compiled TorchScript files.

    One Python process runs ``nequip-train``'s and ``nequip-compile``'s entry points for all of them (each
    command would spend most of its time importing torch, lightning and e3nn)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "data.xyz"
    write(data, training_set(), format="extxyz")
    outputs = {}
    for kind, dtype, per_edge_type in models:
        name = f"{kind}-{dtype}" + ("-per-edge-type" if per_edge_type else "")
        model = MODELS[kind] + (PER_EDGE_TYPE if per_edge_type else "")
        config = CONFIG.format(
            cutoff=CUTOFF,
            types="[" + ", ".join(TYPE_NAMES) + "]",
            identity="{" + ", ".join(f"{t}: {t}" for t in TYPE_NAMES) + "}",
            data=data,
            model=model,
            dtype=dtype,
            run=folder / name,
        )
        (folder / f"{name}.yaml").write_text(config)
        outputs[kind, dtype, per_edge_type] = folder / f"{name}.nequip.pth"
    environment = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    names = [path.name[: -len(".nequip.pth")] for path in outputs.values()]
    subprocess.run(
        [sys.executable, __file__, str(folder), *names], cwd=folder, check=True, capture_output=True, env=environment
    )
    return outputs


def _train_and_compile(folder: Path, names: list[str]) -> None:
    """Run in a process of its own: nequip-train's and nequip-compile's mains for each configuration."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from nequip.scripts.compile import main as nequip_compile
    from nequip.scripts.train import main as nequip_train
    from omegaconf import OmegaConf, open_dict

    for name in names:
        run = folder / name
        with initialize_config_dir(config_dir=str(folder), version_base=None):
            config = compose(config_name=name, return_hydra_config=True, overrides=[f"hydra.run.dir={run}"])
        with open_dict(config):
            config.hydra.runtime.output_dir = str(run)
            HydraConfig.instance().set_config(config)
            del config["hydra"]
        OmegaConf.clear_resolver("training_data_stats")  # nequip-train registers it at each run
        nequip_train(config)
        nequip_compile(
            [str(run / "last.ckpt"), str(folder / f"{name}.nequip.pth"), "--mode", "torchscript", "--device", "cpu"]
        )


if __name__ == "__main__":
    _train_and_compile(Path(sys.argv[1]), sys.argv[2:])
