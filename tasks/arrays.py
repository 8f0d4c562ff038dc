"""A task's tokenized splits in one compressed .npz file: the trainer's data without TensorFlow.

`export` reads a registered task through its seqio task (TensorFlow) once and writes, per split,
the token ids exactly as `registry.tokenized_pool` gives them, the example ids, their lengths,
the Example records (text, atoms, pairs, depth, category: what metrics, manifests and pair
coverage read) and, for gSCAN, the grid of every example; plus the vocabulary. `TaskArrays.load`
reads the file back with NumPy alone (no pickle), so a machine without TensorFlow, seqio or the
benchmark files trains, evaluates and selects manifests exactly as from the seqio task.

Layout (keys of the npz): `format`, `task`, `words`, `vocab_size`, `splits`, and per split S
`S.inputs` [N, Li] int32, `S.targets` [N, Lt] int32, `S.example_id` [N] int32, `S.lengths`
[N, 2] int32 (inputs, targets; EOS included), `S.examples` (UTF-8 JSON, uint8) and, for gSCAN,
`S.situation` [N, G*G, C] uint8.
"""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from analysis.atomic import atomic_path
from tasks.example import Example

FORMAT = 1
TOKEN_FEATURES = ("inputs", "targets")
GRID_META = "grid"  # gSCAN's per-example grid: stored as the split's situation array instead


class ArraysError(ValueError):
    """A task-arrays file that cannot be read or does not fit the run (message names the file)."""


def _example_record(ex: Example) -> dict[str, Any]:
    """One Example as JSON-able fields (sets sorted, so a file is reproducible)."""
    return {"benchmark": ex.benchmark, "split": ex.split, "id": ex.id, "input": ex.input,
            "target": ex.target, "atoms": sorted(ex.atoms), "pairs": sorted(ex.pairs),
            "depth": ex.depth, "out_len": ex.out_len, "category": ex.category,
            "meta": {k: v for k, v in ex.meta.items() if k != GRID_META}}


def _example(record: dict[str, Any]) -> Example:
    """The Example a record of `_example_record` was made from (its grid aside)."""
    return Example(benchmark=record["benchmark"], split=record["split"], id=record["id"],
                   input=record["input"], target=record["target"],
                   atoms=frozenset(record["atoms"]),
                   pairs=frozenset(tuple(p) for p in record["pairs"]), depth=record["depth"],
                   out_len=record["out_len"], category=record["category"], meta=record["meta"])


def _lengths(pool: dict[str, np.ndarray]) -> np.ndarray:
    """[N, 2] tokens per example of inputs and targets (EOS included; 0 is padding)."""
    return np.stack([(pool[f] != 0).sum(axis=1) for f in TOKEN_FEATURES], axis=1).astype(np.int32)


def export(task: str, out: str | os.PathLike[str], splits: Sequence[str] = (),
           data_dir: str | os.PathLike[str] | None = None) -> dict[str, int]:
    """Write `task`'s splits (default: all) to the compressed file `out`; return split -> size.

    Reads the task through the seqio registry (TensorFlow); the file is written atomically.
    """
    from tasks import registry

    registry.ensure_registered(task, data_dir)
    splits = tuple(splits) or registry.task_splits(task)
    vocabulary = registry.get_vocabulary(task)
    arrays: dict[str, np.ndarray] = {
        "format": np.array(FORMAT), "task": np.array(task),
        "words": np.array(vocabulary.tokens), "vocab_size": np.array(vocabulary.vocab_size),
        "splits": np.array(splits)}
    sizes = {}
    for split in splits:
        examples = registry.get_examples(task, split)
        pool = registry.tokenized_pool(task, split)
        records = json.dumps([_example_record(ex) for ex in examples], ensure_ascii=False,
                             separators=(",", ":"))
        arrays.update({f"{split}.{f}": pool[f] for f in (*TOKEN_FEATURES, "example_id")})
        arrays[f"{split}.lengths"] = _lengths(pool)
        arrays[f"{split}.examples"] = np.frombuffer(records.encode("utf-8"), dtype=np.uint8)
        if GRID_META in examples[0].meta:
            arrays[f"{split}.situation"] = registry.gscan_situation_pool(task, split)
        sizes[split] = len(examples)
    with atomic_path(out) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    return sizes


