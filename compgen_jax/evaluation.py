"""Evaluators, the host loop's plug-ins: each scores every seed's params at an eval step.

- `DecodeEvaluator` (seq2seq benchmarks): vmapped greedy decoding scored by the benchmark's own
  metric, per split and group;
- `TypeAccuracyEvaluator` (synthetic coverage tasks): teacher-forced answer-token accuracy per
  test type.

Every eval split of a DecodeEvaluator yields result rows named
- `<split>`: the whole (possibly subsampled) split;
- `<split>:<category>`: one per category, when the split holds more than one (COGS/ReCOGS gen:
  its 21 generalization categories);
- `<split>:<group>`: one per difficulty group present (COGS/ReCOGS gen: `easy`, `hard`),
the same names `tasks.selection.eval_subset` and the manifests' pair coverage use (each benchmark
module's CATEGORY_DIFFICULTY says its groups; none: no group rows).

Evaluators are named in gin (`evaluator_names`, big_vision style) and built through `EVALUATORS`.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import gin
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from analysis.atomic import write_text
from compgen_jax import coverage_data
from compgen_jax.configs import TrainConfig
from compgen_jax.coverage_data import CoverageData
from compgen_jax.multiseed import MultiSeedTrainer, Pool
from compgen_jax.sharding import host_array, replicate
from tasks.example import Example
from tasks.metrics import Match, category_groups, difficulty_groups, group_means, token_match
from tasks.tokens import EOS

if TYPE_CHECKING:
    from jax.sharding import Mesh

    from compgen_jax.task_data import TaskData, TaskSource


def decode(
    trainer: MultiSeedTrainer, params: Any, pool: Pool, eval_batch_size: int, desc: str = ""
) -> np.ndarray:
    """Greedy-decode every example of `pool` for every seed -> tokens [S, N, Lt] on the host.

    With `desc`, a progress bar named `desc` counts the examples decoded (a large split decodes
    for minutes); it is removed once the split is done.
    """
    n, max_len = pool["targets"].shape
    situation = pool.get("situation")
    tokens = []
    with tqdm(total=n, unit="example", desc=desc, leave=False, dynamic_ncols=True,
              disable=not desc) as bar:
        for start in range(0, n, eval_batch_size):
            chunk = slice(start, start + eval_batch_size)
            tokens.append(host_array(trainer.decode(
                params, pool["inputs"][chunk], max_len,
                None if situation is None else situation[chunk])))
            bar.update(tokens[-1].shape[1])
    return np.concatenate(tokens, axis=1)


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
        difficulty = getattr(module, "CATEGORY_DIFFICULTY", {})
        groups.update({f"{split}:{g}": rows
                       for g, rows in difficulty_groups(categories, difficulty).items()})
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


def split_evaluators(source: TaskSource, eval_ids: dict[str, np.ndarray]
                     ) -> dict[str, SplitEvaluator]:
    """An evaluator per eval split of a task (seqio task or TASK_ARRAYS file), over the pool
    rows' example ids."""
    return {split: SplitEvaluator.build(split, [source.examples(split)[int(i)] for i in ids])
            for split, ids in eval_ids.items()}



@dataclasses.dataclass(frozen=True)
class Scores:
    """One evaluation of every seed: score name -> [S], with its example count and metric."""

    scores: dict[str, np.ndarray]
    sizes: dict[str, int]
    metrics: dict[str, str]


class Evaluator(Protocol):
    """Scores the seeds' params at an eval step; writes its own files into MODEL_DIR."""

    def __call__(self, trainer: MultiSeedTrainer, params: Any, seeds: Sequence[int], step: int,
                 model_dir: Path) -> Scores:
        ...

    def finish(self, model_dir: Path) -> None:
        """Write what the run's last evaluation leaves behind (a rule may end the run only
        once the scores are in, so the last evaluation is known only afterwards)."""
        ...

    def on_mesh(self, mesh: Mesh) -> Evaluator:
        """The evaluator with its data placed for params sharded over `mesh`."""
        ...


