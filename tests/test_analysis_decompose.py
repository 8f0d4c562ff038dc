"""analysis.decompose: the E1 -> E2 -> E3 additive decomposition, hand-computed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.decompose import additive_decomposition, decomposition_from_frame


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
    table = additive_decomposition([("a", high, low), ("b", high, high)], n_boot=20000)
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
    frame = pd.DataFrame(rows, columns=["experiment", "coverage", "exact_match"])
    table = decomposition_from_frame(frame, n_boot=500).set_index("term")
    np.testing.assert_allclose(table.loc["coverage", "estimate_pp"], 0.37, atol=1e-9)
    with pytest.raises(ValueError, match="experiment 'E2' needs rows"):
        decomposition_from_frame(frame[frame["experiment"] != "E2"])
    with pytest.raises(ValueError, match="missing required columns: coverage"):
        decomposition_from_frame(frame.drop(columns=["coverage"]))
    with pytest.raises(ValueError, match="at least two experiments"):
        additive_decomposition([("E1", [0.1, 0.2], [0.0, 0.1])])
    with pytest.raises(ValueError, match="'E1' low arm needs >= 2 finite"):
        additive_decomposition([("E1", [0.1, 0.2], [np.nan, 0.1]), ("E2", [0.1, 0.2], [0, 0.1])])
