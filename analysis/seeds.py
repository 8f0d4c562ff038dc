"""Seed-count threshold (SCIENCE.md section 5): permutation-test power against seeds per cell.

From cells trained with up to 50 seeds, draw n seeds per cell many times (n = 5 ... 50), run the
permutation test of each contrast on every draw, and report the share that rejects at alpha: the
power. The smallest n with power >= 0.8 is the contrast's seed-count threshold.

Every contrast is a linear statistic T = w . y of the per-seed metric y, with permutations that
exchange y within blocks. Permuting y by pi is the same as permuting the weights by pi^-1, so one
[n_perm, m] matrix of permuted weights serves every draw: T for all draws and permutations is a
single matrix product [draws, m] @ [m, n_perm].
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.atomic import atomic_path
from analysis.results import require_columns
from analysis.stats import SlopeDesign

DEFAULT_NS = tuple(range(5, 51, 5))
TARGET_POWER = 0.8


@dataclasses.dataclass(frozen=True)
class Contrast:
    """Cells in a fixed order, and how to turn one value per seed of each into T and its nulls.

    kind "between": slope(metric on log N) of dataset a - of dataset b, tested by
    `stats.slope_difference_test` (OLS interaction, HC3, wild-bootstrap sign flips: valid when
    the datasets' N grids differ, where the paper's centred label exchange is not).
    kind "within": slope on log N of one dataset; values permuted across all its seeds.
    kind "cells": mean(cell a) - mean(cell b); labels permuted.
    """

    name: str
    kind: str
    cells: tuple[str, ...]
    log_n: tuple[float, ...]
    side: tuple[int, ...]  # 0 / 1: which dataset or arm each cell belongs to


def default_contrasts(frame: pd.DataFrame) -> list[Contrast]:
    """Every dataset's diversity slope and dataset pair's slope difference (>= 2 N levels), and in
    a factorial N x E design the largest vs smallest exposure at each N (cell contrasts)."""
    require_columns(frame, ["benchmark", "cell", "n_unique"], "power input")
    cells = frame.drop_duplicates("cell")[["benchmark", "cell", "n_unique"]]
    cells = cells.sort_values(["benchmark", "n_unique", "cell"])
    by = {b: g for b, g in cells.groupby("benchmark") if g["n_unique"].nunique() >= 2}
    out = []
    for b, g in by.items():
        out.append(_contrast(f"{b}: diversity slope", "within", [g]))
    for a, b in itertools.combinations(sorted(by), 2):
        out.append(_contrast(f"{a} vs {b}: slope difference", "between", [by[a], by[b]]))
    if "exposure" in frame.columns:  # factorial N x E: the exposure contrast at each N
        expo = frame.drop_duplicates("cell")[["benchmark", "cell", "n_unique", "exposure"]]
        for (b, n), g in expo.groupby(["benchmark", "n_unique"]):
            if g["exposure"].nunique() >= 2:
                g = g.sort_values("exposure")
                lo, hi = g.iloc[0], g.iloc[-1]
                out.append(cell_contrast(
                    f"{b}: E {hi['exposure']:g} vs {lo['exposure']:g} at N = {n:g}",
                    hi["cell"], lo["cell"]))  # fmt: skip
    return out


def cell_contrast(name: str, cell_a: str, cell_b: str) -> Contrast:
    """Mean of cell_a minus mean of cell_b (e.g. q99 vs q1 within a dataset)."""
    return Contrast(name, "cells", (cell_a, cell_b), (0.0, 0.0), (0, 1))


def _contrast(name: str, kind: str, groups: list[pd.DataFrame]) -> Contrast:
    """A slope contrast over one or two datasets' cells."""
    cells = [c for g in groups for c in g["cell"]]
    log_n = [math.log(n) for g in groups for n in g["n_unique"]]
    side = [i for i, g in enumerate(groups) for _ in range(len(g))]
    return Contrast(name, kind, tuple(cells), tuple(log_n), tuple(side))


