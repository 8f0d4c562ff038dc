"""Decoder-only multi-seed training on a coverage-principle dataset dir (COVERAGE_PRINCIPLE s.3).

Sequences are `target_text` token ids (pad 0, then vocab.json order), right-padded; the loss and
the teacher-forced accuracy cover the answer tokens only (input prefix, `</a>` and padding
excluded). Every `eval_period` steps each seed's per-type accuracy on test.json is measured, and
both upstream early-stopping rules freeze seeds through the trainer's `active` mask:
(i) type_0 accuracy >= threshold; (ii) more than `patience_epochs` epochs after train_inferred
first reached the threshold. Deviations: each seed reads its own stream of per-epoch
permutations, so a batch may straddle an epoch boundary when the batch does not divide the
training set; the step budget is whole epochs (Q15) rounded up to `steps_per_call`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gin
import jax.numpy as jnp
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from compgen_jax.checkpoints import ALL_CHECKPOINTS, CellCheckpointer
from compgen_jax.models.decoder_only import DecoderConfig
from compgen_jax.multiseed import MultiSeedTrainer, State
from compgen_jax.optim import OptimizerConfig, make_optimizer
from tasks.atomic import write_text
from tasks.benchmarks import coverage

END = coverage.END
RESULT_COLUMNS = ("dataset", "num_tokens", "n_train", "seed", "step", "seed_steps", "epoch",
                  "type", "accuracy", "n_examples", "train_loss", "diverged", "stop_reason")


@gin.configurable
@dataclasses.dataclass(frozen=True)
class SyntheticTrainConfig:
    """Seeds, budget and evaluation of one decoder-only cell (upstream defaults, s.3)."""

    num_seeds: int = 3
    random_seed: int = 0
    max_steps: int = 62500
    batch_size: int = 16384
    steps_per_call: int = 25
    eval_period: int = 25
    eval_batch_size: int = 4096
    stop_threshold: float = 0.99
    patience_epochs: int = 100
    checkpoint_dense_period: int = 250
    checkpoint_dense_until: int = 5000
    checkpoint_period: int = 2500

    def validate(self, checkpoints: bool = True) -> None:
        """Raise ValueError naming the first bad setting (checkpoint cadence only if saving)."""
        if self.num_seeds < 1:
            raise ValueError(f"SyntheticTrainConfig.num_seeds={self.num_seeds} must be >= 1")
        if self.eval_period < 1 or self.eval_period % self.steps_per_call:
            raise ValueError(f"SyntheticTrainConfig.eval_period={self.eval_period} must be a "
                             f"positive multiple of steps_per_call={self.steps_per_call}")
        for name in ("checkpoint_dense_period", "checkpoint_period") if checkpoints else ():
            value = getattr(self, name)
            if value < 0 or value % self.steps_per_call:
                raise ValueError(f"SyntheticTrainConfig.{name}={value} must be 0 (off) or a "
                                 f"multiple of steps_per_call={self.steps_per_call}")

    def checkpoint_due(self, step: int) -> bool:
        """Upstream cadence: every dense period up to dense_until, then every period."""
        if step <= self.checkpoint_dense_until:
            return self.checkpoint_dense_period > 0 and step % self.checkpoint_dense_period == 0
        return self.checkpoint_period > 0 and step % self.checkpoint_period == 0

    @property
    def seeds(self) -> list[int]:
        return list(range(self.random_seed, self.random_seed + self.num_seeds))


@dataclasses.dataclass(frozen=True)
class CoverageData:
    """A coverage dataset tokenized for the decoder: pools, test types, vocabulary."""

    name: str
    vocab: list[str]
    train: dict[str, np.ndarray]
    test: dict[str, np.ndarray]
    test_types: np.ndarray
    test_inputs: list[str]

    @property
    def vocab_size(self) -> int:
        return len(self.vocab) + 1

    @property
    def num_tokens(self) -> int:
        return coverage.parse_name(self.name)[1]

    def token_id(self, token: str) -> int:
        """Model id of a vocabulary token (0 is padding)."""
        return self.vocab.index(token) + 1


def tokenize(examples: Sequence[Any], vocab: Sequence[str], length: int) -> dict[str, np.ndarray]:
    """{"tokens", "loss_mask"} [N, length] int32 of input + answer; mask = answer minus `</a>`."""
    ids = {tok: i + 1 for i, tok in enumerate(vocab)}
    tokens = np.zeros((len(examples), length), np.int32)
    mask = np.zeros((len(examples), length), np.int32)
    for row, ex in enumerate(examples):
        inp, tgt = ex.input.split(), ex.target.split()
        try:
            seq = [ids[t] for t in inp + tgt]
        except KeyError as err:
            raise ValueError(f"{ex.split} item {ex.id}: token {err.args[0]} not in "
                             "vocab.json") from None
        tokens[row, : len(seq)] = seq
        mask[row, len(inp): len(inp) + len(tgt)] = [int(t != END) for t in tgt]
    return {"tokens": tokens, "loss_mask": mask}


def load_coverage_data(dataset_dir: str | os.PathLike[str]) -> CoverageData:
    """train.json / test.json / vocab.json of an upstream-layout dataset dir, tokenized."""
    root = Path(dataset_dir)
    vocab_path = root / "vocab.json"
    if not vocab_path.is_file():
        raise FileNotFoundError(f"coverage dataset {root.name}: expected file {vocab_path}")
    vocab = json.loads(vocab_path.read_text(encoding="utf-8"))
    train, test = coverage.load(root, "train"), coverage.load(root, "test")
    length = max(len(ex.input.split()) + len(ex.target.split()) for ex in train + test)
    return CoverageData(
        name=root.name, vocab=vocab, train=tokenize(train, vocab, length),
        test=tokenize(test, vocab, length), test_types=np.array([ex.category for ex in test]),
        test_inputs=[ex.input for ex in test],
    )


def build_trainer(model_config: DecoderConfig, optimizer_config: OptimizerConfig,
                  batch_size: int, steps_per_call: int, data: CoverageData) -> MultiSeedTrainer:
    """The compiled multi-seed trainer for this dataset's vocabulary and sequence length."""
    length = data.train["tokens"].shape[1]
    if model_config.max_len < length:
        raise ValueError(f"DecoderConfig.max_len={model_config.max_len} < sequence length "
                         f"{length} of {data.name}")
    return MultiSeedTrainer(
        model_config=dataclasses.replace(model_config, vocab_size=data.vocab_size),
        optimizer=make_optimizer(optimizer_config), batch_size=batch_size,
        steps_per_call=steps_per_call)


