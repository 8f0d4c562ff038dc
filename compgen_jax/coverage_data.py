"""A coverage-principle dataset directory tokenized for the decoder-only model, and its scoring.

Sequences are `target_text` token ids (pad 0, then vocab.json order), right-padded; the loss and
the teacher-forced accuracy cover the answer tokens only (input prefix, `</a>` and padding
excluded). Scores are token-level accuracy per test type (upstream's evaluation).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np
import pandas as pd

from analysis.coverage_dataset import read_vocab
from compgen_jax.multiseed import MultiSeedTrainer
from tasks.benchmarks import coverage

END = coverage.END
METRIC = "answer_token_accuracy"


@dataclasses.dataclass(frozen=True)
class CoverageData:
    """A coverage dataset tokenized for the decoder: pools, test types, vocabulary."""

    name: str
    vocab: list[str]
    train: dict[str, np.ndarray]
    test: dict[str, np.ndarray]
    test_types: np.ndarray
    test_inputs: list[str]
    train_hash: str = ""  # sha256 of train.json: the training set's identity in every row

    @property
    def vocab_size(self) -> int:
        return len(self.vocab) + 1

    @property
    def task(self) -> str:
        return coverage.parse_name(self.name)[0]

    @property
    def n_train(self) -> int:
        return int(self.train["tokens"].shape[0])

    @property
    def lengths(self) -> dict[str, dict[str, int]]:
        """split -> {"tokens": padded length}, as validation.check_lengths reads them."""
        return {"train": {"tokens": int(self.train["tokens"].shape[1])},
                "test": {"tokens": int(self.test["tokens"].shape[1])}}

    @property
    def num_tokens(self) -> int:
        return coverage.parse_name(self.name)[1]

    def token_id(self, token: str) -> int:
        """Model id of a vocabulary token (0 is padding)."""
        return self.vocab.index(token) + 1


def tokenize(examples: Sequence[Any], vocab: Sequence[str], length: int) -> dict[str, np.ndarray]:
    """{"tokens", "loss_mask"} [N, length] int32 of input + answer; mask = answer minus `</a>`."""
    ids = {tok: i + 1 for i, tok in enumerate(vocab)}
    tokens = np.zeros((len(examples), length), np.int32)
    mask = np.zeros((len(examples), length), np.int32)
    for row, ex in enumerate(examples):
        inp, tgt = ex.input.split(), ex.target.split()
        try:
            seq = [ids[t] for t in inp + tgt]
        except KeyError as err:
            raise ValueError(f"{ex.split} item {ex.id}: token {err.args[0]} not in "
                             "vocab.json") from None
        tokens[row, : len(seq)] = seq
        mask[row, len(inp): len(inp) + len(tgt)] = [int(t != END) for t in tgt]
    return {"tokens": tokens, "loss_mask": mask}


def load_coverage_data(dataset_dir: str | os.PathLike[str]) -> CoverageData:
    """train.json / test.json / vocab.json of an upstream-layout dataset dir, tokenized."""
    root = Path(dataset_dir)
    vocab = read_vocab(root)
    train, test = coverage.load(root, "train"), coverage.load(root, "test")
    length = max(len(ex.input.split()) + len(ex.target.split()) for ex in train + test)
    return CoverageData(
        name=root.name, vocab=vocab, train=tokenize(train, vocab, length),
        test=tokenize(test, vocab, length), test_types=np.array([ex.category for ex in test]),
        test_inputs=[ex.input for ex in test],
        train_hash=hashlib.sha256((root / "train.json").read_bytes()).hexdigest(),
    )


def evaluate_types(trainer: MultiSeedTrainer, params: Any, pool: dict[str, np.ndarray],
                   batch_size: int) -> np.ndarray:
    """Per-seed, per-example teacher-forced answer accuracy [S, N], in fixed-size chunks."""
    n = pool["tokens"].shape[0]
    size = min(batch_size, n)
    out = []
    for start in range(0, n, size):
        chunk = {k: v[start: start + size] for k, v in pool.items()}
        short = size - chunk["tokens"].shape[0]
        chunk = {k: jnp.asarray(np.pad(v, ((0, short), (0, 0)))) for k, v in chunk.items()}
        out.append(np.asarray(trainer.score(params, chunk))[:, : size - short])
    return np.concatenate(out, axis=1)


def type_accuracy(per_example: np.ndarray, loss_mask: np.ndarray,
                  types: np.ndarray) -> dict[str, np.ndarray]:
    """Token-level accuracy per type (correct answer tokens / answer tokens) -> {type: [S]}."""
    weights = loss_mask[:, 1:].sum(axis=1).astype(np.float64)
    return {t: (per_example[:, types == t] * weights[types == t]).sum(axis=1)
            / weights[types == t].sum() for t in sorted(set(types.tolist()))}


def per_example_frame(data: CoverageData, per_example: np.ndarray,
                      seeds: Sequence[int]) -> pd.DataFrame:
    """Tidy (index, seed, type, input, accuracy) rows of a per-seed accuracy array [S, N]."""
    n = per_example.shape[1]
    return pd.DataFrame({
        "index": np.tile(np.arange(n), len(seeds)), "seed": np.repeat(seeds, n),
        "type": np.tile(data.test_types, len(seeds)),
        "input": np.tile(np.array(data.test_inputs), len(seeds)),
        "accuracy": per_example.reshape(-1)})
