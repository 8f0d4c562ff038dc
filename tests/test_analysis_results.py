"""analysis.results: reading, validation errors naming file and column, final eval step."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from analysis.results import final_step, read_results
from analysis.schema import REQUIRED


def _table(rows: list[tuple[str, int, int, float]]) -> pd.DataFrame:
    """A valid results table from (cell, seed, step, exact_match) tuples."""
    return pd.DataFrame(
        {
            "cell": [r[0] for r in rows],
            "benchmark": "scan",
            "task": "scan_length",
            "split": "test",
            "strategy": "random",
            "n_unique": 100,
            "exposure": 40.0,
            "manifest_hash": "0123",
            "seed": [r[1] for r in rows],
            "step": [r[2] for r in rows],
            "exact_match": [r[3] for r in rows],
            "n_examples": 50,
            "train_loss": 0.5,
            "diverged": False,
        }
    )


def test_csv_round_trip_dtypes(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    _table([("a", 0, 10, 0.25), ("a", 1, 10, 0.5)]).to_csv(path, index=False)
    df = read_results(path)
    assert list(df["exact_match"]) == [0.25, 0.5]
    assert df["manifest_hash"].tolist() == ["0123", "0123"]  # digits stay a string
    assert df["seed"].dtype == "int64" and df["diverged"].dtype == bool
    assert df["source_file"].tolist() == [str(path)] * 2


def test_directory_reads_csv_and_parquet_beneath(tmp_path: Path) -> None:
    (tmp_path / "c1").mkdir()
    (tmp_path / "c2" / "deep").mkdir(parents=True)
    _table([("c1", 0, 5, 0.1)]).to_csv(tmp_path / "c1" / "results.csv", index=False)
    _table([("c2", 0, 5, 0.2)]).to_parquet(tmp_path / "c2" / "deep" / "results.parquet")
    (tmp_path / "c1" / "other.csv").write_text("not,a,results,file\n")
    df = read_results(tmp_path)
    assert sorted(df["cell"]) == ["c1", "c2"]
    assert sorted(df["exact_match"]) == [0.1, 0.2]


def test_missing_column_names_file_and_column(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    _table([("a", 0, 10, 0.25)]).drop(columns=["n_examples"]).to_csv(path, index=False)
    with pytest.raises(ValueError, match="missing required columns") as err:
        read_results(path)
    assert str(path) in str(err.value) and "n_examples" in str(err.value)
    assert "seed" not in str(err.value)


def test_bad_values_name_file_column_and_line(tmp_path: Path) -> None:
    table = _table([("a", 0, 10, 0.25), ("a", 1, 10, 0.5)]).astype({"seed": object})
    table.loc[1, "seed"] = "one"
    table.loc[0, "exact_match"] = 1.5
    path = tmp_path / "results.csv"
    table.to_csv(path, index=False)
    with pytest.raises(ValueError) as err:
        read_results(path)
    message = str(err.value)
    assert str(path) in message
    assert "seed (expected int" in message and "'one' at line 3" in message
    assert "exact_match (expected a fraction in [0, 1]" in message


def test_bad_bool_and_unsupported_suffix(tmp_path: Path) -> None:
    table = _table([("a", 0, 10, 0.25)]).astype({"diverged": object})
    table.loc[0, "diverged"] = "maybe"
    table.to_csv(tmp_path / "results.csv", index=False)
    with pytest.raises(ValueError, match="diverged"):
        read_results(tmp_path / "results.csv")
    (tmp_path / "results.json").write_text("{}")
    with pytest.raises(ValueError, match="unsupported results format"):
        read_results(tmp_path / "results.json")


def test_nan_train_loss_allowed_but_not_nan_seed(tmp_path: Path) -> None:
    table = _table([("a", 0, 10, 0.25)])
    table["train_loss"] = float("nan")
    table.to_parquet(tmp_path / "results.parquet")
    assert read_results(tmp_path / "results.parquet")["train_loss"].isna().all()
    table["seed"] = float("nan")
    table.to_parquet(tmp_path / "results.parquet")
    with pytest.raises(ValueError, match="seed"):
        read_results(tmp_path / "results.parquet")


def test_empty_directory_and_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no results.csv or results.parquet"):
        read_results(tmp_path)
    with pytest.raises(ValueError, match="no such file"):
        read_results(tmp_path / "nope.csv")
    (tmp_path / "results.csv").write_text("")
    with pytest.raises(ValueError, match="cannot read"):
        read_results(tmp_path / "results.csv")


def test_duplicate_rows_across_files_are_rejected(tmp_path: Path) -> None:
    table = _table([("a", 0, 10, 0.25)])
    table.to_csv(tmp_path / "results.csv", index=False)
    table.to_parquet(tmp_path / "results.parquet")
    with pytest.raises(ValueError, match="duplicate results rows") as err:
        read_results(tmp_path)
    assert "results.csv" in str(err.value) and "results.parquet" in str(err.value)


def test_final_step_keeps_each_seeds_last_step() -> None:
    df = _table(
        [
            ("a", 0, 10, 0.1),
            ("a", 0, 30, 0.3),
            ("a", 0, 20, 0.2),
            ("a", 1, 10, 0.7),
            ("b", 0, 40, 0.9),
        ]
    )
    final = final_step(df)
    got = sorted(
        zip(final["cell"], final["seed"], final["step"], final["exact_match"], strict=True)
    )
    assert got == [("a", 0, 30, 0.3), ("a", 1, 10, 0.7), ("b", 0, 40, 0.9)]


def test_columns_match_the_documented_schema() -> None:
    assert set(REQUIRED) == {
        "cell", "benchmark", "task", "split", "strategy", "n_unique", "exposure",
        "manifest_hash", "seed", "step", "exact_match", "n_examples", "train_loss", "diverged",
    }  # fmt: skip
