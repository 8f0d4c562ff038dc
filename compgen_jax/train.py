"""The one host loop: train one cell (S seeds in one compiled step), evaluate, stop, checkpoint.

Every model family and task kind runs through `run_cell`, read top to bottom: a `CellPlan` says
what the cell trains on (pool, each seed's order stream, budget) and how it is scored (evaluator
plug-ins); `TrainConfig.stop_rules` say when a seed stops; `CheckpointConfig` says when state is
saved. `train_cell` plans a seq2seq benchmark cell, `compgen_jax.synthetic` a coverage cell.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import gin
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from analysis.schema import STOP_COLUMNS, TRAIN_LOSS_WINDOW, write_results
from compgen_jax.checkpoints import (
    NO_CHECKPOINTS,
    CellCheckpointer,
    CheckpointConfig,
    check_resume,
    run_settings,
    settings_meta,
)
from compgen_jax.evaluation import DecodeEvaluator, Evaluator, Scores, split_evaluators
from compgen_jax.gin_utils import write_operative_config
from compgen_jax.lock import check_model_dir, model_dir_lock
from compgen_jax.models import ModelConfig, model_family
from compgen_jax.models.transformer import TransformerConfig
from compgen_jax.multiseed import MultiSeedTrainer, Pool
from compgen_jax.optim import OptimizerConfig, make_optimizer
from compgen_jax.orders import EpochOrders, ManifestOrders
from compgen_jax.sharding import host_array, padded_seed_count, replicate, seed_mesh, shard_seeds
from compgen_jax.stopping import SeedStops, StopRule
from compgen_jax.task_data import TaskData, load_task_data, task_arrays
from compgen_jax.validation import check_lengths
from tasks import manifest as manifest_lib
from tasks.atomic import write_text
from tasks.benchmarks import gscan
from tasks.data_dir import data_dir
from tasks.selection import ManifestSpec, cell_manifests


@gin.configurable
@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How a cell trains, evaluates and stops: seeds, budget, batch, eval cadence, stop rules."""

    num_seeds: int = 5
    total_steps: int = 1000
    batch_size: int = 64
    steps_per_call: int = 50
    length_buckets: int = 1  # step lengths per pool (multiseed.bucket_lengths); 1 = full padding
    eval_period: int = 0
    eval_splits: tuple[str, ...] = ("test",)
    max_eval_examples: int = 0
    stratify_eval: bool = False  # eval subsets spread evenly over a split's categories
    eval_batch_size: int = 512
    random_seed: int = 0
    shard_seeds: bool = False
    stop_rules: tuple[StopRule, ...] = ()
    save_predictions: str = "final"
    tensorboard: bool = True

    def validate(self) -> None:
        if self.num_seeds < 1:
            raise ValueError(f"TrainConfig.num_seeds={self.num_seeds} must be >= 1")
        if self.total_steps < 1:
            raise ValueError(f"TrainConfig.total_steps={self.total_steps} (TRAIN_STEPS) must be "
                             ">= 1")
        if self.steps_per_call < 1:
            raise ValueError(f"TrainConfig.steps_per_call={self.steps_per_call} must be >= 1")
        if self.length_buckets < 1:
            raise ValueError(f"TrainConfig.length_buckets={self.length_buckets} must be >= 1")
        if self.eval_period < 0 or self.eval_period % self.steps_per_call:
            raise ValueError(
                f"TrainConfig.eval_period={self.eval_period} must be 0 (end only) or a multiple "
                f"of TrainConfig.steps_per_call={self.steps_per_call}"
            )
        if self.save_predictions not in ("none", "final", "all"):
            raise ValueError(f"TrainConfig.save_predictions={self.save_predictions!r}: expected "
                             "'none', 'final' or 'all'")

    @property
    def seeds(self) -> list[int]:
        return list(range(self.random_seed, self.random_seed + self.num_seeds))

    def call_ends(self, start: int, total: int | None = None) -> list[int]:
        """The step at which each compiled call ends, resuming after `start`, up to `total`
        (default total_steps).

        Calls end every `steps_per_call` steps; a budget that is not a multiple ends with one
        shorter call, so checkpoints (taken at call ends) always resume onto the same schedule.
        """
        total = self.total_steps if total is None else total
        ends = list(range(start + self.steps_per_call, total + 1, self.steps_per_call))
        if start < total and (not ends or ends[-1] != total):
            ends.append(total)
        return ends


