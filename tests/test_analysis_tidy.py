"""analysis.results: the tidy per-seed frame, explicit exclusions, manifests and their hashes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.planted_sweeps import Dataset, synthetic_sweep, write_sweep
from analysis.results import attach_manifests, read_manifests, read_results, tidy_results


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


def test_exposure_is_analysed_at_its_design_level(tmp_path: Path) -> None:
    """Whole training steps make a design level E = 2 come out as 2.24 at N = 100 and 2.0 at
    N = 400 (7 x 32 / 100, 25 x 32 / 400); the N x E ANOVA must still see two levels of E."""
    from analysis import stats

    rows = []
    for n, e, steps in [(100, 2, 7), (100, 8, 25), (400, 2, 25), (400, 8, 100)]:
        for seed in range(3):
            rows.append({"cell": f"n{n}_e{e}", "benchmark": "cogs", "task": "cogs",
                         "split": "gen", "strategy": "random", "n_unique": n,
                         "exposure": steps * 32 / n, "manifest_hash": f"{n}{e}{seed}",
                         "seed": seed, "step": steps, "exact_match": 0.1 * seed + 0.01 * n / 100,
                         "n_examples": 50, "train_loss": 1.0, "diverged": False,
                         "seed_steps": steps, "metric": "exact_match",
                         "factor_n_unique": n, "factor_exposure": e})
    frame = tidy_results(pd.DataFrame(rows), "gen").frame
    assert sorted(frame["exposure"].unique()) == [2.0, 8.0]
    assert sorted(frame["realized_exposure"].unique()) == [2.0, 2.24, 8.0]
    anova = stats.two_way_anova(frame, "n_unique", "exposure", "exact_match")
    assert anova.loc["exposure", "df"] == 1
    realized = pd.DataFrame(rows)
    assert realized["exposure"].nunique() == 3  # the raw table keeps what each cell trained
