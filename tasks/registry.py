"""seqio Task registration (SCAN, COGS, ReCOGS, ...) and tokenized pools: the one path to ids."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import seqio

from tasks.benchmarks import cfq, cogs, coverage, gscan, recogs, scan
from tasks.data_dir import data_dir as resolve_data_dir
from tasks.example import Example
from tasks.tf_env import tf
from tasks.vocab import WordVocabulary

TOKEN_FEATURES = ("inputs", "targets")
SCAN_GENERATED = {"scan_length": "length", "scan_simple": "simple"}
SCAN_FILES = {
    "scan_length_files": "length",
    "scan_simple_files": "simple",
    "scan_addprim_jump_files": "addprim_jump",
}

COGS_FORMATS = {"cogs": "lf", "cogs_variable_free": "variable_free"}
RECOGS_VERSIONS = {
    "recogs_v1": "recogs_v1",
    "recogs_v2": "recogs_v2",
    "recogs_pos": "recogs_positional_index",
}

# For seqio feature converters (get_dataset, Evaluator): keep example_id through conversion;
# with seqio.get_dataset also add "example_id": 1 to task_feature_lengths (STACK.md s.2.5).
EXAMPLE_ID_PASSTHROUGH = {"example_id": seqio.FeatureConverter.FeatureSpec(dtype=tf.int32)}

_EXAMPLES: dict[str, dict[str, list[Example]]] = {}


def scan_vocabulary() -> WordVocabulary:
    """The joint SCAN vocabulary: every command and action word of the grammar."""
    return WordVocabulary.from_texts(text for pair in scan.generate() for text in pair)


def _output_features(vocab: WordVocabulary) -> dict[str, seqio.Feature]:
    """inputs/targets with EOS over `vocab`, plus a rank-1 int32 passthrough example_id."""
    return {
        "inputs": seqio.Feature(vocab, add_eos=True),
        "targets": seqio.Feature(vocab, add_eos=True),
        "example_id": seqio.Feature(
            seqio.PassThroughVocabulary(size=0), add_eos=False, dtype=tf.int32, rank=1
        ),
    }


def _register(
    name: str,
    examples: Mapping[str, list[Example]],
    vocab: WordVocabulary,
    metric_fn: Callable[..., dict[str, float]],
) -> None:
    """(Re-)register a deterministic in-memory Task over `examples` (split -> records)."""
    empty = [split for split, exs in examples.items() if not exs]
    if empty:
        raise ValueError(f"task {name!r}: splits {empty} have no examples")
    slices = {
        split: {
            "inputs": [ex.input for ex in exs],
            "targets": [ex.target for ex in exs],
            "example_id": np.array([ex.id for ex in exs], dtype=np.int32)[:, None],
        }
        for split, exs in examples.items()
    }

    def dataset_fn(split: str, shuffle_files: bool, seed: int | None = None) -> tf.data.Dataset:
        """Examples of `split` in id order; shuffle/seed are moot for in-memory data."""
        return tf.data.Dataset.from_tensor_slices(slices[split])

    seqio.TaskRegistry.remove(name)
    seqio.TaskRegistry.add(
        name,
        source=seqio.FunctionDataSource(
            dataset_fn,
            splits=list(examples),
            num_input_examples={split: len(exs) for split, exs in examples.items()},
        ),
        output_features=_output_features(vocab),
        preprocessors=[seqio.preprocessors.tokenize, seqio.preprocessors.append_eos],
        metric_fns=[metric_fn],
        shuffle_buffer_size=None,  # order is fixed; per-seed shuffling happens in JAX
    )
    _EXAMPLES[name] = dict(examples)


def register_scan_tasks(data_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """Register the SCAN tasks (idempotent); file-backed ones too when a data dir is set.

    `data_dir` None falls back to $COMPGEN_DATA_DIR; "" means no data dir (generated tasks only).
    With a data dir, a missing split file raises FileNotFoundError naming it.
    """
    vocab = scan_vocabulary()
    names = []
    for name, split in SCAN_GENERATED.items():
        _register(name, {s: scan.generated(split, s) for s in scan.SUBSETS}, vocab, scan.metric)
        names.append(name)
    root = resolve_data_dir(data_dir)
    if root is not None:
        for name, split in SCAN_FILES.items():
            examples = {s: scan.load(split, s, root) for s in scan.SUBSETS}
            _register(name, examples, vocab, scan.metric)
            names.append(name)
    return names


def joint_vocabulary(examples: Mapping[str, list[Example]]) -> WordVocabulary:
    """Word vocabulary of every input and target token over all splits of `examples`."""
    return WordVocabulary.from_texts(
        text for exs in examples.values() for ex in exs for text in (ex.input, ex.target)
    )


def register_cogs_tasks(data_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """Register COGS (lf, variable_free: train/dev/test/gen) and ReCOGS tasks (idempotent).

    `data_dir` None falls back to $COMPGEN_DATA_DIR; "" or no setting registers nothing. A
    dataset is registered when its directory exists (`cogs/`, `cogs_variable_free/`); a COGS
    directory missing a split file raises FileNotFoundError naming it. A ReCOGS version registers
    each split whose real file exists or that can be derived from COGS (recogs.load). Each
    task gets its own joint word vocabulary built from all of its splits; example ids are the
    0-based line numbers of the split files.
    """
    root = resolve_data_dir(data_dir)
    if root is None:
        return []
    names = []
    for name, fmt in COGS_FORMATS.items():
        if not (root / cogs.FORMAT_DIRS[fmt]).is_dir():
            continue
        examples = {split: cogs.load(split, root, fmt) for split in cogs.SPLITS}
        _register(name, examples, joint_vocabulary(examples), cogs.metric)
        names.append(name)
    for name, version in RECOGS_VERSIONS.items():
        present = [s for s in recogs.SPLITS if recogs.available(s, root, version)]
        if not present:
            continue
        examples = {s: recogs.load(s, root, version) for s in present}
        _register(name, examples, joint_vocabulary(examples), recogs.metric)
        names.append(name)
    return names


def _task(task_name: str) -> seqio.Task:
    """A task registered through this module; ValueError naming the registered ones otherwise."""
    if task_name not in _EXAMPLES:
        raise ValueError(
            f"task {task_name!r} is not registered here; registered: {sorted(_EXAMPLES)} "
            "(call tasks.registry.register_scan_tasks first)"
        )
    return seqio.get_mixture_or_task(task_name)


def get_examples(task_name: str, split: str) -> list[Example]:
    """The Example records behind a registered task's split, in example-id order."""
    _task(task_name)
    if split not in _EXAMPLES[task_name]:
        raise ValueError(
            f"task {task_name!r} has no split {split!r}; splits: {sorted(_EXAMPLES[task_name])}"
        )
    return _EXAMPLES[task_name][split]


