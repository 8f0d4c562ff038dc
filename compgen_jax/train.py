"""The t5x-like entry point: train one cell (S seeds, vectorised) and write its results table."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gin
import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from compgen_jax.models.transformer import TransformerConfig, count_params
from compgen_jax.multiseed import MultiSeedTrainer, Pool, exact_match
from compgen_jax.optim import OptimizerConfig, make_optimizer
from compgen_jax.results import write_results
from tasks import manifest as manifest_lib
from tasks.data_dir import data_dir
from tasks.selection import ManifestSpec, cell_manifests


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

    def validate(self) -> None:
        if self.num_seeds < 1:
            raise ValueError(f"TrainConfig.num_seeds={self.num_seeds} must be >= 1")
        if self.total_steps % self.steps_per_call:
            raise ValueError(
                f"TrainConfig.total_steps={self.total_steps} must be a multiple of "
                f"TrainConfig.steps_per_call={self.steps_per_call}"
            )
        if self.eval_period and self.eval_period % self.steps_per_call:
            raise ValueError(
                f"TrainConfig.eval_period={self.eval_period} must be a multiple of "
                f"TrainConfig.steps_per_call={self.steps_per_call}"
            )

    @property
    def seeds(self) -> list[int]:
        return list(range(self.random_seed, self.random_seed + self.num_seeds))


@gin.configurable
@dataclasses.dataclass(frozen=True)
class CellConfig:
    """One design point: which pool, and how its manifests are chosen."""

    task: str = "scan_simple"
    train_split: str = "train"
    manifest: ManifestSpec = ManifestSpec()

    @property
    def pool(self) -> str:
        return f"{self.task}:{self.train_split}"

    @property
    def name(self) -> str:
        return f"{self.task}-{self.manifest.strategy}-N{self.manifest.n_unique}"


@dataclasses.dataclass(frozen=True)
class TaskData:
    """A task's tokenized train pool and eval pools on device, padded to common lengths."""

    task: str
    benchmark: str
    vocab_size: int
    train: Pool
    evals: dict[str, Pool]


def _pad_to(array: np.ndarray, length: int) -> np.ndarray:
    return np.pad(array, ((0, 0), (0, length - array.shape[1])))


def load_task_data(
    task: str, train_split: str, eval_splits: Sequence[str], max_eval_examples: int = 0
) -> TaskData:
    """Tokenize the pool and eval splits through the seqio task; eval subsets are seeded."""
    from tasks import registry  # imports TensorFlow (~7 s): only once data is really needed

    registry.register_scan_tasks("" if task in registry.SCAN_GENERATED else data_dir())
    splits = [train_split, *eval_splits]
    raw = {s: registry.tokenized_pool(task, s) for s in splits}
    lengths = {f: max(raw[s][f].shape[1] for s in splits) for f in ("inputs", "targets")}
    pools = {}
    for split, arrays in raw.items():
        n = arrays["inputs"].shape[0]
        rows = np.arange(n)
        if split != train_split and 0 < max_eval_examples < n:
            rows = np.sort(np.random.default_rng(0).choice(n, max_eval_examples, replace=False))
        pools[split] = {f: jnp.asarray(_pad_to(arrays[f][rows], lengths[f])) for f in lengths}
    return TaskData(
        task=task,
        benchmark=registry.get_examples(task, train_split)[0].benchmark,
        vocab_size=registry.get_vocabulary(task).vocab_size,
        train=pools[train_split],
        evals={s: pools[s] for s in eval_splits},
    )


def build_trainer(
    model_config: TransformerConfig, optimizer_config: OptimizerConfig, train_config: TrainConfig,
    vocab_size: int,
) -> MultiSeedTrainer:
    return MultiSeedTrainer(
        model_config=dataclasses.replace(model_config, vocab_size=vocab_size),
        optimizer=make_optimizer(optimizer_config),
        batch_size=train_config.batch_size,
        steps_per_call=train_config.steps_per_call,
    )


