"""Read and validate the trainer's results tables (results.csv / results.parquet)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

# Required columns of a results table and the kind of value each holds.
COLUMNS: dict[str, str] = {
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
# One row per (cell, seed, eval step, split).
KEY = ("cell", "seed", "step", "split")
# Columns whose values are fractions in [0, 1].
FRACTIONS = ("exact_match",)
# Column added by read_results: the file each row came from, so reports can state their inputs.
SOURCE = "source_file"
RESULT_NAMES = ("results.csv", "results.parquet")

_MISSING_TEXT = {"", "nan", "na", "n/a", "null", "none"}
_READERS = {
    ".csv": lambda p: pd.read_csv(p, dtype=str, na_filter=False),
    ".parquet": pd.read_parquet,
}
_TRUE = {"true", "1", "1.0"}
_FALSE = {"false", "0", "0.0"}


def read_results(path: str | os.PathLike) -> pd.DataFrame:
    """Read one results file, or every results.csv/.parquet under a directory, validated."""
    path = Path(path)
    if path.is_dir():
        files = sorted(f for name in RESULT_NAMES for f in path.rglob(name) if f.is_file())
        if not files:
            raise ValueError(f"{path}: no {' or '.join(RESULT_NAMES)} files beneath this directory")
    elif path.is_file():
        files = [path]
    else:
        raise ValueError(f"{path}: no such file or directory")
    df = pd.concat([_read_one(f) for f in files], ignore_index=True)
    _check_unique(df)
    return df


def final_step(df: pd.DataFrame) -> pd.DataFrame:
    """Keep each (cell, seed, split)'s rows at its last eval step: the seed's final result."""
    require_columns(df, ["cell", "seed", "split", "step"], "results table")
    last = df.groupby(["cell", "seed", "split"], sort=False)["step"].transform("max")
    return df[df["step"] == last].reset_index(drop=True)


def require_columns(df: pd.DataFrame, names: list[str], source: str) -> None:
    """Raise ValueError naming `source` and every column of `names` that `df` lacks."""
    missing = [c for c in names if c not in df.columns]
    if missing:
        raise ValueError(f"{source}: missing required columns: {', '.join(missing)}")


def _read_one(path: Path) -> pd.DataFrame:
    """Read one results file into a validated frame with canonical dtypes."""
    suffix = path.suffix.lower()
    reader = _READERS.get(suffix)
    if reader is None:
        raise ValueError(f"{path}: unsupported results format {suffix!r} (.csv or .parquet)")
    try:
        raw = reader(path)
    except (ValueError, OSError) as err:  # pandas/pyarrow parse errors subclass ValueError
        raise ValueError(f"{path}: cannot read results table: {err}") from err
    require_columns(raw, list(COLUMNS), str(path))
    line = (lambda i: f"line {i + 2}") if suffix == ".csv" else (lambda i: f"row {i}")
    df = raw.copy()
    problems = []
    for name, kind in COLUMNS.items():
        values, bad = _coerce(raw[name], kind)
        if name in FRACTIONS:
            bad |= values.notna() & ((values < 0) | (values > 1))
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            expected = "a fraction in [0, 1]" if name in FRACTIONS else kind
            problems.append(
                f"{name} (expected {expected}; {int(bad.sum())} bad, "
                f"first {raw[name].iloc[i]!r} at {line(i)})"
            )
        df[name] = values
    if problems:
        raise ValueError(f"{path}: bad values in columns: {'; '.join(problems)}")
    df[SOURCE] = str(path)
    return df


def _coerce(col: pd.Series, kind: str) -> tuple[pd.Series, pd.Series]:
    """Convert `col` to `kind`; return the converted column and a mask of unconvertible values."""
    text = col.astype(str).str.strip()
    missing = col.isna() | text.str.lower().isin(_MISSING_TEXT)
    if kind == "str":
        return text, missing
    if kind == "bool":
        lower = text.str.lower()
        bad = ~(lower.isin(_TRUE) | lower.isin(_FALSE))
        return lower.isin(_TRUE), bad
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        num = col.astype("float64")
    else:
        num = pd.to_numeric(text.where(~missing), errors="coerce").astype("float64")
    if kind == "float":
        return num, ~missing & num.isna()
    bad = missing | ~np.isfinite(num) | (num.fillna(0) % 1 != 0)
    return num.where(~bad, 0).astype("int64"), bad


def _check_unique(df: pd.DataFrame) -> None:
    """Raise ValueError when a (cell, seed, step, split) row occurs twice, naming its files."""
    dup = df.duplicated(list(KEY), keep=False)
    if dup.any():
        first = df[dup].iloc[0]
        same = df[dup & (df[list(KEY)] == first[list(KEY)]).all(axis=1)]
        where = ", ".join(sorted(set(same[SOURCE])))
        key = ", ".join(f"{k}={first[k]!r}" for k in KEY)
        raise ValueError(f"{where}: duplicate results rows for {key} ({int(dup.sum())} rows)")
