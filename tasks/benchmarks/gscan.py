"""gSCAN (Ruis et al. 2020): dataset.txt loader, adverb_1 k-shot, situation grids, adapter (s.5)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tasks.data_dir import benchmark_file
from tasks.example import Example
from tasks.jsonstream import JsonStream
from tasks.metrics import token_exact_match, token_match

BENCHMARK = "gscan"
DATASETS = {
    "compositional_splits": (
        "train", "dev", "test", "visual", "visual_easier", "situational_1", "situational_2",
        "contextual", "adverb_1", "adverb_2",
    ),
    "target_length_split": ("train", "dev", "test", "target_lengths"),
}
KSHOT_SPLIT = "adverb_1"
KSHOT_ADVERB = "cautiously"
PAIR_CONSTRUCT = (
    "all unordered 2-combinations of the example's factor values {verb, manner, referred color, "
    "referred size, noun, target color, target shape, target size, direction_to_target, "
    "target cell}"
)
AGENT_CHANNELS = 5  # agent bit + 4-way direction one-hot after the object vector (Grid.encode)
FACTORS = (
    "verb", "manner", "ref_color", "ref_size", "noun", "target_color", "target_shape",
    "target_size", "direction", "target_cell",
)


def dataset_path(data_dir: str | os.PathLike[str] | None, dataset: str) -> Path:
    """`<data_dir>/gscan/<dataset>/dataset.txt`; ValueError for an unknown dataset name."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown gSCAN dataset {dataset!r}; expected one of {tuple(DATASETS)}")
    return benchmark_file(data_dir, f"gscan/{dataset}/dataset.txt", f"gSCAN {dataset}")


def command_tokens(command: str) -> list[str]:
    """The command's tokens (the file joins them with commas; adverbs may contain spaces)."""
    return command.split(",")


def _text(tokens: Iterable[str]) -> str:
    """Word-level text: one word per gSCAN token (`while spinning` -> `while_spinning`)."""
    return " ".join(tok.replace(" ", "_") for tok in tokens)


def _int(value: Any, where: str) -> int:
    """An int from a field the generator writes as a string."""
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: expected an integer, got {value!r}") from None


def situation_grid(situation: dict[str, Any], where: str = "situation") -> np.ndarray:
    """The model's grid input [G, G, V+5] uint8: object vector, agent bit, direction one-hot."""
    size = _int(situation["grid_size"], f"{where}.grid_size")
    objects = list(situation["placed_objects"].values())
    width = len(objects[0]["vector"]) if objects else len(situation["target_object"]["vector"])
    grid = np.zeros((size, size, width + AGENT_CHANNELS), dtype=np.uint8)
    for obj in objects:
        vector = obj["vector"]
        if len(vector) != width or set(vector) - {"0", "1"}:
            raise ValueError(f"{where}: bad object vector {vector!r}")
        row = _int(obj["position"]["row"], f"{where}: object row")
        col = _int(obj["position"]["column"], f"{where}: object column")
        grid[row, col, :width] = np.frombuffer(vector.encode(), dtype=np.uint8) - ord("0")
    row = _int(situation["agent_position"]["row"], f"{where}: agent row")
    col = _int(situation["agent_position"]["column"], f"{where}: agent column")
    grid[row, col, width] = 1
    grid[row, col, width + 1 + _int(situation["agent_direction"], f"{where}: direction")] = 1
    return grid


def factors(raw: dict[str, Any]) -> dict[str, str]:
    """The factor values of a raw example (absent ones, e.g. no adverb, left out)."""
    situation = raw["situation"]
    target = situation["target_object"]
    ref_size, ref_color, noun = raw["referred_target"].split(" ")
    values = {
        "verb": raw["verb_in_command"],
        "manner": raw["manner"],
        "ref_color": ref_color,
        "ref_size": ref_size,
        "noun": noun,
        "target_color": target["object"]["color"],
        "target_shape": target["object"]["shape"],
        "target_size": str(target["object"]["size"]),
        "direction": situation["direction_to_target"],
        "target_cell": f"{target['position']['row']},{target['position']['column']}",
    }
    return {name: values[name] for name in FACTORS if values[name]}


