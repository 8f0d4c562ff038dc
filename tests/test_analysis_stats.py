"""analysis.stats against statsmodels / scipy and planted parameters."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.formula.api import ols
from statsmodels.stats.anova import anova_lm
from statsmodels.stats.weightstats import ttost_ind

from analysis.stats import (
    bootstrap_slope_ci,
    logistic_dose_response,
    permutation_test_slopes,
    tost_ind,
    two_way_anova,
)


def _design(balanced: bool, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i, n in enumerate([100, 500, 1000]):
        for j, e in enumerate([100, 400, 1600, 6400]):
            reps = 5 if balanced else int(rng.integers(2, 8))
            for _ in range(reps):
                y = 0.1 * i + 0.05 * j + 0.2 * (i == 2) * (j == 1) + rng.normal(0, 0.1)
                rows.append((n, e, y))
    return pd.DataFrame(rows, columns=["N", "E", "em"])


@pytest.mark.parametrize("balanced", [True, False])
@pytest.mark.parametrize("typ", [2, 3])
def test_two_way_anova_matches_statsmodels(balanced: bool, typ: int) -> None:
    df = _design(balanced, seed=3)
    ours = two_way_anova(df, "N", "E", "em", typ=typ)
    model = ols("em ~ C(N, Sum) * C(E, Sum)", data=df).fit()
    ref = anova_lm(model, typ=typ).drop(index="Intercept", errors="ignore")
    assert list(ours.index) == ["N", "E", "N:E", "Residual"]
    np.testing.assert_allclose(ours["sum_sq"], ref["sum_sq"], rtol=1e-9)
    np.testing.assert_allclose(ours["df"], ref["df"], rtol=1e-12)
    np.testing.assert_allclose(ours["F"][:3], ref["F"][:3], rtol=1e-9)
    np.testing.assert_allclose(ours["p"][:3], ref["PR(>F)"][:3], rtol=1e-7)
    ss_res = ref["sum_sq"].iloc[-1]
    eta = ref["sum_sq"][:3] / (ref["sum_sq"][:3] + ss_res)
    np.testing.assert_allclose(ours["partial_eta_sq"][:3], eta, rtol=1e-9)


def test_two_way_anova_types_agree_when_balanced_and_reject_bad_input() -> None:
    df = _design(True, seed=5)
    t2, t3 = two_way_anova(df, "N", "E", "em", 2), two_way_anova(df, "N", "E", "em", 3)
    np.testing.assert_allclose(t2["sum_sq"], t3["sum_sq"], rtol=1e-9)
    with pytest.raises(ValueError, match="typ"):
        two_way_anova(df, "N", "E", "em", typ=1)
    with pytest.raises(ValueError, match="missing columns: nope"):
        two_way_anova(df, "N", "nope", "em")


def test_tost_matches_statsmodels_welch() -> None:
    rng = np.random.default_rng(0)
    for a, b, margin in [
        (rng.normal(0.33, 0.01, 5), rng.normal(0.335, 0.02, 5), 3.0),  # equivalent
        (rng.normal(0.30, 0.03, 6), rng.normal(0.36, 0.01, 4), 3.0),  # not equivalent
        (rng.normal(0.10, 0.05, 8), rng.normal(0.11, 0.01, 5), 1.5),
    ]:
        ours = tost_ind(a, b, margin)
        p, lower, upper = ttost_ind(100 * a, 100 * b, -margin, margin, usevar="unequal")
        assert ours["p"] == pytest.approx(p, rel=1e-10)
        assert ours["t_lower"] == pytest.approx(lower[0], rel=1e-10)
        assert ours["p_lower"] == pytest.approx(lower[1], rel=1e-10)
        assert ours["t_upper"] == pytest.approx(upper[0], rel=1e-10)
        assert ours["df"] == pytest.approx(lower[2], rel=1e-10)
        lo, hi = ours["ci_pp"]
        assert ours["equivalent"] == (-margin < lo and hi < margin)
    close = tost_ind([0.330, 0.332, 0.331, 0.329], [0.331, 0.333, 0.330, 0.332], 3.0)
    assert close["equivalent"] and close["diff_pp"] == pytest.approx(-0.1)


def test_logistic_dose_response_recovers_planted_parameters() -> None:
    rng = np.random.default_rng(1)
    n = np.repeat([50, 100, 200, 500, 1000, 2000, 4000], 5)
    truth = dict(lower=0.007, upper=0.34, k=2.2, x0=np.log(600))
    em = truth["lower"] + (truth["upper"] - truth["lower"]) / (
        1 + np.exp(-truth["k"] * (np.log(n) - truth["x0"]))
    )
    fit = logistic_dose_response(n, em + rng.normal(0, 0.005, n.size))
    for key, value in truth.items():
        assert fit[key] == pytest.approx(value, rel=0.1, abs=0.01), key
    assert fit["r2"] > 0.99
    assert fit["n50"] == pytest.approx(600, rel=0.1)
    with pytest.raises(ValueError, match="4 distinct"):
        logistic_dose_response([1, 2, 3], [0.1, 0.2, 0.3])


def test_bootstrap_slope_ci_covers_truth_and_is_deterministic() -> None:
    rng = np.random.default_rng(2)
    x = np.repeat([2000, 4000, 8000, 16000, 20000], 5)
    y = 0.1 + 0.02 * np.log(x) + rng.normal(0, 0.01, x.size)
    slope, lo, hi = bootstrap_slope_ci(x, y, n_boot=4000, seed=7)
    ref = sps.linregress(np.log(x), y)
    assert slope == pytest.approx(ref.slope, rel=1e-12)
    assert lo < 0.02 < hi and lo < slope < hi
    # The percentile CI is close to the normal-theory one.
    assert hi - lo == pytest.approx(2 * 1.96 * ref.stderr, rel=0.35)
    assert bootstrap_slope_ci(x, y, n_boot=4000, seed=7) == (slope, lo, hi)
    _, lo2, hi2 = bootstrap_slope_ci(x, y, n_boot=4000, seed=7, stratified=False)
    assert lo2 < slope < hi2
    flat = bootstrap_slope_ci(x, np.full(x.size, 0.106), n_boot=500, seed=0)
    assert flat == pytest.approx((0.0, 0.0, 0.0), abs=1e-12)


def test_permutation_matches_scipy_paired_case() -> None:
    """One observation per dataset per level: within-level exchange is scipy's paired swap."""
    rng = np.random.default_rng(3)
    x = np.array([50, 100, 200, 500, 1000, 2000, 4000, 8000])
    lx = np.log(x)
    y1 = 0.03 * lx + rng.normal(0, 0.05, x.size)
    y2 = 0.00 * lx + rng.normal(0, 0.05, x.size)

    def stat(a, b, axis=-1):
        c = lx - lx.mean()
        return (a @ c - b @ c) / (c @ c)

    for alternative in ("two-sided", "greater", "less"):
        ours = permutation_test_slopes(
            x, y1, x, y2, n_perm=20000, seed=0, alternative=alternative, center=False
        )
        ref = sps.permutation_test(
            (y1, y2), stat, permutation_type="samples", alternative=alternative,
            n_resamples=np.inf, vectorized=True,
        )  # fmt: skip
        assert ours["diff"] == pytest.approx(ref.statistic, rel=1e-12)
        assert ours["p"] == pytest.approx(ref.pvalue, abs=0.012), alternative
    # Centering shifts each dataset: slopes unchanged; here each level holds one pair so the
    # test equals scipy's on the centred values.
    ours = permutation_test_slopes(x, y1, x, y2, n_perm=20000, seed=1)
    ref = sps.permutation_test(
        (y1 - y1.mean(), y2 - y2.mean()), stat, permutation_type="samples",
        n_resamples=np.inf, vectorized=True,
    )  # fmt: skip
    assert ours["p"] == pytest.approx(ref.pvalue, abs=0.012)


