"""Diversity dose-response: final-step metric per N, its Spearman trend, a table and a plot."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from analysis.atomic import atomic_path
from analysis.results import final_step, require_columns
from analysis.stats import p_phrase

EXACT_SPEARMAN_MAX_N = 8  # 8! = 40,320 pairings: the exact permutation p in under a second
MC_PERMUTATIONS = 9999


def spearman(x: Any, y: Any, seed: int = 0) -> tuple[float, float]:
    """Spearman rho (average ranks for ties) and a two-sided p that is never 0.

    For n <= EXACT_SPEARMAN_MAX_N pairs the p is exact: scipy's `permutation_test` over all n!
    pairings (rho = 1 over 6 levels: 2/720 = 0.0028, where the t approximation gives 0). Above
    it, scipy's t approximation (as `spearmanr`), except at |rho| = 1 where that underflows to 0
    and a Monte Carlo permutation p over MC_PERMUTATIONS pairings is used instead.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"spearman needs two 1-d arrays of equal length, got {x.shape}, {y.shape}")
    if np.isnan(x).any() or np.isnan(y).any():
        raise ValueError("spearman input contains NaN")
    n = x.size
    rx, ry = _average_ranks(x) - (n + 1) / 2, _average_ranks(y) - (n + 1) / 2
    denom = math.sqrt(float(rx @ rx) * float(ry @ ry))
    if n < 2 or denom == 0.0:  # undefined for a constant input or fewer than two pairs
        return math.nan, math.nan
    rho = float(np.clip((rx @ ry) / denom, -1.0, 1.0))
    if n <= EXACT_SPEARMAN_MAX_N or abs(rho) == 1.0:
        exact = n <= EXACT_SPEARMAN_MAX_N
        res = stats.permutation_test(
            (ry,), lambda r, axis: (r * rx).sum(axis=axis) / denom, permutation_type="pairings",
            vectorized=True, n_resamples=np.inf if exact else MC_PERMUTATIONS,
            random_state=np.random.default_rng(seed), batch=50000,
        )  # fmt: skip
        return rho, float(res.pvalue)
    dof = n - 2
    t = rho * np.sqrt(dof / np.float64((rho + 1.0) * (1.0 - rho)))
    return rho, float(2.0 * stats.t.sf(abs(t), dof))


def diversity_summary(df: pd.DataFrame, split: str, metric: str = "exact_match") -> pd.DataFrame:
    """Per N, the final-step metric across seeds: n_seeds, n_diverged, mean, sd, min, max.

    Diverged seeds are counted in n_diverged and left out of n_seeds and the statistics, as
    `results.tidy_results` (and so `report`) leaves them out.
    """
    final = _final_values(df, split, metric)
    kept = final[~final["diverged"]]
    summary = kept.groupby("n_unique")[metric].agg(
        n_seeds="count", mean="mean", sd=lambda v: v.std(ddof=1), min="min", max="max"
    ).reindex(sorted(final["n_unique"].unique()))
    summary["n_seeds"] = summary["n_seeds"].fillna(0).astype(int)
    summary.insert(1, "n_diverged", final.groupby("n_unique")["diverged"].sum().astype(int))
    return (
        summary.reset_index().rename(columns={"n_unique": "N"}).sort_values("N", ignore_index=True)
    )


def diversity_trend(df: pd.DataFrame, split: str, metric: str = "exact_match") -> dict:
    """Spearman rho/p of the final-step metric vs N, over non-diverged seeds and per-N means."""
    final = _final_values(df, split, metric).dropna(subset=[metric])
    final = final[~final["diverged"]]
    means = final.groupby("n_unique")[metric].mean()
    rho_seeds, p_seeds = spearman(final["n_unique"], final[metric])
    rho_means, p_means = spearman(means.index, means.to_numpy())
    recorded = df.loc[df["split"] == split, "metric"] if "metric" in df.columns else []
    return {
        "split": split,
        "metric": metric,
        # the score column holds each split's own metric, named in the rows' `metric`
        "label": ", ".join(sorted(set(recorded))) if metric == "exact_match" and len(recorded)
        else metric,
        "rho_seeds": rho_seeds,
        "p_seeds": p_seeds,
        "n_seeds": len(final),
        "rho_means": rho_means,
        "p_means": p_means,
        "n_levels": len(means),
    }


