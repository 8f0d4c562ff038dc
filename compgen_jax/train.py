"""The one cell setup: a gin-configured cell of either data kind (a benchmark task's manifests,
or a coverage dataset dir), checked, loaded and given its trainer; `train` runs it through the
host loop. `compgen-jax train`, `coverage train|covered|circuits` and every runner cell (the
sweep designs and `coverage scaling`) configure their cell here."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

import gin
import jax
import pandas as pd
from tqdm.auto import tqdm

from analysis.schema import results_frame
from analysis.storage import as_path
from compgen_jax.checkpoints import NO_CHECKPOINTS, CheckpointConfig, check_resume, run_settings
from compgen_jax.configs import CellConfig, DistributedConfig, TrainConfig
from compgen_jax.coverage_cells import coverage_plan
from compgen_jax.coverage_data import CoverageData, load_coverage_data
from compgen_jax.lock import check_model_dir
from compgen_jax.loop import CellPlan, run_cell
from compgen_jax.models import ModelConfig
from compgen_jax.multiseed import MultiSeedTrainer
from compgen_jax.optim import OptimizerConfig
from compgen_jax.seq2seq import seq2seq_plan
from compgen_jax.task_data import TaskData, load_task_data, task_arrays
from compgen_jax.trainers import build_trainer, shared
from tasks.data_dir import data_dir


@dataclasses.dataclass(frozen=True)
class CellSetup:
    """One configured cell: where it lives, its data (benchmark task data when `cell` is set, a
    coverage dataset when `dataset_dir` is), its trainer, configs and resume settings."""

    model_dir: Path
    data: TaskData | CoverageData
    trainer: MultiSeedTrainer
    train_config: TrainConfig
    checkpoint_config: CheckpointConfig
    settings: Mapping[str, str]
    cell: CellConfig | None = None
    dataset_dir: Path | None = None

    def plan(self) -> CellPlan:
        """The host loop's plan of this cell, by its data kind."""
        if self.cell is None:
            return coverage_plan(self.data, self.trainer, self.train_config)
        return seq2seq_plan(self.cell, self.data, self.trainer, self.train_config)

    def run(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Train the cell into MODEL_DIR (resuming from its newest checkpoint); its results rows
        and per-seed stops table."""
        plan = self.plan()
        with tqdm(total=plan.total_steps, unit="step", desc=plan.name) as progress:
            rows, stops = run_cell(plan, self.model_dir, self.trainer, self.train_config,
                                   self.checkpoint_config, progress, settings=self.settings)
        return results_frame(rows), stops


@gin.configurable
def cell_setup(
    *,
    model_dir: str = gin.REQUIRED,
    model_config: ModelConfig = gin.REQUIRED,
    optimizer_config: OptimizerConfig = gin.REQUIRED,
    train_config: TrainConfig = gin.REQUIRED,
    cell: CellConfig | None = None,
    dataset_dir: str = "",
    checkpoint_config: CheckpointConfig = NO_CHECKPOINTS,
    distributed: DistributedConfig | None = None,
) -> CellSetup:
    """Check the configs, MODEL_DIR and its resume settings, load the cell's data (`cell`: a
    benchmark task's pool; `dataset_dir`: a coverage dataset) and build its trainer."""
    if (cell is None) == (not dataset_dir):
        raise ValueError("cell_setup: bind exactly one of cell_setup.cell (a benchmark cell, "
                         "runs/train.gin) and cell_setup.dataset_dir (a coverage dataset, "
                         "runs/coverage_train.gin)")
    (distributed or DistributedConfig()).initialize()
    if jax.process_count() > 1 and not train_config.shard_seeds:
        raise ValueError(f"{jax.process_count()} processes need TrainConfig.shard_seeds=True")
    train_config.validate()
    settings = run_settings(cell, model_config, optimizer_config, train_config)
    check_model_dir(as_path(model_dir))
    check_resume(as_path(model_dir), settings)  # before the data loads; run_cell checks the data
    if cell is None:
        data = load_coverage_data(dataset_dir)
        trainer = build_trainer(model_config, optimizer_config, train_config, data.vocab_size,
                                batch_size=min(train_config.batch_size, data.n_train))
    else:
        data = shared(("data", cell.task, cell.train_split, train_config.eval_splits,
                       train_config.max_eval_examples, train_config.stratify_eval,
                       str(data_dir()), task_arrays()),
                      lambda: load_task_data(cell.task, cell.train_split,
                                             train_config.eval_splits,
                                             train_config.max_eval_examples,
                                             train_config.stratify_eval))
        trainer = build_trainer(model_config, optimizer_config, train_config, data.vocab_size,
                                data.situation_shape)
    print(f"model: {trainer.num_params:,} parameters per seed x {train_config.num_seeds} seeds")
    return CellSetup(as_path(model_dir), data, trainer, train_config, checkpoint_config, settings,
                     cell, Path(dataset_dir) if dataset_dir else None)


def train() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train the gin-configured cell (`cell_setup`) into its MODEL_DIR: results.csv, stops.csv,
    config.gin, checkpoints, and per kind manifests/ + predictions/ or per_example.csv."""
    return cell_setup().run()
