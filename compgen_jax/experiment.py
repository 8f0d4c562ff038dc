"""Experiment designs expanded to cells, run in-process one after another with one compiled step."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import gin
import pandas as pd
from tqdm.auto import tqdm

from compgen_jax.checkpoints import run_settings
from compgen_jax.models.transformer import TransformerConfig
from compgen_jax.optim import OptimizerConfig
from compgen_jax.task_data import load_task_data
from compgen_jax.train import CellConfig, TrainConfig, build_trainer, train_cell


@gin.configurable
def diversity_cells(
    base: CellConfig = gin.REQUIRED, n_unique_levels: Sequence[int] = gin.REQUIRED
) -> list[CellConfig]:
    """A diversity sweep: the base cell at each N (fixed step budget: exposure falls as N rises)."""
    if not n_unique_levels:
        raise ValueError("diversity_cells.n_unique_levels is empty")
    return [dataclasses.replace(base, manifest=dataclasses.replace(base.manifest, n_unique=int(n)))
            for n in n_unique_levels]


@gin.configurable
def run_experiment(
    *,
    model_dir: str = gin.REQUIRED,
    cells: Sequence[CellConfig] = gin.REQUIRED,
    model_config: TransformerConfig = gin.REQUIRED,
    optimizer_config: OptimizerConfig = gin.REQUIRED,
    train_config: TrainConfig = gin.REQUIRED,
) -> pd.DataFrame:
    """Train each cell (S seeds vectorised) into MODEL_DIR/<cell>/ (its own results.csv).

    Returns all cells' rows as one table; analysis.results.read_results(MODEL_DIR) reads them back.
    """
    train_config.validate()
    tasks = {(c.task, c.train_split) for c in cells}
    if len(tasks) != 1:
        raise ValueError(f"run_experiment: cells must share one task and train split, got {tasks}")
    first = cells[0]
    data = load_task_data(first.task, first.train_split, train_config.eval_splits,
                          train_config.max_eval_examples)
    pool_size = int(data.train["inputs"].shape[0])
    too_big = [c.manifest.n_unique for c in cells if c.manifest.n_unique > pool_size]
    if too_big:
        raise ValueError(f"cells ask for N={too_big} unique examples but pool "
                         f"'{first.pool}' holds only {pool_size}")
    trainer = build_trainer(model_config, optimizer_config, train_config, data.vocab_size,
                            data.situation_shape)
    print(f"{len(cells)} cells x {train_config.num_seeds} seeds, {trainer.num_params:,} "
          "parameters per seed, "
          f"{train_config.total_steps} steps x batch {train_config.batch_size} per seed")
    rows = []
    total = len(cells) * train_config.total_steps
    with tqdm(total=total, unit="step", desc="experiment", dynamic_ncols=True) as progress:
        for cell in cells:
            rows += train_cell(cell, Path(model_dir) / cell.name, data, trainer, train_config,
                               progress=progress, settings=run_settings(
                                   cell, model_config, optimizer_config, train_config))
    return pd.DataFrame(rows)