def _weights(c: Contrast, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Observed weights w [m] and exchange blocks [m] of a within / cells contrast, n per cell."""
    lx = np.repeat(np.asarray(c.log_n), n)
    side = np.repeat(np.asarray(c.side), n)
    w = np.zeros(lx.size)
    for s in np.unique(side):
        m = side == s
        if c.kind == "cells":
            w[m] = 1.0 / m.sum()
        else:
            cx = lx[m] - lx[m].mean()
            w[m] = cx / (cx @ cx)
    w[side == 1] *= -1.0
    return w, np.zeros(lx.size, dtype=np.int64)


def _permuted_weights(
    w: np.ndarray, blocks: np.ndarray, n_perm: int, rng: np.random.Generator
) -> np.ndarray:
    """[n_perm, m]: w with its entries shuffled within each block, independently per row."""
    # Sort key: block first, random within it, so each block's positions are reshuffled in place.
    order = np.argsort(blocks, kind="stable")
    keys = blocks[None, :] * 2.0 + rng.random((n_perm, blocks.size))
    perm = np.argsort(keys, axis=1)
    out = np.empty((n_perm, w.size))
    np.put_along_axis(out, np.broadcast_to(order, perm.shape), w[perm], axis=1)
    return out


def power_curves(
    frame: pd.DataFrame,
    metric: str = "exact_match",
    contrasts: Sequence[Contrast] | None = None,
    ns: Sequence[int] = DEFAULT_NS,
    n_draws: int = 400,
    n_perm: int = 400,
    alpha: float = 0.05,
    replace: bool = True,
    seed: int = 0,
) -> pd.DataFrame:
    """Power of each contrast's permutation test at each n: rows contrast, kind, n, power, se.

    `frame` has one row per (cell, seed) with cell, `metric` (and benchmark, n_unique for the
    default contrasts). replace=True draws seeds with replacement (a bootstrap: n may exceed a
    cell's seed count, and the largest n is not one fixed sample); replace=False subsamples
    without replacement and leaves power NaN where n exceeds a cell's seeds. p = (1 + #{|T_perm|
    >= |T|}) / (n_perm + 1); reject when p <= alpha.
    """
    require_columns(frame, ["cell", metric], "power input")
    for name, value in (("n_draws", n_draws), ("n_perm", n_perm)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"power_curves: {name} must be a positive integer, got {value!r}")
    if frame[metric].isna().any():
        raise ValueError(f"power input: {metric} has NaN values; exclude those seeds first")
    contrasts = list(contrasts) if contrasts is not None else default_contrasts(frame)
    values = {c: g[metric].to_numpy(dtype=float) for c, g in frame.groupby("cell")}
    rng = np.random.default_rng(seed)
    rows = []
    for c in contrasts:
        unknown = [cell for cell in c.cells if cell not in values]
        if unknown:
            raise ValueError(f"power input: contrast {c.name!r} names unknown cells {unknown}")
        few = [cell for cell in c.cells if values[cell].size < 2]
        if few:
            raise ValueError(f"power input: contrast {c.name!r} needs >= 2 seeds in {few}")
        for n in ns:
            if not replace and any(values[cell].size < n for cell in c.cells):
                rows.append((c.name, c.kind, n, math.nan, math.nan))
                continue
            y = np.hstack([_draw(values[cell], n, n_draws, replace, rng) for cell in c.cells])
            if c.kind == "between":
                lx = np.repeat(np.asarray(c.log_n), n)
                side = np.repeat(np.asarray(c.side, dtype=float), n)
                p = SlopeDesign(lx, side, None).test(y, n_perm, rng)[4]
                reject = p <= alpha
            else:
                w, blocks = _weights(c, n)
                t_obs = y @ w
                t_perm = y @ _permuted_weights(w, blocks, n_perm, rng).T
                eps = 1e-12 * np.maximum(1.0, np.abs(t_obs))
                extreme = (np.abs(t_perm) >= (np.abs(t_obs) - eps)[:, None]).sum(axis=1)
                reject = (1 + extreme) / (n_perm + 1) <= alpha
            power = float(reject.mean())
            rows.append((c.name, c.kind, n, power, math.sqrt(power * (1 - power) / n_draws)))
    return pd.DataFrame(rows, columns=["contrast", "kind", "n", "power", "se"])


def _draw(
    v: np.ndarray, n: int, n_draws: int, replace: bool, rng: np.random.Generator
) -> np.ndarray:
    """[n_draws, n] seeds of one cell, with or without replacement."""
    if replace:
        return v[rng.integers(0, v.size, (n_draws, n))]
    return v[np.argsort(rng.random((n_draws, v.size)), axis=1)[:, :n]]


def thresholds(curves: pd.DataFrame, target: float = TARGET_POWER) -> pd.DataFrame:
    """Per contrast, the smallest n whose power reaches `target` (NaN: not reached), max power."""
    rows = []
    for (name, kind), g in curves.groupby(["contrast", "kind"], sort=False):
        reached = g.loc[g["power"] >= target, "n"]
        rows.append(
            (name, kind, float(reached.min()) if len(reached) else math.nan, g["power"].max())
        )
    return pd.DataFrame(rows, columns=["contrast", "kind", "threshold_n", "max_power"])


MIN_PILOT_SEEDS = 3  # below this a cell's spread, and so any threshold, is not estimable
THIN_PILOT_SEEDS = 10  # below this the supportable interval is wide: said in `warning`


def _contrast_design(c: Contrast, sizes: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(X [m, k], contrast vector [k]) of the contrast's linear model for the pilot's seeds."""
    lx = np.repeat(np.asarray(c.log_n), sizes)
    side = np.repeat(np.asarray(c.side, dtype=float), sizes)
    if c.kind == "cells":
        return np.column_stack([1 - side, side]), np.array([1.0, -1.0])
    if c.kind == "within":
        return np.column_stack([np.ones_like(lx), lx]), np.array([0.0, 1.0])
    x = np.column_stack([1 - side, side, lx * (1 - side), lx * side])
    return x, np.array([0.0, 0.0, 1.0, -1.0])


