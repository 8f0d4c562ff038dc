"""The one results schema: columns, kinds, key, and the validated atomic writer.

Every cell writes one row per (cell, seed, eval step, split) in this long format, whatever its
model family or task kind: `split` names an eval split or one of its groups (`gen`, `gen:hard`,
a synthetic task's `type_0`), and `exact_match` holds the score under the split's own metric,
named in `metric` (exact match, ReCOGS's semantic match, the synthetic tasks' answer-token
accuracy). Pandas and the standard library only, so `tasks`, `compgen_jax` and `analysis` share it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.atomic import write_text

# Columns every results table carries, with the kind of value each holds ("text": a string that
# may be empty).
REQUIRED: dict[str, str] = {
    "cell": "str",
    "benchmark": "str",
    "task": "str",
    "split": "str",
    "strategy": "str",
    "n_unique": "int",
    "exposure": "float",
    "manifest_hash": "str",
    "seed": "int",
    "step": "int",
    "exact_match": "float",
    "n_examples": "int",
    "train_loss": "float",
    "diverged": "bool",
}
# Columns the trainer adds (tables written before them still read): the seed's own step count
# (frozen seeds stop counting), the seed's epoch, why the seed stopped ("" while it trains on),
# and the metric's name. A column that is never empty comes last, so a row cut short shows up as
# a blank `metric`.
EXTRA: dict[str, str] = {
    "seed_steps": "int",
    "epoch": "int",
    "stop_reason": "text",
    "metric": "str",
}
RESULT_COLUMNS: tuple[str, ...] = (*REQUIRED, *EXTRA)
# `train_loss` of a row: the seed's mean training loss over its last TRAIN_LOSS_WINDOW trained
# steps up to the row's eval step (all of them when it has trained fewer; a seed that stopped or
# diverged keeps the window it stopped with), the same whatever TrainConfig.steps_per_call.
TRAIN_LOSS_WINDOW = 100
# One row per (cell, seed, eval step, split).
KEY = ("cell", "seed", "step", "split")
# Columns whose values are fractions in [0, 1].
FRACTIONS = ("exact_match",)
# Per-seed stopping summary written beside results.csv (stops.csv).
STOP_COLUMNS = ("cell", "seed", "stop_step", "stop_reason", "diverged")


def results_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Rows as a table in RESULT_COLUMNS order; a row lacking a column is a ValueError."""
    table = pd.DataFrame(list(rows), columns=None if rows else list(RESULT_COLUMNS))
    missing = [c for c in RESULT_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"results rows lack columns {missing}")
    return table[list(RESULT_COLUMNS)]


def write_results(rows: Sequence[dict[str, Any]], path: Path) -> pd.DataFrame:
    """Validate the rows against RESULT_COLUMNS and write them as CSV (atomically)."""
    table = results_frame(rows)
    write_text(path, table.to_csv(index=False))
    return table
