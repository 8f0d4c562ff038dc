"""seqio Task registration (SCAN, COGS, ReCOGS, ...) and tokenized pools: the one path to ids.

Importing this module registers every task we know by name with seqio, reading no data (the
t5x `MIXTURE_OR_TASK_MODULE = "tasks.registry"` pattern): a split is read when first requested,
and a task's word vocabulary is built from its data on first use. get_examples, get_vocabulary
and tokenized_pool accept any registered seqio Task or Mixture.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

# isort: off
from tasks.tf_env import tf  # TensorFlow loads quietly here, before seqio imports it
import seqio
# isort: on

from tasks.benchmarks import cfq, cogs, coverage, gscan, recogs, scan
from tasks.data_dir import benchmark_file
from tasks.data_dir import data_dir as resolve_data_dir
from tasks.example import Example
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

Loader = Callable[[str], list[Example]]  # split -> its examples (reads the files)


@dataclasses.dataclass(frozen=True)
class _Spec:
    """One of our tasks: its splits, how a split is read, its metric and vocabulary."""

    splits: tuple[str, ...]
    load: Loader
    metric: Callable[..., dict[str, float]]
    vocabulary: WordVocabulary


_SPECS: dict[str, _Spec] = {}
_EXAMPLES: dict[str, dict[str, list[Example]]] = {}  # what has been read so far, per task
_EXPLICIT: dict[str, Path | None] = {}  # register_* call -> its data dir (None: reads no files)
_FOREIGN: dict[tuple[str, str], list[Example]] = {}  # examples of other seqio tasks/mixtures
_TOKENS: dict[str, dict[str, dict[str, np.ndarray]]] = {}  # our tasks' tokenized splits so far


def scan_vocabulary() -> WordVocabulary:
    """The joint SCAN vocabulary: every command and action word of the grammar."""
    return WordVocabulary.from_texts(text for pair in scan.generate() for text in pair)


class LazyWordVocabulary(WordVocabulary):
    """A WordVocabulary whose words are computed on first use: a task's word vocabulary is
    built from its data, which is read only when the vocabulary is really needed."""

    def __init__(self, texts: Callable[[], Iterable[str]]):
        self._texts: Callable[[], Iterable[str]] | None = texts
        self._built: WordVocabulary | None = None
        self._tf_tables = None
        seqio.Vocabulary.__init__(self, extra_ids=0)

    def build(self) -> WordVocabulary:
        """The vocabulary's words, read from the data on the first call."""
        if self._built is None:
            assert self._texts is not None
            self._built = WordVocabulary.from_texts(self._texts())
        return self._built

    @property
    def _tokens(self) -> tuple[str, ...]:  # type: ignore[override]
        return self.build().tokens

    @property
    def _ids(self) -> dict[str, int]:  # type: ignore[override]
        return self.build()._ids

    def __getstate__(self) -> dict:
        """Pickle the built vocabulary, not the (unpicklable) data reader."""
        return {**self.__dict__, "_built": self.build(), "_texts": None, "_tf_tables": None}

    def __hash__(self) -> int:
        return hash(self._tokens)


def _output_features(vocab: WordVocabulary) -> dict[str, seqio.Feature]:
    """inputs/targets with EOS over `vocab`, plus a rank-1 int32 passthrough example_id."""
    return {
        "inputs": seqio.Feature(vocab, add_eos=True),
        "targets": seqio.Feature(vocab, add_eos=True),
        "example_id": seqio.Feature(
            seqio.PassThroughVocabulary(size=0), add_eos=False, dtype=tf.int32, rank=1
        ),
    }


class _LazySource(seqio.FunctionDataSource):
    """A FunctionDataSource whose example counts are read (lazily) from the task's data."""

    def __init__(self, name: str, splits: Sequence[str]):
        def dataset_fn(split: str, shuffle_files: bool, seed: int | None = None
                       ) -> tf.data.Dataset:
            """Examples of `split` in id order; shuffle/seed are moot for in-memory data."""
            exs = _split_examples(name, split)
            return tf.data.Dataset.from_tensor_slices({
                "inputs": [ex.input for ex in exs],
                "targets": [ex.target for ex in exs],
                "example_id": np.array([ex.id for ex in exs], dtype=np.int32)[:, None],
            })

        self._task_name = name
        super().__init__(dataset_fn, splits=list(splits))

    def num_input_examples(self, split: str) -> int:  # type: ignore[override]
        return len(_split_examples(self._task_name, split))