def atoms(raw: dict[str, Any]) -> frozenset[str]:
    """Command tokens, target shape/color/size, direction_to_target, target and agent cells."""
    values = factors(raw)
    agent = raw["situation"]["agent_position"]
    return frozenset(command_tokens(raw["command"])) | {
        f"{name}={values[name]}"
        for name in ("target_color", "target_shape", "target_size", "direction", "target_cell")
    } | {f"agent_cell={agent['row']},{agent['column']}"}


def pairs(raw: dict[str, Any]) -> frozenset[tuple[str, str]]:
    """All unordered pairs of factor values, each written `name=value`, in FACTORS order."""
    items = [f"{name}={value}" for name, value in factors(raw).items()]
    return frozenset((a, b) for i, a in enumerate(items) for b in items[i + 1 :])


def depth(raw: dict[str, Any]) -> int:
    """Number of modifiers: #adjectives (0-2) + [adverb] + [transitive verb]."""
    values = factors(raw)
    return (
        ("ref_color" in values) + ("ref_size" in values) + ("manner" in values)
        + (raw["verb_in_command"] != "walk")
    )


def out_len(raw: dict[str, Any]) -> int:
    """Output length: the number of target commands."""
    return len(raw["target_commands"].split(","))


_REQUIRED = ("command", "target_commands", "verb_in_command", "manner", "referred_target",
             "situation")


def to_example(raw: Any, split: str, id_: int, meta: dict[str, Any], where: str) -> Example:
    """One Example from a raw dataset.txt example; ValueError naming `where` if malformed."""
    if isinstance(raw, dict) and not raw.get("situation"):
        raise ValueError(
            f"{where}: example has no situation (the grid world the command refers to); gSCAN "
            "needs the canonical dataset.txt, whose examples each carry one"
        )
    if not isinstance(raw, dict) or any(key not in raw for key in _REQUIRED):
        missing = [k for k in _REQUIRED if not isinstance(raw, dict) or k not in raw]
        raise ValueError(f"{where}: not a gSCAN example (missing {missing})")
    try:
        grid = situation_grid(raw["situation"], where)
        record = Example(
            benchmark=BENCHMARK,
            split=split,
            id=id_,
            input=_text(command_tokens(raw["command"])),
            target=_text(raw["target_commands"].split(",")),
            atoms=atoms(raw),
            pairs=pairs(raw),
            depth=depth(raw),
            out_len=out_len(raw),
            category=meta["source_split"],
            meta={**meta, "grid": grid, "manner": raw["manner"],
                  "referred_target": raw["referred_target"],
                  "direction_to_target": raw["situation"]["direction_to_target"],
                  "distance_to_target": _int(raw["situation"]["distance_to_target"], where)},
        )
    except (KeyError, TypeError, IndexError, AttributeError) as err:
        kind = type(err).__name__
        raise ValueError(f"{where}: malformed gSCAN example ({kind}: {err})") from None
    return record


def kshot_indices(n: int, k: int, seed: int) -> list[int]:
    """The k adverb_1 indices moved into train (sorted), drawn with numpy PCG64(seed)."""
    if not 0 <= k <= n:
        raise ValueError(f"gSCAN k-shot: k={k} must be in 0..{n} (the adverb_1 split size)")
    rng = np.random.Generator(np.random.PCG64(seed))
    return sorted(int(i) for i in rng.choice(n, size=k, replace=False))


def _walk(path: str | os.PathLike[str], visit: Callable[[str, int, int, Any], None]
          ) -> list[str]:
    """Stream dataset.txt, calling visit(split, index, line, raw example) for every example in
    file order; the split names in the order they occur."""
    seen: list[str] = []
    with JsonStream(path) as stream:
        for key in stream.members("the dataset object"):
            if key != "examples":
                stream.value(f"key {key!r}")
                continue
            for split in stream.members("'examples'"):
                seen.append(split)
                for index, line in stream.items(f"examples[{split!r}]"):
                    visit(split, index, line,
                          stream.value(f"examples[{split!r}][{index}] (line {line})"))
        stream.end()
    return seen


def _require_splits(path: str | os.PathLike[str], splits: Sequence[str], seen: list[str]
                    ) -> None:
    """ValueError naming the file if any of `splits` is not among the splits `seen` in it."""
    missing = [s for s in splits if s not in seen]
    if missing:
        raise ValueError(f"{path}: splits {missing} not in 'examples' (present: {seen})")