@gin.configurable
@dataclasses.dataclass(frozen=True)
class DistributedConfig:
    """jax.distributed for multi-process cells: Cloud TPU metadata, or an explicit coordinator.

    With `enabled`, every process runs the same command and the cell's seeds are sharded over the
    devices of all processes (TrainConfig.shard_seeds). Empty address / None fields are detected
    (Cloud TPU); `cpu_collectives='gloo'` lets CPU processes gather results (tests, debugging).
    """

    enabled: bool = False
    coordinator_address: str = ""
    num_processes: int | None = None
    process_id: int | None = None
    cpu_collectives: str = ""

    def initialize(self) -> None:
        """Join the other processes (before any JAX computation); a no-op unless enabled."""
        if not self.enabled:
            return
        if self.cpu_collectives:
            jax.config.update("jax_cpu_collectives_implementation", self.cpu_collectives)
        jax.distributed.initialize(self.coordinator_address or None, self.num_processes,
                                   self.process_id)


@gin.configurable
@dataclasses.dataclass(frozen=True)
class CellConfig:
    """One design point: which pool, and how its manifests are chosen (label: its name, if set)."""

    task: str = "scan_simple"
    train_split: str = "train"
    manifest: ManifestSpec = ManifestSpec()
    label: str = ""

    @property
    def pool(self) -> str:
        return f"{self.task}:{self.train_split}"

    @property
    def name(self) -> str:
        return self.label or f"{self.task}-{self.manifest.strategy}-N{self.manifest.n_unique}"


def build_trainer(
    model_config: ModelConfig, optimizer_config: OptimizerConfig, train_config: TrainConfig,
    vocab_size: int, situation_shape: tuple[int, int] = (0, 0), batch_size: int | None = None,
) -> MultiSeedTrainer:
    """The cell's trainer for any model family: vocabulary size and (gSCAN) situation (cells,
    channels) come from the task; the optimizer decays what the family says decays."""
    cells, channels = situation_shape
    sizes = {"situation_cells": cells, "situation_channels": channels} if cells else {}
    model_config = dataclasses.replace(model_config, vocab_size=vocab_size, **sizes)
    batch_size = batch_size or train_config.batch_size
    return shared(("trainer", model_config, optimizer_config, batch_size,
                   train_config.steps_per_call, train_config.length_buckets),
                  lambda: MultiSeedTrainer(
        model_config=model_config,
        optimizer=make_optimizer(optimizer_config, model_family(model_config).weight_decay_mask),
        batch_size=batch_size, steps_per_call=train_config.steps_per_call,
        length_buckets=train_config.length_buckets))


_SHARED: dict[Any, Any] | None = None  # open while `sharing_across_cells` is


@contextlib.contextmanager
def sharing_across_cells() -> Iterator[None]:
    """While open, the cells trained in this process share each task's loaded data and one
    trainer (one compiled step) per setting, as the in-process runner wants; nothing is kept
    once it closes, so a later call reads its data afresh."""
    global _SHARED
    _SHARED = {}
    try:
        yield
    finally:
        _SHARED = None


def shared(key: Any, make: Callable[[], Any]) -> Any:
    """`make()`, or, inside `sharing_across_cells`, the value made for `key` before."""
    if _SHARED is None:
        return make()
    if key not in _SHARED:
        _SHARED[key] = make()
    return _SHARED[key]


@dataclasses.dataclass(frozen=True)
class CellPlan:
    """What one cell trains on and how it is scored, whatever the model family or task kind."""

    name: str
    task: str
    pool: Pool  # the train pool, on device
    lengths: Mapping[str, Mapping[str, int]]  # split -> feature -> padded length
    orders: ManifestOrders | EpochOrders  # each seed's example order
    total_steps: int
    steps_per_epoch: int
    columns: Sequence[Mapping[str, Any]]  # per seed: the cell's identity columns of every row
    evaluators: Sequence[Evaluator]
    manifests: Sequence[manifest_lib.Manifest] = ()  # saved under MODEL_DIR/manifests/

    @property
    def hashes(self) -> list[str]:
        """Per seed, the identity of its training data (manifest hash), checked on resume."""
        return [str(c["manifest_hash"]) for c in self.columns]


@dataclasses.dataclass
class LossWindow:
    """Each seed's losses of its last TRAIN_LOSS_WINDOW trained steps: their mean is the
    `train_loss` of its rows, the same whatever steps_per_call (saved with every checkpoint)."""

    losses: list[list[float]]

    def add(self, losses: np.ndarray, trained: np.ndarray) -> None:
        """Add one call's losses [S, steps]: a seed trained its first `trained[s]` steps (a
        frozen seed's later steps only rescore its frozen state)."""
        for window, seed_losses, count in zip(self.losses, losses, trained, strict=True):
            window.extend(seed_losses[:count].tolist())
            del window[:-TRAIN_LOSS_WINDOW]

    def means(self) -> np.ndarray:
        """Per seed, the mean of its window, in float64 on the host: a device reduction's order
        depends on the per-device shape, so it would differ between sharding layouts."""
        return np.array([np.mean(window) if window else np.nan for window in self.losses])