def _register(
    name: str,
    splits: Sequence[str],
    load: Loader,
    metric_fn: Callable[..., dict[str, float]],
    vocab: WordVocabulary | None = None,
    explicit: bool = True,
    root: Path | None = None,
) -> None:
    """(Re-)register a deterministic Task whose splits are read by `load` on first use.

    `vocab` None: the joint word vocabulary of all splits, built (lazily) from the data.
    `root`: the data dir an explicit registration read its files from.
    """
    vocabulary = vocab or LazyWordVocabulary(lambda: (
        text for split in splits for ex in _split_examples(name, split)
        for text in (ex.input, ex.target)))
    _SPECS[name] = _Spec(tuple(splits), load, metric_fn, vocabulary)
    _EXAMPLES.pop(name, None)
    _TOKENS.pop(name, None)
    if explicit:
        _EXPLICIT[name] = root
    else:
        _EXPLICIT.pop(name, None)
    seqio.TaskRegistry.remove(name)
    seqio.TaskRegistry.add(
        name,
        source=_LazySource(name, splits),
        output_features=_output_features(vocabulary),
        preprocessors=[seqio.preprocessors.tokenize, seqio.preprocessors.append_eos],
        metric_fns=[metric_fn],
        shuffle_buffer_size=None,  # order is fixed; per-seed shuffling happens in JAX
    )


def _register_loaded(name: str, examples: Mapping[str, list[Example]],
                     metric_fn: Callable[..., dict[str, float]],
                     vocab: WordVocabulary | None = None, root: Path | None = None) -> None:
    """Register a task over examples already in memory (empty splits are an error)."""
    empty = [split for split, exs in examples.items() if not exs]
    if empty:
        raise ValueError(f"task {name!r}: splits {empty} have no examples")
    _register(name, list(examples), examples.__getitem__, metric_fn, vocab, root=root)
    _EXAMPLES[name] = dict(examples)


def _split_examples(name: str, split: str) -> list[Example]:
    """One of our tasks' split, read on first request and kept."""
    spec = _SPECS[name]
    if split not in spec.splits:
        raise ValueError(f"task {name!r} has no split {split!r}; splits: {sorted(spec.splits)}")
    cache = _EXAMPLES.setdefault(name, {})
    if split not in cache:
        exs = spec.load(split)
        if not exs:
            raise ValueError(f"task {name!r}: split {split!r} has no examples")
        cache[split] = exs
    return cache[split]


def _per_task(read: Callable[[], Mapping[str, list[Example]]]) -> Loader:
    """A split loader over a reader that reads all splits at once (one file): read once."""
    cached = functools.cache(read)
    return lambda split: cached()[split]


