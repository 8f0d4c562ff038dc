"""Seq2seq benchmark cells: each seed trains on its manifest of the task's pool, scored by the
gin-named evaluators (greedy decoding with the benchmark's metric by default)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from compgen_jax.checkpoints import NO_CHECKPOINTS, CheckpointConfig, run_settings
from compgen_jax.configs import CellConfig, TrainConfig
from compgen_jax.evaluation import build_evaluators
from compgen_jax.loop import CellPlan, run_cell
from compgen_jax.multiseed import MultiSeedTrainer
from compgen_jax.orders import ManifestOrders
from compgen_jax.task_data import TaskData
from tasks.selection import cell_manifests


def seq2seq_plan(cell: CellConfig, data: TaskData, trainer: MultiSeedTrainer,
                 config: TrainConfig) -> CellPlan:
    """A benchmark cell: each seed trains on its manifest of the task's pool, scored by the
    gin-named seq2seq evaluators (default: greedy decoding with the benchmark's own metric)."""
    data.check_situation(trainer.model_config)
    for rule in config.stop_rules:
        if rule.split.partition(":")[0] not in config.eval_splits:
            raise ValueError(f"TrainConfig.stop_rules: {rule} reads split {rule.split!r}, which "
                             f"is not one of TrainConfig.eval_splits={config.eval_splits}")
    manifests = cell_manifests(cell.manifest, data.index, config.num_seeds)
    exposure = manifests[0].exposure(config.total_steps, config.batch_size)
    columns = [{"cell": cell.name, "benchmark": data.benchmark, "task": cell.task,
                "strategy": cell.manifest.strategy, "n_unique": m.n_unique,
                "exposure": exposure, "manifest_hash": m.hash} for m in manifests]
    return CellPlan(
        name=cell.name, task=data.task, pool=data.train, lengths=data.lengths,
        orders=ManifestOrders(manifests, config.total_steps * config.batch_size),
        total_steps=config.total_steps,
        steps_per_epoch=math.ceil(manifests[0].n_unique / config.batch_size),
        columns=columns, evaluators=build_evaluators("seq2seq", data, config, cell.name),
        manifests=manifests)


def train_cell(
    cell: CellConfig,
    model_dir: Path,
    data: TaskData,
    trainer: MultiSeedTrainer,
    train_config: TrainConfig,
    checkpoint_config: CheckpointConfig = NO_CHECKPOINTS,
    progress: tqdm | None = None,
    *,
    settings: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Train one benchmark cell into MODEL_DIR (results.csv, stops.csv, manifests/, predictions/,
    checkpoints); resumes only a run with the same `settings` (checkpoints.run_settings)."""
    train_config.validate()
    if settings is None:  # direct API use: the settings this call can see
        settings = run_settings(cell, trainer.model_config, trainer.optimizer_config,
                                train_config)
    plan = seq2seq_plan(cell, data, trainer, train_config)
    return run_cell(plan, model_dir, trainer, train_config, checkpoint_config, progress,
                    settings=settings)[0]
