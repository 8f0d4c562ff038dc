"""Inferential statistics for sweep results (NumPy/SciPy only; statsmodels is used in tests).

- `two_way_anova`: type II / III sums of squares with partial eta^2 (E5, E6).
- `tost_ind`: two-sample Welch TOST equivalence test, margin in percentage points (E3, E6).
- `logistic_dose_response`: 4-parameter logistic of EM against log N with R^2 (E4).
- `bootstrap_slope_ci`: bootstrap CI of the OLS slope of y on log x (section 4.5).
- `permutation_test_slopes`: slope difference between two datasets, labels exchanged (4.5).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, stats

# --------------------------------------------------------------------------- two-way ANOVA


def two_way_anova(
    df: pd.DataFrame, factor_a: str, factor_b: str, response: str, typ: int = 2
) -> pd.DataFrame:
    """Two-way ANOVA with interaction: rows A, B, A:B, Residual; sum_sq, df, F, p, partial_eta_sq.

    Factors are treated as categorical (levels sorted). Sums of squares come from least-squares
    fits with sum-to-zero (effect) coding:
      type II:  SS(A) = RSS(B) - RSS(A + B), SS(B) likewise, SS(A:B) = RSS(A + B) - RSS(full);
      type III: SS(effect) = RSS(full without that effect's columns) - RSS(full).
    Effect degrees of freedom are rank differences of the design matrices, so empty cells of an
    unbalanced design are handled. partial eta^2 = SS / (SS + SS_residual). Matches statsmodels'
    ``anova_lm(ols("y ~ C(A, Sum) * C(B, Sum)"), typ=...)`` (its type III Intercept row is
    omitted here).
    """
    if typ not in (2, 3):
        raise ValueError(f"two_way_anova: typ must be 2 or 3, got {typ!r}")
    missing = [c for c in (factor_a, factor_b, response) if c not in df.columns]
    if missing:
        raise ValueError(f"two_way_anova: missing columns: {', '.join(missing)}")
    data = df[[factor_a, factor_b, response]].dropna()
    y = data[response].to_numpy(dtype=float)
    xa = _sum_coding(data[factor_a].to_numpy())
    xb = _sum_coding(data[factor_b].to_numpy())
    xab = (xa[:, :, None] * xb[:, None, :]).reshape(len(y), -1)
    one = np.ones((len(y), 1))
    if xa.shape[1] == 0 or xb.shape[1] == 0:
        raise ValueError("two_way_anova: each factor needs at least two levels")

    def fit(*blocks: np.ndarray) -> tuple[float, int]:
        x = np.hstack(blocks)
        coef, *_ = np.linalg.lstsq(x, y, rcond=None)
        resid = y - x @ coef
        return float(resid @ resid), int(np.linalg.matrix_rank(x))

    rss_full, rank_full = fit(one, xa, xb, xab)
    if typ == 2:
        rss_ab, rank_ab = fit(one, xa, xb)
        rss_b, rank_b = fit(one, xb)
        rss_a, rank_a = fit(one, xa)
        reduced = {
            factor_a: (rss_b - rss_ab, rank_ab - rank_b),
            factor_b: (rss_a - rss_ab, rank_ab - rank_a),
            f"{factor_a}:{factor_b}": (rss_ab - rss_full, rank_full - rank_ab),
        }
    else:
        reduced = {}
        for name, blocks in (
            (factor_a, (one, xb, xab)),
            (factor_b, (one, xa, xab)),
            (f"{factor_a}:{factor_b}", (one, xa, xb)),
        ):
            rss, rank = fit(*blocks)
            reduced[name] = (rss - rss_full, rank_full - rank)
    df_res = len(y) - rank_full
    if df_res <= 0:
        raise ValueError("two_way_anova: no residual degrees of freedom (one row per cell?)")
    ms_res = rss_full / df_res
    rows = []
    for name, (ss, dof) in reduced.items():
        ss = max(ss, 0.0)
        f = (ss / dof) / ms_res if dof > 0 and ms_res > 0 else math.nan
        p = float(stats.f.sf(f, dof, df_res)) if not math.isnan(f) else math.nan
        eta = ss / (ss + rss_full) if ss + rss_full > 0 else math.nan
        rows.append((name, ss, float(dof), f, p, eta))
    rows.append(("Residual", rss_full, float(df_res), math.nan, math.nan, math.nan))
    out = pd.DataFrame(rows, columns=["effect", "sum_sq", "df", "F", "p", "partial_eta_sq"])
    return out.set_index("effect")


def _sum_coding(values: np.ndarray) -> np.ndarray:
    """Sum-to-zero contrast columns (n, k-1) for a categorical vector with k sorted levels."""
    levels, codes = np.unique(values, return_inverse=True)
    k = len(levels)
    contrast = np.vstack([np.eye(k - 1), -np.ones((1, k - 1))]) if k > 1 else np.zeros((1, 0))
    return contrast[codes]


# --------------------------------------------------------------------------- TOST


def tost_ind(a: Any, b: Any, margin_pp: float, alpha: float = 0.05) -> dict:
    """Two one-sided Welch t-tests for equivalence of mean(a) and mean(b) within +/- margin_pp.

    `a` and `b` are EM fractions in [0, 1]; they are converted to percentage points (x 100)
    before testing, so `margin_pp` = 3 means +/- 3 pp. H0: |mean(a) - mean(b)| >= margin;
    equivalence is supported when p = max(p_lower, p_upper) < alpha, which is the same as the
    (1 - 2 alpha) Welch confidence interval of the difference lying inside (-margin, margin).
    Matches ``statsmodels.stats.weightstats.ttost_ind(100a, 100b, -m, m, usevar="unequal")``.
    """
    x = 100.0 * np.asarray(a, dtype=float)
    z = 100.0 * np.asarray(b, dtype=float)
    if x.ndim != 1 or z.ndim != 1 or x.size < 2 or z.size < 2:
        raise ValueError("tost_ind needs two 1-d samples with at least two values each")
    if not margin_pp > 0:
        raise ValueError(f"tost_ind: margin_pp must be positive, got {margin_pp!r}")
    va, vb = x.var(ddof=1) / x.size, z.var(ddof=1) / z.size
    se = math.sqrt(va + vb)
    diff = float(x.mean() - z.mean())
    if se == 0.0:
        raise ValueError("tost_ind: both samples are constant; the t statistics are undefined")
    dof = (va + vb) ** 2 / (va**2 / (x.size - 1) + vb**2 / (z.size - 1))
    t_lower = (diff + margin_pp) / se
    t_upper = (diff - margin_pp) / se
    p_lower = float(stats.t.sf(t_lower, dof))
    p_upper = float(stats.t.cdf(t_upper, dof))
    half = float(stats.t.ppf(1 - alpha, dof)) * se
    p = max(p_lower, p_upper)
    return {
        "diff_pp": diff,
        "se_pp": se,
        "df": float(dof),
        "margin_pp": float(margin_pp),
        "t_lower": float(t_lower),
        "p_lower": p_lower,
        "t_upper": float(t_upper),
        "p_upper": p_upper,
        "p": p,
        "ci_pp": (diff - half, diff + half),
        "alpha": alpha,
        "equivalent": bool(p < alpha),
    }


# --------------------------------------------------------------------------- dose-response


def _logistic(log_n: np.ndarray, lower: float, upper: float, k: float, x0: float) -> np.ndarray:
    return lower + (upper - lower) / (1.0 + np.exp(-k * (log_n - x0)))


def logistic_dose_response(n: Any, em: Any) -> dict:
    """Fit EM = lower + (upper - lower) / (1 + exp(-k (log N - x0))) by least squares; R^2.

    `n` and `em` are paired arrays (per-seed points or per-N means; the caller chooses). Several
    starting slopes are tried and the lowest residual sum of squares kept. Returns lower, upper,
    k, x0, n50 = exp(x0) (the N at the midpoint), r2 = 1 - SS_res / SS_tot, SEs from the
    covariance and the fitted values.
    """
    n = np.asarray(n, dtype=float)
    y = np.asarray(em, dtype=float)
    if n.ndim != 1 or n.shape != y.shape:
        raise ValueError(
            f"logistic_dose_response: need paired 1-d arrays, got {n.shape}, {y.shape}"
        )
    if (n <= 0).any() or not np.isfinite(n).all() or not np.isfinite(y).all():
        raise ValueError("logistic_dose_response: N must be positive and all values finite")
    if np.unique(n).size < 4:
        raise ValueError("logistic_dose_response: needs at least 4 distinct N for 4 parameters")
    x = np.log(n)
    span = float(x.max() - x.min())
    best = None
    for k0 in (0.5, 1.0, 2.0, 5.0, -1.0):
        p0 = [float(y.min()), float(y.max()), k0 * 4.0 / span, float(np.median(x))]
        if k0 < 0:
            p0[0], p0[1] = p0[1], p0[0]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optimize.OptimizeWarning)
                popt, pcov = optimize.curve_fit(_logistic, x, y, p0=p0, maxfev=20000)
        except RuntimeError:
            continue
        sse = float(np.sum((y - _logistic(x, *popt)) ** 2))
        if best is None or sse < best[0]:
            best = (sse, popt, pcov)
    if best is None:
        raise ValueError("logistic_dose_response: the least-squares fit did not converge")
    sse, popt, pcov = best
    sst = float(np.sum((y - y.mean()) ** 2))
    lower, upper, k, x0 = (float(v) for v in popt)
    se = np.sqrt(np.clip(np.diag(pcov), 0, None)) if np.isfinite(pcov).all() else np.full(4, np.nan)
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
) -> tuple[float, float, float]:
    """OLS slope of y on log x and its percentile bootstrap CI: (slope, lo, hi).

    stratified=True (default, for designs with fixed x levels such as N sweeps) resamples the
    observations (seeds) with replacement within each x level, keeping the level counts; False
    resamples (x, y) pairs over the whole data set, dropping the rare resamples whose x is
    constant. All resamples are drawn as one [n_boot, n] index array.
    """
    lx, y = _log_x(x, y, "bootstrap_slope_ci")
    if not 0 < level < 1:
        raise ValueError(f"bootstrap_slope_ci: level must be in (0, 1), got {level!r}")
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
    slope = float(_slopes(lx, y))
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(boot, [tail, 100 - tail])
    return slope, float(lo), float(hi)


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
    """Permutation test of slope(y1 on log x1) - slope(y2 on log x2).

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