def get_vocabulary(task_name: str) -> WordVocabulary:
    """The (joint) word vocabulary of a registered task."""
    return _task(task_name).output_features["inputs"].vocabulary


@tf.autograph.experimental.do_not_convert
def _pool_features(ex: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """The features a pool keeps: token ids and example_id (drops the pretokenized strings)."""
    return {k: ex[k] for k in (*TOKEN_FEATURES, "example_id")}


def tokenized_pool(
    task_name: str, split: str, feature_lengths: Mapping[str, int] | None = None
) -> dict[str, np.ndarray]:
    """inputs [N, Li], targets [N, Lt] (EOS, 0-padded) and example_id [N] int32, in id order.

    Built through the seqio task's dataset (shuffle off). Lengths default to the longest
    sequence plus EOS; a given length that would truncate any example raises ValueError.
    """
    n = len(get_examples(task_name, split))
    unknown = sorted(set(feature_lengths or {}) - set(TOKEN_FEATURES))
    if unknown:
        raise ValueError(f"feature_lengths: unknown features {unknown}; expected {TOKEN_FEATURES}")
    ds = _task(task_name).get_dataset(
        sequence_length=None, split=split, shuffle=False, num_epochs=1
    )
    ds = ds.map(_pool_features)
    batch = next(ds.padded_batch(n).as_numpy_iterator())
    ids = batch["example_id"][:, 0].astype(np.int32)
    if not np.array_equal(ids, np.arange(n)):
        raise RuntimeError(f"{task_name}:{split}: dataset order is not example-id order")
    pool = {"example_id": ids}
    for feature in TOKEN_FEATURES:
        tokens = batch[feature].astype(np.int32)
        needed = int((tokens != 0).sum(axis=1).max())
        length = (feature_lengths or {}).get(feature, needed)
        if needed > length:
            raise ValueError(
                f"{task_name}:{split}: feature {feature!r} needs length {needed} (EOS included) "
                f"but feature_lengths gives {length}; that would truncate examples"
            )
        pool[feature] = np.pad(tokens[:, :needed], ((0, 0), (0, length - needed)))
    return pool


GSCAN_TASKS = {"gscan_compositional": "compositional_splits",
               "gscan_target_length": "target_length_split"}


def register_gscan_tasks(
    data_dir: str | os.PathLike[str] | None = None, k: int = 0, seed: int = 0
) -> list[str]:
    """Register gSCAN tasks for each dataset.txt present (idempotent); empty splits are skipped.

    `data_dir` None falls back to $COMPGEN_DATA_DIR; "" or no setting registers nothing. With
    k > 0 the compositional task applies the adverb_1 k-shot construction and is named
    `gscan_compositional_k{k}_seed{seed}`. Inputs/targets are word-level (multiword gSCAN tokens
    joined by `_`); the grid of each example is in meta (see `gscan_situation_pool`).
    """
    root = resolve_data_dir(data_dir)
    if root is None:
        return []
    names = []
    for name, dataset in GSCAN_TASKS.items():
        if not (root / "gscan" / dataset / "dataset.txt").is_file():
            continue
        shots = k if dataset == "compositional_splits" else 0
        loaded = gscan.load_all(root, dataset, shots, seed)
        examples = {split: exs for split, exs in loaded.items() if exs}
        task = f"{name}_k{shots}_seed{seed}" if shots else name
        _register(task, examples, joint_vocabulary(examples), gscan.metric)
        names.append(task)
    return names


def gscan_situation_pool(task_name: str, split: str) -> np.ndarray:
    """A registered gSCAN task's grids as encoder tokens [N, G*G, C] uint8, in example-id order."""
    return gscan.situation_pool(get_examples(task_name, split))


def register_cfq_tasks(data_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """Register `cfq_<split>` for each split file under cfq/splits (and `cfq_example_data`).

    `data_dir` None falls back to $COMPGEN_DATA_DIR; "" or no setting registers nothing. Every
    split streams cfq/dataset.json once; ids are positions in the split file's index lists and
    meta["index"] the dataset index. Each task gets its own joint word vocabulary.
    """
    root = resolve_data_dir(data_dir)
    if root is None:
        return []
    loaded = {}
    if (root / "cfq" / "example_data").is_dir():
        loaded["cfq_example_data"] = cfq.load_example_data(root)
    splits_dir = root / "cfq" / "splits"
    for split in cfq.SPLITS:
        if (splits_dir / f"{split}.json").is_file():
            loaded[f"cfq_{split}"] = cfq.load(split, root)
    for name, examples in loaded.items():
        present = {subset: exs for subset, exs in examples.items() if exs}
        _register(name, present, joint_vocabulary(present), cfq.metric)
    return list(loaded)


def register_coverage_tasks(directories: Sequence[str | os.PathLike[str]]) -> list[str]:
    """Register `coverage_<dataset name, - as _>` (train/test) for each coverage dataset dir.

    Test examples carry their upstream `type` as category; ids are positions in the files.
    """
    names = []
    for directory in directories:
        examples = {split: coverage.load(directory, split) for split in ("train", "test")}
        name = f"coverage_{Path(directory).name.replace('-', '_')}"
        _register(name, examples, joint_vocabulary(examples), coverage.metric)
        names.append(name)
    return names


SCAN_OPTIONAL_FILES = {
    "scan_addprim_turn_left_files": "addprim_turn_left",
    "scan_template_around_right_files": "template_around_right",
}


def register_scan_optional_tasks(data_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """Register the file-only SCAN splits whose train and test files are both present."""
    root = resolve_data_dir(data_dir)
    if root is None:
        return []
    names = []
    for name, split in SCAN_OPTIONAL_FILES.items():
        if all((root / "scan" / scan.FILE_ONLY[(split, s)]).is_file() for s in scan.SUBSETS):
            examples = {s: scan.load(split, s, root) for s in scan.SUBSETS}
            _register(name, examples, scan_vocabulary(), scan.metric)
            names.append(name)
    return names


_GSCAN_KSHOT = re.compile(r"gscan_compositional_k(\d+)_seed(\d+)")


def ensure_registered(task_name: str, data_dir: str | os.PathLike[str] | None = None) -> None:
    """Register the task family `task_name` belongs to (if not yet), from generators or files.

    Generated SCAN tasks need no data dir; every other family reads `data_dir` (None falls back to
    $COMPGEN_DATA_DIR). ValueError names the task when its family is unknown or its files absent.
    """
    if task_name in _EXAMPLES:
        return
    kshot = _GSCAN_KSHOT.fullmatch(task_name)
    if task_name in SCAN_GENERATED:
        register_scan_tasks("")
    elif task_name in SCAN_FILES:
        register_scan_tasks(data_dir)
    elif task_name in SCAN_OPTIONAL_FILES:
        register_scan_optional_tasks(data_dir)
    elif task_name in COGS_FORMATS or task_name in RECOGS_VERSIONS:
        register_cogs_tasks(data_dir)
    elif kshot:
        register_gscan_tasks(data_dir, k=int(kshot[1]), seed=int(kshot[2]))
    elif task_name in GSCAN_TASKS:
        register_gscan_tasks(data_dir)
    elif task_name.startswith("cfq_"):
        register_cfq_tasks(data_dir)
    if task_name not in _EXAMPLES:
        raise ValueError(
            f"task {task_name!r} could not be registered: unknown task name or its files are not "
            f"under the data dir ({resolve_data_dir(data_dir)}); generated tasks: "
            f"{sorted(SCAN_GENERATED)}, file tasks: scan_*_files, cogs, cogs_variable_free, "
            f"recogs_*, gscan_compositional[_k<k>_seed<s>], gscan_target_length, cfq_<split>"
        )