@dataclasses.dataclass(frozen=True)
class TaskArrays:
    """An exported task read back: per split its token pool, Examples and (gSCAN) grids."""

    path: Path
    task: str
    words: tuple[str, ...]
    vocab_size: int
    splits: tuple[str, ...]
    arrays: dict[str, np.ndarray]
    _examples: dict[str, list[Example]] = dataclasses.field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TaskArrays:
        """Read an exported file; ArraysError naming it if it is missing, not ours or damaged."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (OSError, ValueError, zipfile.BadZipFile) as err:
            raise ArraysError(f"{path}: cannot read task arrays ({err})") from None
        missing = [k for k in ("format", "task", "words", "vocab_size", "splits")
                   if k not in arrays]
        if missing:
            raise ArraysError(f"{path}: not a task-arrays file (no {missing}); write one with "
                              "`compgen-jax data export TASK --out FILE`")
        if int(arrays["format"]) != FORMAT:
            raise ArraysError(f"{path}: format {int(arrays['format'])}, expected {FORMAT}; "
                              "export it again")
        splits = tuple(str(s) for s in arrays["splits"])
        for split in splits:
            absent = [f"{split}.{k}" for k in (*TOKEN_FEATURES, "example_id", "lengths", "examples")
                      if f"{split}.{k}" not in arrays]
            if absent:
                raise ArraysError(f"{path}: split {split!r} lacks {absent}")
            pool = {f: arrays[f"{split}.{f}"] for f in TOKEN_FEATURES}
            if not np.array_equal(_lengths(pool), arrays[f"{split}.lengths"]):
                raise ArraysError(f"{path}: split {split!r}: token ids disagree with the stored "
                                  "lengths (damaged file)")
        return cls(path, str(arrays["task"]), tuple(str(w) for w in arrays["words"]),
                   int(arrays["vocab_size"]), splits, arrays)

    def check_task(self, task: str) -> None:
        """ArraysError unless this file holds `task` (the run's MIXTURE_OR_TASK_NAME)."""
        if task != self.task:
            raise ArraysError(f"{self.path}: holds task {self.task!r}, but the run trains "
                              f"{task!r} (TASK_ARRAYS and MIXTURE_OR_TASK_NAME must agree)")

    def _split(self, split: str) -> str:
        """`split`, or ArraysError naming the splits the file holds."""
        if split not in self.splits:
            raise ArraysError(f"{self.path}: task {self.task!r} has no exported split {split!r}; "
                              f"splits: {list(self.splits)}")
        return split

    def examples(self, split: str) -> list[Example]:
        """The split's Example records in example-id order (gSCAN grids: `situations`)."""
        if self._split(split) not in self._examples:
            records = json.loads(self.arrays[f"{split}.examples"].tobytes().decode("utf-8"))
            self._examples[split] = [_example(r) for r in records]
        return self._examples[split]

    def pool(self, split: str) -> dict[str, np.ndarray]:
        """inputs, targets (EOS, 0-padded) and example_id of the split, as tokenized_pool."""
        return {k: self.arrays[f"{self._split(split)}.{k}"]
                for k in ("example_id", *TOKEN_FEATURES)}

    def situations(self, split: str) -> np.ndarray:
        """gSCAN: the split's grids [N, G*G, C] uint8; ArraysError if the task has none."""
        key = f"{self._split(split)}.situation"
        if key not in self.arrays:
            raise ArraysError(f"{self.path}: split {split!r} carries no situation (grid)")
        return self.arrays[key]
