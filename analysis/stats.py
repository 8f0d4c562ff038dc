"""Inferential statistics for sweep results (NumPy/SciPy; statsmodels for model fits).

- Cell-aware primary models (`PRIMARY_MODEL`; seeds nested in cells): `cell_slope`,
  `cell_slope_difference`, `factorial_cell_model`, `cell_tost`, over `cell_means`.
- `two_way_anova`: type II / III sums of squares with partial eta^2 (E5, E6).
- `tost_ind`: two-sample Welch TOST equivalence test, margin in percentage points (E3, E6).
- `logistic_dose_response`: bounded 4-parameter logistic of EM against log N with R^2 (E4).
- `bootstrap_slope_ci`: seed-level CI of the OLS slope of y on log x (section 4.5).
- `permutation_test_slopes`: slope difference between two datasets, labels exchanged (4.5).
- `p_text` / `p_phrase`: the one p-value formatter (never a bare 0).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, stats

# --------------------------------------------------------------------------- p-value text


def p_text(p: float | None) -> str:
    """A p-value for a table cell: 3 significant digits, '< 1e-300' on underflow, 'n/a' when
    undefined; never a bare '0' (a p-value of exactly 0 is a float underflow, not a value)."""
    if p is None or not np.isfinite(p):
        return "n/a"
    return "< 1e-300" if p <= 0 else f"{p:.3g}"


def p_phrase(p: float | None) -> str:
    """A p-value for running text: 'p = 0.0123', 'p < 1e-300' or 'p = n/a' (never 'p = 0')."""
    text = p_text(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


# --------------------------------------------------------------------------- two-way ANOVA


def two_way_anova(
    df: pd.DataFrame, factor_a: str, factor_b: str, response: str, typ: int = 2
) -> pd.DataFrame:
    """Two-way ANOVA with interaction: rows A, B, A:B, Residual; sum_sq, df, F, p, partial_eta_sq.

    Factors are categorical with sum-to-zero (effect) coding. A complete design (every A x B
    cell observed) goes to statsmodels' ``anova_lm(ols("y ~ C(A, Sum) * C(B, Sum)"), typ=...)``.
    With empty cells statsmodels counts the inestimable interaction columns as degrees of
    freedom (a 6 x 4 design missing one cell gets A:B df 15 instead of 14 and an inflated SS), so
    type II is computed here from rank differences of least-squares fits:
      SS(A) = RSS(B) - RSS(A + B), SS(B) likewise, SS(A:B) = RSS(A + B) - RSS(full);
    and type III is refused: its hypotheses on marginal means are not defined with empty cells.
    partial eta^2 = SS / (SS + SS_residual); eta_ci_lo / eta_ci_hi are its 95% CI by inverting
    the noncentral F (`partial_eta_sq_ci`).
    """
    if typ not in (2, 3):
        raise ValueError(f"two_way_anova: typ must be 2 or 3, got {typ!r}")
    missing = [c for c in (factor_a, factor_b, response) if c not in df.columns]
    if missing:
        raise ValueError(f"two_way_anova: missing columns: {', '.join(missing)}")
    data = df[[factor_a, factor_b, response]].dropna()
    if data[factor_a].nunique() < 2 or data[factor_b].nunique() < 2:
        raise ValueError("two_way_anova: each factor needs at least two levels")
    within = data.groupby([factor_a, factor_b])[response].transform("mean")
    if np.allclose(data[response].to_numpy(float), within.to_numpy(float), rtol=0, atol=1e-15):
        raise ValueError(f"two_way_anova: {response} is constant within every cell (e.g. all "
                         "zero); no residual variance, the F tests and eta^2 are undefined")
    empty = empty_cells(data, factor_a, factor_b)
    if empty and typ == 3:
        raise ValueError(
            f"two_way_anova: type III sums of squares are undefined with empty cells "
            f"({factor_a}, {factor_b}) = {', '.join(map(str, empty[:4]))}; use type II"
        )
    if empty:
        rows = _anova_rank_differences(data, factor_a, factor_b, response)
    else:
        rows = _anova_statsmodels(data, factor_a, factor_b, response, typ)
    out = pd.DataFrame(rows, columns=["effect", "sum_sq", "df", "F", "p"]).set_index("effect")
    ss_res, df_res = out.loc["Residual", "sum_sq"], out.loc["Residual", "df"]
    if not df_res > 0:
        raise ValueError("two_way_anova: no residual degrees of freedom (one row per cell?)")
    effects = out.index != "Residual"
    out["partial_eta_sq"] = np.where(effects, out["sum_sq"] / (out["sum_sq"] + ss_res), np.nan)
    cis = [
        partial_eta_sq_ci(f, d, df_res) if e else (math.nan, math.nan)
        for f, d, e in zip(out["F"], out["df"], effects, strict=True)
    ]
    out["eta_ci_lo"], out["eta_ci_hi"] = zip(*cis, strict=True)
    return out


def empty_cells(df: pd.DataFrame, factor_a: str, factor_b: str) -> list[tuple]:
    """(a, b) level pairs of the full cross with no rows."""
    seen = set(map(tuple, df[[factor_a, factor_b]].drop_duplicates().to_numpy().tolist()))
    return [
        (a, b)
        for a in sorted(df[factor_a].unique())
        for b in sorted(df[factor_b].unique())
        if (a, b) not in seen
    ]


def _anova_statsmodels(
    data: pd.DataFrame, factor_a: str, factor_b: str, response: str, typ: int
) -> list[tuple]:
    """statsmodels anova_lm on a complete design, Sum contrasts; its Intercept row dropped."""
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    frame = pd.DataFrame(
        {"a": data[factor_a].to_numpy(), "b": data[factor_b].to_numpy(),
         "y": data[response].to_numpy(dtype=float)}
    )  # fmt: skip
    table = anova_lm(smf.ols("y ~ C(a, Sum) * C(b, Sum)", frame).fit(), typ=typ)
    names = {"C(a, Sum)": factor_a, "C(b, Sum)": factor_b,
             "C(a, Sum):C(b, Sum)": f"{factor_a}:{factor_b}", "Residual": "Residual"}  # fmt: skip
    return [
        (names[k], float(r["sum_sq"]), float(r["df"]), float(r["F"]), float(r["PR(>F)"]))
        for k, r in table.iterrows()
        if k in names
    ]


def _anova_rank_differences(
    data: pd.DataFrame, factor_a: str, factor_b: str, response: str
) -> list[tuple]:
    """Type II sums of squares from least-squares fits; df = rank differences (empty cells)."""
    y = data[response].to_numpy(dtype=float)
    xa = _sum_coding(data[factor_a].to_numpy())
    xb = _sum_coding(data[factor_b].to_numpy())
    xab = (xa[:, :, None] * xb[:, None, :]).reshape(len(y), -1)
    one = np.ones((len(y), 1))

    def fit(*blocks: np.ndarray) -> tuple[float, int]:
        x = np.hstack(blocks)
        coef, *_ = np.linalg.lstsq(x, y, rcond=None)
        resid = y - x @ coef
        return float(resid @ resid), int(np.linalg.matrix_rank(x))

    rss_full, rank_full = fit(one, xa, xb, xab)
    rss_ab, rank_ab = fit(one, xa, xb)
    rss_b, rank_b = fit(one, xb)
    rss_a, rank_a = fit(one, xa)
    df_res = len(y) - rank_full
    ms_res = rss_full / df_res if df_res > 0 else math.nan
    rows = []
    for name, ss, dof in (
        (factor_a, rss_b - rss_ab, rank_ab - rank_b),
        (factor_b, rss_a - rss_ab, rank_ab - rank_a),
        (f"{factor_a}:{factor_b}", rss_ab - rss_full, rank_full - rank_ab),
    ):
        ss = max(ss, 0.0)
        f = (ss / dof) / ms_res if dof > 0 and ms_res > 0 else math.nan
        p = float(stats.f.sf(f, dof, df_res)) if not math.isnan(f) else math.nan
        rows.append((name, ss, float(dof), f, p))
    rows.append(("Residual", rss_full, float(df_res), math.nan, math.nan))
    return rows


def partial_eta_sq_ci(f: float, df1: float, df2: float, level: float = 0.95) -> tuple[float, float]:
    """CI of partial eta^2 by inverting the noncentral F in its noncentrality (Steiger 2004).

    The bounds on lambda solve P(F' <= f; df1, df2, lambda) = 1 -+ (1 - level)/2, then
    eta^2 = lambda / (lambda + df1 + df2 + 1).
    """
    if not (np.isfinite(f) and df1 > 0 and df2 > 0):
        return math.nan, math.nan

    def bound(target: float) -> float:
        def g(lam: float) -> float:
            return float(stats.ncf.cdf(f, df1, df2, lam)) - target

        if g(0.0) < 0:  # even lambda = 0 puts f above the target quantile
            return 0.0
        hi = max(10.0, f * df1 * 4)
        while g(hi) > 0 and hi < 1e7:
            hi *= 4
        return float(optimize.brentq(g, 0.0, hi)) if g(hi) <= 0 else math.inf

    tail = (1 - level) / 2
    lam_lo, lam_hi = bound(1 - tail), bound(tail)
    return tuple(lam / (lam + df1 + df2 + 1) for lam in (lam_lo, lam_hi))  # type: ignore[return-value]


def holm(pvalues: Any) -> np.ndarray:
    """Holm step-down adjusted p-values (as statsmodels' multipletests "holm"); NaNs stay NaN."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if ok.size:
        order = ok[np.argsort(p[ok], kind="stable")]
        steps = p[order] * np.arange(ok.size, 0, -1)
        out[order] = np.minimum(np.maximum.accumulate(steps), 1.0)
    return out


def _sum_coding(values: np.ndarray) -> np.ndarray:
    """Sum-to-zero contrast columns (n, k-1) for a categorical vector with k sorted levels."""
    levels, codes = np.unique(values, return_inverse=True)
    k = len(levels)
    contrast = np.vstack([np.eye(k - 1), -np.ones((1, k - 1))]) if k > 1 else np.zeros((1, 0))
    return contrast[codes]


# --------------------------------------------------------------------------- TOST


PP = "pp"  # the unit name of values already in percentage points


def pp_scale(metric: str) -> float:
    """Factor that puts values of `metric` in percentage points, from the results schema: 100
    for its fraction columns (`schema.FRACTIONS`), 1 for `PP`; any other name is refused, so
    the unit is never guessed from the values (pp inputs <= 1 were once multiplied by 100)."""
    from analysis.schema import FRACTIONS

    if metric in FRACTIONS:
        return 100.0
    if metric == PP:
        return 1.0
    raise ValueError(f"unknown unit of {metric!r}: a results-schema fraction column "
                     f"({', '.join(FRACTIONS)}) or {PP!r} (percentage points)")


def _in_pp(values: np.ndarray, metric: str, who: str) -> np.ndarray:
    """`values` in percentage points; a fraction column outside [0, 1] is refused."""
    scale = pp_scale(metric)
    if scale == 100.0 and (np.abs(values) > 1).any():
        raise ValueError(f"{who}: {metric} values outside [0, 1] are not fractions; values "
                         f"already in percentage points are metric={PP!r}")
    return scale * values


def tost_ind(a: Any, b: Any, margin_pp: float, metric: str, alpha: float = 0.05) -> dict:
    """Two one-sided Welch t-tests for equivalence of mean(a) and mean(b) within +/- margin_pp.

    `metric` names the unit (`pp_scale`): a results fraction column such as exact_match is put
    in percentage points (x 100), `PP` is taken as is. H0: |mean(a) - mean(b)| >= margin;
    equivalence is supported when p = max(p_lower, p_upper) < alpha, the same as the
    (1 - 2 alpha) Welch CI of the difference lying inside (-margin, margin). The test is
    statsmodels' ``ttost_ind(a_pp, b_pp, -m, m, usevar="unequal")``. Seeds are the unit here:
    a statement about these two cells; `cell_tost` generalises over cells.
    """
    from statsmodels.stats.weightstats import CompareMeans, DescrStatsW, ttost_ind

    x = np.asarray(a, dtype=float)
    z = np.asarray(b, dtype=float)
    if x.ndim != 1 or z.ndim != 1 or x.size < 2 or z.size < 2:
        raise ValueError("tost_ind needs two 1-d samples with at least two values each")
    if not margin_pp > 0:
        raise ValueError(f"tost_ind: margin_pp must be positive, got {margin_pp!r}")
    x, z = _in_pp(x, metric, "tost_ind"), _in_pp(z, metric, "tost_ind")
    va, vb = x.var(ddof=1) / x.size, z.var(ddof=1) / z.size
    if va + vb == 0.0:
        raise ValueError("tost_ind: both samples are constant; the t statistics are undefined")
    p, (t_lower, p_lower, dof), (t_upper, p_upper, _) = ttost_ind(
        x, z, -margin_pp, margin_pp, usevar="unequal"
    )
    ci = CompareMeans(DescrStatsW(x), DescrStatsW(z)).tconfint_diff(
        alpha=2 * alpha, usevar="unequal"
    )
    return {
        "diff_pp": float(x.mean() - z.mean()),
        "se_pp": math.sqrt(va + vb),
        "df": float(dof),
        "margin_pp": float(margin_pp),
        "t_lower": float(t_lower),
        "p_lower": float(p_lower),
        "t_upper": float(t_upper),
        "p_upper": float(p_upper),
        "p": float(p),
        "ci_pp": (float(ci[0]), float(ci[1])),
        "alpha": alpha,
        "equivalent": bool(p < alpha),
    }


def cell_tost(
    rows: pd.DataFrame, factor: str, high: Any, low: Any, block: str, metric: str,
    margin_pp: float, alpha: float = 0.05,
) -> dict:
    """TOST of factor = high vs low over cell means, blocked by `block` (e.g. N): cell-aware.

    Cell means follow the additive model y ~ C(block) + C(factor); the high - low contrast and
    its SE come from that OLS, whose residual (the block x factor interaction) carries the
    cell-to-cell variation, on G - (blocks + levels - 1) df. Equivalence: both one-sided t
    tests reject, i.e. the (1 - 2 alpha) CI lies inside +/- margin_pp. Returns diff_pp, se_pp,
    df, ci_pp, p, equivalent, n_cells.
    """
    means = cell_means(rows, metric, [factor, block])
    means["y"] = _in_pp(means["y"].to_numpy(dtype=float), metric, "cell_tost")
    means["level"] = means[factor].map(lambda v: "high" if v == high else (
        "low" if v == low else f"other_{v}"))  # fmt: skip
    if not {"high", "low"} <= set(means["level"]):
        raise ValueError(f"cell_tost: no cells at {factor} = {high} and {low}")
    res = cell_means_ols(means, "C(level, Treatment('low')) + C(" + block + ")", 1 - 2 * alpha)
    row = res["table"].set_index("term").loc["C(level, Treatment('low'))[T.high]"]
    est, se, dof = float(row["coef"]), float(row["se"]), res["df"]
    if not se > 0:
        raise ValueError("cell_tost: the cell means fit the additive model exactly (no spread)")
    p_lower = float(stats.t.sf((est + margin_pp) / se, dof))
    p_upper = float(stats.t.cdf((est - margin_pp) / se, dof))
    p = max(p_lower, p_upper)
    return {"diff_pp": est, "se_pp": se, "df": dof, "margin_pp": float(margin_pp),
            "ci_pp": (float(row["ci_lo"]), float(row["ci_hi"])), "p": p, "alpha": alpha,
            "equivalent": bool(p < alpha), "n_cells": res["n_cells"]}  # fmt: skip


# --------------------------------------------------------------------------- dose-response


def _logistic(log_n: np.ndarray, lower: float, upper: float, k: float, x0: float) -> np.ndarray:
    return lower + (upper - lower) / (1.0 + np.exp(-k * (log_n - x0)))


FLAT_SPAN = 0.01  # means spanning less than 1 pp carry no dose-response to fit
MAX_K = 100.0  # a slope per log N at this bound is a step: k and N50 are not identifiable


def logistic_dose_response(n: Any, em: Any) -> dict:
    """Fit EM = lower + (upper - lower) / (1 + exp(-k (log N - x0))) by bounded least squares.

    `n` and `em` are paired arrays (per-seed points or per-N means; the caller chooses), EM a
    fraction in [0, 1]. The asymptotes are bounded to [0, 1] and k to [0, MAX_K] (a decreasing
    curve has upper < lower), so no fit reports a floor of -36282 or a mirrored curve. Means
    spanning under FLAT_SPAN (e.g. every level at the floor) are a ValueError: there is no
    curve to fit. Several starting slopes are tried and the lowest residual sum of squares kept.
    Returns lower, upper, k, x0, n50 = exp(x0), SEs, r2, sse, fitted and `identifiable` with
    `why`: False when the midpoint lies outside the observed log N range, k reaches MAX_K (a
    step) or the covariance is not finite; then n50 and k describe no measured transition.
    `at_bound` names the asymptotes the fit holds at 0 or 1 (the data do not pin them).
    """
    n = np.asarray(n, dtype=float)
    y = np.asarray(em, dtype=float)
    if n.ndim != 1 or n.shape != y.shape:
        raise ValueError(
            f"logistic_dose_response: need paired 1-d arrays, got {n.shape}, {y.shape}"
        )
    if (n <= 0).any() or not np.isfinite(n).all() or not np.isfinite(y).all():
        raise ValueError("logistic_dose_response: N must be positive and all values finite")
    if ((y < 0) | (y > 1)).any():
        raise ValueError("logistic_dose_response: EM must be fractions in [0, 1]")
    if np.unique(n).size < 4:
        raise ValueError("logistic_dose_response: needs at least 4 distinct N for 4 parameters")
    if np.ptp(y) < FLAT_SPAN:
        raise ValueError(f"logistic_dose_response: EM spans {100 * np.ptp(y):.2f} pp (< "
                         f"{100 * FLAT_SPAN:g} pp, e.g. every level at the floor): no "
                         "dose-response to fit")
    x = np.log(n)
    span = float(x.max() - x.min())
    bounds = ([0.0, 0.0, 0.0, x.min() - 2 * span], [1.0, 1.0, MAX_K, x.max() + 2 * span])
    best = None
    for k0 in (1.0, 4.0):
        for x0 in (float(np.median(x)), x.min() + span / 4, x.max() - span / 4):
            p0 = [float(y.min()), float(y.max()), k0 * 4.0 / span, x0]
            if y[np.argmin(x)] > y[np.argmax(x)]:  # decreasing: start from upper < lower
                p0[0], p0[1] = p0[1], p0[0]
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optimize.OptimizeWarning)
                    popt, pcov = optimize.curve_fit(_logistic, x, y, p0=p0, bounds=bounds,
                                                    max_nfev=20000)  # fmt: skip
            except RuntimeError:
                continue
            sse = float(np.sum((y - _logistic(x, *popt)) ** 2))
            if best is None or sse < best[0] - 1e-15:
                best = (sse, popt, pcov)
    if best is None:
        raise ValueError("logistic_dose_response: the least-squares fit did not converge")
    sse, popt, pcov = best
    sst = float(np.sum((y - y.mean()) ** 2))
    lower, upper, k, x0 = (float(v) for v in popt)
    finite = bool(np.isfinite(pcov).all())
    se = np.sqrt(np.clip(np.diag(pcov), 0, None)) if finite else np.full(4, np.nan)
    why = ""
    if not x.min() <= x0 <= x.max():
        why = (f"the midpoint N50 = {math.exp(x0):.4g} lies outside the observed N range "
               f"{n.min():g} .. {n.max():g}")
    elif k >= MAX_K * (1 - 1e-6):
        why = "the curve is a step between two adjacent N levels (slope k unbounded)"
    elif not finite:
        why = "the parameter covariance is not finite (too few levels on the rising part)"
    return {
        "lower": lower,
        "upper": upper,
        "k": k,
        "x0": x0,
        "n50": float(np.exp(x0)),
        "se": dict(zip(("lower", "upper", "k", "x0"), map(float, se), strict=True)),
        "r2": 1.0 - sse / sst if sst > 0 else math.nan,
        "sse": sse,
        "n_points": int(y.size),
        "fitted": _logistic(x, *popt),
        "identifiable": not why,
        "why": why,
        "at_bound": [name for name, v in (("lower", lower), ("upper", upper)) if v in (0.0, 1.0)
                     or min(abs(v), abs(1 - v)) < 1e-9],
    }


# --------------------------------------------------------------------------- slopes


def _log_x(x: Any, y: Any, who: str) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"{who}: need paired 1-d arrays, got {x.shape}, {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()) or (x <= 0).any():
        raise ValueError(f"{who}: x must be positive and all values finite")
    if np.unique(x).size < 2:
        raise ValueError(f"{who}: needs at least two distinct x levels for a slope")
    return np.log(x), y


def _slopes(lx: np.ndarray, y: np.ndarray) -> np.ndarray:
    """OLS slopes along the last axis (rows are resamples); NaN where x has no variance."""
    cx = lx - lx.mean(axis=-1, keepdims=True)
    sxx = np.sum(cx * cx, axis=-1)
    sxy = np.sum(cx * y, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sxx > 0, sxy / np.where(sxx > 0, sxx, 1.0), np.nan)


def bootstrap_slope_ci(
    x: Any,
    y: Any,
    n_boot: int = 10000,
    seed: int = 0,
    level: float = 0.95,
    stratified: bool = True,
    method: str = "t",
) -> tuple[float, float, float]:
    """OLS slope of y on log x and its CI, seeds as independent: (slope, lo, hi).

    A sensitivity analysis where seeds are nested in cells (`cell_slope` is the primary there:
    with a random cell effect this interval misses the slope ~30% of the time at 5 cells and 5
    seeds, `tests`). method "t" (default): the OLS t
    interval, slope +- t(n - 2) x SE; at 5 seeds per level it
    keeps ~0.95 coverage where the percentile bootstrap does not (~0.89, `tests`).
    method "percentile" (the paper's): percentile bootstrap; stratified=True resamples seeds
    with replacement within each x level, keeping the level counts; False resamples (x, y)
    pairs, dropping the rare resamples whose x is constant. All resamples are drawn as one
    [n_boot, n] index array.
    """
    lx, y = _log_x(x, y, "bootstrap_slope_ci")
    if not 0 < level < 1:
        raise ValueError(f"bootstrap_slope_ci: level must be in (0, 1), got {level!r}")
    if method not in ("t", "percentile"):
        raise ValueError(f"bootstrap_slope_ci: method must be 't' or 'percentile', got {method!r}")
    slope = float(_slopes(lx, y))
    if method == "t":
        if lx.size < 3:
            raise ValueError("bootstrap_slope_ci: the t interval needs at least 3 points")
        cx = lx - lx.mean()
        resid = y - y.mean() - slope * cx
        se = math.sqrt(float(resid @ resid) / (lx.size - 2) / float(cx @ cx))
        half = float(stats.t.ppf(0.5 + level / 2, lx.size - 2)) * se
        return slope, slope - half, slope + half
    _check_count(n_boot, "n_boot")
    rng = np.random.default_rng(seed)
    n = lx.size
    if stratified:
        order = np.argsort(lx, kind="stable")
        lx, y = lx[order], y[order]
        _, starts, counts = np.unique(lx, return_index=True, return_counts=True)
        group_start = np.repeat(starts, counts)
        group_count = np.repeat(counts, counts)
        idx = group_start + (rng.random((n_boot, n)) * group_count).astype(np.int64)
    else:
        idx = rng.integers(0, n, size=(n_boot, n))
    boot = _slopes(lx[idx], y[idx])
    boot = boot[np.isfinite(boot)]
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(boot, [tail, 100 - tail])
    return slope, float(lo), float(hi)


def _check_count(value: int, name: str) -> None:
    """Resample / permutation counts must be positive integers (0 would give p = 1 or no CI)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def permutation_test_slopes(
    x1: Any,
    y1: Any,
    x2: Any,
    y2: Any,
    n_perm: int = 10000,
    seed: int = 0,
    alternative: str = "two-sided",
    center: bool = True,
) -> dict:
    """Permutation test of slope(y1 on log x1) - slope(y2 on log x2): the paper's scheme.

    Valid only when both datasets share one N grid: with centring and different grids the
    exchanged values are not exchangeable under H0 (size 0.003 at nominal 0.05 for grids
    100..1000 vs 100..10000, `tests`); `slope_difference_test` is the valid default.

    What is permuted: the dataset label of each observation, within each x level present in both
    datasets. At such a level the y values of both datasets are pooled and reassigned at random
    to dataset 1 and dataset 2, keeping the number of observations each dataset has at that
    level; observations at levels only one dataset has stay where they are. With center=True
    (default) each dataset's y is first shifted by its own mean, so datasets with different
    baselines (e.g. a CFQ floor at 0.106) are exchangeable under H0 "equal slopes"; shifts leave
    the observed slopes unchanged. With center=False the raw values are exchanged (H0: identical
    distributions at each level).

    p = (1 + #{permuted statistics at least as extreme}) / (n_perm + 1); "two-sided" compares
    absolute values, "greater"/"less" the signed statistic. Returns the slopes, their
    difference, p and the number of permutations.
    """
    if alternative not in ("two-sided", "greater", "less"):
        raise ValueError(f"permutation_test_slopes: bad alternative {alternative!r}")
    _check_count(n_perm, "n_perm")
    lx1, y1 = _log_x(x1, y1, "permutation_test_slopes (dataset 1)")
    lx2, y2 = _log_x(x2, y2, "permutation_test_slopes (dataset 2)")
    if center:
        y1, y2 = y1 - y1.mean(), y2 - y2.mean()
    s1, s2 = float(_slopes(lx1, y1)), float(_slopes(lx2, y2))
    observed = s1 - s2
    # slope_d = sum_i c_i y_i / Sxx with c the centred log x of dataset d: x positions are fixed,
    # so only which y values sit at dataset 1's and dataset 2's positions changes.
    c1, c2 = lx1 - lx1.mean(), lx2 - lx2.mean()
    w1, w2 = c1 / (c1 @ c1), c2 / (c2 @ c2)
    rng = np.random.default_rng(seed)
    perm = np.full(n_perm, 0.0)
    shared = np.intersect1d(lx1, lx2)
    fixed1 = ~np.isin(lx1, shared)
    fixed2 = ~np.isin(lx2, shared)
    perm += y1[fixed1] @ w1[fixed1] - y2[fixed2] @ w2[fixed2]
    for level in shared:
        i1 = np.flatnonzero(lx1 == level)
        i2 = np.flatnonzero(lx2 == level)
        pooled = np.concatenate([y1[i1], y2[i2]])
        # The weight each pooled slot carries: +w1 at dataset 1's positions, -w2 at dataset 2's.
        weights = np.concatenate([w1[i1], -w2[i2]])
        shuffles = np.argsort(rng.random((n_perm, pooled.size)), axis=1)
        perm += pooled[shuffles] @ weights
    eps = 1e-12 * max(1.0, abs(observed))
    if alternative == "two-sided":
        extreme = np.abs(perm) >= abs(observed) - eps
    elif alternative == "greater":
        extreme = perm >= observed - eps
    else:
        extreme = perm <= observed + eps
    return {
        "slope_1": s1,
        "slope_2": s2,
        "diff": observed,
        "p": float((1 + extreme.sum()) / (n_perm + 1)),
        "n_perm": int(n_perm),
        "alternative": alternative,
        "center": center,
        "n_shared_levels": int(shared.size),
    }


# --------------------------------------------------------------------------- slope difference


def slope_difference_test(
    x1: Any,
    y1: Any,
    x2: Any,
    y2: Any,
    cells1: Any = None,
    cells2: Any = None,
    n_flip: int = 9999,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """Slope(y1 on log x1) - slope(y2 on log x2) from one OLS interaction model, any N grids.

    Model: y = a_d + b_d log x per dataset d (own intercepts and slopes); estimate b_1 - b_2.
    Without `cells*`: HC3 standard error, t interval and t p-value on n - 4 df. With cell labels
    (seeds nested in cells): CR1 cluster-robust SE by cell (as statsmodels' cov_type="cluster")
    on G - 2 df. Either way `p` is a wild bootstrap of the studentized statistic: residuals of
    the H0 model (one common slope) have their signs flipped per seed (or per cell), which is
    exchangeable under H0 whatever the grids, baselines and per-dataset variances; p = (1 +
    #{|t*| >= |t|}) / (n_flip + 1). Size 0.05 and power 0.8+ at a 0.03 slope gap on grids
    100..1000 vs 100..10000 (`tests`); the cell-clustered version needs many cells for power.
    """
    _check_count(n_flip, "n_flip")
    lx1, y1 = _log_x(x1, y1, "slope_difference_test (dataset 1)")
    lx2, y2 = _log_x(x2, y2, "slope_difference_test (dataset 2)")
    if (cells1 is None) != (cells2 is None):
        raise ValueError("slope_difference_test: pass cells for both datasets or for neither")
    groups = None
    if cells1 is not None:
        c1, c2 = _codes(cells1, lx1), _codes(cells2, lx2)
        groups = np.concatenate([c1, c2 + c1.max() + 1])
    design = SlopeDesign(
        np.concatenate([lx1, lx2]), np.r_[np.zeros(lx1.size), np.ones(lx2.size)], groups
    )
    y = np.concatenate([y1, y2])[None, :]
    est, se, t, p_t, p_flip = design.test(y, n_flip, np.random.default_rng(seed))
    half = float(stats.t.ppf(0.5 + level / 2, design.df)) * float(se[0])
    return {
        "slope_1": float(_slopes(lx1, y1)),
        "slope_2": float(_slopes(lx2, y2)),
        "diff": float(est[0]),
        "se": float(se[0]),
        "se_kind": design.kind,
        "t": float(t[0]),
        "df": design.df,
        "ci": (float(est[0]) - half, float(est[0]) + half),
        "p_t": float(p_t[0]),
        "p": float(p_flip[0]),
        "n_flip": int(n_flip),
    }


def _codes(cells: Any, lx: np.ndarray) -> np.ndarray:
    """Integer cluster codes for one dataset's cell labels."""
    labels = np.asarray(cells)
    if labels.shape != lx.shape:
        raise ValueError("slope_difference_test: cells must pair with the x values")
    return np.unique(labels, return_inverse=True)[1]


class SlopeDesign:
    """A fixed two-dataset interaction design, tested for many responses at once.

    `test(Y)` takes Y [D, m] (D responses on the same design) and returns, per row, the slope
    difference, its robust SE (HC3 per seed, or CR1 by cell when `groups` is given), t, the t
    p-value and the wild-bootstrap sign-flip p-value. The design is fixed, so est = Y a and
    residuals are Y - (Y X) (X'X)^-1 X': O(m k) per response and per flip, never m x m.
    """

    def __init__(self, lx: np.ndarray, side: np.ndarray, groups: np.ndarray | None) -> None:
        """lx: log x per observation; side: 0/1 dataset; groups: cell codes 0..G-1 or None."""
        self.x = np.column_stack([1 - side, side, lx * (1 - side), lx * side])
        self.x0 = np.column_stack([1 - side, side, lx])
        m, k = self.x.shape
        if np.linalg.matrix_rank(self.x) < k or m <= k:
            raise ValueError("slope difference: each dataset needs >= 2 distinct x levels")
        self.xtx_inv = np.linalg.inv(self.x.T @ self.x)
        self.x0_pinv = np.linalg.pinv(self.x0)
        self.a = self.x @ self.xtx_inv @ np.array([0.0, 0.0, 1.0, -1.0])  # est = y . a
        if groups is None:
            lev = np.einsum("ij,jk,ik->i", self.x, self.xtx_inv, self.x)
            if (lev > 1 - 1e-9).any():
                raise ValueError("slope difference: a point with leverage 1 (one seed at a level)")
            self.groups, self.weight, self.scale = None, self.a / (1 - lev), 1.0
            self.n_units, self.kind, self.df = m, "HC3", float(m - k)
        else:
            g = int(groups.max()) + 1
            if g < 5:
                raise ValueError("slope difference: needs at least 5 cells to cluster by cell")
            self.groups, self.weight = groups, self.a
            self.indicator = (groups[None, :] == np.arange(g)[:, None]).astype(float)
            self.scale = g / (g - 1) * (m - 1) / (m - k)
            self.n_units, self.kind, self.df = g, "CR1 by cell", float(g - 2)

    def _resid(self, y: np.ndarray) -> np.ndarray:
        """OLS residuals of the full model, row-wise."""
        return y - (y @ self.x) @ self.xtx_inv @ self.x.T

    def _se(self, resid: np.ndarray) -> np.ndarray:
        """Robust SE of the slope difference from full-model residuals, row-wise."""
        u = resid * self.weight
        if self.groups is not None:
            u = u @ self.indicator.T
        return np.sqrt(self.scale * np.sum(u * u, axis=1))

    def t_test(self, y: np.ndarray) -> tuple[np.ndarray, ...]:
        """(est, se, t, p_t), each [D]: the robust t test without resampling."""
        est = y @ self.a
        se = self._se(self._resid(y))
        with np.errstate(divide="ignore", invalid="ignore"):
            t = est / se
        return est, se, t, 2 * stats.t.sf(np.abs(t), self.df)

    def test(
        self, y: np.ndarray, n_flip: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, ...]:
        """(est, se, t, p_t, p_flip), each [D]."""
        est, se, t, p_t = self.t_test(y)
        flips = rng.choice([-1.0, 1.0], size=(n_flip, self.n_units))
        if self.groups is not None:
            flips = flips[:, self.groups]
        r0 = y - (y @ self.x0_pinv.T) @ self.x0.T  # H0 residuals; H0 fits add 0 to est, resid
        extreme = np.empty(y.shape[0])
        for d in range(y.shape[0]):
            e = r0[d] * flips  # [P, m]: a response drawn under H0
            with np.errstate(divide="ignore", invalid="ignore"):
                t_star = (e @ self.a) / self._se(self._resid(e))
            eps = 1e-12 * max(1.0, abs(t[d]))
            extreme[d] = np.sum(np.abs(t_star) >= abs(t[d]) - eps)
        return est, se, t, p_t, (1 + extreme) / (n_flip + 1)


# --------------------------------------------------------------------------- cell-aware models

# The primary model of each design kind, printed in every report; the other models a section
# prints are sensitivity analyses. Seeds inside a cell share its design point (N, E, manifest
# spec), so a cell effect is common to its seeds: these models have one observation per cell
# (the cell mean) and their t tests are exact under a normal random cell effect with equal
# seeds per cell (size 0.05, coverage 0.95 at 5 cells; `tests/test_analysis_stats.py`).
PRIMARY_MODEL = {
    "dose_response": "cell-means OLS of the metric on log N, t on G - 2 df over G cells",
    "factorial": "cell-means OLS on centred log N, log E and log N x log E, t on G - 4 df",
    "equivalence": "TOST on the cell-means additive model N + factor, t on its residual df",
    "between": "per-dataset cell-means slopes on log N, their difference with a Welch t",
}


def cell_means(rows: pd.DataFrame, metric: str, columns: list[str]) -> pd.DataFrame:
    """One row per cell: its design `columns` (constant within the cell), seeds and mean metric."""
    missing = [c for c in ("cell", metric, *columns) if c not in rows.columns]
    if missing:
        raise ValueError(f"cell means: missing columns: {', '.join(missing)}")
    grouped = rows.groupby("cell", sort=True)
    varying = [c for c in columns if (grouped[c].nunique() > 1).any()]
    if varying:
        raise ValueError(f"cell means: {', '.join(varying)} varies within a cell")
    out = grouped[columns].first()
    out["seeds"] = grouped[metric].size()
    out["y"] = grouped[metric].mean()
    return out.reset_index()


def cell_means_ols(cells: pd.DataFrame, formula: str, level: float = 0.95) -> dict:
    """OLS of the cell means (`y` of `cell_means`) by a statsmodels formula; t on G - k df.

    Returns the table (term, coef, se, ci_lo, ci_hi, p), df, n_cells and the fit. Fewer cells
    than parameters + 1 is a ValueError: the cell-level residual variance is not estimable.
    """
    import statsmodels.formula.api as smf

    model = smf.ols(f"y ~ {formula}", cells)
    if np.linalg.matrix_rank(model.exog) < model.exog.shape[1]:
        raise ValueError(f"the cell-level model y ~ {formula} is not estimable from these "
                         f"{len(cells)} cells (its terms are confounded)")
    fit = model.fit()
    if not fit.df_resid >= 1:
        raise ValueError(f"{len(cells)} cells leave no residual df for the cell-level model "
                         f"y ~ {formula}")
    ci = np.asarray(fit.conf_int(alpha=1 - level))
    table = pd.DataFrame({"term": list(fit.params.index), "coef": np.asarray(fit.params),
                          "se": np.asarray(fit.bse), "ci_lo": ci[:, 0], "ci_hi": ci[:, 1],
                          "p": np.asarray(fit.pvalues)})  # fmt: skip
    return {"table": table, "df": float(fit.df_resid), "n_cells": len(cells), "fit": fit}


def factorial_cell_model(rows: pd.DataFrame, metric: str, level: float = 0.95) -> dict:
    """The factorial design's primary model: cell means on centred log N, log E and their
    product (OLS, t on G - 4 df), the cell-level counterpart of `binomial_glm`'s predictor.

    Returns `cell_means_ols`'s dict with terms named log_n, log_e, log_n:log_e and p_holm over
    the three slopes.
    """
    means = cell_means(rows, metric, ["n_unique", "exposure"])
    if len(means) < 5:
        raise ValueError(f"factorial cell model: needs >= 5 cells for 4 parameters (have "
                         f"{len(means)})")
    import statsmodels.api as sm

    ln, le = np.log(means["n_unique"].astype(float)), np.log(means["exposure"].astype(float))
    ln, le = ln - ln.mean(), le - le.mean()
    x = pd.DataFrame({"const": 1.0, "log_n": ln, "log_e": le, "log_n:log_e": ln * le})
    fit = sm.OLS(means["y"], x).fit()
    ci = np.asarray(fit.conf_int(alpha=1 - level))
    table = pd.DataFrame({"term": list(x.columns), "coef": np.asarray(fit.params),
                          "se": np.asarray(fit.bse), "ci_lo": ci[:, 0], "ci_hi": ci[:, 1],
                          "p": np.asarray(fit.pvalues)})  # fmt: skip
    table["p_holm"] = np.r_[np.nan, holm(table["p"].to_numpy()[1:])]
    return {"table": table, "df": float(fit.df_resid), "n_cells": len(means), "fit": fit}


def cell_slope(x: Any, y: Any, cells: Any, level: float = 0.95) -> dict:
    """Slope of y on log x over cell means (seeds nested in cells): slope, se, ci, p, df, G.

    The cell-aware default: a random cell effect inflates the seed-level t test's size to 0.20;
    on cell means the t test on G - 2 df has size 0.05 and its CI covers 0.95 (`tests`).
    """
    lx, y = _log_x(x, y, "cell_slope")
    labels = np.asarray(cells)
    if labels.shape != lx.shape:
        raise ValueError("cell_slope: cells must pair with the x values")
    codes = np.unique(labels, return_inverse=True)[1].ravel()
    g = int(codes.max()) + 1
    seeds = np.bincount(codes, minlength=g)
    cx = np.bincount(codes, lx, g) / seeds
    if np.abs(lx - cx[codes]).max() > 1e-9:
        raise ValueError("cell_slope: N varies within a cell")
    cy = np.bincount(codes, y, g) / seeds
    if g < 3 or np.ptp(cx) == 0:
        raise ValueError(f"cell_slope: needs >= 3 cells over >= 2 N levels (have {g} cells)")
    slope = float(_slopes(cx, cy))
    dx = cx - cx.mean()
    resid = cy - cy.mean() - slope * dx
    dof = g - 2
    se = math.sqrt(float(resid @ resid) / dof / float(dx @ dx))
    if not se > 1e-12 * max(1.0, abs(slope)):
        raise ValueError("cell_slope: the cell means lie exactly on a line (e.g. every cell at "
                         "the floor): no cell-level variance to test against")
    half = float(stats.t.ppf(0.5 + level / 2, dof)) * se
    p = float(2 * stats.t.sf(abs(slope) / se, dof))
    return {"slope": slope, "se": se, "ci": (slope - half, slope + half), "p": p,
            "df": float(dof), "n_cells": g}


def cell_slope_difference(
    x1: Any, y1: Any, cells1: Any, x2: Any, y2: Any, cells2: Any, level: float = 0.95
) -> dict:
    """slope_1 - slope_2 of y on log x, each over its dataset's cell means, with a Welch t.

    Each dataset's slope and SE come from `cell_slope` (t on G_d - 2 df); the difference has
    SE sqrt(se_1^2 + se_2^2) and Welch-Satterthwaite df, so unequal cell-level variances across
    datasets keep the size near 0.05 (`tests`), where CR1 cell-clustered SEs reach 0.11.
    """
    a, b = cell_slope(x1, y1, cells1, level), cell_slope(x2, y2, cells2, level)
    v1, v2 = a["se"] ** 2, b["se"] ** 2
    se = math.sqrt(v1 + v2)
    dof = (v1 + v2) ** 2 / (v1**2 / a["df"] + v2**2 / b["df"])
    diff = a["slope"] - b["slope"]
    half = float(stats.t.ppf(0.5 + level / 2, dof)) * se
    return {"slope_1": a["slope"], "slope_2": b["slope"], "diff": diff, "se": se, "df": dof,
            "ci": (diff - half, diff + half), "p": float(2 * stats.t.sf(abs(diff) / se, dof)),
            "n_cells": (a["n_cells"], b["n_cells"])}  # fmt: skip


# --------------------------------------------------------------------------- binomial GLM


def binomial_glm(
    rows: pd.DataFrame,
    metric: str = "exact_match",
    trials: str = "n_examples",
    cluster: str = "cell",
    level: float = 0.95,
) -> dict:
    """Binomial GLM of per-seed EM: logit E[EM] = b0 + b_N log N + b_E log E + b_NE log N log E.

    EM is bounded and bimodal (floor vs escaped seeds), where a Gaussian ANOVA's residuals are
    not normal; the binomial model respects [0, 1] and, with SEs cluster-robust by `cluster`
    (seeds nested in cells), does not trust the binomial variance either. Each seed's EM is a
    proportion of `trials` eval examples, fitted as (hits, misses) counts. Returns the
    coefficient table (term, coef, se, ci_lo, ci_hi, p, p_holm over the three slopes), the
    median trials, n_clusters and converged.
    """
    import statsmodels.api as sm

    missing = [c for c in ("n_unique", "exposure", metric, trials, cluster) if c not in rows]
    if missing:
        raise ValueError(f"binomial_glm: missing columns: {', '.join(missing)}")
    y = rows[metric].to_numpy(dtype=float)
    ln, le = np.log(rows["n_unique"].to_numpy(float)), np.log(rows["exposure"].to_numpy(float))
    ln, le = ln - ln.mean(), le - le.mean()  # centred, so main effects are at the mean design
    x = np.column_stack([np.ones_like(ln), ln, le, ln * le])
    groups = pd.factorize(rows[cluster])[0]
    if groups.max() + 1 < 5:
        raise ValueError("binomial_glm: needs at least 5 cells for cell-clustered SEs")
    weights = rows[trials].to_numpy(dtype=float)
    hits = np.round(y * weights)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # perfect fits at EM = 0 cells are reported as they are
        fit = sm.GLM(np.column_stack([hits, weights - hits]), x,
                     family=sm.families.Binomial()).fit(
            cov_type="cluster", cov_kwds={"groups": groups})  # fmt: skip
    ci = np.asarray(fit.conf_int(alpha=1 - level))
    names = ["const", "log_n (centred)", "log_e (centred)", "log_n:log_e"]
    table = pd.DataFrame({
        "term": names, "coef": np.asarray(fit.params), "se": np.asarray(fit.bse),
        "ci_lo": ci[:, 0], "ci_hi": ci[:, 1], "p": np.asarray(fit.pvalues),
    })  # fmt: skip
    table["p_holm"] = np.r_[np.nan, holm(table["p"].to_numpy()[1:])]
    return {
        "table": table,
        "trials": int(np.median(weights)),
        "n_clusters": int(groups.max() + 1),
        "converged": bool(fit.converged),
    }