def order_window(seed: int, n: int, start: int, length: int) -> np.ndarray:
    """Positions [start, start+length) of a seed's stream of per-epoch PCG64 permutations of n."""
    first, last = start // n, (start + length - 1) // n
    stream = np.concatenate([np.random.default_rng([seed, e]).permutation(n)
                             for e in range(first, last + 1)])
    return stream[start - first * n: start - first * n + length].astype(np.int32)


def evaluate_types(trainer: MultiSeedTrainer, params: Any, pool: dict[str, np.ndarray],
                   batch_size: int) -> np.ndarray:
    """Per-seed, per-example teacher-forced answer accuracy [S, N], in fixed-size chunks."""
    n = pool["tokens"].shape[0]
    size = min(batch_size, n)
    out = []
    for start in range(0, n, size):
        chunk = {k: v[start: start + size] for k, v in pool.items()}
        short = size - chunk["tokens"].shape[0]
        chunk = {k: jnp.asarray(np.pad(v, ((0, short), (0, 0)))) for k, v in chunk.items()}
        out.append(np.asarray(trainer.token_accuracy(params, chunk))[:, : size - short])
    return np.concatenate(out, axis=1)


def type_accuracy(per_example: np.ndarray, loss_mask: np.ndarray,
                  types: np.ndarray) -> dict[str, np.ndarray]:
    """Token-level accuracy per type (correct answer tokens / answer tokens) -> {type: [S]}."""
    weights = loss_mask[:, 1:].sum(axis=1).astype(np.float64)
    return {t: (per_example[:, types == t] * weights[types == t]).sum(axis=1)
            / weights[types == t].sum() for t in sorted(set(types.tolist()))}


def per_example_frame(data: CoverageData, per_example: np.ndarray,
                      seeds: Sequence[int]) -> pd.DataFrame:
    """Tidy (index, seed, type, input, accuracy) rows of a per-seed accuracy array [S, N]."""
    n = per_example.shape[1]
    return pd.DataFrame({
        "index": np.tile(np.arange(n), len(seeds)), "seed": np.repeat(seeds, n),
        "type": np.tile(data.test_types, len(seeds)),
        "input": np.tile(np.array(data.test_inputs), len(seeds)),
        "accuracy": per_example.reshape(-1)})


@dataclasses.dataclass
class CellResult:
    """Results of one cell: per-(seed, step, type) rows, final per-example accuracy, stops."""

    rows: pd.DataFrame
    per_example: pd.DataFrame
    stops: pd.DataFrame
    state: State


