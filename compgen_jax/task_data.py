"""A seq2seq task's splits tokenized through its seqio task, or read from an exported
task-arrays file (`TASK_ARRAYS`, no TensorFlow), each padded to its own longest example."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol

import gin
import jax.numpy as jnp
import numpy as np

from compgen_jax.models import ModelConfig
from compgen_jax.multiseed import Pool
from tasks.arrays import TaskArrays
from tasks.benchmarks import gscan
from tasks.data_dir import data_dir
from tasks.example import Example
from tasks.metrics import category_groups
from tasks.selection import PoolIndex


class TaskSource(Protocol):
    """Where a task's examples, token pools, grids and vocabulary come from: the seqio registry
    (`RegistrySource`) or an exported file (`tasks.arrays.TaskArrays`)."""

    task: str

    @property
    def words(self) -> tuple[str, ...]: ...

    @property
    def vocab_size(self) -> int: ...

    def examples(self, split: str) -> list[Example]: ...

    def pool(self, split: str) -> dict[str, np.ndarray]: ...

    def situations(self, split: str) -> np.ndarray: ...


@dataclasses.dataclass(frozen=True)
class RegistrySource:
    """A task read through its seqio task (imports TensorFlow), registered from the data dir."""

    task: str

    def __post_init__(self) -> None:
        from tasks import registry  # imports TensorFlow (~7 s): only once data is really needed

        registry.ensure_registered(self.task, data_dir())

    @property
    def words(self) -> tuple[str, ...]:
        from tasks import registry

        return registry.get_vocabulary(self.task).tokens

    @property
    def vocab_size(self) -> int:
        from tasks import registry

        return registry.get_vocabulary(self.task).vocab_size

    def examples(self, split: str) -> list[Example]:
        from tasks import registry

        return registry.get_examples(self.task, split)

    def pool(self, split: str) -> dict[str, np.ndarray]:
        from tasks import registry

        return registry.tokenized_pool(self.task, split)

    def situations(self, split: str) -> np.ndarray:
        from tasks import registry

        return registry.gscan_situation_pool(self.task, split)


@gin.configurable
def task_arrays(path: str = "") -> str:
    """The run's TASK_ARRAYS file ('' = read the seqio task): bound in gin, read where data
    loads, so the trainer, evaluators, validation and manifest selection read the same data."""
    return path


def task_source(task: str, arrays: str | None = None) -> TaskSource:
    """`task` from the exported file `arrays` (default: the TASK_ARRAYS binding), else from its
    seqio task; ArraysError if the file does not hold `task`."""
    arrays = task_arrays() if arrays is None else arrays
    if not arrays:
        return RegistrySource(task)
    source = TaskArrays.load(arrays)
    source.check_task(task)
    return source


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
    words: tuple[str, ...]
    index: PoolIndex
    source: TaskSource

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

    def check_situation(self, model_config: ModelConfig) -> None:
        """A gSCAN task trains only with its grid: its pools and model must carry it."""
        if self.benchmark != gscan.BENCHMARK:
            return
        if not all("situation" in pool for pool in (self.train, *self.evals.values())):
            reason = "its pools carry no situation (grid)"
        elif not getattr(model_config, "situation_cells", 0):
            reason = "the model has no situation encoder"
        else:
            return
        raise ValueError(
            f"task {self.task!r} is gSCAN but {reason}: fed the command only, a model cannot know "
            "where to go. Load it with load_task_data and build the trainer with "
            "build_trainer(..., situation_shape=data.situation_shape)")


def _trimmed(array: np.ndarray) -> np.ndarray:
    """A 0-padded token array cut to its longest row (EOS included)."""
    return array[:, :max(int((array != 0).sum(axis=1).max(initial=0)), 1)]


def subset_rows(n: int, k: int, categories: Sequence[str | None] | None = None) -> np.ndarray:
    """Sorted rows of a fixed, seeded k-subset of n rows. With `categories` (one per row; two or
    more distinct) the k rows are spread evenly over them: each category gives k // C rows and the
    first k % C categories in sorted order one more (a smaller category gives all of its rows)."""
    rng = np.random.default_rng(0)
    if categories is None or len(set(categories)) < 2:
        return np.sort(rng.choice(n, k, replace=False))
    groups = category_groups(categories)
    share, extra = divmod(k, len(groups))
    picked = [rng.choice(groups[c], min(share + (i < extra), len(groups[c])), replace=False)
              for i, c in enumerate(sorted(groups))]
    return np.sort(np.concatenate(picked))


def split_arrays(
    task: str, train_split: str, eval_splits: Sequence[str], max_eval_examples: int = 0,
    source: TaskSource | None = None, stratify_eval: bool = False,
) -> dict[str, dict[str, np.ndarray]]:
    """split -> inputs / targets (each split cut to its own longest example) and example_id.

    Eval splits larger than `max_eval_examples` (> 0) keep a fixed, seeded subset, spread evenly
    over the split's categories with `stratify_eval` (`subset_rows`). `source` defaults to
    `task_source(task)`.
    """
    source = task_source(task) if source is None else source
    out = {}
    for split in [train_split, *eval_splits]:
        arrays = source.pool(split)
        n = arrays["inputs"].shape[0]
        rows = np.arange(n)
        if split != train_split and 0 < max_eval_examples < n:
            examples = source.examples(split) if stratify_eval else None
            rows = subset_rows(n, max_eval_examples, None if examples is None else
                               [examples[int(i)].category for i in arrays["example_id"]])
        out[split] = {"example_id": arrays["example_id"][rows],
                      **{f: _trimmed(arrays[f][rows]) for f in ("inputs", "targets")}}
    return out


def load_task_data(
    task: str, train_split: str, eval_splits: Sequence[str], max_eval_examples: int = 0,
    stratify_eval: bool = False,
) -> TaskData:
    """Tokenize the pool and eval splits (seqio task or TASK_ARRAYS file); eval subsets are
    seeded. Each split is padded to its own longest example (of the subset, for an eval subset).
    """
    source = task_source(task)
    arrays = split_arrays(task, train_split, eval_splits, max_eval_examples, source,
                          stratify_eval)
    pools = {split: {f: jnp.asarray(a[f]) for f in ("inputs", "targets")}
             for split, a in arrays.items()}
    ids = {split: a["example_id"] for split, a in arrays.items()}
    benchmark = source.examples(train_split)[0].benchmark
    if benchmark == gscan.BENCHMARK:  # the grids, [N, G*G, C] uint8, fed as encoder tokens
        for split, pool in pools.items():
            pool["situation"] = jnp.asarray(source.situations(split)[ids[split]])
    return TaskData(
        task=task,
        train_split=train_split,
        benchmark=benchmark,
        vocab_size=source.vocab_size,
        train=pools[train_split],
        evals={s: pools[s] for s in eval_splits},
        eval_ids={s: ids[s] for s in eval_splits},
        words=source.words,
        index=pool_index(task, train_split, eval_splits, source),
        source=source,
    )


def pool_index(task: str, train_split: str, eval_splits: Sequence[str],
               source: TaskSource | None = None) -> PoolIndex:
    """The task's pool indexed against its eval splits (and their difficulty groups); `source`
    defaults to `task_source(task)`."""
    from tasks.selection import build_index, eval_sets

    source = task_source(task) if source is None else source
    splits = {s.partition(":")[0] for s in eval_splits}
    by_split = {s: source.examples(s) for s in sorted(splits)}
    return build_index(f"{task}:{train_split}", source.examples(train_split),
                       eval_sets(by_split, eval_splits))
