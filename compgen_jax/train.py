"""The gin entry of `compgen-jax train`: one cell from its gin config into MODEL_DIR."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gin
import jax
from tqdm.auto import tqdm

from compgen_jax.checkpoints import NO_CHECKPOINTS, CheckpointConfig, check_resume, run_settings
from compgen_jax.configs import CellConfig, DistributedConfig, TrainConfig
from compgen_jax.lock import check_model_dir
from compgen_jax.models.transformer import TransformerConfig
from compgen_jax.optim import OptimizerConfig
from compgen_jax.seq2seq import train_cell
from compgen_jax.task_data import load_task_data, task_arrays
from compgen_jax.trainers import build_trainer, shared
from tasks.data_dir import data_dir


@gin.configurable
def train(
    *,
    model_dir: str = gin.REQUIRED,
    cell: CellConfig = gin.REQUIRED,
    model_config: TransformerConfig = gin.REQUIRED,
    optimizer_config: OptimizerConfig = gin.REQUIRED,
    train_config: TrainConfig = gin.REQUIRED,
    checkpoint_config: CheckpointConfig = NO_CHECKPOINTS,
    distributed: DistributedConfig | None = None,
) -> list[dict[str, Any]]:
    """Train one cell into MODEL_DIR: manifests/, checkpoints, results.csv, predictions/."""
    (distributed or DistributedConfig()).initialize()
    if jax.process_count() > 1 and not train_config.shard_seeds:
        raise ValueError(f"{jax.process_count()} processes need TrainConfig.shard_seeds=True")
    train_config.validate()
    settings = run_settings(cell, model_config, optimizer_config, train_config)
    check_model_dir(Path(model_dir))
    check_resume(Path(model_dir), settings)  # before the data loads; again once it has
    data = shared(("data", cell.task, cell.train_split, train_config.eval_splits,
                   train_config.max_eval_examples, train_config.stratify_eval,
                   str(data_dir()), task_arrays()),
                  lambda: load_task_data(cell.task, cell.train_split, train_config.eval_splits,
                                         train_config.max_eval_examples,
                                         train_config.stratify_eval))
    trainer = build_trainer(model_config, optimizer_config, train_config, data.vocab_size,
                            data.situation_shape)
    print(f"model: {trainer.num_params:,} "
          f"parameters per seed x {train_config.num_seeds} seeds")
    with tqdm(total=train_config.total_steps, unit="step", desc=cell.name) as progress:
        return train_cell(cell, Path(model_dir), data, trainer, train_config, checkpoint_config,
                          progress, settings=settings)