@dataclasses.dataclass
class SeedStops:
    """Per-seed early-stopping bookkeeping (saved with each checkpoint): the epoch train_inferred
    first reached the threshold (-1: not yet), the stop reason, and the stop step (-1: running)."""

    patience_from: np.ndarray
    reason: np.ndarray
    stop_step: np.ndarray

    @classmethod
    def fresh(cls, num_seeds: int) -> SeedStops:
        return cls(np.full(num_seeds, -1, np.int64),
                   np.array(["max_steps"] * num_seeds, dtype=object),
                   np.full(num_seeds, -1, np.int64))

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> SeedStops:
        return cls(np.asarray(meta["patience_from"], np.int64),
                   np.asarray(meta["stop_reason"], dtype=object),
                   np.asarray(meta["stop_step"], np.int64))

    def meta(self) -> dict[str, list]:
        return {"patience_from": self.patience_from.tolist(), "stop_reason": self.reason.tolist(),
                "stop_step": self.stop_step.tolist()}

    def update(self, config: SyntheticTrainConfig, accuracy: dict[str, np.ndarray],
               epoch: np.ndarray, seed_steps: np.ndarray, active: np.ndarray,
               diverged: np.ndarray) -> np.ndarray:
        """Apply rules (i) and (ii) to the active seeds; return the new active mask."""
        now = active.copy()
        for i in np.flatnonzero(now):
            if "type_0" in accuracy and accuracy["type_0"][i] >= config.stop_threshold:
                now[i], self.reason[i] = False, "type_0"
            elif "train_inferred" in accuracy:
                reached = accuracy["train_inferred"][i] >= config.stop_threshold
                if self.patience_from[i] < 0 and reached:
                    self.patience_from[i] = epoch[i]
                waited = epoch[i] - self.patience_from[i]
                if self.patience_from[i] >= 0 and waited > config.patience_epochs:
                    now[i], self.reason[i] = False, "patience"
            if not now[i] or diverged[i]:
                self.stop_step[i] = seed_steps[i]
        return now


def _running(state: State) -> np.ndarray:
    """Seeds still training: active and not diverged [S]."""
    return np.asarray(state["active"]) & ~np.asarray(state["diverged"])


def _result_rows(model_dir: Path | None, upto: int) -> list[dict[str, Any]]:
    """Rows of a resumed cell's results.csv up to its checkpoint step."""
    path = None if model_dir is None else model_dir / "results.csv"
    if path is None or not path.is_file():
        return []
    rows = pd.read_csv(path, keep_default_na=False)
    return rows[rows["step"] <= upto].to_dict("records")


