"""Coverage-principle cells (COVERAGE_PRINCIPLE s.3) through the one host loop.

A coverage cell trains the decoder-only family on a dataset dir's train.json and scores test.json
per type (evaluation.TypeAccuracyEvaluator); upstream's two early-stopping rules are stop rules
(`upstream_stop_rules`): (i) type_0 accuracy >= threshold; (ii) more than `patience_epochs` epochs
after train_inferred first reached the threshold. Deviations: each seed reads its own stream of
per-epoch permutations, so a batch may straddle an epoch boundary when the batch does not divide
the training set; the step budget is whole epochs (Q15) rounded up to `steps_per_call`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import pandas as pd
from tqdm.auto import tqdm

from analysis.schema import results_frame
from analysis.storage import as_path
from compgen_jax.checkpoints import (
    ALL_CHECKPOINTS,
    CellCheckpointer,
    CheckpointConfig,
    run_settings,
)
from compgen_jax.configs import TrainConfig
from compgen_jax.coverage_data import (
    CoverageData,
    evaluate_types,
    per_example_frame,
)
from compgen_jax.evaluation import build_evaluators
from compgen_jax.loop import CellPlan, run_cell
from compgen_jax.multiseed import MultiSeedTrainer
from compgen_jax.orders import EpochOrders
from compgen_jax.stopping import PatienceStop, ThresholdStop
from tasks.benchmarks import coverage


def upstream_stop_rules(threshold: float = 0.99,
                        patience_epochs: int = 100) -> tuple[ThresholdStop, PatienceStop]:
    """Upstream's early stopping: (i) type_0 reaches `threshold`; (ii) `patience_epochs` epochs
    after train_inferred reached it."""
    return (ThresholdStop("type_0", threshold),
            PatienceStop("train_inferred", threshold, patience_epochs))


def coverage_plan(data: CoverageData, trainer: MultiSeedTrainer, config: TrainConfig) -> CellPlan:
    """A coverage cell: every seed trains on all of train.json for whole epochs (at least
    TrainConfig.total_steps, rounded up to steps_per_call), scored per test type."""
    n_train, batch = data.n_train, trainer.batch_size
    steps_per_epoch = math.ceil(n_train / batch)
    epochs = config.total_steps // steps_per_epoch + 1
    total = -(-epochs * steps_per_epoch // config.steps_per_call) * config.steps_per_call
    columns = {"cell": data.name, "benchmark": coverage.BENCHMARK, "task": data.task,
               "strategy": "all", "n_unique": n_train, "exposure": total * batch / n_train,
               "manifest_hash": data.train_hash}
    return CellPlan(
        name=data.name, task=data.name, pool={k: jnp.asarray(v) for k, v in data.train.items()},
        lengths=data.lengths, orders=EpochOrders(n_train), total_steps=total,
        steps_per_epoch=steps_per_epoch, columns=[columns] * config.num_seeds,
        evaluators=build_evaluators("coverage", data, config))


@dataclasses.dataclass
class CellResult:
    """Results of one coverage cell: per-(seed, step, type) rows in the results schema, the final
    per-example accuracy, and each seed's stop step and reason."""

    rows: pd.DataFrame
    per_example: pd.DataFrame
    stops: pd.DataFrame


def train_coverage_cell(
    data: CoverageData, trainer: MultiSeedTrainer, config: TrainConfig, model_dir: Path,
    checkpoint_config: CheckpointConfig = ALL_CHECKPOINTS, progress: bool = False,
    settings: Mapping[str, str] | None = None,
) -> CellResult:
    """Train S seeds on one dataset into MODEL_DIR through the one host loop (results.csv,
    stops.csv, per_example.csv, checkpoints); a rerun resumes from the newest checkpoint."""
    plan = coverage_plan(data, trainer, config)
    if settings is None:  # direct API use: the settings this call can see
        settings = run_settings(trainer.model_config, trainer.optimizer_config, config)
    with tqdm(total=plan.total_steps, unit="step", desc=data.name,
              disable=not progress) as bar:
        rows, stops = run_cell(plan, as_path(model_dir), trainer, config, checkpoint_config, bar,
                               settings=settings)
    per_example = pd.read_csv(as_path(model_dir) / "per_example.csv", keep_default_na=False)
    return CellResult(results_frame(rows), per_example, stops)


def restore_params(model_dir: Path, trainer: MultiSeedTrainer, seeds: Sequence[int],
                   step: int | None = None, dataset: str | None = None) -> Any:
    """The stacked params [S, ...] of a cell's checkpoint_<step> (default: the newest), checked
    to be of these seeds (and this dataset, when given)."""
    checkpointer = CellCheckpointer(model_dir, ALL_CHECKPOINTS)
    restored = checkpointer.restore(trainer.init(jnp.asarray(seeds)), step)
    saved = sorted(checkpointer.manager.all_steps())
    checkpointer.close()
    if restored is None:
        raise FileNotFoundError(f"{model_dir}: no checkpoint_"
                                f"{'<step>' if step is None else step} to analyse; saved: {saved}")
    meta = restored[2]
    if list(meta["seeds"]) != list(seeds) or dataset not in (None, meta["cell"]):
        raise ValueError(f"{model_dir}: checkpoint is of seeds {meta['seeds']} on "
                         f"{meta['cell']}, not seeds {list(seeds)} on {dataset}")
    return restored[1]["params"]


def checkpoint_per_example(model_dir: Path, data: CoverageData, trainer: MultiSeedTrainer,
                           config: TrainConfig, step: int) -> pd.DataFrame:
    """Per-example teacher-forced accuracy of every seed at a saved checkpoint_<step>."""
    params = restore_params(model_dir, trainer, config.seeds, step, data.name)
    accuracy = evaluate_types(trainer, params, data.test, config.eval_batch_size)
    return per_example_frame(data, accuracy, config.seeds).assign(step=step)
