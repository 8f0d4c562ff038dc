"""Additive decomposition of a high-low gap across linked experiments (SCIENCE.md section 2).

With experiments E1 -> E2 -> ... -> Ek each measuring gap_i = mean(high) - mean(low), the first
gap splits exactly into (gap_1 - gap_2) + (gap_2 - gap_3) + ... + gap_k: for the COGS arc,
E1 -> E2 is the diversity confound, E2 -> E3 the typicality penalty and E3 the coverage effect.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from analysis.results import require_columns

COGS_LABELS = ("diversity confound", "typicality penalty", "coverage")


def additive_decomposition(
    experiments: Sequence[tuple[str, Any, Any]],
    labels: Sequence[str] | None = None,
    n_boot: int = 10000,
    seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    """Gap per experiment and the chain's components in pp, each with a percentile bootstrap CI.

    `experiments` is the ordered chain [(name, high values, low values), ...] of per-seed metric
    fractions. Rows: "gap <name>" per experiment, one row per component (named by `labels`, else
    "<a> -> <b>" and "<last>"), and "total" (their sum, equal to the first gap). Seeds are
    resampled with replacement within each of the 2k cells, all resamples as one index array.
    """
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
        point[i] = means[0][0] - means[1][0]
        boot[:, i] = means[0][1] - means[1][1]
    # components = M @ gaps: differences of consecutive gaps, then the last gap.
    m = np.eye(k) - np.eye(k, k=1)
    estimates = np.concatenate([point, m @ point, [point[0]]]) * 100
    draws = np.hstack([boot, boot @ m.T, boot[:, :1]]) * 100
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(draws, [tail, 100 - tail], axis=0)
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
    by: str = "experiment",
    order: Sequence[str] = ("E1", "E2", "E3"),
    factor: str = "coverage",
    high: str = "high",
    low: str = "low",
    labels: Sequence[str] | None = COGS_LABELS,
    **kwargs: Any,
) -> pd.DataFrame:
    """`additive_decomposition` of per-seed rows tagged with an experiment and a high/low factor."""
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
