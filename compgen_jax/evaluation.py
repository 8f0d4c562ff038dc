"""Vmapped greedy-decoding evaluation: per-seed, per-example exact match and predictions."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import jax.numpy as jnp
import numpy as np
import pandas as pd

from compgen_jax.multiseed import MultiSeedTrainer, Pool, exact_match
from compgen_jax.sharding import host_array
from tasks.atomic import write_text

if TYPE_CHECKING:
    import seqio


def evaluate(
    trainer: MultiSeedTrainer, params: Any, pool: Pool, eval_batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy-decode every example for every seed -> (correct [S, N] bool, tokens [S, N, L])."""
    n, max_len = pool["targets"].shape
    correct, tokens = [], []
    for start in range(0, n, eval_batch_size):
        chunk = slice(start, start + eval_batch_size)
        predicted = trainer.decode(params, pool["inputs"][chunk], max_len)
        correct.append(exact_match(predicted, pool["targets"][chunk][None]))
        tokens.append(predicted)
    return (host_array(jnp.concatenate(correct, axis=1)),
            host_array(jnp.concatenate(tokens, axis=1)))


def write_predictions(
    path: Path,
    seeds: list[int],
    example_ids: np.ndarray,
    correct: np.ndarray,
    tokens: np.ndarray,
    vocabulary: seqio.Vocabulary,
) -> None:
    """One row per (seed, example): example_id, correct, decoded prediction (CSV, atomic)."""
    rows = [
        {"seed": seed, "example_id": int(ex), "correct": bool(correct[i, j]),
         "prediction": vocabulary.decode([int(t) for t in tokens[i, j]])}
        for i, seed in enumerate(seeds) for j, ex in enumerate(example_ids)
    ]
    write_text(path, pd.DataFrame(rows).to_csv(index=False))
