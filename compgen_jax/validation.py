"""Checks that a cell (or every cell of a design) can run before anything is trained or written.

Lengths: every input / target of a cell's splits fits the model's positions. Schedule: the train
config of each cell validates. Pool: N and the batch fit the train split. Memory: an estimate of
the cell's peak device memory (params + optimizer + activations of S seeds x batch x lengths, the
decode cache at eval, the data order and the pools) fits `DeviceBudget`. Each failure is one line
naming the cell and the gin setting to change; a design's failures are raised together.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import gin

from compgen_jax.models import ModelConfig
from compgen_jax.models.decoder_only import DecoderConfig

if TYPE_CHECKING:
    from compgen_jax.configs import TrainConfig
    from compgen_jax.designs import DesignCell

# split -> feature ("inputs" / "targets", or "tokens") -> padded length (longest example + EOS)
Lengths = Mapping[str, Mapping[str, int]]
_GB = 1024 ** 3


class DesignError(ValueError):
    """One or more cells of a design cannot run; the message has one line per problem."""


def _length_violations(task: str, lengths: Lengths, model_config: ModelConfig,
                       cell: str = "") -> list[tuple[int, str]]:
    """(length, line) per split feature longer than the model's positions allow."""
    if isinstance(model_config, DecoderConfig):
        limit, setting = model_config.max_len, "DecoderConfig.max_len"
    elif model_config.position == "learned":
        limit, setting = model_config.max_len, "TransformerConfig.max_len"
    else:
        return []  # relative position bias: no length limit
    prefix = f"cell {cell}: " if cell else ""
    return [(length, f"{prefix}task {task!r}, split {split!r}: longest {feature} example is "
                     f"{length} tokens (EOS included) but {setting}={limit}; set {setting} >= "
                     f"{length}")
            for split, features in lengths.items() for feature, length in features.items()
            if length > limit]


def length_problems(task: str, lengths: Lengths, model_config: ModelConfig,
                    cell: str = "") -> list[str]:
    """One line per split feature whose longest example exceeds the model's positions."""
    return [line for _, line in _length_violations(task, lengths, model_config, cell)]


def check_lengths(task: str, lengths: Lengths, model_config: ModelConfig) -> None:
    """Raise ValueError (one line: the longest offending split) when an example exceeds the
    model, so a cell never trains on positions past the model's table (NaN losses)."""
    violations = sorted(_length_violations(task, lengths, model_config), reverse=True)
    if violations:
        more = len(violations) - 1
        raise ValueError(violations[0][1] + (f" (and {more} more split features over the limit)"
                                             if more else ""))


@gin.configurable
@dataclasses.dataclass(frozen=True)
class DeviceBudget:
    """Memory one device offers a cell: `memory_gb` (0: this host's RAM, for CPU runs) on each
    of `num_devices`, over which the seeds are sharded (TrainConfig.shard_seeds)."""

    memory_gb: float = 0.0
    num_devices: int = 1

    @property
    def bytes(self) -> int:
        if self.memory_gb > 0:
            return int(self.memory_gb * _GB)
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")

    def describe(self) -> str:
        size = (f"DeviceBudget.memory_gb={self.memory_gb:g}" if self.memory_gb > 0 else
                f"host RAM {self.bytes / _GB:.1f} GB (DeviceBudget.memory_gb=0)")
        return f"{size} x DeviceBudget.num_devices={self.num_devices}"


@dataclasses.dataclass(frozen=True)
class SplitShape:
    """A split as the trainer holds it: examples and padded lengths per feature."""

    examples: int
    lengths: dict[str, int]


@dataclasses.dataclass(frozen=True)
class TaskShape:
    """What validation needs from a task's data: vocabulary size and per-split shapes."""

    vocab_size: int
    splits: dict[str, SplitShape]


def memory_estimate(
    model_config: ModelConfig, train_config: TrainConfig, shape: TaskShape, train_split: str,
    num_devices: int = 1,
) -> dict[str, int]:
    """Peak bytes per device of one cell, by component (an estimate, float32 throughout).

    state: params, AdamW moments, gradients and updates (5 x params) of the device's seeds;
    activations: what one train step keeps for the backward pass (per layer: projections, MLP and
    attention scores; the logits) of the device's seeds; decode: one eval batch's KV caches and
    logits; data: the order table (sharded) and the token pools (replicated). The train step and
    decoding do not overlap: peak = state + data + max(activations, decode).
    """
    from compgen_jax.models import param_counts

    seeds = math.ceil(train_config.num_seeds / num_devices)
    params = param_counts(model_config)[0]
    d, b = model_config.emb_dim, train_config.batch_size
    vocab, heads = model_config.vocab_size, model_config.num_heads
    if isinstance(model_config, DecoderConfig):
        mlp, length = model_config.mlp_dim, shape.splits[train_split].lengths["tokens"]
        per_layer = b * length * (12 * d + 2 * mlp) + 2 * b * heads * length ** 2
        activations = model_config.num_layers * per_layer + 3 * b * length * vocab
        decode = 0  # teacher-forced scoring: a forward pass, far below the train step
    else:
        mlp = model_config.mlp_dim
        li, lt = (shape.splits[train_split].lengths[f] for f in ("inputs", "targets"))
        enc = b * li * (10 * d + 2 * mlp) + 2 * b * heads * li * li
        dec = b * lt * (14 * d + 2 * mlp) + 2 * b * heads * (lt * lt + lt * li)
        activations = (model_config.num_encoder_layers * enc
                       + model_config.num_decoder_layers * dec + 3 * b * lt * vocab)
        decode = 0
        for split in train_config.eval_splits:
            s = shape.splits[split]
            rows = min(train_config.eval_batch_size, s.examples)
            li, lt = s.lengths["inputs"], s.lengths["targets"]
            cache = model_config.num_decoder_layers * 2 * (lt + li) * d + li * (d + mlp)
            decode = max(decode, rows * (cache + 2 * vocab + 2 * heads * (lt + li) + lt))
    pools = sum(s.examples * sum(s.lengths.values()) for s in shape.splits.values())
    orders = seeds * train_config.total_steps * train_config.batch_size
    return {"state": 4 * seeds * 5 * params, "activations": 4 * seeds * activations,
            "decode": 4 * seeds * decode, "data": 4 * (pools + orders)}