@contextlib.contextmanager
def ctrl_c_at_call_end() -> Iterator[threading.Event]:
    """While open, Ctrl-C sets the event (the loop stops at its next call end) instead of raising
    wherever the main thread is, where JAX's gc callback can swallow it; a second Ctrl-C raises
    at once. Only in the main thread, and only where Ctrl-C is not ignored."""
    event = threading.Event()
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield event
        return

    def requested(signum: int, frame: Any) -> None:
        event.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    signal.signal(signal.SIGINT, requested)
    try:
        yield event
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def run_cell(
    plan: CellPlan,
    model_dir: Path,
    trainer: MultiSeedTrainer,
    config: TrainConfig,
    checkpoint_config: CheckpointConfig = NO_CHECKPOINTS,
    progress: tqdm | None = None,
    *,
    settings: Mapping[str, str],
) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """Train the S seeds of one cell; return its results rows and per-seed stops table.

    Everything is checked before MODEL_DIR is touched: the config, the checkpoint schedule, every
    split's lengths against the model, and an existing MODEL_DIR's settings and data. The run
    resumes from the newest intact checkpoint_<step>; MODEL_DIR is locked against a second
    writer, and a MODEL_DIR this call created is removed again if training fails before its
    first checkpoint. With `shard_seeds`, seeds are spread over the devices; padding lanes
    (inactive, never reported) fill the last device. Ctrl-C raises a KeyboardInterrupt whose text
    names the step reached and the checkpoint to resume from, once any save in flight is whole.
    """
    config.validate()
    checkpoint_config.validate(config.steps_per_call)
    check_lengths(plan.task, plan.lengths, trainer.model_config)
    fresh = not model_dir.exists()
    # creates MODEL_DIR: every check above has passed
    with model_dir_lock(model_dir, exclusive=jax.process_index() == 0), \
            ctrl_c_at_call_end() as ctrl_c:
        check_resume(model_dir, settings, plan.hashes)
        try:
            rows, stops = _run_locked(plan, model_dir, trainer, config, checkpoint_config,
                                      progress, settings, ctrl_c)
        except BaseException:  # e.g. out of memory at the first step: leave no partial MODEL_DIR
            if fresh and not any(model_dir.glob("checkpoint_*")):
                shutil.rmtree(model_dir, ignore_errors=True)
            raise
    diverged = stops.loc[stops["diverged"], "seed"].tolist()
    if diverged:
        tqdm.write(f"warning: cell {plan.name}: seeds {diverged} of {config.seeds} diverged "
                   "(non-finite loss or gradients; frozen, rows flagged diverged=True)",
                   file=sys.stderr)
    return rows, stops


