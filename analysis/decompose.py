"""Additive decomposition of a high-low gap across linked experiments (SCIENCE.md section 2).

With experiments E1 -> E2 -> ... -> Ek each measuring gap_i = mean(high) - mean(low), the first
gap splits exactly into (gap_1 - gap_2) + (gap_2 - gap_3) + ... + gap_k: for the COGS arc,
E1 -> E2 is the diversity confound, E2 -> E3 the typicality penalty and E3 the coverage effect.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from analysis.results import require_columns

COGS_LABELS = ("diversity confound", "typicality penalty", "coverage")


def additive_decomposition(
    experiments: Sequence[tuple[str, Any, Any]],
    labels: Sequence[str] | None = None,
    n_boot: int = 10000,
    seed: int = 0,
    level: float = 0.95,
    method: str = "t",
) -> pd.DataFrame:
    """Gap per experiment and the chain's components in pp, each with a CI.

    `experiments` is the ordered chain [(name, high values, low values), ...] of per-seed metric
    fractions. Rows: "gap <name>" per experiment, one row per component (named by `labels`, else
    "<a> -> <b>" and "<last>"), and "total" (their sum, equal to the first gap).
    method "t" (default): every row is a linear combination sum_c w_c mean_c of the 2k
    independent cell means; its CI is estimate +- t(nu) SE with SE^2 = sum w_c^2 s_c^2 / n_c and
    Welch-Satterthwaite nu, ~0.95 coverage at 3-5 seeds per cell. method "percentile" (the
    paper's): percentile bootstrap, seeds resampled within each cell (under-covers at 5 seeds,
    ~0.89). Both are in `tests`.
    """
    if method not in ("t", "percentile"):
        raise ValueError(f"additive_decomposition: method 't' or 'percentile', not {method!r}")
    if n_boot < 1:
        raise ValueError(f"additive_decomposition: n_boot must be >= 1, got {n_boot}")
    if len(experiments) < 2:
        raise ValueError("additive_decomposition: needs a chain of at least two experiments")
    k = len(experiments)
    names = [str(e[0]) for e in experiments]
    labels = list(labels) if labels is not None else [
        *(f"{a} -> {b}" for a, b in zip(names, names[1:], strict=False)), names[-1]
    ]  # fmt: skip
    if len(labels) != k:
        raise ValueError(f"additive_decomposition: {k} experiments need {k} labels")
    rng = np.random.default_rng(seed)
    point = np.empty(k)
    boot = np.empty((n_boot, k))
    var = np.empty(2 * k)  # s_c^2 / n_c per cell, high then low per experiment
    dof = np.empty(2 * k)
    for i, (name, high, low) in enumerate(experiments):
        means = []
        for arm, values in (("high", high), ("low", low)):
            v = np.asarray(values, dtype=float).ravel()
            if v.size < 2 or not np.isfinite(v).all():
                raise ValueError(
                    f"additive_decomposition: experiment {name!r} {arm} arm needs >= 2 finite "
                    f"values, got {v.size}"
                )
            means.append((v.mean(), v[rng.integers(0, v.size, (n_boot, v.size))].mean(axis=1)))
            j = 2 * i + (arm == "low")
            var[j], dof[j] = v.var(ddof=1) / v.size, v.size - 1
        point[i] = means[0][0] - means[1][0]
        boot[:, i] = means[0][1] - means[1][1]
    # components = M @ gaps: differences of consecutive gaps, then the last gap.
    m = np.eye(k) - np.eye(k, k=1)
    estimates = np.concatenate([point, m @ point, [point[0]]]) * 100
    draws = np.hstack([boot, boot @ m.T, boot[:, :1]]) * 100
    tail = (1 - level) / 2 * 100
    if method == "percentile":
        lo, hi = np.percentile(draws, [tail, 100 - tail], axis=0)
    else:
        gap_w = np.kron(np.eye(k), [1.0, -1.0])  # gaps = gap_w @ cell means
        weights = np.vstack([gap_w, m @ gap_w, gap_w[:1]])
        terms = weights**2 * var  # [rows, cells]
        se = np.sqrt(terms.sum(axis=1))
        with np.errstate(divide="ignore", invalid="ignore"):
            nu = terms.sum(axis=1) ** 2 / (terms**2 / dof).sum(axis=1)
        half = stats.t.ppf(0.5 + level / 2, np.where(np.isfinite(nu), nu, 1.0)) * se * 100
        lo, hi = estimates - half, estimates + half
    return pd.DataFrame(
        {
            "term": [f"gap {n}" for n in names] + labels + ["total"],
            "kind": ["gap"] * k + ["component"] * k + ["total"],
            "estimate_pp": estimates,
            "ci_lo_pp": lo,
            "ci_hi_pp": hi,
        }
    )


def decomposition_from_frame(
    frame: pd.DataFrame,
    metric: str = "exact_match",
    by: str = "factor_experiment",
    order: Sequence[str] = ("E1", "E2", "E3"),
    factor: str = "factor_coverage",
    high: str = "high",
    low: str = "low",
    labels: Sequence[str] | None = COGS_LABELS,
    **kwargs: Any,
) -> pd.DataFrame:
    """`additive_decomposition` of per-seed rows tagged with an experiment and a high/low factor.

    Column names follow the results schema: design factors are the sweep's factor_* columns.
    """
    require_columns(frame, [by, factor, metric], "decomposition input")
    experiments = []
    for name in order:
        rows = frame[frame[by].astype(str) == name]
        arms = [rows.loc[rows[factor].astype(str) == v, metric].to_numpy() for v in (high, low)]
        if rows.empty or min(a.size for a in arms) == 0:
            raise ValueError(
                f"decomposition input: experiment {name!r} needs rows with {factor} = "
                f"{high!r} and {low!r}"
            )
        experiments.append((name, *arms))
    return additive_decomposition(experiments, labels=labels, **kwargs)


def decomposition_from_sweeps(
    sweeps: Mapping[str, str | os.PathLike],
    split: str,
    metric: str = "exact_match",
    where: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> pd.DataFrame:
    """The E1 -> E2 -> E3 decomposition from the three sweeps' outputs (one results dir each).

    `sweeps` maps experiment name -> its results (a sweep root or sweep_results.csv), in chain
    order. Each is read and tidied (final step of `split`, diverged/NaN seeds excluded) and
    tagged factor_experiment = name; `where` keeps rows with factor_<name> == level (e.g.
    {"difficulty": "easy"} for the easy-split headline). Then `decomposition_from_frame`.
    """
    from analysis.results import read_results, tidy_results

    frames = []
    for name, path in sweeps.items():
        tidy = tidy_results(read_results(path), split, metric)
        rows = tidy.frame.assign(factor_experiment=name)
        for key, level in (where or {}).items():
            col = f"factor_{key}"
            require_columns(rows, [col], f"{path}")
            rows = rows[rows[col].astype(str) == str(level)]
        frames.append(rows)
    frame = pd.concat(frames, ignore_index=True)
    return decomposition_from_frame(frame, metric, order=tuple(sweeps), **kwargs)
