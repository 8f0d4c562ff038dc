"""A seq2seq task's splits tokenized through its seqio task, each padded to its own longest
example."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

import jax.numpy as jnp
import numpy as np

from compgen_jax.multiseed import Pool
from tasks.benchmarks import gscan
from tasks.data_dir import data_dir
from tasks.selection import PoolIndex

if TYPE_CHECKING:
    import seqio


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