def evaluate(
    trainer: MultiSeedTrainer, params: Any, pool: Pool, eval_batch_size: int
) -> np.ndarray:
    """Greedy-decode every example for every seed -> per-seed, per-example exact match [S, N]."""
    n, max_len = pool["targets"].shape
    correct = []
    for start in range(0, n, eval_batch_size):
        inputs = pool["inputs"][start:start + eval_batch_size]
        tokens = trainer.decode(params, inputs, max_len)
        correct.append(exact_match(tokens, pool["targets"][start:start + eval_batch_size][None]))
    return np.asarray(jnp.concatenate(correct, axis=1))


def train_cell(
    cell: CellConfig,
    model_dir: Path,
    data: TaskData,
    trainer: MultiSeedTrainer,
    train_config: TrainConfig,
    progress: tqdm | None = None,
) -> list[dict[str, Any]]:
    """Train the S seeds of one cell in one compiled step; evaluate; write results + manifests."""
    train_config.validate()
    model_dir.mkdir(parents=True, exist_ok=True)
    seeds = train_config.seeds
    pool_size = int(data.train["inputs"].shape[0])
    manifests = cell_manifests(cell.manifest, cell.pool, pool_size, len(seeds))
    for s, m in zip(seeds, manifests, strict=True):
        manifest_lib.save(m, model_dir / "manifests" / f"seed_{s}.json")
    orders = jnp.asarray(manifest_lib.order_table(
        manifests, seeds, train_config.total_steps * train_config.batch_size))
    state = trainer.init(jnp.asarray(seeds))
    exposure = manifests[0].exposure(train_config.total_steps, train_config.batch_size)
    eval_period = train_config.eval_period or train_config.total_steps
    rows: list[dict[str, Any]] = []
    for step in range(train_config.steps_per_call, train_config.total_steps + 1,
                      train_config.steps_per_call):
        state, losses = trainer.train(state, orders, data.train)
        chunk_loss = np.asarray(losses.mean(axis=1))
        if progress is not None:
            progress.update(train_config.steps_per_call)
            progress.set_postfix_str(
                f"{cell.name} loss/seed min {chunk_loss.min():.3f} max {chunk_loss.max():.3f}")
        if step % eval_period and step != train_config.total_steps:
            continue
        for split, pool in data.evals.items():
            correct = evaluate(trainer, state["params"], pool, train_config.eval_batch_size)
            for i, (seed, m) in enumerate(zip(seeds, manifests, strict=True)):
                rows.append({
                    "cell": cell.name, "benchmark": data.benchmark, "task": cell.task,
                    "split": split, "strategy": cell.manifest.strategy,
                    "n_unique": m.n_unique,
                    "exposure": exposure, "manifest_hash": m.hash, "seed": seed, "step": step,
                    "exact_match": float(correct[i].mean()), "n_examples": int(correct.shape[1]),
                    "train_loss": float(chunk_loss[i]),
                    "diverged": bool(not np.isfinite(chunk_loss[i])),
                })
    write_results(rows, model_dir / "results.csv")
    return rows


@gin.configurable
def train(
    *,
    model_dir: str = gin.REQUIRED,
    cell: CellConfig = gin.REQUIRED,
    model_config: TransformerConfig = gin.REQUIRED,
    optimizer_config: OptimizerConfig = gin.REQUIRED,
    train_config: TrainConfig = gin.REQUIRED,
) -> list[dict[str, Any]]:
    """Train one cell into MODEL_DIR: manifests/, results.csv (config.gin written by the CLI)."""
    data = load_task_data(cell.task, cell.train_split, train_config.eval_splits,
                          train_config.max_eval_examples)
    trainer = build_trainer(model_config, optimizer_config, train_config, data.vocab_size)
    print(f"model: {count_params(jax.eval_shape(lambda: trainer.init_one(0))['params']):,} "
          f"parameters per seed x {train_config.num_seeds} seeds")
    with tqdm(total=train_config.total_steps, unit="step", desc=cell.name) as progress:
        return train_cell(cell, Path(model_dir), data, trainer, train_config, progress)
