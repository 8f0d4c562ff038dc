"""analysis.results: the tidy per-seed frame, explicit exclusions, manifests and their hashes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.results import attach_manifests, read_manifests, read_results, tidy_results
from analysis.synthetic import Dataset, synthetic_sweep, write_sweep


def _sweep(tmp_path: Path) -> Path:
    """Two N levels x three seeds of one dataset, written like the trainer writes them."""
    sweep = synthetic_sweep([Dataset("scan", 0.1, pool_size=300)], [20, 40], n_seeds=3)
    return write_sweep(sweep, tmp_path / "sweep")


def test_tidy_frame_keeps_final_steps_and_design_factors(tmp_path: Path) -> None:
    """Item 3: design factors are the schema's factor_* columns; the trainer's seed_steps, the
    sweep's cell_id and any leftover column are not."""
    df = read_results(_sweep(tmp_path))
    df = df.assign(factor_quantile="q1", seed_steps=df["step"], cell_id="abc", quantile="q1")
    tidy = tidy_results(df, "test")
    assert len(tidy.frame) == 6 and tidy.excluded.empty
    assert (tidy.frame["step"] == 300).all()
    assert tidy.factors == ["factor_quantile"]
    assert list(tidy.excluded.columns) == ["cell", "seed", "reason"]


def test_nan_diverged_and_thin_cells_are_excluded_with_reasons(tmp_path: Path) -> None:
    df = read_results(_sweep(tmp_path))
    last = df["step"] == 300
    df.loc[last & (df["cell"] == "scan_n20_e100") & (df["seed"] == 0), "exact_match"] = np.nan
    df.loc[last & (df["cell"] == "scan_n20_e100") & (df["seed"] == 1), "diverged"] = True
    tidy = tidy_results(df, "test")
    excluded = tidy.excluded.set_index(["cell", "seed"])["reason"]
    reasons = excluded.to_dict()
    assert reasons == {
        ("scan_n20_e100", 0): "exact_match is NaN",
        ("scan_n20_e100", 1): "diverged",
        ("scan_n20_e100", 2): "cell has 1 usable seed(s) < 2",
    }
    assert set(tidy.frame["cell"]) == {"scan_n40_e100"}
    kept = tidy_results(df, "test", drop_diverged=False)
    assert len(kept.frame) == 5 and len(kept.excluded) == 1


def test_inconsistent_cell_factors_and_missing_columns_are_errors(tmp_path: Path) -> None:
    df = read_results(_sweep(tmp_path))
    df.loc[df["seed"] == 2, "exposure"] = 7.0
    with pytest.raises(ValueError, match="cell 'scan_n20_e100' has seeds with different exposure"):
        tidy_results(df, "test")
    with pytest.raises(ValueError, match="missing required columns: strategy"):
        tidy_results(df.drop(columns=["strategy"]), "test")
    with pytest.raises(ValueError, match="no rows for split 'gen'"):
        tidy_results(df, "gen")


def test_manifests_are_read_checked_and_attached(tmp_path: Path) -> None:
    root = _sweep(tmp_path)
    manifests = read_manifests(root)
    assert len(manifests) == 6
    assert sorted(manifests["n_unique"].unique()) == [20, 40]
    row = manifests.iloc[0]
    assert row["ids"].dtype == np.int64 and row["ids"].size == row["n_unique"]
    tidy = tidy_results(read_results(root), "test")
    joined = attach_manifests(tidy.frame, manifests)
    assert len(joined) == 6 and (joined["ids"].map(len) == joined["n_unique"]).all()
    assert "manifest_n_unique" in joined.columns  # clashing names are prefixed, not overwritten


def test_manifest_problems_name_the_file(tmp_path: Path) -> None:
    root = _sweep(tmp_path)
    path = root / "scan_n20_e100" / "manifests" / "seed_1.json"
    data = json.loads(path.read_text())
    data["ids"][0] += 1
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="stored hash") as err:
        read_manifests(root)
    assert str(path) in str(err.value)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="malformed manifest JSON"):
        read_manifests(root)
    path.unlink()
    tidy = tidy_results(read_results(root), "test")
    with pytest.raises(ValueError, match="no manifest for 1 result seed"):
        attach_manifests(tidy.frame, read_manifests(root))
    with pytest.raises(ValueError, match="no <cell>/manifests"):
        read_manifests(tmp_path / "sweep" / "nothing")


def test_hash_mismatch_between_results_and_manifest(tmp_path: Path) -> None:
    root = _sweep(tmp_path)
    frame = tidy_results(read_results(root), "test").frame
    frame.loc[0, "manifest_hash"] = "deadbeef"
    with pytest.raises(ValueError, match="results name manifest 'deadbeef'"):
        attach_manifests(frame, read_manifests(root))
    assert pd.api.types.is_string_dtype(read_manifests(root)["hash"])