def _ncp_interval(t: float, dof: float, level: float) -> tuple[float, float]:
    """CI of the noncentrality of a noncentral t with `dof` df observed at t (inverted cdf)."""
    from scipy import optimize, stats

    def solve(target: float) -> float:
        def g(lam: float) -> float:
            return float(stats.nct.cdf(t, dof, lam)) - target
        step = 2.0 * math.sqrt(1.0 + t * t / (2.0 * dof))  # ~ the ncp's sd, in small steps
        lo, hi = t - step, t + step  # g decreases in lam: bracket g(lo) > 0 > g(hi)
        while g(lo) <= 0:
            lo -= step
        while g(hi) >= 0:
            hi += step
        return float(optimize.brentq(g, lo, hi))

    tail = (1 - level) / 2
    return solve(1 - tail), solve(tail)


def threshold_uncertainty(
    frame: pd.DataFrame,
    metric: str = "exact_match",
    contrasts: Sequence[Contrast] | None = None,
    ns: Sequence[int] = DEFAULT_NS,
    n_draws: int = 100,
    n_perm: int = 100,
    level: float = 0.95,
    seed: int = 0,
    target: float = TARGET_POWER,
) -> pd.DataFrame:
    """Seed-count thresholds with the interval a pilot can support, never power for a null.

    A threshold read off power curves resampled from a pilot treats the pilot's observed effect
    as the truth: 5-seed pilots of a d = 0.5 contrast (true threshold 64) give a median of 20,
    and a truly null contrast gets 'threshold 40, power 0.875'. So each contrast is first
    tested on the pilot itself: its standardized effect delta = T / sigma (T = w . y, the
    contrast's OLS estimate; sigma the residual sd) gets a `level` CI by inverting the
    noncentral t. The power curves are then recomputed on the pilot shifted (along w, which
    leaves the residuals unchanged) to the CI's two ends: the far end gives lo_n, the near end
    hi_n, so the interval covers the true threshold whenever the CI covers delta. When the CI
    includes 0 the pilot cannot exclude a null contrast: threshold_n and hi_n are NaN (no power
    is claimed) and `warning` says so. Pilots under MIN_PILOT_SEEDS seeds in a cell are
    refused; under THIN_PILOT_SEEDS the warning says the interval is wide.
    Columns: contrast, kind, threshold_n (at the observed effect, NaN unless the pilot excludes
    0), lo_n, hi_n (NaN: beyond max n or unbounded), delta, delta_lo, delta_hi, pilot_p,
    pilot_seeds (min over the contrast's cells), warning.
    """
    from scipy import stats

    require_columns(frame, ["cell", metric], "power input")
    if not 0 < level < 1:
        raise ValueError(f"threshold_uncertainty: level must be in (0, 1), got {level!r}")
    contrasts = list(contrasts) if contrasts is not None else default_contrasts(frame)
    values = {c: g[metric].to_numpy(dtype=float) for c, g in frame.groupby("cell")}
    rows = []
    for i, c in enumerate(contrasts):
        sizes = [values[cell].size if cell in values else 0 for cell in c.cells]
        pilot = min(sizes)
        if pilot < MIN_PILOT_SEEDS:
            raise ValueError(f"power input: contrast {c.name!r} has a pilot of {pilot} seeds in "
                             f"a cell; a threshold needs >= {MIN_PILOT_SEEDS} per cell")
        y = np.concatenate([values[cell] for cell in c.cells])
        x, vec = _contrast_design(c, sizes)
        w = x @ np.linalg.pinv(x.T @ x) @ vec  # T = w . y
        dof = y.size - np.linalg.matrix_rank(x)
        resid = y - x @ np.linalg.lstsq(x, y, rcond=None)[0]
        sd = float(np.sqrt(resid @ resid / dof))
        norm = float(np.sqrt(w @ w))
        estimate = float(w @ y)
        if sd == 0.0:
            raise ValueError(f"power input: contrast {c.name!r} has no spread in its pilot")
        t = estimate / (sd * norm)
        lam_lo, lam_hi = _ncp_interval(t, dof, level)
        d_lo, d_hi = lam_lo * norm, lam_hi * norm
        pilot_p = float(2 * stats.t.sf(abs(t), dof))

        def at(delta: float, k: int, c: Contrast = c, sd: float = sd, est: float = estimate,
               w: np.ndarray = w, y: np.ndarray = y, sizes: list[int] = sizes) -> float:
            """The threshold with the pilot shifted so its standardized effect is delta."""
            shifted = y + (delta * sd - est) / float(w @ w) * w
            copy = pd.DataFrame({"cell": np.repeat(c.cells, sizes), metric: shifted})
            curves = power_curves(copy, metric, [c], ns, n_draws, n_perm, seed=seed + k)
            return float(thresholds(curves, target)["threshold_n"].iloc[0])

        excludes_null = d_lo > 0 or d_hi < 0
        near, far = sorted((d_lo, d_hi), key=abs)
        lo_n = at(far, 3 * i + 1)
        hi_n = at(near, 3 * i + 2) if excludes_null else math.nan
        point = at(t * norm, 3 * i) if excludes_null else math.nan
        warn = []
        if not excludes_null:
            warn.append(f"the pilot does not exclude a null effect (p = {pilot_p:.3g}): no "
                        "threshold is supported, only its lower end")
        elif np.isnan(hi_n):
            warn.append(f"upper end beyond n = {max(ns)}")
        if pilot < THIN_PILOT_SEEDS:
            warn.append(f"pilot of {pilot} seeds per cell is too small for a reliable threshold")
        rows.append((c.name, c.kind, point, lo_n, hi_n, t * norm, d_lo, d_hi, pilot_p, pilot,
                     "; ".join(warn)))  # fmt: skip
    return pd.DataFrame(rows, columns=["contrast", "kind", "threshold_n", "lo_n", "hi_n",
                                       "delta", "delta_lo", "delta_hi", "pilot_p",
                                       "pilot_seeds", "warning"])  # fmt: skip


def plot_power(curves: pd.DataFrame, path: str | os.PathLike, target: float = TARGET_POWER) -> Path:
    """Write a PNG of power against seeds per cell, one line per contrast; return its path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for (name, kind), g in curves.groupby(["contrast", "kind"], sort=False):
        ax.plot(
            g["n"], g["power"], marker="o", ms=3, ls="-" if kind == "between" else "--", label=name
        )
    ax.axhline(target, color="grey", lw=0.8)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("seeds per cell n")
    ax.set_ylabel("power (permutation test, alpha 0.05)")
    ax.set_title("seed-count threshold: power vs seeds")
    ax.legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    target_path = Path(path)
    with atomic_path(target_path) as tmp:
        fig.savefig(tmp, format="png")
    return target_path
