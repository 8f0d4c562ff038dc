"""The one reader of a coverage-principle dataset directory (upstream kaistAI/coverage-principle
layout): train.json and test.json item lists, vocab.json, and the directory's other JSON files.

Training (compgen_jax), k-coverage (analysis.coverage), circuits and the seqio tasks all read a
dataset through here; the standard library only, so every layer can import it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

SPLITS = ("train", "test")


def read_json(path: str | os.PathLike[str]) -> Any:
    """A JSON file, with a one-line error naming it when missing or malformed (path:line)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"coverage dataset {path.parent}: required file {path.name} "
                                "is missing")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}:{err.lineno}: malformed JSON: {err.msg}") from None


def read_items(dataset_dir: str | os.PathLike[str], split: str) -> list[dict[str, Any]]:
    """The items of train.json or test.json: {input_text, target_text = input_text + answer
    [, type]}, checked; an error names the file and the item."""
    if split not in SPLITS:
        raise ValueError(f"unknown coverage split {split!r}; expected 'train' or 'test'")
    path = Path(dataset_dir) / f"{split}.json"
    items = read_json(path)
    if not isinstance(items, list):
        raise ValueError(f"{path}: expected a JSON list of items")
    for i, item in enumerate(items):
        if not (isinstance(item, dict) and isinstance(item.get("input_text"), str)
                and isinstance(item.get("target_text"), str)
                and item["target_text"].startswith(item["input_text"])):
            raise ValueError(f"{path}: item {i} is not {{input_text, target_text=input+answer}}")
    return items


def read_vocab(dataset_dir: str | os.PathLike[str]) -> list[str]:
    """vocab.json: the dataset's token strings, in id order."""
    path = Path(dataset_dir) / "vocab.json"
    vocab = read_json(path)
    if not (isinstance(vocab, list) and all(isinstance(t, str) for t in vocab)):
        raise ValueError(f"{path}: expected a JSON list of token strings")
    return vocab