def _run_locked(
    plan: CellPlan, model_dir: Path, trainer: MultiSeedTrainer, config: TrainConfig,
    checkpoint_config: CheckpointConfig, progress: tqdm | None, settings: Mapping[str, str],
    ctrl_c: threading.Event,
) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    seeds = config.seeds
    mesh = seed_mesh() if config.shard_seeds else None
    lanes = padded_seed_count(len(seeds), mesh.size) if mesh else len(seeds)
    lane_seeds = seeds + [seeds[-1] + 1 + k for k in range(lanes - len(seeds))]
    state = trainer.init(jnp.asarray(lane_seeds))
    state["active"] = jnp.arange(lanes) < len(seeds)
    pool, evaluators = plan.pool, list(plan.evaluators)
    if mesh is not None:
        state, pool = shard_seeds(state, mesh), replicate(pool, mesh)
        evaluators = [e.on_mesh(mesh) for e in evaluators]

    checkpointer = CellCheckpointer(model_dir, checkpoint_config)
    start, rows = 0, []
    stops = SeedStops.fresh(len(config.stop_rules), len(seeds))
    window = LossWindow([[] for _ in seeds])
    restored = checkpointer.restore(state)
    if restored is not None:
        start, state, meta = restored
        if "train_losses" not in meta:
            raise ValueError(f"{model_dir}/checkpoint_{start} was written by an older compgen-jax "
                             "(no train-loss window); use a fresh MODEL_DIR")
        rows, stops = meta["rows"], SeedStops.from_meta(meta)
        window = LossWindow(meta["train_losses"])
        if progress is not None:
            progress.update(start)
    for s, m in zip(seeds, plan.manifests, strict=False):  # once a checkpoint has restored
        manifest_lib.save(m, model_dir / "manifests" / f"seed_{s}.json")
    writer = metric_writer(model_dir, config.tensorboard and jax.process_index() == 0)
    if jax.process_index() == 0:  # the run's config before its first step, as t5x records it
        config_text = write_operative_config(model_dir).read_text()
        writer.write_texts(start, {"config": f"```\n{config_text}\n```"})
    eval_period = config.eval_period or plan.total_steps
    positions_per_call = config.steps_per_call * trainer.batch_size
    orders, done = None, start
    reached = start
    try:
        for step in config.call_ends(start, plan.total_steps):
            num_steps, done = step - done, step
            steps_before = host_array(state["step"])[:len(seeds)].copy()  # the state is donated
            if orders is None or not plan.orders.fixed:
                positions = host_array(state["step"]).astype(np.int64) * trainer.batch_size
                orders = jnp.asarray(plan.orders.window(lane_seeds, positions, positions_per_call))
                orders = orders if mesh is None else shard_seeds(orders, mesh)
            state, losses = trainer.train(state, orders, pool, num_steps)
            reached = step
            window.add(host_array(losses)[:len(seeds)],
                       host_array(state["step"])[:len(seeds)] - steps_before)
            train_loss = window.means()
            writer.write_scalars(step, {f"seed_{s}/train_loss": float(v)
                                        for s, v in zip(seeds, train_loss, strict=True)})
            if progress is not None:
                progress.update(num_steps)
                finite = train_loss[np.isfinite(train_loss)]  # none: every seed diverged
                progress.set_postfix_str(f"{plan.name} loss/seed min {finite.min():.3f} max "
                                         f"{finite.max():.3f}" if finite.size else
                                         f"{plan.name} no finite loss")
            live = host_array(state["active"] & ~state["diverged"])[:len(seeds)]
            last = step == plan.total_steps or not live.any()
            if step % eval_period == 0 or last:
                seed_steps = host_array(state["step"])[:len(seeds)]
                diverged = host_array(state["diverged"])[:len(seeds)]
                epoch = seed_steps // plan.steps_per_epoch
                scores = _evaluate(evaluators, trainer, state["params"], seeds, step, model_dir)
                active = host_array(state["active"]).copy()
                active[:len(seeds)] = stops.update(config.stop_rules, scores.scores, epoch,
                                                   seed_steps, active[:len(seeds)], diverged)
                state["active"] = jax.device_put(active, state["active"].sharding)
                for name, score in scores.scores.items():
                    writer.write_scalars(step, {f"seed_{s}/{name}/{scores.metrics[name]}": float(v)
                                                for s, v in zip(seeds, score, strict=True)})
                    rows += [{
                        **plan.columns[i], "split": name, "seed": seed, "step": step,
                        "exact_match": float(score[i]), "n_examples": scores.sizes[name],
                        "train_loss": float(train_loss[i]), "diverged": bool(diverged[i]),
                        "seed_steps": int(seed_steps[i]), "metric": scores.metrics[name],
                        "epoch": int(epoch[i]), "stop_reason": str(stops.reason[i]),
                    } for i, seed in enumerate(seeds)]
                last = last or not (active & ~host_array(state["diverged"])).any()
            if checkpoint_config.due(step) or last:
                # copies: orbax writes the metadata in the background, while the loop goes on
                checkpointer.save(step, state, {"seeds": seeds, "manifest_hashes": plan.hashes,
                                                "cell": plan.name, "step": step, "rows": list(rows),
                                                "train_losses": [list(w) for w in window.losses],
                                                **stops.meta(), **settings_meta(settings)})
            if last:
                break
            if ctrl_c.is_set():
                raise KeyboardInterrupt
    except KeyboardInterrupt:  # Ctrl-C: one line saying where to resume (cli.main prints it)
        checkpointer.close()  # a save in flight finishes: every checkpoint on disk is whole
        newest = checkpointer.newest()
        raise KeyboardInterrupt(
            f"interrupted at step {reached}, " + (f"resumable from checkpoint_{newest}"
                                                  if newest is not None else
                                                  "before its first checkpoint (nothing to resume)")
        ) from None
    checkpointer.close()
    writer.close()
    for evaluator in evaluators:
        evaluator.finish(model_dir)
    write_results(rows, model_dir / "results.csv")
    stop_step, reason = stops.final(host_array(state["step"])[:len(seeds)])
    table = pd.DataFrame({"cell": plan.name, "seed": seeds, "stop_step": stop_step,
                          "stop_reason": reason,
                          "diverged": host_array(state["diverged"])[:len(seeds)]},
                         columns=list(STOP_COLUMNS))
    write_text(model_dir / "stops.csv", table.to_csv(index=False))
    return rows, table


