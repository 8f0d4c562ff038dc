"""Escape analysis (E5): which seeds leave the accuracy floor, what predicts it, when they converge.

- `bimodality`: 1- vs 2-component Gaussian mixture on a cell's per-seed EM, chosen by BIC, with
  per-seed floor / escaped labels. The mixture is fitted by EM written here in NumPy.
- `label_escapes`: `bimodality` applied to every cell of a results table (final eval step).
- `escape_regression`: logistic regression of P(escape) on log N and log E (statsmodels Logit).
- `convergence_step` / `escaped_converge_later`: first eval step reaching a fraction of the
  seed's final EM, and tests that escaped seeds get there later: within cells (stratified
  permutation, primary) and a one-sided Mann-Whitney U over all seeds (sensitivity).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from analysis.results import final_step, require_columns

FLOOR, ESCAPED = "floor", "escaped"
_LOG_2PI = math.log(2 * math.pi)


# --------------------------------------------------------------------------- mixture


def _normal_logpdf(x: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    return -0.5 * _LOG_2PI - np.log(sd) - 0.5 * ((x - mu) / sd) ** 2


def _fit_two(
    x: np.ndarray, sd_floor: float, n_iter: int = 500, tol: float = 1e-10
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """Best 2-component fit over deterministic starts: (loglik, weights, means, sds).

    Starts: every split of the sorted values into a lower and an upper group. The M-step's
    standard deviations are max(MLE, sd_floor): the exact maximiser under the constraint
    sd >= sd_floor, so every iteration still increases the (bounded) likelihood. All starts
    run as one [starts, n, 2] array; each stops (is frozen) at its own convergence.
    """
    xs = np.sort(x)
    up = (x[None, :] >= xs[1:, None]).astype(float)  # [cuts, n]: upper group of each split
    up = up[(up.sum(axis=1) > 0) & (up.sum(axis=1) < x.size)]
    resp = np.stack([1.0 - up, up], axis=2)  # [S, n, 2]
    n_starts = resp.shape[0]
    prev = np.full(n_starts, -np.inf)
    active = np.ones(n_starts, dtype=bool)
    ll_out = np.empty(n_starts)
    w_out, mu_out, sd_out = (np.empty((n_starts, 2)) for _ in range(3))
    for _ in range(n_iter):
        r = resp[active]
        nk = r.sum(axis=1)  # [A, 2]
        w = nk / x.size
        mu = (r * x[None, :, None]).sum(axis=1) / np.maximum(nk, 1e-300)
        var = (r * (x[None, :, None] - mu[:, None, :]) ** 2).sum(axis=1) / np.maximum(nk, 1e-300)
        sd = np.maximum(np.sqrt(var), sd_floor)
        with np.errstate(divide="ignore"):
            joint = np.log(w)[:, None, :] + _normal_logpdf(x[None, :, None], mu[:, None, :],
                                                          sd[:, None, :])  # fmt: skip
        total = np.logaddexp(joint[..., 0], joint[..., 1])
        ll = total.sum(axis=1)
        idx = np.flatnonzero(active)
        ll_out[idx], w_out[idx], mu_out[idx], sd_out[idx] = ll, w, mu, sd
        resp[idx] = np.exp(joint - total[..., None])
        done = ll - prev[idx] < tol * np.maximum(1.0, np.abs(ll))
        prev[idx] = ll
        active[idx[done]] = False
        if not active.any():
            break
    best = 0
    for i in range(1, n_starts):
        if ll_out[i] > ll_out[best] + 1e-12:
            best = i
    return float(ll_out[best]), w_out[best], mu_out[best], sd_out[best]


def bimodality(values: Any, floor: float = 0.01, threshold: float = 0.05, min_n: int = 4) -> dict:
    """Mixed-mode audit of one cell: do its per-seed EM values form one mode or two?

    `values` are per-seed EM fractions. `floor` is the smallest standard deviation a mixture
    component may have (default 0.01 = 1 pp, about the binomial noise of EM on ~1000 eval
    examples): without it, a component sitting on two identical seeds has infinite likelihood
    and BIC would always pick two modes at n = 5.

    Decision rule: BIC = -2 log L + p log n with p = 2 (one Gaussian) or 5 (two: 2 means, 2 sds,
    1 weight). k = 2 is chosen iff n >= min_n, BIC_2 < BIC_1 and both components receive at least
    one seed by maximum posterior; otherwise k = 1. The 2-component fit is the best of EM runs
    started from every split of the sorted values (deterministic, no random restarts).

    Power at n = 5 (1000 simulated cells each, floor = 0.01): 3 seeds near 0 + 2 near 30% ->
    bimodal 100%; 3 near 0 + 2 near 10% -> 98%; 5 seeds from N(30%, 3 pp) -> 18% false
    positives, N(30%, 8 pp) -> 50% (floor = 0.02: 1% / 30%, but 61% power at 10%). Such false
    positives are two escaped modes, so they do not change the floor/escaped labels below.

    Labels: each mode (a component when k = 2, the whole cell when k = 1) is "escaped" when its
    mean exceeds `threshold` (default 0.05 = 5 pp), else "floor"; a seed takes the label of the
    mode holding it by maximum posterior. So a bimodal cell with one mode near 0 and one at 30%
    splits into floor and escaped seeds, while two modes both above the threshold (or both below)
    give every seed the same label.

    Returns k, bimodal, bic_1, bic_2, loglik_1, loglik_2, the 2-component parameters
    (weights, means, sds; lower-mean component first), labels and p_escaped (the posterior
    probability that the seed sits in an escaped mode; 0/1 for k = 1).
    """
    x = np.asarray(values, dtype=float).ravel()
    if x.size == 0 or not np.isfinite(x).all():
        raise ValueError("bimodality: needs a non-empty array of finite values")
    if not floor > 0:
        raise ValueError(f"bimodality: floor (minimum component sd) must be positive, got {floor}")
    n = x.size
    sd1 = max(float(x.std()), floor)
    ll1 = float(_normal_logpdf(x, x.mean(), sd1).sum())
    bic1 = -2 * ll1 + 2 * math.log(n)
    out: dict[str, Any] = {
        "n": n,
        "k": 1,
        "bimodal": False,
        "bic_1": bic1,
        "bic_2": math.nan,
        "loglik_1": ll1,
        "loglik_2": math.nan,
        "weights": None,
        "means": None,
        "sds": None,
        "floor": floor,
        "threshold": threshold,
    }
    post = None
    if n >= max(min_n, 2) and np.unique(x).size >= 2:
        ll2, w, mu, sd = _fit_two(x, floor)
        order = np.argsort(mu)
        w, mu, sd = w[order], mu[order], sd[order]
        bic2 = -2 * ll2 + 5 * math.log(n)
        with np.errstate(divide="ignore"):
            joint = np.log(w) + _normal_logpdf(x[:, None], mu, sd)
        post = np.exp(joint[:, 1] - np.logaddexp(joint[:, 0], joint[:, 1]))
        upper = post > 0.5
        out.update(bic_2=bic2, loglik_2=ll2, weights=w.tolist(), means=mu.tolist(), sds=sd.tolist())
        if bic2 < bic1 and 0 < upper.sum() < n:
            out.update(k=2, bimodal=True)
    if out["k"] == 2:
        up_esc, low_esc = mu[1] > threshold, mu[0] > threshold
        p_escaped = post * up_esc + (1 - post) * low_esc
        labels = np.where(np.where(post > 0.5, up_esc, low_esc), ESCAPED, FLOOR)
    else:
        escaped = bool(x.mean() > threshold)
        p_escaped = np.full(n, float(escaped))
        labels = np.full(n, ESCAPED if escaped else FLOOR)
    out["labels"] = labels.tolist()
    out["p_escaped"] = p_escaped.tolist()
    return out


def label_escapes(
    df: pd.DataFrame,
    split: str,
    metric: str = "exact_match",
    floor: float = 0.01,
    threshold: float = 0.05,
) -> pd.DataFrame:
    """One row per (cell, seed) at its final eval step on `split`, with `bimodality` per cell.

    Columns: cell, seed, n_unique, exposure, <metric>, label, escaped (bool), p_escaped (the
    mixture's posterior probability of the escaped mode), cell_k.
    """
    require_columns(
        df, ["cell", "seed", "split", "step", "n_unique", "exposure", metric], "results table"
    )
    rows = df[df["split"] == split]
    if rows.empty:
        raise ValueError(f"results table: no rows for split {split!r}")
    final = final_step(rows)[["cell", "seed", "n_unique", "exposure", metric]].copy()
    final = final.sort_values(["cell", "seed"], ignore_index=True)
    labels, ks, probs = [], [], []
    for _, group in final.groupby("cell", sort=False):
        fit = bimodality(group[metric].to_numpy(), floor=floor, threshold=threshold)
        labels += fit["labels"]
        probs += fit["p_escaped"]
        ks += [fit["k"]] * len(group)
    final["label"] = labels
    final["escaped"] = final["label"] == ESCAPED
    final["p_escaped"] = probs
    final["cell_k"] = ks
    return final


# --------------------------------------------------------------------------- regression


def escape_regression(
    df: pd.DataFrame,
    escaped: str = "escaped",
    n_col: str = "n_unique",
    e_col: str = "exposure",
    level: float = 0.95,
    cluster: str | None = "cell",
) -> dict:
    """Logistic regression logit P(escape) = b0 + b_N log N + b_E log E (natural logs).

    `df` has one row per seed: a boolean/0-1 `escaped` column and positive N and E columns (e.g.
    the output of `label_escapes`). A fractional outcome in [0, 1] (e.g. `p_escaped`, the
    mixture's posterior, so label uncertainty is carried into the fit) is fitted as a
    fractional logit (binomial GLM quasi-likelihood, Papke-Wooldridge), with robust SEs.
    Seeds are nested in cells, so SEs are cluster-robust by the `cluster` column when it is
    present (statsmodels cov_type="cluster"; None: model-based, or HC0 when fractional).
    Each of N and E needs >= 2 levels (one level leaves its coefficient unidentified; the fit
    would return a huge SE with p = 1). Returns coef, se, ci (Wald, at `level`), p per term
    ("const", "log_n", "log_e"), se_kind, n, n_escaped, loglik, McFadden's pseudo R^2 and
    converged (a non-converged fit is an error, never a silent warning).
    """
    import statsmodels.api as sm
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    require_columns(df, [escaped, n_col, e_col], "escape table")
    y = df[escaped].to_numpy().astype(float)
    if not ((y >= 0) & (y <= 1)).all():
        raise ValueError(f"escape table: column {escaped!r} must be boolean or in [0, 1]")
    fractional = not np.isin(y, [0.0, 1.0]).all()
    n = df[n_col].to_numpy(dtype=float)
    e = df[e_col].to_numpy(dtype=float)
    if (n <= 0).any() or (e <= 0).any():
        raise ValueError(f"escape table: {n_col!r} and {e_col!r} must be positive")
    for col, v in ((n_col, n), (e_col, e)):
        if np.unique(v).size < 2:
            raise ValueError(f"escape table: {col!r} has a single level; its effect is not "
                             "identified")  # fmt: skip
    if y.min() == y.max():
        raise ValueError("escape table: every seed has the same outcome; nothing to regress")
    names = ["const", "log_n", "log_e"]
    x = np.column_stack([np.ones_like(n), np.log(n), np.log(e)])
    kwargs: dict[str, Any] = {"cov_type": "HC0"} if fractional else {}
    se_kind = "robust (HC0)" if fractional else "model-based"
    if cluster is not None and cluster in df.columns and df[cluster].nunique() >= 2:
        groups = pd.factorize(df[cluster])[0]
        kwargs = {"cov_type": "cluster", "cov_kwds": {"groups": groups}}
        se_kind = f"cluster-robust by {cluster} ({int(groups.max()) + 1} clusters)"
    model = (sm.GLM(y, x, family=sm.families.Binomial()) if fractional
             else sm.Logit(y, x))  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        try:
            fit = (model.fit(maxiter=200, **kwargs) if fractional
                   else model.fit(disp=0, maxiter=200, **kwargs))  # fmt: skip
        except ConvergenceWarning as err:
            raise ValueError(f"escape_regression: logistic fit did not converge ({err})") from None
        except Exception as err:  # statsmodels raises on perfect separation
            raise ValueError(f"escape_regression: logistic fit failed: {err}") from err
    params, bse = np.asarray(fit.params), np.asarray(fit.bse)
    converged = bool(fit.converged if fractional else fit.mle_retvals.get("converged", True))
    if not converged:
        raise ValueError("escape_regression: logistic fit did not converge")
    if not (np.isfinite(params).all() and np.isfinite(bse).all()) or (np.abs(params) > 50).any():
        raise ValueError(
            "escape_regression: coefficients diverge (outcome perfectly separated by log N, "
            "log E); the maximum-likelihood estimate does not exist"
        )
    ci = np.asarray(fit.conf_int(alpha=1 - level))
    pvals = np.asarray(fit.pvalues)
    return {
        "coef": dict(zip(names, map(float, params), strict=True)),
        "se": dict(zip(names, map(float, bse), strict=True)),
        "ci": {k: (float(lo), float(hi)) for k, (lo, hi) in zip(names, ci, strict=True)},
        "p": dict(zip(names, map(float, pvals), strict=True)),
        "se_kind": se_kind,
        "level": level,
        "n": int(y.size),
        "n_escaped": float(y.sum()) if fractional else int(y.sum()),
        "loglik": float(fit.llf),
        "pseudo_r2": float(fit.pseudo_rsquared("mcf") if fractional else fit.prsquared),
        "converged": converged,
    }


# --------------------------------------------------------------------------- convergence


def convergence_step(curve_steps: Any, curve_values: Any, fraction: float = 0.9) -> int:
    """First eval step whose value reaches `fraction` x the curve's final (last-step) value.

    Steps need not be sorted. A curve whose final value is <= 0 reaches it at its first step.
    """
    steps = np.asarray(curve_steps)
    values = np.asarray(curve_values, dtype=float)
    if steps.ndim != 1 or steps.shape != values.shape or steps.size == 0:
        raise ValueError("convergence_step: need paired non-empty 1-d step and value arrays")
    if not np.isfinite(values).all():
        raise ValueError("convergence_step: curve values must be finite")
    if np.unique(steps).size != steps.size:
        raise ValueError("convergence_step: duplicate eval steps in one curve")
    order = np.argsort(steps, kind="stable")
    steps, values = steps[order], values[order]
    target = fraction * values[-1]
    return int(steps[np.flatnonzero(values >= target)[0]])


def within_cell_permutation(
    cells: np.ndarray, flags: np.ndarray, values: np.ndarray, n_perm: int = 9999, seed: int = 0
) -> dict:
    """One-sided stratified permutation test that flagged seeds have larger values than the
    unflagged seeds of their own cell: the cell-aware comparison.

    Statistic: mean over flagged seeds of (value - its cell's mean), from cells holding both
    kinds (others carry no within-cell contrast). Flags are permuted within each such cell,
    exact under H0 whatever the cell effects; p = (1 + #{T* >= T}) / (n_perm + 1). A random
    cell effect that raises both the escape rate and the value leaves its size at alpha, where
    the pooled Mann-Whitney test's rises (`tests`). Returns p_within, diff_within,
    n_mixed_cells.
    """
    if isinstance(n_perm, bool) or not isinstance(n_perm, int) or n_perm < 1:
        raise ValueError(f"n_perm must be a positive integer, got {n_perm!r}")
    codes = np.unique(cells, return_inverse=True)[1].ravel()
    n_cells = int(codes.max()) + 1
    size = np.bincount(codes, minlength=n_cells)
    flagged = np.bincount(codes, flags.astype(float), n_cells)
    mixed = (flagged > 0) & (flagged < size)
    keep = mixed[codes]
    if not keep.any():
        return {"p_within": math.nan, "diff_within": math.nan, "n_mixed_cells": 0}
    codes, flags, values = codes[keep], flags[keep], values[keep]
    centred = values - (np.bincount(codes, values, n_cells) / np.maximum(size, 1))[codes]
    n_flag = int(flags.sum())
    observed = float(centred[flags].sum()) / n_flag
    rng = np.random.default_rng(seed)
    order = np.argsort(codes, kind="stable")
    codes, flags, centred = codes[order], flags[order], centred[order]
    keys = codes[None, :] * 2.0 + rng.random((n_perm, codes.size))  # shuffle inside each cell
    perm = flags[np.argsort(keys, axis=1)]
    null = (perm * centred[None, :]).sum(axis=1) / n_flag
    eps = 1e-12 * max(1.0, abs(observed))
    p = float((1 + np.sum(null >= observed - eps)) / (n_perm + 1))
    return {"p_within": p, "diff_within": observed, "n_mixed_cells": int(mixed.sum())}


def escaped_converge_later(
    df: pd.DataFrame,
    split: str | None = None,
    metric: str = "exact_match",
    escaped: str = "escaped",
    fraction: float = 0.9,
    n_perm: int = 9999,
    seed: int = 0,
) -> dict:
    """Do escaped seeds converge later in their runs than floor seeds? Within cells (primary),
    and by a one-sided Mann-Whitney U test over all seeds (sensitivity).

    `df` holds eval curves: one row per (cell, seed, step) with `metric`, and a per-seed boolean
    `escaped` column (constant within a seed; join `label_escapes` onto the results table).
    When a `split` column is present and holds several splits, `split` selects one. Cells differ
    in length (E x N / batch steps), so the compared quantity is the convergence step as a
    fraction of the seed's last eval step: absolute steps would call escaped seeds "later"
    merely because escapes happen in the longer cells. Seeds share their cell's design point,
    so cells that escape more can also converge later for reasons of their own: the primary
    p_within is `within_cell_permutation` (labels exchanged only inside cells). Returns
    p_within, diff_within, n_mixed_cells, u and p (Mann-Whitney, alternative "greater"),
    counts, median fractions and steps, and the per-seed table.
    """
    require_columns(df, ["cell", "seed", "step", metric, escaped], "curve table")
    rows = df
    if split is not None:
        require_columns(df, ["split"], "curve table")
        rows = df[df["split"] == split]
    elif "split" in df.columns and df["split"].nunique() > 1:
        raise ValueError("curve table: several splits present; pass split=")
    if rows.empty:
        raise ValueError(f"curve table: no rows for split {split!r}")
    per_seed = []
    for (cell, seed), g in rows.groupby(["cell", "seed"], sort=True):
        flags = g[escaped].unique()
        if len(flags) != 1:
            raise ValueError(f"curve table: {escaped!r} varies within cell {cell!r} seed {seed}")
        step = convergence_step(g["step"].to_numpy(), g[metric].to_numpy(), fraction)
        last = int(g["step"].max())
        if last <= 0:
            raise ValueError(f"curve table: cell {cell!r} seed {seed} has no step > 0")
        per_seed.append((cell, seed, bool(flags[0]), step, last, step / last))
    table = pd.DataFrame(
        per_seed,
        columns=["cell", "seed", "escaped", "convergence_step", "last_step", "step_fraction"],
    )
    esc = table.loc[table["escaped"], "step_fraction"].to_numpy(dtype=float)
    flo = table.loc[~table["escaped"], "step_fraction"].to_numpy(dtype=float)
    if esc.size == 0 or flo.size == 0:
        raise ValueError("curve table: needs at least one escaped and one floor seed")
    res = stats.mannwhitneyu(esc, flo, alternative="greater")
    within = within_cell_permutation(table["cell"].to_numpy(), table["escaped"].to_numpy(bool),
                                     table["step_fraction"].to_numpy(float), n_perm, seed)
    return {
        **within,
        "u": float(res.statistic),
        "p": float(res.pvalue),
        "alternative": "greater",
        "n_escaped": int(esc.size),
        "n_floor": int(flo.size),
        "median_fraction_escaped": float(np.median(esc)),
        "median_fraction_floor": float(np.median(flo)),
        "median_step_escaped": float(table.loc[table["escaped"], "convergence_step"].median()),
        "median_step_floor": float(table.loc[~table["escaped"], "convergence_step"].median()),
        "fraction": fraction,
        "per_seed": table,
    }
