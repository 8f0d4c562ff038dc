"""The t5x-like entry point: train one cell (S seeds, vectorised) and write its results table."""

from __future__ import annotations

import dataclasses
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gin
import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from compgen_jax.checkpoints import (
    NO_CHECKPOINTS,
    CellCheckpointer,
    CheckpointConfig,
    check_resume,
    run_settings,
    settings_meta,
)
from compgen_jax.evaluation import decode, split_evaluators
from compgen_jax.gin_utils import write_operative_config
from compgen_jax.lock import check_model_dir, model_dir_lock
from compgen_jax.models.transformer import TransformerConfig
from compgen_jax.multiseed import MultiSeedTrainer, Pool
from compgen_jax.optim import OptimizerConfig, make_optimizer
from compgen_jax.results import write_results
from compgen_jax.sharding import (
    host_array,
    padded_seed_count,
    replicate,
    seed_mesh,
    shard_seeds,
)
from compgen_jax.validation import check_lengths
from tasks import manifest as manifest_lib
from tasks.benchmarks import gscan
from tasks.data_dir import data_dir
from tasks.selection import ManifestSpec, PoolIndex, cell_manifests

if TYPE_CHECKING:
    import seqio


@gin.configurable
@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How a cell trains and evaluates: seeds, budget, batch, eval cadence."""

    num_seeds: int = 5
    total_steps: int = 1000
    batch_size: int = 64
    steps_per_call: int = 50
    eval_period: int = 0
    eval_splits: tuple[str, ...] = ("test",)
    max_eval_examples: int = 0
    eval_batch_size: int = 512
    random_seed: int = 0
    shard_seeds: bool = False
    early_stop_split: str = ""
    early_stop_threshold: float = 1.0
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
        if self.eval_period and self.eval_period % self.steps_per_call:
            raise ValueError(
                f"TrainConfig.eval_period={self.eval_period} must be a multiple of "
                f"TrainConfig.steps_per_call={self.steps_per_call}"
            )
        if self.save_predictions not in ("none", "final", "all"):
            raise ValueError(f"TrainConfig.save_predictions={self.save_predictions!r}: expected "
                             "'none', 'final' or 'all'")
        if self.early_stop_split and self.early_stop_split not in self.eval_splits:
            raise ValueError(f"TrainConfig.early_stop_split={self.early_stop_split!r} is not one "
                             f"of TrainConfig.eval_splits={self.eval_splits}")

    @property
    def seeds(self) -> list[int]:
        return list(range(self.random_seed, self.random_seed + self.num_seeds))

    def call_ends(self, start: int) -> list[int]:
        """The step at which each compiled call ends, resuming after `start`.

        Calls end every `steps_per_call` steps; a budget that is not a multiple ends with one
        shorter call, so checkpoints (taken at call ends) always resume onto the same schedule.
        """
        ends = list(range(start + self.steps_per_call, self.total_steps + 1, self.steps_per_call))
        if start < self.total_steps and (not ends or ends[-1] != self.total_steps):
            ends.append(self.total_steps)
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


@dataclasses.dataclass(frozen=True)
class TaskData:
    """A task's tokenized train pool and eval pools on device, each padded to its own longest
    example (so the train step never pays for a longer eval split, and each eval split decodes
    to its own longest target)."""

    task: str
    train_split: str
    benchmark: str
    vocab_size: int
    train: Pool
    evals: dict[str, Pool]
    eval_ids: dict[str, np.ndarray]
    vocabulary: seqio.Vocabulary
    index: PoolIndex

    @property
    def lengths(self) -> dict[str, dict[str, int]]:
        """split -> feature -> padded length (the split's longest example, EOS included)."""
        pools = {self.train_split: self.train, **self.evals}
        return {split: {f: int(a.shape[1]) for f, a in pool.items()}
                for split, pool in pools.items()}

    @property
    def situation_shape(self) -> tuple[int, int]:
        """(cells, channels) of the pools' situation features (gSCAN grids); (0, 0) if none."""
        situation = self.train.get("situation")
        return (0, 0) if situation is None else (situation.shape[1], situation.shape[2])


def _trimmed(array: np.ndarray) -> np.ndarray:
    """A 0-padded token array cut to its longest row (EOS included)."""
    return array[:, :max(int((array != 0).sum(axis=1).max(initial=0)), 1)]


def split_arrays(
    task: str, train_split: str, eval_splits: Sequence[str], max_eval_examples: int = 0
) -> dict[str, dict[str, np.ndarray]]:
    """split -> inputs / targets (each split cut to its own longest example) and example_id.

    Eval splits larger than `max_eval_examples` (> 0) keep a fixed, seeded subset.
    """
    from tasks import registry  # imports TensorFlow (~7 s): only once data is really needed

    registry.ensure_registered(task, data_dir())
    out = {}
    for split in [train_split, *eval_splits]:
        arrays = registry.tokenized_pool(task, split)
        n = arrays["inputs"].shape[0]
        rows = np.arange(n)
        if split != train_split and 0 < max_eval_examples < n:
            rows = np.sort(np.random.default_rng(0).choice(n, max_eval_examples, replace=False))
        out[split] = {"example_id": arrays["example_id"][rows],
                      **{f: _trimmed(arrays[f][rows]) for f in ("inputs", "targets")}}
    return out


def load_task_data(
    task: str, train_split: str, eval_splits: Sequence[str], max_eval_examples: int = 0
) -> TaskData:
    """Tokenize the pool and eval splits through the seqio task; eval subsets are seeded.

    Each split is padded to its own longest example (of the subset, for an eval subset).
    """
    from tasks import registry

    arrays = split_arrays(task, train_split, eval_splits, max_eval_examples)
    pools = {split: {f: jnp.asarray(a[f]) for f in ("inputs", "targets")}
             for split, a in arrays.items()}
    ids = {split: a["example_id"] for split, a in arrays.items()}
    _attach_situations(task, pools, ids)
    return TaskData(
        task=task,
        train_split=train_split,
        benchmark=registry.get_examples(task, train_split)[0].benchmark,
        vocab_size=registry.get_vocabulary(task).vocab_size,
        train=pools[train_split],
        evals={s: pools[s] for s in eval_splits},
        eval_ids={s: ids[s] for s in eval_splits},
        vocabulary=registry.get_vocabulary(task),
        index=pool_index(task, train_split, eval_splits),
    )


def _attach_situations(task: str, pools: dict[str, Pool], ids: dict[str, np.ndarray]) -> None:
    """gSCAN: give each pool its rows' grids, [N, G*G, C] uint8, fed as encoder tokens."""
    from tasks import registry

    if registry.get_examples(task, next(iter(pools)))[0].benchmark != gscan.BENCHMARK:
        return
    for split, pool in pools.items():
        pool["situation"] = jnp.asarray(registry.gscan_situation_pool(task, split)[ids[split]])


def pool_index(task: str, train_split: str, eval_splits: Sequence[str]) -> PoolIndex:
    """The registered task's pool indexed against its eval splits (and their difficulty groups)."""
    from tasks import registry
    from tasks.selection import build_index, eval_sets

    splits = {s.partition(":")[0] for s in eval_splits}
    by_split = {s: registry.get_examples(task, s) for s in sorted(splits)}
    return build_index(f"{task}:{train_split}", registry.get_examples(task, train_split),
                       eval_sets(by_split, eval_splits))


def build_trainer(
    model_config: TransformerConfig, optimizer_config: OptimizerConfig, train_config: TrainConfig,
    vocab_size: int, situation_shape: tuple[int, int] = (0, 0),
) -> MultiSeedTrainer:
    """The cell's trainer; vocabulary size and situation (cells, channels) come from the task."""
    cells, channels = situation_shape
    return MultiSeedTrainer(
        model_config=dataclasses.replace(model_config, vocab_size=vocab_size,
                                         situation_cells=cells, situation_channels=channels),
        optimizer=make_optimizer(optimizer_config),
        batch_size=train_config.batch_size,
        steps_per_call=train_config.steps_per_call,
    )


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
    """Train the S seeds of one cell in one compiled step; evaluate; write results + manifests.

    Resumes from the newest intact MODEL_DIR/checkpoint_<step> when one exists and was written
    with the same `settings` (checkpoints.run_settings) and manifests; anything else is refused
    before MODEL_DIR is touched. MODEL_DIR is locked against a second writer while training; a
    MODEL_DIR this call created is removed again if training fails before its first checkpoint.
    With `shard_seeds`, seeds are spread over the devices; padding lanes (inactive, never
    reported) fill the last device.
    """
    train_config.validate()
    if settings is None:  # direct API use: the settings this call can see
        settings = run_settings(cell, trainer.model_config, train_config)
    check_lengths(data.task, data.lengths, trainer.model_config)
    check_situation(data, trainer)
    seeds = train_config.seeds
    manifests = cell_manifests(cell.manifest, data.index, len(seeds))
    fresh = not model_dir.exists()
    # creates MODEL_DIR: every check above has passed
    with model_dir_lock(model_dir, exclusive=jax.process_index() == 0):
        check_resume(model_dir, settings, [m.hash for m in manifests])
        try:
            rows = _train_locked(cell, model_dir, data, trainer, train_config,
                                 checkpoint_config, progress, manifests, settings)
        except BaseException:  # e.g. out of memory at the first step: leave no partial MODEL_DIR
            if fresh and not any(model_dir.glob("checkpoint_*")):
                shutil.rmtree(model_dir, ignore_errors=True)
            raise
    diverged = sorted({r["seed"] for r in rows if r["diverged"]})
    if diverged:
        tqdm.write(f"warning: cell {cell.name}: seeds {diverged} of {seeds} diverged (non-finite "
                   "loss or gradients; frozen, rows flagged diverged=True)", file=sys.stderr)
    return rows


def _train_locked(
    cell: CellConfig, model_dir: Path, data: TaskData, trainer: MultiSeedTrainer,
    train_config: TrainConfig, checkpoint_config: CheckpointConfig, progress: tqdm | None,
    manifests: list[manifest_lib.Manifest], settings: Mapping[str, str],
) -> list[dict[str, Any]]:
    seeds = train_config.seeds
    mesh = seed_mesh() if train_config.shard_seeds else None
    lanes = padded_seed_count(len(seeds), mesh.size) if mesh else len(seeds)
    padding = lanes - len(seeds)
    lane_seeds = seeds + [seeds[-1] + 1 + k for k in range(padding)]
    lane_manifests = manifests + manifests[-1:] * padding
    orders = jnp.asarray(manifest_lib.order_table(
        lane_manifests, lane_seeds, train_config.total_steps * train_config.batch_size))
    state = trainer.init(jnp.asarray(lane_seeds))
    state["active"] = jnp.arange(lanes) < len(seeds)
    pool, evals = data.train, data.evals
    if mesh is not None:
        state, orders = shard_seeds(state, mesh), shard_seeds(orders, mesh)
        pool, evals = replicate(pool, mesh), replicate(evals, mesh)

    hashes = [m.hash for m in manifests]
    evaluators = split_evaluators(data.task, data.eval_ids)
    checkpointer = CellCheckpointer(model_dir, checkpoint_config)
    start, rows = 0, []
    restored = checkpointer.restore(state)
    if restored is not None:
        start, state, meta = restored
        rows = meta["rows"]
        if progress is not None:
            progress.update(start)
    for s, m in zip(seeds, manifests, strict=True):  # once a checkpoint (if any) has restored
        manifest_lib.save(m, model_dir / "manifests" / f"seed_{s}.json")
    from clu import metric_writers  # imports TensorFlow: only once a cell really trains

    exposure = manifests[0].exposure(train_config.total_steps, train_config.batch_size)
    eval_period = train_config.eval_period or train_config.total_steps
    writer = metric_writers.create_default_writer(
        str(model_dir / "tensorboard"),
        just_logging=not train_config.tensorboard or jax.process_index() > 0)
    if jax.process_index() == 0:  # the run's config before its first step, as t5x records it
        config_text = write_operative_config(model_dir).read_text()
        writer.write_texts(start, {"config": f"```\n{config_text}\n```"})
    done = start
    for step in train_config.call_ends(start):
        num_steps, done = step - done, step
        state, losses = trainer.train(state, orders, pool, num_steps)
        # Mean on the host in float64: a device reduction's order depends on the per-device
        # shape, so it would differ between sharding layouts (and CPUs) in the last bits.
        chunk_loss = host_array(losses)[:len(seeds)].astype(np.float64).mean(axis=1)
        writer.write_scalars(step, {f"seed_{s}/train_loss": float(v)
                                    for s, v in zip(seeds, chunk_loss, strict=True)})
        if progress is not None:
            progress.update(num_steps)
            progress.set_postfix_str(f"{cell.name} loss/seed min {np.nanmin(chunk_loss):.3f} "
                                     f"max {np.nanmax(chunk_loss):.3f}")
        live = host_array(state["active"] & ~state["diverged"])[:len(seeds)]
        last = step == train_config.total_steps or not live.any()
        if step % eval_period == 0 or last:
            seed_steps = host_array(state["step"])
            diverged = host_array(state["diverged"])
            scores = {}
            for split, eval_pool in evals.items():
                tokens = decode(trainer, state["params"], eval_pool, train_config.eval_batch_size)
                result = evaluators[split].evaluate(tokens[:len(seeds)], data.vocabulary.tokens)
                scores[split] = result.scores[split]
                if train_config.save_predictions == "all" or (
                        train_config.save_predictions == "final" and last):
                    evaluators[split].write_predictions(
                        model_dir / "predictions" / f"{split}_step{step}.csv", seeds, result)
                for name, score in result.scores.items():
                    writer.write_scalars(step, {f"seed_{s}/{name}/exact_match": float(v)
                                                for s, v in zip(seeds, score, strict=True)})
                    rows += [{
                        "cell": cell.name, "benchmark": data.benchmark, "task": cell.task,
                        "split": name, "strategy": cell.manifest.strategy,
                        "n_unique": m.n_unique, "exposure": exposure, "manifest_hash": m.hash,
                        "seed": seed, "step": step, "exact_match": float(score[i]),
                        "n_examples": result.sizes[name], "train_loss": float(chunk_loss[i]),
                        "diverged": bool(diverged[i]), "seed_steps": int(seed_steps[i]),
                        "metric": evaluators[split].metric,
                    } for i, (seed, m) in enumerate(zip(seeds, manifests, strict=True))]
            if train_config.early_stop_split:
                reached = scores[train_config.early_stop_split] >= train_config.early_stop_threshold
                active = host_array(state["active"]).copy()
                active[:len(seeds)] &= ~reached
                state["active"] = jax.device_put(active, state["active"].sharding)
                last = last or not (active & ~host_array(state["diverged"])).any()
        if checkpointer.due(step) or last:
            checkpointer.save(step, state, {"seeds": seeds, "manifest_hashes": hashes,
                                            "step": step, "rows": rows,
                                            **settings_meta(settings)})
        if last:
            break
    checkpointer.close()
    writer.close()
    write_results(rows, model_dir / "results.csv")
    return rows


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
    data = load_task_data(cell.task, cell.train_split, train_config.eval_splits,
                          train_config.max_eval_examples)
    trainer = build_trainer(model_config, optimizer_config, train_config, data.vocab_size,
                            data.situation_shape)
    print(f"model: {trainer.num_params:,} "
          f"parameters per seed x {train_config.num_seeds} seeds")
    with tqdm(total=train_config.total_steps, unit="step", desc=cell.name) as progress:
        return train_cell(cell, Path(model_dir), data, trainer, train_config, checkpoint_config,
                          progress, settings=settings)
