"""analysis.escape: mixture audit, escape regression, convergence steps."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

from analysis.escape import (
    bimodality,
    convergence_step,
    escape_regression,
    escaped_converge_later,
    label_escapes,
    within_cell_permutation,
)


def test_bimodal_cell_is_split_into_floor_and_escaped() -> None:
    res = bimodality([0.004, 0.011, 0.0, 0.31, 0.28])
    assert res["k"] == 2 and res["bimodal"]
    assert res["bic_2"] < res["bic_1"]
    assert res["labels"] == ["floor", "floor", "floor", "escaped", "escaped"]
    assert res["means"][0] < 0.02 < 0.25 < res["means"][1]
    assert min(res["sds"]) >= 0.01  # the variance floor holds


@pytest.mark.parametrize(
    "values",
    [
        [0.30, 0.32, 0.28, 0.35, 0.31],  # one escaped mode
        [0.005, 0.007, 0.006, 0.004, 0.006],  # one floor mode
        [0.01, 0.01, 0.01, 0.01, 0.01],  # identical seeds
        [0.20, 0.21, 0.20, 0.22, 0.21],  # two pairs of ties: no infinite likelihood
    ],
)
def test_unimodal_cells_are_not_bimodal(values: list[float]) -> None:
    res = bimodality(values)
    assert res["k"] == 1 and not res["bimodal"]
    expected = "escaped" if np.mean(values) > 0.05 else "floor"
    assert res["labels"] == [expected] * len(values)


def test_small_cells_and_bad_input() -> None:
    assert bimodality([0.0, 0.5, 0.5])["k"] == 1  # below min_n
    with pytest.raises(ValueError, match="finite"):
        bimodality([0.1, math.nan])
    with pytest.raises(ValueError, match="floor"):
        bimodality([0.1, 0.2], floor=0)


def test_two_component_fit_matches_direct_likelihood_maximisation() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0.02, 0.015, 30), rng.normal(0.4, 0.05, 20)])
    floor = 0.001
    res = bimodality(x, floor=floor)

    def nll(theta: np.ndarray) -> float:
        w = 1 / (1 + np.exp(-theta[0]))
        mu = theta[1:3]
        sd = floor + np.exp(theta[3:5])
        comp = np.stack(
            [np.log(1 - w) + stats.norm.logpdf(x, mu[0], sd[0]),
             np.log(w) + stats.norm.logpdf(x, mu[1], sd[1])]
        )  # fmt: skip
        return -float(np.logaddexp(comp[0], comp[1]).sum())

    start = np.array([0.0, 0.1, 0.3, np.log(0.05), np.log(0.05)])
    opt = optimize.minimize(nll, start, method="Nelder-Mead",
                            options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 40000,
                                     "maxfev": 40000})  # fmt: skip
    assert res["loglik_2"] >= -opt.fun - 1e-6
    assert res["loglik_2"] == pytest.approx(-opt.fun, abs=1e-4)
    w = 1 / (1 + np.exp(-opt.x[0]))
    np.testing.assert_allclose(res["weights"], [1 - w, w], atol=1e-3)
    np.testing.assert_allclose(res["means"], opt.x[1:3], atol=1e-3)
    np.testing.assert_allclose(res["sds"], floor + np.exp(opt.x[3:5]), atol=1e-3)
    assert res["bic_2"] == pytest.approx(-2 * res["loglik_2"] + 5 * math.log(x.size))
    mle_sd = x.std()
    assert res["loglik_1"] == pytest.approx(stats.norm.logpdf(x, x.mean(), mle_sd).sum())


def test_escape_regression_recovers_planted_coefficients() -> None:
    rng = np.random.default_rng(1)
    n_levels = np.array([100, 250, 500, 1000, 2000, 4000])
    e_levels = np.array([100, 400, 1600, 6400])
    n, e = (a.ravel() for a in np.meshgrid(n_levels, e_levels))
    n, e = np.repeat(n, 150), np.repeat(e, 150)
    b0, bn, be = -30.0, 3.7, 1.1
    eta = b0 + bn * np.log(n) + be * np.log(e)
    escaped = rng.random(n.size) < 1 / (1 + np.exp(-eta))
    df = pd.DataFrame({"n_unique": n, "exposure": e, "escaped": escaped})
    res = escape_regression(df)
    for name, truth in (("const", b0), ("log_n", bn), ("log_e", be)):
        assert res["coef"][name] == pytest.approx(truth, abs=3.5 * res["se"][name]), name
        lo, hi = res["ci"][name]
        assert lo < res["coef"][name] < hi
    assert res["coef"]["log_n"] == pytest.approx(bn, rel=0.15)
    assert res["coef"]["log_e"] == pytest.approx(be, rel=0.2)
    assert res["n"] == n.size and res["converged"]
    with pytest.raises(ValueError, match="same outcome"):
        escape_regression(df.assign(escaped=True))


def test_convergence_step() -> None:
    assert convergence_step([0, 100, 200, 300], [0.0, 0.1, 0.28, 0.3]) == 200
    assert convergence_step([300, 0, 200, 100], [0.3, 0.0, 0.28, 0.1]) == 200  # unsorted
    assert convergence_step([0, 100, 200], [0.0, 0.3, 0.3], fraction=1.0) == 100
    assert convergence_step([0, 100], [0.0, 0.0]) == 0  # a flat floor converges at once
    with pytest.raises(ValueError, match="duplicate"):
        convergence_step([0, 0], [0.1, 0.2])


def _curves() -> pd.DataFrame:
    """Hand-built: 3 escaped seeds converge at 300-400, 3 floor seeds at 100."""
    steps = [0, 100, 200, 300, 400]
    curves = {
        ("c500", 0, True): [0.0, 0.02, 0.1, 0.3, 0.31],  # -> 300
        ("c500", 1, True): [0.0, 0.01, 0.05, 0.2, 0.32],  # -> 400
        ("c1000", 0, True): [0.0, 0.05, 0.1, 0.35, 0.36],  # -> 300
        ("c500", 2, False): [0.0, 0.01, 0.01, 0.01, 0.01],  # -> 100
        ("c1000", 1, False): [0.0, 0.02, 0.02, 0.02, 0.02],  # -> 100
        ("c1000", 2, False): [0.0, 0.0, 0.01, 0.0, 0.0],  # final 0 -> 0
    }
    rows = [
        (cell, seed, "gen", s, v, esc)
        for (cell, seed, esc), vals in curves.items()
        for s, v in zip(steps, vals, strict=True)
    ]
    return pd.DataFrame(rows, columns=["cell", "seed", "split", "step", "exact_match", "escaped"])


def test_escaped_converge_later_on_hand_built_table() -> None:
    res = escaped_converge_later(_curves())
    table = res["per_seed"].set_index(["cell", "seed"])["convergence_step"]
    assert table[("c500", 0)] == 300 and table[("c500", 1)] == 400
    assert table[("c1000", 2)] == 0 and table[("c500", 2)] == 100
    ref = stats.mannwhitneyu([300, 400, 300], [100, 100, 0], alternative="greater")
    assert res["u"] == 9.0 == ref.statistic
    assert res["p"] == pytest.approx(ref.pvalue)
    assert res["n_escaped"] == 3 and res["n_floor"] == 3
    assert res["median_step_escaped"] == 300 and res["median_step_floor"] == 100
    bad = _curves()
    bad.loc[0, "escaped"] = False
    with pytest.raises(ValueError, match="varies within"):
        escaped_converge_later(bad)


def test_two_modes_above_threshold_are_both_escaped() -> None:
    res = bimodality([0.30, 0.31, 0.30, 0.60, 0.61])
    assert res["k"] == 2 and res["labels"] == ["escaped"] * 5


def test_label_escapes_per_cell_at_final_step() -> None:
    final = {
        "c500": [0.004, 0.011, 0.0, 0.31, 0.28],  # bimodal
        "c4000": [0.30, 0.32, 0.28, 0.35, 0.31],  # all escaped
        "c100": [0.005, 0.007, 0.006, 0.004, 0.006],  # all floor
    }
    n_of = {"c500": 500, "c4000": 4000, "c100": 100}
    rows = [
        (cell, seed, split, step, n_of[cell], 400.0, v * step / 200)
        for cell, vals in final.items()
        for seed, v in enumerate(vals)
        for step in (100, 200)
        for split in ("gen", "test")
    ]
    df = pd.DataFrame(
        rows, columns=["cell", "seed", "split", "step", "n_unique", "exposure", "exact_match"]
    )
    labels = label_escapes(df, "gen").set_index(["cell", "seed"])
    assert len(labels) == 15
    assert list(labels.loc["c500", "escaped"]) == [False, False, False, True, True]
    assert labels.loc["c4000", "escaped"].all() and not labels.loc["c100", "escaped"].any()
    assert list(labels["cell_k"].groupby(level="cell").first().sort_index()) == [1, 1, 2]
    assert labels.loc[("c500", 3), "exact_match"] == 0.31  # final step, not the earlier one
    with pytest.raises(ValueError, match="no rows for split"):
        label_escapes(df, "other")


def test_item5_single_level_is_refused_and_no_warning_leaks() -> None:
    """One N level: the log N coefficient is unidentified (the old fit returned SE 3.7e7, p = 1)."""
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"n_unique": 500, "exposure": np.repeat([100, 400, 1600], 10),
                       "escaped": rng.random(30) < 0.5})  # fmt: skip
    with pytest.raises(ValueError, match="'n_unique' has a single level"):
        escape_regression(df)
    import warnings

    with warnings.catch_warnings():  # a fit on two N levels runs without any leaked warning
        warnings.simplefilter("error")
        two = df.assign(n_unique=np.tile([500, 1000], 15))
        assert escape_regression(two)["converged"]


def test_escape_regression_clusters_by_cell() -> None:
    import statsmodels.api as sm

    rng = np.random.default_rng(3)
    n, e = (a.ravel() for a in np.meshgrid([100, 300, 1000, 3000], [100, 400, 1600]))
    cell_effect = np.repeat(rng.normal(0, 1.0, n.size), 20)
    n, e = np.repeat(n, 20), np.repeat(e, 20)
    eta = -9 + 1.0 * np.log(n) + 0.3 * np.log(e) + cell_effect
    df = pd.DataFrame({"n_unique": n, "exposure": e, "cell": np.repeat(np.arange(12), 20),
                       "escaped": rng.random(n.size) < 1 / (1 + np.exp(-eta))})  # fmt: skip
    res = escape_regression(df)
    x = sm.add_constant(np.column_stack([np.log(n), np.log(e)]))
    ref = sm.Logit(df["escaped"].astype(float), x).fit(
        disp=0, cov_type="cluster", cov_kwds={"groups": df["cell"]})  # fmt: skip
    assert res["se"]["log_n"] == pytest.approx(np.asarray(ref.bse)[1], rel=1e-6)
    assert "cluster-robust by cell (12 clusters)" == res["se_kind"]
    naive = escape_regression(df, cluster=None)
    assert naive["se_kind"] == "model-based" and naive["se"]["log_n"] < res["se"]["log_n"]


def test_item6_convergence_is_compared_within_run_length() -> None:
    """Nothing planted: every seed converges at a uniform fraction of its own run, but escapes
    happen in the long cells. Absolute steps call escaped seeds 'later' (the old test); the
    fraction of the run does not."""
    rng = np.random.default_rng(0)
    rows = []
    for cell, last, p_escape in (("short", 400, 0.1), ("long", 1600, 0.9)):
        steps = np.linspace(0, last, 9).astype(int)
        for seed in range(20):
            escaped = bool(rng.random() < p_escape)
            reach = steps[rng.integers(1, 9)]
            final = 0.3 if escaped else 0.01
            for s in steps:
                rows.append((cell, seed, s, final * min(1.0, s / reach), escaped))
    df = pd.DataFrame(rows, columns=["cell", "seed", "step", "exact_match", "escaped"])
    res = escaped_converge_later(df)
    table = res["per_seed"]
    absolute = stats.mannwhitneyu(table.loc[table["escaped"], "convergence_step"],
                                  table.loc[~table["escaped"], "convergence_step"],
                                  alternative="greater")  # fmt: skip
    assert absolute.pvalue < 0.01
    assert res["p"] > 0.05
    assert (table["step_fraction"] == table["convergence_step"] / table["last_step"]).all()


def test_fractional_escape_outcome_matches_statsmodels_glm() -> None:
    """Posterior P(escaped) as the outcome: a fractional logit with cluster-robust SEs."""
    import statsmodels.api as sm

    rng = np.random.default_rng(7)
    n, e = (a.ravel() for a in np.meshgrid([100, 300, 1000, 3000], [100, 400, 1600]))
    n, e = np.repeat(n, 10), np.repeat(e, 10)
    p = 1 / (1 + np.exp(-(-9 + 1.0 * np.log(n) + 0.3 * np.log(e))))
    soft = np.clip(p + rng.normal(0, 0.1, n.size), 0, 1)
    df = pd.DataFrame({"n_unique": n, "exposure": e, "p_escaped": soft,
                       "cell": np.repeat(np.arange(12), 10)})  # fmt: skip
    res = escape_regression(df, escaped="p_escaped")
    x = sm.add_constant(np.column_stack([np.log(n), np.log(e)]))
    ref = sm.GLM(soft, x, family=sm.families.Binomial()).fit(
        cov_type="cluster", cov_kwds={"groups": df["cell"]})  # fmt: skip
    np.testing.assert_allclose(list(res["coef"].values()), ref.params, rtol=1e-6)
    np.testing.assert_allclose(list(res["se"].values()), ref.bse, rtol=1e-6)
    assert res["coef"]["log_n"] == pytest.approx(1.0, abs=0.3)


def test_within_cell_convergence_test_holds_size_under_a_cell_effect() -> None:
    """Issue 30: a cell effect that raises both the escape rate and the convergence fraction
    makes the pooled Mann-Whitney test reject 'escaped converge later' with no within-cell
    link; the within-cell permutation keeps its size in [0.03, 0.07] and detects a real one."""
    rng = np.random.default_rng(4)
    cells = np.repeat(np.arange(12), 5)
    reps, within, pooled, power = 300, 0, 0, 0
    for _ in range(reps):
        u = rng.normal(0, 1, 12)[cells]
        flags = rng.random(cells.size) < 1 / (1 + np.exp(-2 * u))
        if flags.all() or not flags.any():
            flags[0] = not flags[0]
        values = 0.5 + 0.1 * u + rng.normal(0, 0.05, cells.size)
        within += within_cell_permutation(cells, flags, values, 499, seed=1)["p_within"] <= 0.05
        mwu = stats.mannwhitneyu(values[flags], values[~flags], alternative="greater")
        pooled += mwu.pvalue <= 0.05
        power += within_cell_permutation(cells, flags, values + 0.05 * flags, 499,
                                         seed=1)["p_within"] <= 0.05  # fmt: skip
    assert 0.03 <= within / reps <= 0.07 and pooled / reps > 0.5 and power / reps > 0.5