def train_coverage_cell(
    data: CoverageData, trainer: MultiSeedTrainer, config: SyntheticTrainConfig,
    model_dir: Path | None = None, progress: bool = False,
) -> CellResult:
    """Train S seeds on one dataset with per-seed early stopping; write results into model_dir.

    With a model_dir, checkpoint_<step>/ follow the upstream cadence (all kept, so analyses can
    use the same steps), the last one is each seed's stop state, and a rerun resumes from the
    newest checkpoint.
    """
    config.validate(checkpoints=model_dir is not None)
    seeds = config.seeds
    n_train = data.train["tokens"].shape[0]
    batch = trainer.batch_size
    steps_per_epoch = math.ceil(n_train / batch)
    epochs = config.max_steps // steps_per_epoch + 1
    total = -(-epochs * steps_per_epoch // config.steps_per_call) * config.steps_per_call
    pool = {k: jnp.asarray(v) for k, v in data.train.items()}
    state = trainer.init(jnp.asarray(seeds))
    stops = SeedStops.fresh(len(seeds))
    checkpointer = None if model_dir is None else CellCheckpointer(model_dir, ALL_CHECKPOINTS)
    start, rows = 0, []
    restored = None if checkpointer is None else checkpointer.restore(state)
    if restored is not None:
        start, state, meta = restored
        _check_meta(meta, model_dir, seeds, data.name)
        stops, rows = SeedStops.from_meta(meta), _result_rows(model_dir, start)
    window = config.steps_per_call * batch
    bar = tqdm(total=total, initial=start, unit="step", desc=data.name, disable=not progress)
    per_example = None
    done = start
    for step in range(start + config.steps_per_call, total + 1, config.steps_per_call):
        if not _running(state).any():
            break
        # Ring buffer of each seed's next `window` stream positions (MultiSeedTrainer.train_one).
        positions = np.asarray(state["step"]).astype(np.int64) * batch
        orders = np.stack([np.roll(order_window(s, n_train, int(p), window), int(p) % window)
                           for s, p in zip(seeds, positions, strict=True)])
        state, losses = trainer.train(state, jnp.asarray(orders), pool)
        bar.update(config.steps_per_call)
        done = step
        if step % config.eval_period == 0 or step == total or not _running(state).any():
            per_example = evaluate_types(trainer, state["params"], data.test,
                                         config.eval_batch_size)
            accuracy = type_accuracy(per_example, data.test["loss_mask"], data.test_types)
            seed_steps = np.asarray(state["step"])
            epoch = seed_steps // steps_per_epoch
            train_loss = np.asarray(losses).astype(np.float64).mean(axis=1)
            diverged = np.asarray(state["diverged"])
            now = stops.update(config, accuracy, epoch, seed_steps, np.asarray(state["active"]),
                               diverged)
            state["active"] = jnp.asarray(now)
            rows += [{"dataset": data.name, "num_tokens": data.num_tokens, "n_train": n_train,
                      "seed": seed, "step": step, "seed_steps": int(seed_steps[i]),
                      "epoch": int(epoch[i]), "type": t, "accuracy": float(acc[i]),
                      "n_examples": int((data.test_types == t).sum()),
                      "train_loss": float(train_loss[i]), "diverged": bool(diverged[i]),
                      "stop_reason": stops.reason[i] if not now[i] else ""}
                     for i, seed in enumerate(seeds) for t, acc in accuracy.items()]
            bar.set_postfix_str(" ".join(f"{t}={np.mean(a):.3f}" for t, a in accuracy.items()))
        if checkpointer is not None and config.checkpoint_due(step):
            _save_progress(checkpointer, model_dir, step, state, rows, seeds, data.name, stops)
    bar.close()
    if per_example is None:
        per_example = evaluate_types(trainer, state["params"], data.test, config.eval_batch_size)
    stop_step = np.where(stops.stop_step < 0, np.asarray(state["step"]), stops.stop_step)
    stop_table = pd.DataFrame({
        "dataset": data.name, "num_tokens": data.num_tokens, "n_train": n_train, "seed": seeds,
        "stop_step": stop_step, "stop_reason": stops.reason,
        "diverged": np.asarray(state["diverged"])})
    result = CellResult(pd.DataFrame(rows, columns=list(RESULT_COLUMNS)),
                        per_example_frame(data, per_example, seeds), stop_table, state)
    if checkpointer is not None:
        _save_progress(checkpointer, model_dir, done, state, rows, seeds, data.name, stops)
        checkpointer.close()
        write_text(model_dir / "per_example.csv", result.per_example.to_csv(index=False))
        write_text(model_dir / "stops.csv", result.stops.to_csv(index=False))
    return result


def _check_meta(meta: dict[str, Any], model_dir: Path, seeds: Sequence[int],
                dataset: str | None) -> None:
    """A checkpoint belongs to this cell: same seeds (and dataset, when given)."""
    if list(meta["seeds"]) != list(seeds) or dataset not in (None, meta["dataset"]):
        raise ValueError(f"{model_dir}: checkpoint is of seeds {meta['seeds']} on "
                         f"{meta['dataset']}, not seeds {list(seeds)} on {dataset}")


def _save_progress(checkpointer: CellCheckpointer, model_dir: Path, step: int, state: State,
                   rows: list[dict[str, Any]], seeds: Sequence[int], dataset: str,
                   stops: SeedStops) -> None:
    """checkpoint_<step> (state + early-stopping bookkeeping) and results.csv up to step."""
    if checkpointer.manager.latest_step() == step:
        return
    checkpointer.save(step, state, {"seeds": list(seeds), "dataset": dataset, **stops.meta()})
    write_text(model_dir / "results.csv",
               pd.DataFrame(rows, columns=list(RESULT_COLUMNS)).to_csv(index=False))


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
    _check_meta(restored[2], model_dir, seeds, dataset)
    return restored[1]["params"]


@dataclasses.dataclass(frozen=True)
class CellSetup:
    """One configured coverage cell: where it lives, its data, trainer and training config."""

    model_dir: Path
    dataset_dir: Path
    data: CoverageData
    trainer: MultiSeedTrainer
    train_config: SyntheticTrainConfig


@gin.configurable("coverage_cell")
def cell_setup(
    *,
    model_dir: str = gin.REQUIRED,
    dataset_dir: str = gin.REQUIRED,
    model_config: DecoderConfig = gin.REQUIRED,
    optimizer_config: OptimizerConfig = gin.REQUIRED,
    train_config: SyntheticTrainConfig = gin.REQUIRED,
) -> CellSetup:
    """Load the dataset and build the trainer of one cell (shared by train and circuits)."""
    data = load_coverage_data(dataset_dir)
    batch = min(train_config.batch_size, data.train["tokens"].shape[0])
    trainer = build_trainer(model_config, optimizer_config, batch, train_config.steps_per_call,
                            data)
    return CellSetup(Path(model_dir), Path(dataset_dir), data, trainer, train_config)


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
                               progress=True)


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
    train_config: SyntheticTrainConfig = gin.REQUIRED,
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
                    optimizer_config=optimizer_config, train_config=train_config)
                n_type0 = int((setup.data.test_types == "type_0").sum())
                if n_type0 < sweep.min_type0_items:
                    print(f"skipping {name} and larger: {n_type0} type_0 items < "
                          f"ScalingSweep.min_type0_items={sweep.min_type0_items}")
                    break
                stops = train_synthetic(setup).stops
            all_stops.append(stops)
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