def test_permutation_null_is_calibrated_and_detects_large_difference() -> None:
    rng = np.random.default_rng(4)
    levels = np.array([100, 200, 500, 1000, 4000])
    x = np.repeat(levels, 5)
    pvals = []
    for rep in range(300):
        # Same slope, different baselines: centring makes the datasets exchangeable.
        y1 = 0.2 + 0.02 * np.log(x) + rng.normal(0, 0.03, x.size)
        y2 = 0.02 * np.log(x) + rng.normal(0, 0.03, x.size)
        pvals.append(permutation_test_slopes(x, y1, x, y2, n_perm=199, seed=rep)["p"])
    pvals = np.array(pvals)
    assert 0.01 <= np.mean(pvals <= 0.05) <= 0.10
    assert 0.42 <= pvals.mean() <= 0.58
    assert sps.kstest(pvals, "uniform").pvalue > 1e-3
    y1 = 0.05 * np.log(x) + rng.normal(0, 0.03, x.size)
    y2 = 0.106 + rng.normal(0, 0.03, x.size)
    res = permutation_test_slopes(x, y1, x, y2, n_perm=2000, seed=0)
    assert res["p"] < 0.05 and res["slope_1"] > res["slope_2"]
    assert res["n_shared_levels"] == levels.size


def test_permutation_keeps_unshared_levels_fixed() -> None:
    x1 = np.array([100, 100, 200, 200, 400, 400])
    x2 = np.array([200, 200, 400, 400, 800, 800])
    y1 = np.array([0.1, 0.12, 0.2, 0.22, 0.3, 0.31])
    y2 = np.array([0.1, 0.11, 0.1, 0.12, 0.11, 0.1])
    res = permutation_test_slopes(x1, y1, x2, y2, n_perm=500, seed=0)
    assert res["n_shared_levels"] == 2
    assert 0 < res["p"] <= 1
    with pytest.raises(ValueError, match="two distinct x"):
        permutation_test_slopes([1, 1], [0.1, 0.2], x2, y2)