class NoMetrics:
    """The metric writer of a run without TensorBoard files: results.csv holds every number, and
    neither clu nor TensorFlow need be installed (the accelerator image has neither)."""

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        """Nothing to write: the scalars reach results.csv through the rows."""

    def write_texts(self, step: int, texts: Mapping[str, str]) -> None:
        """Nothing to write: the operative config is MODEL_DIR/config.gin."""

    def close(self) -> None:
        """Nothing is open."""


def metric_writer(model_dir: Path, tensorboard: bool) -> Any:
    """clu's TensorBoard writer under MODEL_DIR/tensorboard, or `NoMetrics` when off (TrainConfig
    .tensorboard = False, or not the first process); clu imports TensorFlow, only when on."""
    if not tensorboard:
        return NoMetrics()
    try:
        from clu import metric_writers
    except ImportError as err:
        raise ValueError(f"TrainConfig.tensorboard=True needs clu and TensorFlow ({err}); bind "
                         "TrainConfig.tensorboard = False where they are not installed") from None
    return metric_writers.create_default_writer(str(model_dir / "tensorboard"))


def _evaluate(evaluators: Sequence[Evaluator], trainer: MultiSeedTrainer, params: Any,
              seeds: Sequence[int], step: int, model_dir: Path) -> Scores:
    """Every evaluator's scores of one eval step, merged (names are unique across evaluators)."""
    merged = Scores({}, {}, {})
    for evaluator in evaluators:
        result = evaluator(trainer, params, seeds, step, model_dir)
        merged.scores.update(result.scores)
        merged.sizes.update(result.sizes)
        merged.metrics.update(result.metrics)
    return merged


def seq2seq_plan(cell: CellConfig, data: TaskData, trainer: MultiSeedTrainer,
                 config: TrainConfig) -> CellPlan:
    """A benchmark cell: each seed trains on its manifest of the task's pool, scored by greedy
    decoding of the eval splits with the benchmark's own metric."""
    check_situation(data, trainer)
    for rule in config.stop_rules:
        if rule.split.partition(":")[0] not in config.eval_splits:
            raise ValueError(f"TrainConfig.stop_rules: {rule} reads split {rule.split!r}, which "
                             f"is not one of TrainConfig.eval_splits={config.eval_splits}")
    manifests = cell_manifests(cell.manifest, data.index, config.num_seeds)
    exposure = manifests[0].exposure(config.total_steps, config.batch_size)
    columns = [{"cell": cell.name, "benchmark": data.benchmark, "task": cell.task,
                "strategy": cell.manifest.strategy, "n_unique": m.n_unique,
                "exposure": exposure, "manifest_hash": m.hash} for m in manifests]
    evaluator = DecodeEvaluator(data.evals, split_evaluators(data.source, data.eval_ids),
                                data.words, config.eval_batch_size,
                                config.save_predictions, cell.name)
    return CellPlan(
        name=cell.name, task=data.task, pool=data.train, lengths=data.lengths,
        orders=ManifestOrders(manifests, config.total_steps * config.batch_size),
        total_steps=config.total_steps,
        steps_per_epoch=math.ceil(manifests[0].n_unique / config.batch_size),
        columns=columns, evaluators=[evaluator], manifests=manifests)


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
        settings = run_settings(cell, trainer.model_config, train_config)
    plan = seq2seq_plan(cell, data, trainer, train_config)
    return run_cell(plan, model_dir, trainer, train_config, checkpoint_config, progress,
                    settings=settings)[0]


def check_situation(data: TaskData, trainer: MultiSeedTrainer) -> None:
    """A gSCAN task trains only with its grid: its pools and model must carry the situation."""
    if data.benchmark != gscan.BENCHMARK:
        return
    if not all("situation" in pool for pool in (data.train, *data.evals.values())):
        reason = "its pools carry no situation (grid)"
    elif not getattr(trainer.model_config, "situation_cells", 0):
        reason = "the model has no situation encoder"
    else:
        return
    raise ValueError(
        f"task {data.task!r} is gSCAN but {reason}: fed the command only, a model cannot know "
        "where to go. Load it with load_task_data and build the trainer with "
        "build_trainer(..., situation_shape=data.situation_shape)")


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