def read_raw(path: str | os.PathLike[str], splits: Sequence[str]) -> dict[str, list[Any]]:
    """Stream dataset.txt, keeping (raw example, line) for the wanted splits in file order."""
    kept: dict[str, list[Any]] = {split: [] for split in splits}

    def keep(split: str, index: int, line: int, raw: Any) -> None:
        if split in kept:
            kept[split].append((raw, line))

    _require_splits(path, splits, _walk(path, keep))
    return kept


def check_file(path: str | os.PathLike[str], dataset: str) -> int:
    """Parse a whole dataset.txt as load_all reads it (every example of every split of
    `dataset` made into an Example, then dropped); the number of examples, or ValueError naming
    the file and line."""
    count = 0

    def parse(split: str, index: int, line: int, raw: Any) -> None:
        nonlocal count
        meta = {"source_split": split}
        to_example(raw, split, index, meta, f"{path}:{line}: examples[{split!r}][{index}]")
        count += 1

    _require_splits(path, DATASETS[dataset], _walk(path, parse))
    return count


def load_all(
    data_dir: str | os.PathLike[str] | None = None,
    dataset: str = "compositional_splits",
    k: int = 0,
    seed: int = 0,
    splits: Sequence[str] | None = None,
) -> dict[str, list[Example]]:
    """Examples per split, with the upstream adverb_1 k-shot construction applied at load time.

    k adverb_1 examples (kshot_indices(k, seed)) move into train and are copied to dev; train
    examples saying "cautiously" are copied to dev too (upstream `load_dataset_from_file`). Ids
    are 0..n-1 per returned split; meta keeps source_split, index (position in the file's split),
    line, kshot (True for moved examples), k and seed.
    """
    path = dataset_path(data_dir, dataset)
    names = DATASETS[dataset]
    wanted = list(splits) if splits is not None else list(names)
    unknown = [s for s in wanted if s not in names]
    if unknown:
        raise ValueError(f"unknown gSCAN {dataset} splits {unknown}; expected some of {names}")
    if k and dataset != "compositional_splits":
        raise ValueError(f"gSCAN k-shot needs compositional_splits, not {dataset}")
    need = set(wanted) | ({"train", "dev", KSHOT_SPLIT} if k else set())
    raw = read_raw(path, [s for s in names if s in need])
    moved = set(kshot_indices(len(raw[KSHOT_SPLIT]), k, seed)) if k else set()
    staged: dict[str, list[tuple[Any, dict[str, Any]]]] = {s: [] for s in need}
    for split, items in raw.items():  # file order, as upstream iterates it
        for index, (item, line) in enumerate(items):
            meta = {"source": str(path), "source_split": split, "index": index, "line": line,
                    "kshot": False, "k": k, "seed": seed}
            if split == KSHOT_SPLIT and index in moved:
                for target in ("train", "dev"):
                    staged[target].append((item, {**meta, "kshot": True}))
                continue
            staged[split].append((item, meta))
            if split == "train" and k and KSHOT_ADVERB in command_tokens(item["command"]):
                staged["dev"].append((item, meta))
    return {
        split: [
            to_example(item, split, i, meta,
                       f"{path}:{meta['line']}: examples[{meta['source_split']!r}]"
                       f"[{meta['index']}]")
            for i, (item, meta) in enumerate(staged[split])
        ]
        for split in wanted
    }


def load(
    split: str,
    data_dir: str | os.PathLike[str] | None = None,
    dataset: str = "compositional_splits",
    k: int = 0,
    seed: int = 0,
) -> list[Example]:
    """Examples of one gSCAN split (see load_all for k-shot and ids)."""
    return load_all(data_dir, dataset, k, seed, [split])[split]


def situation_pool(examples: Sequence[Example]) -> np.ndarray:
    """Grid cells as encoder tokens: [N, G*G, V+5] uint8, in the given order."""
    if not examples:
        raise ValueError("situation_pool: no examples")
    grids = [ex.meta["grid"] for ex in examples]
    shapes = {g.shape for g in grids}
    if len(shapes) != 1:
        raise ValueError(f"situation_pool: mixed grid shapes {sorted(shapes)}")
    stacked = np.stack(grids)
    return stacked.reshape(len(grids), -1, stacked.shape[-1])


METRIC_NAME = "exact_match"
match = token_match  # a prediction is correct when its tokens equal the target's
metric = token_exact_match  # seqio metric fn: exact match of the whole action sequence