def peak_bytes(estimate: Mapping[str, int]) -> int:
    """state + data + the larger of the train step's activations and decoding."""
    return estimate["state"] + estimate["data"] + max(estimate["activations"], estimate["decode"])


def _settings_problems(cell: DesignCell) -> list[str]:
    """The cell's train config (its seeds, steps and batch) must validate."""
    try:
        cell.train.validate()
    except ValueError as err:
        return [f"cell {cell.name}: {err}"]
    return []


@gin.configurable
def design_settings(
    model_config: ModelConfig = gin.REQUIRED,
    train_config: TrainConfig = gin.REQUIRED,
    budget: DeviceBudget | None = None,
) -> tuple[ModelConfig, TrainConfig, DeviceBudget]:
    """The model, run and device budget every cell of the configured design uses (gin)."""
    return model_config, train_config, budget or DeviceBudget()


def validate_design(
    cells: Sequence[DesignCell],
    shape_for: Callable[[str, str], TaskShape],
    *,
    model_config: ModelConfig,
    budget: DeviceBudget | None = None,
) -> list[dict[str, object]]:
    """Check every cell (each with its own TrainConfig) before any runs; raise DesignError (one
    line per problem) or return one row per cell (steps, lengths, estimated peak GB per device).

    Settings are checked first (no data is loaded when they fail); then, per cell, N and the
    batch against the train split, the lengths of every split against the model, and the memory
    estimate against `budget`. `shape_for(task, train_split)` gives the task's TaskShape.
    """
    budget = budget or DeviceBudget()
    problems = [p for cell in cells for p in _settings_problems(cell)]
    if budget.num_devices < 1:
        problems.append(f"DeviceBudget.num_devices={budget.num_devices} must be >= 1")
    if problems:
        raise DesignError("\n".join(problems))
    rows = []
    for cell in cells:
        task, split = cell.cell.task, cell.cell.train_split
        shape = shape_for(task, split)
        pool = shape.splits[split].examples
        n = cell.cell.manifest.n_unique
        if n > pool:
            problems.append(f"cell {cell.name}: ManifestSpec.n_unique={n} exceeds the {pool} "
                            f"examples of {task}:{split}")
        if cell.train.batch_size > pool:
            problems.append(f"cell {cell.name}: batch_size={cell.train.batch_size} exceeds the "
                            f"{pool} "
                            f"examples of {task}:{split}")
        lengths = {s: dict(v.lengths) for s, v in shape.splits.items()}
        problems += length_problems(task, lengths, model_config, cell.name)
        config = dataclasses.replace(model_config, vocab_size=shape.vocab_size)
        estimate = memory_estimate(config, cell.train, shape, split, budget.num_devices)
        peak = peak_bytes(estimate)
        if peak > budget.bytes:
            parts = ", ".join(f"{k} {v / _GB:.2f}" for k, v in estimate.items())
            problems.append(
                f"cell {cell.name}: estimated peak memory {peak / _GB:.1f} GB per device ({parts}"
                f") exceeds {budget.describe()}; lower NUM_SEEDS, BATCH_SIZE or "
                "TrainConfig.eval_batch_size, or raise DeviceBudget.memory_gb / num_devices")
        rows.append({"cell": cell.name, "seeds": cell.train.num_seeds,
                     "steps": cell.train.total_steps, "batch": cell.train.batch_size,
                     "lengths": " ".join(f"{s}:{'/'.join(map(str, v.values()))}"
                                         for s, v in lengths.items()),
                     "peak_GB": peak / _GB})
    if problems:
        raise DesignError("\n".join(problems))
    return rows


@functools.cache
def task_shape(task: str, train_split: str, eval_splits: tuple[str, ...],
               max_eval_examples: int = 0, arrays: str | None = None,
               stratify_eval: bool = False) -> TaskShape:
    """The task's vocabulary size and its splits' shapes, exactly as the trainer will hold them
    (cached per process: a design's cells share a few tasks, so callers pass `arrays`, the
    TASK_ARRAYS file or "", explicitly)."""
    from compgen_jax.task_data import split_arrays, task_source

    source = task_source(task, arrays)
    arrays_by_split = split_arrays(task, train_split, eval_splits, max_eval_examples, source,
                                   stratify_eval)
    return TaskShape(
        vocab_size=source.vocab_size,
        splits={split: SplitShape(int(a["inputs"].shape[0]),
                                  {f: int(a[f].shape[1]) for f in ("inputs", "targets")})
                for split, a in arrays_by_split.items()})


def validate_configured_design(cells: Sequence[DesignCell]) -> list[dict[str, object]]:
    """validate_design with the gin-configured settings, on the real data's shapes."""
    model_config, config, budget = design_settings()
    from compgen_jax.task_data import task_arrays

    arrays = task_arrays()
    return validate_design(cells, lambda task, split: task_shape(
        task, split, tuple(config.eval_splits), config.max_eval_examples, arrays,
        config.stratify_eval),
        model_config=model_config, budget=budget)
