"""Coverage-principle cells (COVERAGE_PRINCIPLE s.3) through the one host loop, and the
data-requirement sweep.

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

import gin
import jax.numpy as jnp
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from analysis.atomic import write_text
from analysis.schema import results_frame
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
    load_coverage_data,
    per_example_frame,
)
from compgen_jax.evaluation import build_evaluators
from compgen_jax.loop import CellPlan, run_cell
from compgen_jax.models.decoder_only import DecoderConfig
from compgen_jax.multiseed import MultiSeedTrainer
from compgen_jax.optim import OptimizerConfig
from compgen_jax.orders import EpochOrders
from compgen_jax.stopping import PatienceStop, ThresholdStop
from compgen_jax.trainers import build_trainer
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
        rows, stops = run_cell(plan, Path(model_dir), trainer, config, checkpoint_config, bar,
                               settings=settings)
    per_example = pd.read_csv(Path(model_dir) / "per_example.csv", keep_default_na=False)
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


@dataclasses.dataclass(frozen=True)
class CellSetup:
    """One configured coverage cell: where it lives, its data, trainer and configs."""

    model_dir: Path
    dataset_dir: Path
    data: CoverageData
    trainer: MultiSeedTrainer
    train_config: TrainConfig
    checkpoint_config: CheckpointConfig
    settings: Mapping[str, str]


@gin.configurable("coverage_cell")
def cell_setup(
    *,
    model_dir: str = gin.REQUIRED,
    dataset_dir: str = gin.REQUIRED,
    model_config: DecoderConfig = gin.REQUIRED,
    optimizer_config: OptimizerConfig = gin.REQUIRED,
    train_config: TrainConfig = gin.REQUIRED,
    checkpoint_config: CheckpointConfig = ALL_CHECKPOINTS,
) -> CellSetup:
    """Load the dataset and build the trainer of one cell (shared by train and circuits)."""
    train_config.validate()
    data = load_coverage_data(dataset_dir)
    trainer = build_trainer(model_config, optimizer_config, train_config, data.vocab_size,
                            batch_size=min(train_config.batch_size, data.n_train))
    settings = run_settings(model_config, optimizer_config, train_config)
    return CellSetup(Path(model_dir), Path(dataset_dir), data, trainer, train_config,
                     checkpoint_config, settings)


def checkpoint_per_example(setup: CellSetup, step: int) -> pd.DataFrame:
    """Per-example teacher-forced accuracy of every seed at a saved checkpoint_<step>."""
    seeds = setup.train_config.seeds
    params = restore_params(setup.model_dir, setup.trainer, seeds, step, setup.data.name)
    accuracy = evaluate_types(setup.trainer, params, setup.data.test,
                              setup.train_config.eval_batch_size)
    return per_example_frame(setup.data, accuracy, seeds).assign(step=step)


def train_synthetic(setup: CellSetup | None = None) -> CellResult:
    """Train one coverage cell (S seeds) into its MODEL_DIR (default: the gin-configured cell)."""
    setup = setup or cell_setup()
    return train_coverage_cell(setup.data, setup.trainer, setup.train_config, setup.model_dir,
                               setup.checkpoint_config, progress=True, settings=setup.settings)


@gin.configurable
@dataclasses.dataclass(frozen=True)
class ScalingSweep:
    """Data-requirement sweep: for each |X|, train sizes round(f * |X|^2) in ascending order.

    A size whose test set holds fewer than `min_type0_items` type_0 items ends that |X|: near
    the ~0.49 |X|^3 all-seen chains training exhausts them, and 0.99 of a handful is not a
    measurement (at |X| = 8, 256 training chains leave 2).
    """

    task: str = "twohop"
    num_tokens: tuple[int, ...] = (30, 50)
    size_factors: tuple[float, ...] = (2.0, 4.0, 6.0, 8.0, 12.0, 16.0)
    success_fraction: float = 0.5
    data_seed: int = 42
    min_type0_items: int = 100


def n_required_table(stops: pd.DataFrame, success_fraction: float = 0.5) -> pd.DataFrame:
    """(num_tokens, n_required): smallest n_train whose share of type_0-stopped seeds suffices.

    n_required is NaN where no size reached it; n_max_tried records the largest size tried.
    """
    stops = stops.assign(success=stops["stop_reason"] == "type_0")
    rate = stops.groupby(["num_tokens", "n_train"])["success"].mean().reset_index()
    rows = []
    for x, group in rate.groupby("num_tokens"):
        ok = group.loc[group["success"] >= success_fraction, "n_train"]
        rows.append({"num_tokens": int(x), "n_required": float(ok.min()) if len(ok) else np.nan,
                     "n_max_tried": int(group["n_train"].max())})
    return pd.DataFrame(rows, columns=["num_tokens", "n_required", "n_max_tried"])


@gin.configurable
def scaling_sweep(
    *,
    model_dir: str = gin.REQUIRED,
    data_root: str = gin.REQUIRED,
    sweep: ScalingSweep = gin.REQUIRED,
    model_config: DecoderConfig = gin.REQUIRED,
    optimizer_config: OptimizerConfig = gin.REQUIRED,
    train_config: TrainConfig = gin.REQUIRED,
    checkpoint_config: CheckpointConfig = ALL_CHECKPOINTS,
) -> pd.DataFrame:
    """Generate + train each (|X|, N) cell, smallest N first, stopping once N suffices."""
    out = Path(model_dir)
    all_stops = []
    for x in sweep.num_tokens:
        for factor in sweep.size_factors:
            n = round(factor * x * x)
            name = coverage.dataset_name(sweep.task, x, n, False, "inf")
            directory = Path(data_root) / name
            if not (directory / "test.json").is_file():
                try:
                    coverage.generate(sweep.task, data_root, x, n, seed=sweep.data_seed)
                except ValueError as err:
                    print(f"skipping {name}: {err}")
                    break
            cell_dir = out / name
            stops_path = cell_dir / "stops.csv"
            if stops_path.is_file():
                stops = pd.read_csv(stops_path)
            else:
                setup = cell_setup(
                    model_dir=str(cell_dir), dataset_dir=str(directory), model_config=model_config,
                    optimizer_config=optimizer_config, train_config=train_config,
                    checkpoint_config=checkpoint_config)
                n_type0 = int((setup.data.test_types == "type_0").sum())
                if n_type0 < sweep.min_type0_items:
                    print(f"skipping {name} and larger: {n_type0} type_0 items < "
                          f"ScalingSweep.min_type0_items={sweep.min_type0_items}")
                    break
                stops = train_synthetic(setup).stops
            all_stops.append(stops.assign(num_tokens=x, n_train=n))
            if (stops["stop_reason"] == "type_0").mean() >= sweep.success_fraction:
                break
    if not all_stops:
        raise ValueError(f"ScalingSweep trained no cell: no size of {sweep.size_factors} x |X|^2 "
                         f"for |X| in {sweep.num_tokens} has a usable test set")
    stops = pd.concat(all_stops, ignore_index=True)
    table = n_required_table(stops, sweep.success_fraction)
    write_text(out / "stops.csv", stops.to_csv(index=False))
    write_text(out / "n_required.csv", table.to_csv(index=False))
    return table
