"""The results table: one row per (cell, seed, eval step, split), written atomically.

`split` names the eval split or one of its groups (`gen`, `gen:hard`, `gen:cp_recursion`; see
compgen_jax.evaluation); `exact_match` holds the benchmark's own metric, named in `metric`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.atomic import write_text

RESULT_COLUMNS = (
    "cell", "benchmark", "task", "split", "strategy", "n_unique", "exposure", "manifest_hash",
    "seed", "step", "exact_match", "n_examples", "train_loss", "diverged", "seed_steps",
    "metric",
)


def write_results(rows: Sequence[dict[str, Any]], path: Path) -> pd.DataFrame:
    """Validate the rows against RESULT_COLUMNS and write them as CSV (atomically)."""
    table = pd.DataFrame(list(rows))
    missing = [c for c in RESULT_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"results rows lack columns {missing}")
    table = table[list(RESULT_COLUMNS)]
    write_text(path, table.to_csv(index=False))
    return table