def register_scan_tasks(data_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """Register the SCAN tasks (idempotent); file-backed ones too when a data dir is set.

    `data_dir` None falls back to $COMPGEN_DATA_DIR; "" means no data dir (generated tasks only).
    With a data dir, a missing split file raises FileNotFoundError naming it; files are read
    when a split is first requested.
    """
    vocab = scan_vocabulary()
    names = []
    for name, split in SCAN_GENERATED.items():
        _register(name, scan.SUBSETS, functools.partial(scan.generated, split), scan.metric, vocab)
        names.append(name)
    root = resolve_data_dir(data_dir)
    if root is not None:
        for name, split in SCAN_FILES.items():
            for subset in scan.SUBSETS:
                benchmark_file(root, f"scan/{scan.FILES[(split, subset)]}",
                               f"SCAN {split} split, {subset} subset")
            _register(name, scan.SUBSETS, _scan_file_loader(split, root), scan.metric, vocab,
                      root=root)
            names.append(name)
    return names


def _scan_file_loader(split: str, root: Path | None) -> Loader:
    """Reads one subset of a SCAN file split under `root` (None: $COMPGEN_DATA_DIR at read)."""
    return lambda subset: scan.load(split, subset, root)


def register_cogs_tasks(data_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """Register COGS (lf, variable_free: train/dev/test/gen) and ReCOGS tasks (idempotent).

    `data_dir` None falls back to $COMPGEN_DATA_DIR; "" or no setting registers nothing. A
    dataset is registered when its directory exists (`cogs/`, `cogs_variable_free/`); a COGS
    directory missing a split file raises FileNotFoundError naming it. A ReCOGS version registers
    each split whose real file exists or that can be derived from COGS (recogs.load). Each
    task gets its own joint word vocabulary built from all of its splits; example ids are the
    0-based line numbers of the split files. Files are read when a split is first requested.
    """
    root = resolve_data_dir(data_dir)
    if root is None:
        return []
    names = []
    for name, fmt in COGS_FORMATS.items():
        if not (root / cogs.FORMAT_DIRS[fmt]).is_dir():
            continue
        for split in cogs.SPLITS:
            cogs.split_path(split, root, fmt)
        _register(name, cogs.SPLITS, _cogs_loader(root, fmt), cogs.metric, root=root)
        names.append(name)
    for name, version in RECOGS_VERSIONS.items():
        present = [s for s in recogs.SPLITS if recogs.available(s, root, version)]
        if not present:
            continue
        _register(name, present, _recogs_loader(root, version), recogs.metric, root=root)
        names.append(name)
    return names


def _cogs_loader(root: Path | None, fmt: str) -> Loader:
    return lambda split: cogs.load(split, root, fmt)


def _recogs_loader(root: Path | None, version: str) -> Loader:
    return lambda split: recogs.load(split, root, version)


def _seqio_lookup(name: str) -> seqio.Task | seqio.Mixture | None:
    """The seqio Task or Mixture registered as `name`, or None."""
    try:
        return seqio.get_mixture_or_task(name)
    except ValueError:
        return None


def _provider(name: str) -> seqio.Task | seqio.Mixture:
    """A registered seqio Task or Mixture; ValueError naming ours when it is neither."""
    provider = _seqio_lookup(name)
    if provider is None:
        raise ValueError(
            f"task {name!r} is not registered (ours: {sorted(_SPECS)}; or register a seqio "
            "Task/Mixture by that name, e.g. in a module named by MIXTURE_OR_TASK_MODULE)"
        )
    return provider


def get_examples(task_name: str, split: str) -> list[Example]:
    """The Example records behind a task's split, in example-id order.

    Our tasks read their files on the first request. A seqio Mixture gives its member tasks'
    examples one after another (meta["task"], meta["task_id"]), renumbered 0..N-1; its rates
    are not applied (the trainer samples the pool). Another seqio Task gives records built from
    its pretokenized text (no atoms/pairs: depth 0), benchmark = its name.
    """
    if task_name in _SPECS:
        return _split_examples(task_name, split)
    provider = _provider(task_name)
    key = (task_name, split)
    if key not in _FOREIGN:
        if isinstance(provider, seqio.Mixture):
            members = [t.name for t in provider.tasks if split in t.splits]
            if not members:
                raise ValueError(f"mixture {task_name!r}: no member task has split {split!r}")
            records = [
                dataclasses.replace(ex, meta={**ex.meta, "task": member, "task_id": ex.id})
                for member in members for ex in get_examples(member, split)
            ]
            _FOREIGN[key] = [dataclasses.replace(ex, id=i) for i, ex in enumerate(records)]
        else:
            _FOREIGN[key] = _seqio_task_examples(provider, split)
    return _FOREIGN[key]


def _seqio_task_examples(task: seqio.Task, split: str) -> list[Example]:
    """Records of another seqio Task's split, from its (pretokenized or decoded) text."""
    if split not in task.splits:
        raise ValueError(f"task {task.name!r} has no split {split!r}; splits: {task.splits}")
    vocab = task.output_features["inputs"].vocabulary
    out = []
    ds = task.get_dataset(sequence_length=None, split=split, shuffle=False, num_epochs=1)
    for i, ex in enumerate(ds.as_numpy_iterator()):
        text = {}
        for feature in TOKEN_FEATURES:
            raw = ex.get(f"{feature}_pretokenized")
            text[feature] = raw.decode() if raw is not None else vocab.decode(ex[feature].tolist())
        out.append(Example(
            benchmark=task.name, split=split, id=i, input=text["inputs"],
            target=text["targets"], atoms=frozenset(), pairs=frozenset(), depth=0,
            out_len=len(text["targets"].split()), meta={"task": task.name},
        ))
    return out


def task_splits(task_name: str) -> tuple[str, ...]:
    """The splits of a registered task (a Mixture: those of any member, in member order)."""
    if task_name in _SPECS:
        return _SPECS[task_name].splits
    provider = _provider(task_name)
    tasks = provider.tasks if isinstance(provider, seqio.Mixture) else [provider]
    return tuple(dict.fromkeys(split for t in tasks for split in t.splits))


def get_vocabulary(task_name: str) -> seqio.Vocabulary:
    """The (joint) word vocabulary of a task; a Mixture's members must share one."""
    if task_name in _SPECS:
        return _SPECS[task_name].vocabulary
    provider = _provider(task_name)
    tasks = provider.tasks if isinstance(provider, seqio.Mixture) else [provider]
    vocabs = [t.output_features["inputs"].vocabulary for t in tasks]
    if any(v != vocabs[0] for v in vocabs[1:]):
        raise ValueError(f"mixture {task_name!r}: its tasks {[t.name for t in tasks]} have "
                         "different vocabularies; a trainable mixture needs one shared vocabulary")
    return vocabs[0]


def get_metric_fns(task_name: str) -> list[Callable[..., dict[str, float]]]:
    """The benchmark metric(s) of a task: our adapter's for our tasks; a Mixture's members'
    when they all share them (ValueError otherwise); another seqio Task's metric_fns."""
    if task_name in _SPECS:
        return [_SPECS[task_name].metric]
    provider = _provider(task_name)
    if not isinstance(provider, seqio.Mixture):
        return list(provider.metric_fns)
    fns = [get_metric_fns(t.name) for t in provider.tasks]
    if any(f != fns[0] for f in fns[1:]):
        raise ValueError(f"mixture {task_name!r}: its tasks {[t.name for t in provider.tasks]} "
                         "are scored by different metrics")
    return fns[0]


@tf.autograph.experimental.do_not_convert
def _pool_features(ex: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """The features a pool keeps: token ids and example_id where the task has one."""
    return {k: ex[k] for k in (*TOKEN_FEATURES, "example_id") if k in ex}


def _dataset_tokens(task: seqio.Task, split: str) -> dict[str, np.ndarray]:
    """inputs/targets ids of a seqio Task's split (shuffle off), 0-padded to the longest."""
    ds = task.get_dataset(sequence_length=None, split=split, shuffle=False, num_epochs=1)
    batches = list(ds.map(_pool_features).padded_batch(4096).as_numpy_iterator())
    if not batches:
        raise ValueError(f"{task.name}:{split}: no examples")
    out = {}
    if "example_id" in batches[0]:
        out["example_id"] = np.concatenate([b["example_id"][:, 0] for b in batches])
    for feature in TOKEN_FEATURES:
        width = max(b[feature].shape[1] for b in batches)
        out[feature] = np.concatenate(
            [np.pad(b[feature], ((0, 0), (0, width - b[feature].shape[1]))) for b in batches]
        ).astype(np.int32)
    return out


def _encoded_tokens(name: str, split: str) -> dict[str, np.ndarray]:
    """What _dataset_tokens gives for one of our tasks (tokenize + append_eos over a word
    vocabulary), encoded by the vocabulary's Python encoder: ReCOGS train in 3.9 s, where the
    tf.data pipeline takes 12.8 s on both cores."""
    vocab = _SPECS[name].vocabulary
    examples = _split_examples(name, split)
    texts = {"inputs": [ex.input for ex in examples], "targets": [ex.target for ex in examples]}
    out = {"example_id": np.array([ex.id for ex in examples], dtype=np.int32)}
    for feature in TOKEN_FEATURES:
        rows = [vocab.encode(text) for text in texts[feature]]
        ids = np.zeros((len(rows), max(map(len, rows)) + 1), dtype=np.int32)
        for i, row in enumerate(rows):
            ids[i, : len(row) + 1] = [*row, vocab.eos_id]
        out[feature] = ids
    return out


def _task_tokens(task: seqio.Task, split: str) -> dict[str, np.ndarray]:
    """A split's token ids, kept until one of our tasks is re-registered (each design,
    validation and in-process cell would otherwise encode the split again); another library's
    task through its dataset (_dataset_tokens), uncached: its data may change."""
    if task.name not in _SPECS:
        return _dataset_tokens(task, split)
    cache = _TOKENS.setdefault(task.name, {})
    if split not in cache:
        cache[split] = _encoded_tokens(task.name, split)
    return cache[split]


def tokenized_pool(
    task_name: str, split: str, feature_lengths: Mapping[str, int] | None = None
) -> dict[str, np.ndarray]:
    """inputs [N, Li], targets [N, Lt] (EOS, 0-padded) and example_id [N] int32, in id order.

    Our tasks' ids are those of their seqio Task's tokenize + append_eos pipeline, encoded in
    Python; another Task's come through its dataset (shuffle off); a Mixture's pool is its
    members' pools one after another (as get_examples). Lengths default to the longest sequence plus
    EOS; a given length that would truncate any example raises ValueError.
    """
    unknown = sorted(set(feature_lengths or {}) - set(TOKEN_FEATURES))
    if unknown:
        raise ValueError(f"feature_lengths: unknown features {unknown}; expected {TOKEN_FEATURES}")
    n = len(get_examples(task_name, split))
    # Our tasks' joint vocabulary reads every split: build it here, so a bad file is its one
    # error line, not a trace from inside TensorFlow's tokenizer (which would build it lazily).
    vocabulary = get_vocabulary(task_name)
    if isinstance(vocabulary, LazyWordVocabulary):
        vocabulary.build()
    provider = seqio.get_mixture_or_task(task_name)
    if isinstance(provider, seqio.Mixture):
        get_vocabulary(task_name)  # the members must share one vocabulary
        members = [t.name for t in provider.tasks if split in t.splits]
        parts = [tokenized_pool(member, split) for member in members]
        tokens = {f: np.concatenate([np.pad(p[f], ((0, 0), (0, max(q[f].shape[1] for q in parts)
                                                             - p[f].shape[1]))) for p in parts])
                  for f in TOKEN_FEATURES}
    else:
        tokens = _task_tokens(provider, split)
    pool = {"example_id": np.arange(n, dtype=np.int32)}
    if tokens["inputs"].shape[0] != n or not np.array_equal(
            tokens.get("example_id", pool["example_id"]), pool["example_id"]):
        raise RuntimeError(f"{task_name}:{split}: dataset order is not example-id order")
    for feature in TOKEN_FEATURES:
        needed = int((tokens[feature] != 0).sum(axis=1).max())
        length = (feature_lengths or {}).get(feature, needed)
        if needed > length:
            raise ValueError(
                f"{task_name}:{split}: feature {feature!r} needs length {needed} (EOS included) "
                f"but feature_lengths gives {length}; that would truncate examples"
            )
        pool[feature] = np.pad(tokens[feature][:, :needed], ((0, 0), (0, length - needed)))
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
    joined by `_`); the grid of each example is in meta (see `gscan_situation_pool`). The file is
    read here: which splits are non-empty depends on it.
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
        task = f"{name}_k{shots}_seed{seed}" if shots else name
        _register_loaded(task, {split: exs for split, exs in loaded.items() if exs},
                         gscan.metric, root=root)
        names.append(task)
    return names


def gscan_situation_pool(task_name: str, split: str) -> np.ndarray:
    """A registered gSCAN task's grids as encoder tokens [N, G*G, C] uint8, in example-id order."""
    return gscan.situation_pool(get_examples(task_name, split))


def register_cfq_tasks(data_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """Register `cfq_<split>` for each split file under cfq/splits (and `cfq_example_data`).

    `data_dir` None falls back to $COMPGEN_DATA_DIR; "" or no setting registers nothing. A
    split streams cfq/dataset.json once, when first requested; ids are positions in the split
    file's index lists and meta["index"] the dataset index. Each task gets its own joint word
    vocabulary. Split files without dataset.json raise FileNotFoundError naming it.
    """
    root = resolve_data_dir(data_dir)
    if root is None:
        return []
    names = []
    if (root / "cfq" / "example_data").is_dir():
        _register("cfq_example_data", tuple(cfq.SUBSETS),
                  _per_task(functools.partial(cfq.load_example_data, root)), cfq.metric,
                  root=root)
        names.append("cfq_example_data")
    for split in cfq.SPLITS:
        if (root / "cfq" / "splits" / f"{split}.json").is_file():
            cfq.load_paths(split, root)  # dataset.json must exist too
            _register(f"cfq_{split}", tuple(cfq.SUBSETS),
                      _per_task(functools.partial(cfq.load, split, root)), cfq.metric,
                      root=root)
            names.append(f"cfq_{split}")
    return names


def register_coverage_tasks(directories: Sequence[str | os.PathLike[str]]) -> list[str]:
    """Register `coverage_<dataset name, - as _>` (train/test) for each coverage dataset dir.

    Test examples carry their upstream `type` as category; ids are positions in the files.
    """
    names = []
    for directory in directories:
        name = f"coverage_{Path(directory).name.replace('-', '_')}"
        _register(name, ("train", "test"), functools.partial(coverage.load, directory),
                  coverage.metric)
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
            _register(name, scan.SUBSETS, _scan_file_loader(split, root), scan.metric,
                      scan_vocabulary(), root=root)
            names.append(name)
    return names


_GSCAN_KSHOT = re.compile(r"gscan_compositional_k(\d+)_seed(\d+)")


def ensure_registered(task_name: str, data_dir: str | os.PathLike[str] | None = None) -> None:
    """Make `task_name` trainable: register its family from `data_dir` (files checked, read
    lazily), or accept any other registered seqio Task or Mixture.

    Generated SCAN tasks need no data dir; every other family reads `data_dir` (None falls back to
    $COMPGEN_DATA_DIR). A missing CFQ split file raises FileNotFoundError naming it and the
    fetch command; otherwise ValueError names the task when its family is unknown or its files
    absent.
    """
    if task_name in _EXPLICIT and _EXPLICIT[task_name] in (None, resolve_data_dir(data_dir)):
        return  # registered already, from this data dir (or reading no files)
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
        if task_name.removeprefix("cfq_") in cfq.SPLITS:
            cfq.load_paths(task_name.removeprefix("cfq_"), data_dir)  # names a missing file
        register_cfq_tasks(data_dir)
    elif task_name not in _SPECS and _seqio_lookup(task_name) is not None:
        return  # a seqio Task or Mixture registered elsewhere
    if task_name not in _EXPLICIT:
        raise ValueError(
            f"task {task_name!r} could not be registered: unknown task name or its files are not "
            f"under the data dir ({resolve_data_dir(data_dir)}); generated tasks: "
            f"{sorted(SCAN_GENERATED)}, file tasks: scan_*_files, cogs, cogs_variable_free, "
            f"recogs_*, gscan_compositional[_k<k>_seed<s>], gscan_target_length, cfq_<split>, "
            "or any seqio Task/Mixture registered by name"
        )


def _register_on_import() -> None:
    """Register every task we know by name, reading nothing (t5x MIXTURE_OR_TASK_MODULE).

    File-backed tasks resolve $COMPGEN_DATA_DIR when a split is first read; a missing file
    then raises FileNotFoundError naming it. `ensure_registered` / register_* re-register a
    family from an explicit data dir, checking its files first.
    """
    vocab = scan_vocabulary()
    for name, split in SCAN_GENERATED.items():
        _register(name, scan.SUBSETS, functools.partial(scan.generated, split), scan.metric,
                  vocab, explicit=False)
    for name, split in {**SCAN_FILES, **SCAN_OPTIONAL_FILES}.items():
        _register(name, scan.SUBSETS, _scan_file_loader(split, None), scan.metric, vocab,
                  explicit=False)
    for name, fmt in COGS_FORMATS.items():
        _register(name, cogs.SPLITS, _cogs_loader(None, fmt), cogs.metric, explicit=False)
    for name, version in RECOGS_VERSIONS.items():
        _register(name, recogs.SPLITS, _recogs_loader(None, version), recogs.metric,
                  explicit=False)
    for name, dataset in GSCAN_TASKS.items():
        _register(name, gscan.DATASETS[dataset],
                  _per_task(functools.partial(gscan.load_all, None, dataset)), gscan.metric,
                  explicit=False)
    for split in cfq.SPLITS:
        _register(f"cfq_{split}", tuple(cfq.SUBSETS),
                  _per_task(functools.partial(cfq.load, split, None)), cfq.metric,
                  explicit=False)


_register_on_import()