def format_summary(summary: pd.DataFrame, trend: dict) -> str:
    """Fixed-width table of the summary (metric in %) followed by the Spearman lines."""
    lines = [
        f"{trend.get('label', trend['metric'])} (%) on split {trend['split']!r} at each seed's "
        "final eval step",
        f"{'N':>8}  {'seeds':>5}  {'diverged':>8}  {'mean':>7}  {'sd':>7}  {'min':>7}  {'max':>7}",
    ]
    for row in summary.itertuples(index=False):
        pct = [_pct(v) for v in (row.mean, row.sd, row.min, row.max)]
        lines.append(
            f"{row.N:>8d}  {row.n_seeds:>5d}  {row.n_diverged:>8d}  "
            + "  ".join(f"{p:>7}" for p in pct)
        )
    lines.append(
        f"Spearman rho vs N: seeds {_num(trend['rho_seeds'])} ({p_phrase(trend['p_seeds'])}, "
        f"n = {trend['n_seeds']}); means {_num(trend['rho_means'])} "
        f"({p_phrase(trend['p_means'])}, {trend['n_levels']} levels)"
    )
    return "\n".join(lines)


def plot_dose_response(
    df: pd.DataFrame,
    split: str,
    path: str | os.PathLike,
    metric: str = "exact_match",
    title: str | None = None,
) -> Path:
    """Write a PNG of per-seed points (jittered) and mean ± sd against log N; return its path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    final = _final_values(df, split, metric).dropna(subset=[metric])
    summary = diversity_summary(df, split, metric)
    jitter = 10 ** np.random.default_rng(0).uniform(-0.04, 0.04, len(final))
    fig = Figure(figsize=(6, 4), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.scatter(final["n_unique"] * jitter, 100 * final[metric], s=14, alpha=0.5, label="seed")
    mean, sd = 100 * summary["mean"], 100 * summary["sd"].fillna(0)
    ax.errorbar(
        summary["N"],
        mean,
        yerr=[mean - (mean - sd).clip(lower=0), (mean + sd).clip(upper=100) - mean],  # in [0, 100]
        marker="o",
        capsize=3,
        color="black",
        label="mean ± sd (clipped to 0-100%)",
    )
    ax.set_xscale("log")
    levels = sorted(final["n_unique"].unique())
    ax.set_xticks(levels, [str(n) for n in levels])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("distinct training examples N")
    ax.set_ylabel("exact match (%)" if metric == "exact_match" else f"{metric} (%)")
    ax.set_title(title if title is not None else _default_title(final, split))
    ax.legend(loc="best")
    fig.tight_layout()
    target = Path(path)
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png")
    return target


def _final_values(df: pd.DataFrame, split: str, metric: str) -> pd.DataFrame:
    """Final-step rows of one split and one benchmark, with a fraction-valued metric checked."""
    require_columns(df, ["split", "n_unique", "benchmark", "diverged", metric], "results table")
    if not pd.api.types.is_numeric_dtype(df[metric]) or pd.api.types.is_bool_dtype(df[metric]):
        raise ValueError(f"results table: metric column {metric!r} is not numeric")
    rows = df[df["split"] == split]
    if rows.empty:
        present = ", ".join(map(repr, sorted(df["split"].unique())))
        raise ValueError(f"results table: no rows for split {split!r} (present: {present})")
    benchmarks = sorted(rows["benchmark"].unique())
    if len(benchmarks) > 1:
        raise ValueError(
            f"results table: split {split!r} mixes benchmarks {benchmarks}; select one first"
        )
    values = rows[metric]
    if ((values < 0) | (values > 1)).any():
        raise ValueError(f"results table: metric column {metric!r} has values outside [0, 1]")
    return final_step(rows)


def _average_ranks(a: np.ndarray) -> np.ndarray:
    """1-based ranks of `a`, tied values sharing the mean of their ranks."""
    order = np.argsort(a, kind="mergesort")
    ordered = a[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], a.size]
    group = np.repeat(np.arange(starts.size), ends - starts)
    ranks = np.empty(a.size)
    ranks[order] = ((starts + 1 + ends) / 2.0)[group]
    return ranks


def _default_title(final: pd.DataFrame, split: str) -> str:
    """Benchmark, split and seed count, so a lone PNG says what it shows."""
    return f"{final['benchmark'].iloc[0]} / {split}: diversity dose-response ({len(final)} runs)"


def _pct(value: float) -> str:
    """A fraction as a percentage with two decimals, '-' when undefined."""
    return "-" if pd.isna(value) else f"{100 * value:.2f}"


def _num(value: float) -> str:
    """A correlation with three decimals, 'n/a' when undefined."""
    return "n/a" if pd.isna(value) else f"{value:+.3f}"