@dataclasses.dataclass
class DecodeEvaluator:
    """Greedy decoding of each eval split, scored per split and group by its benchmark's metric;
    predictions CSVs per `save_predictions` ('none', 'final', 'all')."""

    pools: dict[str, Pool]
    splits: dict[str, SplitEvaluator]
    words: Sequence[str]
    batch_size: int
    save_predictions: str = "final"
    cell: str = ""  # names the decode progress bars ('<cell>: decode <split>')
    latest: tuple[int, Sequence[int], dict[str, SplitResult]] | None = None

    def on_mesh(self, mesh: Mesh) -> DecodeEvaluator:
        return dataclasses.replace(self, pools=replicate(self.pools, mesh))

    def __call__(self, trainer: MultiSeedTrainer, params: Any, seeds: Sequence[int], step: int,
                 model_dir: Path) -> Scores:
        scores, sizes, metrics, results = {}, {}, {}, {}
        for split, pool in self.pools.items():
            desc = f"{self.cell}: decode {split}" if self.cell else f"decode {split}"
            tokens = decode(trainer, params, pool, self.batch_size, desc)
            results[split] = result = self.splits[split].evaluate(tokens[:len(seeds)], self.words)
            scores.update(result.scores)
            sizes.update(result.sizes)
            metrics.update(dict.fromkeys(result.scores, self.splits[split].metric))
        self.latest = (step, seeds, results)
        if self.save_predictions == "all":
            self._write_predictions(model_dir)
        return Scores(scores, sizes, metrics)

    def finish(self, model_dir: Path) -> None:
        if self.save_predictions == "final":
            self._write_predictions(model_dir)

    def _write_predictions(self, model_dir: Path) -> None:
        """predictions/<split>_step<step>.csv of the latest evaluation."""
        if self.latest is None:
            return
        step, seeds, results = self.latest
        for split, result in results.items():
            self.splits[split].write_predictions(
                model_dir / "predictions" / f"{split}_step{step}.csv", seeds, result)


@dataclasses.dataclass
class TypeAccuracyEvaluator:
    """Teacher-forced answer-token accuracy of every seed per test type (upstream's evaluation);
    the last eval's per-example accuracy is written to MODEL_DIR/per_example.csv."""

    data: CoverageData
    batch_size: int
    latest: tuple[np.ndarray, Sequence[int]] | None = None  # per-example accuracy [S, N], seeds

    def on_mesh(self, mesh: Mesh) -> TypeAccuracyEvaluator:
        return self

    def __call__(self, trainer: MultiSeedTrainer, params: Any, seeds: Sequence[int], step: int,
                 model_dir: Path) -> Scores:
        per_example = coverage_data.evaluate_types(trainer, params, self.data.test,
                                                   self.batch_size)[:len(seeds)]
        self.latest = (per_example, seeds)
        types = self.data.test_types
        accuracy = coverage_data.type_accuracy(per_example, self.data.test["loss_mask"], types)
        return Scores(accuracy, {t: int((types == t).sum()) for t in accuracy},
                      dict.fromkeys(accuracy, coverage_data.METRIC))

    def finish(self, model_dir: Path) -> None:
        if self.latest is not None:
            frame = coverage_data.per_example_frame(self.data, *self.latest)
            write_text(model_dir / "per_example.csv", frame.to_csv(index=False))


def _decode_evaluator(data: TaskData, config: TrainConfig) -> DecodeEvaluator:
    """Greedy decoding of the task's eval splits, scored by its benchmark's metric."""
    return DecodeEvaluator(data.evals, split_evaluators(data.source, data.eval_ids), data.words,
                           config.eval_batch_size, config.save_predictions)


def _type_accuracy_evaluator(data: CoverageData, config: TrainConfig) -> TypeAccuracyEvaluator:
    """Teacher-forced answer-token accuracy per test type of a coverage dataset."""
    return TypeAccuracyEvaluator(data, config.eval_batch_size)


# name -> (the cell kind whose data it reads, its factory)
EVALUATORS: dict[str, tuple[str, Callable[[Any, TrainConfig], Evaluator]]] = {
    "decode": ("seq2seq", _decode_evaluator),
    "type_accuracy": ("coverage", _type_accuracy_evaluator),
}


@gin.configurable
def evaluator_names(
    kind: str, seq2seq: Sequence[str] = ("decode",), coverage: Sequence[str] = ("type_accuracy",),
) -> tuple[str, ...]:
    """The evaluators (names in EVALUATORS) a cell of `kind` ('seq2seq' benchmark or 'coverage'
    task) runs at each eval step, as gin binds them."""
    return tuple({"seq2seq": seq2seq, "coverage": coverage}[kind])


def build_evaluators(kind: str, data: Any, config: TrainConfig,
                     cell: str = "") -> list[Evaluator]:
    """The gin-named evaluators of a `kind` cell over its data (a decode evaluator's progress
    bars named by `cell`); ValueError naming the binding when a name is unknown or reads
    another kind's data."""
    names = evaluator_names(kind)
    problems = [name for name in names if EVALUATORS.get(name, ("",))[0] != kind]
    if problems or not names:
        known = sorted(n for n, (k, _) in EVALUATORS.items() if k == kind)
        raise ValueError(f"evaluator_names.{kind}={names!r}: {problems or 'none'} are not "
                         f"{kind} evaluators; choose from {known}")
    evaluators = [EVALUATORS[name][1](data, config) for name in names]
    return [dataclasses.replace(e, cell=cell) if isinstance(e, DecodeEvaluator) else e
            for e in evaluators]
