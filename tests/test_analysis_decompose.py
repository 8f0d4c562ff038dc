"""analysis.decompose: the E1 -> E2 -> E3 additive decomposition, hand-computed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.decompose import (
    additive_decomposition,
    decomposition_from_frame,
    decomposition_from_sweeps,
)


def _arm(mean: float) -> np.ndarray:
    """Three seeds with the given mean (fractions)."""
    return mean + np.array([-0.01, 0.0, 0.01])


# SCIENCE.md section 2: E1 34.1 vs 7.9 (+26.2 pp); E2 gap -3.96; E3 +0.37.
CHAIN = [("E1", 0.3414, 0.0790), ("E2", 0.0394, 0.0790), ("E3", 0.0827, 0.0790)]


def test_decomposition_matches_hand_computation() -> None:
    table = additive_decomposition(
        [(n, _arm(h), _arm(lo)) for n, h, lo in CHAIN],
        labels=("diversity confound", "typicality penalty", "coverage"),
        n_boot=2000,
    ).set_index("term")
    est = table["estimate_pp"]
    np.testing.assert_allclose(est["gap E1"], 26.24, atol=1e-9)
    np.testing.assert_allclose(est["diversity confound"], 26.24 - (-3.96), atol=1e-9)
    np.testing.assert_allclose(est["typicality penalty"], -3.96 - 0.37, atol=1e-9)
    np.testing.assert_allclose(est["coverage"], 0.37, atol=1e-9)
    components = est[["diversity confound", "typicality penalty", "coverage"]].sum()
    np.testing.assert_allclose(components, est["total"], atol=1e-9)
    np.testing.assert_allclose(est["total"], est["gap E1"], atol=1e-9)
    assert (table["ci_lo_pp"] <= est + 1e-9).all() and (est <= table["ci_hi_pp"] + 1e-9).all()


def test_bootstrap_ci_of_one_gap_matches_a_direct_resample() -> None:
    high, low = np.array([0.1, 0.3, 0.2, 0.4]), np.array([0.0, 0.1, 0.05, 0.02])
    table = additive_decomposition([("a", high, low), ("b", high, high)], n_boot=20000,
                                   method="percentile")
    rng = np.random.default_rng(1)
    ref = (
        np.array([rng.choice(high, 4).mean() - rng.choice(low, 4).mean() for _ in range(20000)])
        * 100
    )
    lo, hi = np.percentile(ref, [2.5, 97.5])
    row = table.set_index("term").loc["gap a"]
    assert abs(row["ci_lo_pp"] - lo) < 1.0 and abs(row["ci_hi_pp"] - hi) < 1.0


def test_from_frame_and_bad_input() -> None:
    rows = [
        (exp, cov, v) for exp, h, lo in CHAIN for cov, m in (("high", h), ("low", lo))
        for v in _arm(m)
    ]  # fmt: skip
    frame = pd.DataFrame(rows, columns=["factor_experiment", "factor_coverage", "exact_match"])
    table = decomposition_from_frame(frame, n_boot=500).set_index("term")
    np.testing.assert_allclose(table.loc["coverage", "estimate_pp"], 0.37, atol=1e-9)
    with pytest.raises(ValueError, match="experiment 'E2' needs rows"):
        decomposition_from_frame(frame[frame["factor_experiment"] != "E2"])
    with pytest.raises(ValueError, match="missing required columns: factor_coverage"):
        decomposition_from_frame(frame.drop(columns=["factor_coverage"]))
    with pytest.raises(ValueError, match="at least two experiments"):
        additive_decomposition([("E1", [0.1, 0.2], [0.0, 0.1])])
    with pytest.raises(ValueError, match="'E1' low arm needs >= 2 finite"):
        additive_decomposition([("E1", [0.1, 0.2], [np.nan, 0.1]), ("E2", [0.1, 0.2], [0, 0.1])])


def test_item7_t_intervals_cover_at_5_seeds() -> None:
    """E1-E3-like chain, 5 seeds per cell, 5 simulation seeds x 60 replicates: the Welch t CI
    of every component keeps >= 0.93 coverage; the paper's percentile bootstrap is lower."""
    means = [(0.34, 0.08), (0.04, 0.08), (0.083, 0.079)]
    truth_gaps = np.array([h - lo for h, lo in means]) * 100
    truth = np.r_[truth_gaps, truth_gaps[:-1] - truth_gaps[1:], truth_gaps[-1], truth_gaps[0]]
    covered = {"t": [], "percentile": []}
    for sim in range(5):
        rng = np.random.default_rng(sim)
        for _ in range(60):
            chain = [(f"E{i + 1}", rng.normal(h, 0.05, 5), rng.normal(lo, 0.03, 5))
                     for i, (h, lo) in enumerate(means)]  # fmt: skip
            for method in covered:
                table = additive_decomposition(chain, n_boot=400, seed=sim, method=method)
                covered[method] += list(
                    (table["ci_lo_pp"] <= truth) & (truth <= table["ci_hi_pp"])
                )
    assert np.mean(covered["t"]) >= 0.93
    assert np.mean(covered["percentile"]) < np.mean(covered["t"])


