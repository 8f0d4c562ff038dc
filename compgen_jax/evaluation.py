"""Evaluators: vmapped greedy decoding scored by the benchmark's own metric, per split and group.

Every eval split yields result rows named
- `<split>`: the whole (possibly subsampled) split;
- `<split>:<category>`: one per category, when the split holds more than one (COGS/ReCOGS gen:
  its 21 generalization categories);
- `<split>:<group>`: one per difficulty group present (COGS/ReCOGS gen: `easy`, `hard`),
the same names `tasks.selection.eval_subset` and the manifests' pair coverage use.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np
import pandas as pd

from compgen_jax.multiseed import MultiSeedTrainer, Pool
from compgen_jax.sharding import host_array
from tasks.atomic import write_text
from tasks.benchmarks.cogs import CATEGORY_DIFFICULTY
from tasks.example import Example
from tasks.metrics import Match, category_groups, difficulty_groups, group_means, token_match
from tasks.vocab import EOS


def decode(
    trainer: MultiSeedTrainer, params: Any, pool: Pool, eval_batch_size: int
) -> np.ndarray:
    """Greedy-decode every example of `pool` for every seed -> tokens [S, N, Lt] on the host."""
    n, max_len = pool["targets"].shape
    situation = pool.get("situation")
    tokens = []
    for start in range(0, n, eval_batch_size):
        chunk = slice(start, start + eval_batch_size)
        tokens.append(trainer.decode(params, pool["inputs"][chunk], max_len,
                                     None if situation is None else situation[chunk]))
    return host_array(jnp.concatenate(tokens, axis=1))


def prediction_texts(tokens: np.ndarray, words: Sequence[str]) -> list[list[str]]:
    """Decoded text per seed and example: the words before the first EOS.

    A PAD the model emits before EOS is kept as `<pad>` (vocabulary.decode would drop it and turn a
    wrong token sequence into a correct-looking text).
    """
    table = np.asarray(words, dtype=object)
    eos = words.index(EOS)
    ends = np.where((tokens == eos).any(-1), (tokens == eos).argmax(-1), tokens.shape[-1])
    return [[" ".join(table[row[:end]]) for row, end in zip(seed, seed_ends, strict=True)]
            for seed, seed_ends in zip(tokens, ends, strict=True)]


@dataclasses.dataclass(frozen=True)
class SplitResult:
    """One evaluation of one split: texts and correctness per seed, and the scored rows."""

    texts: list[list[str]]  # [S][N] predictions
    correct: np.ndarray  # [S, N] bool under the benchmark's metric
    scores: dict[str, np.ndarray]  # row name (split, split:category, split:group) -> [S]
    sizes: dict[str, int]  # row name -> number of examples


@dataclasses.dataclass(frozen=True)
class SplitEvaluator:
    """Scores decoded predictions of one eval split with its benchmark's metric, per group."""

    split: str
    examples: tuple[Example, ...]
    metric: str
    match: Match
    groups: dict[str, np.ndarray]  # row name -> positions in `examples`

    @classmethod
    def build(cls, split: str, examples: Sequence[Example]) -> SplitEvaluator:
        """The evaluator of `examples` (the pool rows of `split`, in order)."""
        if not examples:
            raise ValueError(f"eval split {split!r}: no examples")
        benchmarks = {ex.benchmark for ex in examples}
        if len(benchmarks) != 1:
            raise ValueError(f"eval split {split!r} mixes benchmarks {sorted(benchmarks)}")
        module = importlib.import_module(f"tasks.benchmarks.{benchmarks.pop()}")
        categories = [ex.category for ex in examples]
        by_category = category_groups(categories)
        groups = {split: np.arange(len(examples))}
        if len(by_category) > 1:
            groups.update({f"{split}:{c}": rows for c, rows in by_category.items()})
        groups.update({f"{split}:{g}": rows
                       for g, rows in difficulty_groups(categories, CATEGORY_DIFFICULTY).items()})
        return cls(split, tuple(examples), module.METRIC_NAME, module.match, groups)

    def evaluate(self, tokens: np.ndarray, words: Sequence[str]) -> SplitResult:
        """Score decoded tokens [S, N, L] (vocabulary `words`, ids in order) per seed and group."""
        if tokens.shape[1] != len(self.examples):
            raise ValueError(f"eval split {self.split!r}: {tokens.shape[1]} predictions for "
                             f"{len(self.examples)} examples")
        texts = prediction_texts(tokens, words)
        # Every benchmark metric accepts a token-identical prediction; test that cheaply first.
        correct = np.array([[token_match(ex.target, p) or bool(self.match(ex.target, p))
                             for ex, p in zip(self.examples, seed, strict=True)]
                            for seed in texts], dtype=bool)
        return SplitResult(texts, correct, group_means(correct, self.groups),
                           {name: len(rows) for name, rows in self.groups.items()})

    def write_predictions(self, path: Path, seeds: Sequence[int], result: SplitResult) -> None:
        """One row per (seed, example): id, category, input, target, prediction, correct (CSV)."""
        examples = self.examples * len(seeds)
        columns = {
            "seed": np.repeat(np.asarray(seeds), len(self.examples)),
            "example_id": [ex.id for ex in examples],
            "category": [ex.category or "" for ex in examples],
            "input": [ex.input for ex in examples],
            "target": [ex.target for ex in examples],
            "prediction": [text for seed in result.texts for text in seed],
            "correct": result.correct.reshape(-1),
        }
        write_text(path, pd.DataFrame(columns).to_csv(index=False))


def split_evaluators(task: str, eval_ids: dict[str, np.ndarray]) -> dict[str, SplitEvaluator]:
    """An evaluator per eval split of a registered task, over the pool rows' example ids."""
    from tasks import registry

    return {split: SplitEvaluator.build(split, [registry.get_examples(task, split)[int(i)]
                                                for i in ids])
            for split, ids in eval_ids.items()}