def test_welch_interval_of_one_gap_matches_scipy() -> None:
    from scipy import stats

    rng = np.random.default_rng(1)
    chain = [("E1", rng.normal(0.3, 0.05, 5), rng.normal(0.1, 0.02, 4)),
             ("E2", rng.normal(0.2, 0.05, 5), rng.normal(0.1, 0.02, 5))]  # fmt: skip
    table = additive_decomposition(chain).set_index("term")
    ref = stats.ttest_ind(100 * chain[0][1], 100 * chain[0][2], equal_var=False)
    lo, hi = ref.confidence_interval(0.95)
    assert table.loc["gap E1", "ci_lo_pp"] == pytest.approx(lo)
    assert table.loc["gap E1", "ci_hi_pp"] == pytest.approx(hi)


def test_decomposition_from_three_sweeps(tmp_path: Path) -> None:
    """Three sweep roots as `sweep collect` writes them (sweep_results.csv with factor_*)."""
    sweeps = {}
    for name, high, low in CHAIN:
        root = tmp_path / name.lower()
        root.mkdir()
        rows = []
        for cov, mean in (("high", high), ("low", low)):
            for diff in ("easy", "hard"):
                cell = f"{name.lower()}-coverage={cov}-difficulty={diff}"
                for s, v in enumerate(_arm(mean if diff == "easy" else 0.5)):
                    rows.append((cell, "cogs", "cogs_task", "gen", "random", 200, 20.0, "h" * 64,
                                 s, 100, v, 1000, 0.1, False, 100, cov, diff, "id"))
        cols = ["cell", "benchmark", "task", "split", "strategy", "n_unique", "exposure",
                "manifest_hash", "seed", "step", "exact_match", "n_examples", "train_loss",
                "diverged", "seed_steps", "factor_coverage", "factor_difficulty", "cell_id"]
        pd.DataFrame(rows, columns=cols).to_csv(root / "sweep_results.csv", index=False)
        (root / "stale").mkdir()  # a per-cell results.csv (no factor columns) is not read
        pd.DataFrame(rows, columns=cols).iloc[:, :15].to_csv(root / "stale" / "results.csv")
        sweeps[name] = root
    table = decomposition_from_sweeps(sweeps, "gen", where={"difficulty": "easy"})
    table = table.set_index("term")
    np.testing.assert_allclose(table.loc["diversity confound", "estimate_pp"],
                               (0.3414 - 0.0790 - 0.0394 + 0.0790) * 100, atol=1e-9)
    np.testing.assert_allclose(table.loc["total", "estimate_pp"], 26.24, atol=1e-9)
