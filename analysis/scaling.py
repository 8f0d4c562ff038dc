"""Data-requirement scaling: power-law fit N_req = a * |X|^c on log-log axes, bootstrap CI."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.atomic import atomic_path


def _ols(logx: np.ndarray, logy: np.ndarray) -> tuple[float, float]:
    """(slope, intercept) of least squares on log-log values."""
    slope, intercept = np.polyfit(logx, logy, 1)
    return float(slope), float(intercept)


def fit_power_law(
    sizes: Sequence[float],
    n_required: Sequence[float],
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Any]:
    """Fit n_required = prefactor * sizes^exponent (log-log OLS) with a pairs-bootstrap CI.

    Returns exponent, prefactor, exponent_ci, prefactor_ci (percentile, `level`), r2 (log-log),
    n_points and n_boot (resamples with >= 2 distinct sizes, the degenerate ones redrawn).
    """
    x = np.asarray(sizes, dtype=float)
    y = np.asarray(n_required, dtype=float)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"sizes and n_required must be 1-D of equal length, got {x.shape} "
                         f"and {y.shape}")  # fmt: skip
    if not (np.isfinite(x).all() and np.isfinite(y).all() and (x > 0).all() and (y > 0).all()):
        raise ValueError("sizes and n_required must be finite and > 0 for a log-log fit")
    if len(np.unique(x)) < 3:
        raise ValueError(f"a power-law fit needs >= 3 distinct sizes, got {len(np.unique(x))}")
    if n_boot < 1 or not 0 < level < 1:
        raise ValueError(f"need n_boot >= 1 and 0 < level < 1, got {n_boot}, {level}")
    lx, ly = np.log(x), np.log(y)
    slope, intercept = _ols(lx, ly)
    resid = ly - (slope * lx + intercept)
    total = float(((ly - ly.mean()) ** 2).sum())
    r2 = 1.0 - float((resid**2).sum()) / total if total > 0 else 1.0
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(n_boot, len(x)))
    bad = (lx[idx] == lx[idx[:, :1]]).all(axis=1)
    while bad.any():
        idx[bad] = rng.integers(0, len(x), size=(int(bad.sum()), len(x)))
        bad = (lx[idx] == lx[idx[:, :1]]).all(axis=1)
    bx, by = lx[idx], ly[idx]
    bxc = bx - bx.mean(axis=1, keepdims=True)
    slopes = (bxc * (by - by.mean(axis=1, keepdims=True))).sum(1) / (bxc**2).sum(1)
    prefactors = np.exp(by.mean(axis=1) - slopes * bx.mean(axis=1))
    tail = 100 * (1 - level) / 2
    return {
        "exponent": slope,
        "prefactor": float(np.exp(intercept)),
        "exponent_ci": tuple(float(v) for v in np.percentile(slopes, [tail, 100 - tail])),
        "prefactor_ci": tuple(float(v) for v in np.percentile(prefactors, [tail, 100 - tail])),
        "r2": r2,
        "n_points": len(x),
        "n_boot": n_boot,
        "level": level,
    }


def plot_power_law(
    sizes: Sequence[float],
    n_required: Sequence[float],
    fit: dict[str, Any],
    path: str | os.PathLike[str],
) -> Path:
    """PNG: data points and the fitted power law on log-log axes, exponent and CI in the legend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    x = np.asarray(sizes, dtype=float)
    grid = np.geomspace(x.min(), x.max(), 100)
    lo, hi = fit["exponent_ci"]
    fig = Figure(figsize=(5.5, 4))
    ax = fig.add_subplot(1, 1, 1)
    ax.loglog(x, n_required, "o", label="N_req")
    ax.loglog(grid, fit["prefactor"] * grid ** fit["exponent"], "-",
              label=f"fit: c = {fit['exponent']:.2f} [{lo:.2f}, {hi:.2f}], "
                    f"R² = {fit['r2']:.3f}")  # fmt: skip
    ax.set_xlabel("|X| (tokens)")
    ax.set_ylabel("training examples required")
    ax.set_title("Data requirement: N_req = a·|X|^c")
    ax.legend(loc="best", fontsize=8)
    target = Path(path)
    with atomic_path(target) as tmp:
        FigureCanvasAgg(fig).print_png(str(tmp))
    return target


def fit_n_required(table: pd.DataFrame, out_dir: str | os.PathLike[str],
                   n_boot: int = 2000) -> dict[str, Any]:
    """Fit the (num_tokens, n_required) rows that reached the threshold; write power_law.json
    and power_law.png into out_dir. Rows without an N_req (NaN) are left out and counted."""
    missing = {"num_tokens", "n_required"} - set(table.columns)
    if missing:
        raise ValueError(f"n_required table lacks column(s) {sorted(missing)}")
    reached = table.dropna(subset=["n_required"])
    fit = fit_power_law(reached["num_tokens"], reached["n_required"], n_boot=n_boot)
    fit["sizes"] = reached["num_tokens"].astype(int).tolist()
    fit["n_required"] = reached["n_required"].astype(float).tolist()
    fit["sizes_without_n_required"] = sorted(set(table["num_tokens"].astype(int))
                                             - set(fit["sizes"]))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "power_law.json") as tmp:
        tmp.write_text(json.dumps(fit, indent=2) + "\n", encoding="utf-8")
    plot_power_law(fit["sizes"], fit["n_required"], fit, out / "power_law.png")
    return fit


def format_fit(fit: dict[str, Any]) -> str:
    """One line per fact of a power-law fit, for terminals and notes."""
    lo, hi = fit["exponent_ci"]
    lines = [f"N_req = {fit['prefactor']:.3g} * |X|^{fit['exponent']:.2f} "
             f"({100 * fit['level']:.0f}% bootstrap CI of the exponent [{lo:.2f}, {hi:.2f}], "
             f"log-log R^2 {fit['r2']:.3f}, {fit['n_points']} sizes)"]
    if fit.get("sizes_without_n_required"):
        lines.append(f"no N_req reached at |X| = {fit['sizes_without_n_required']}")
    return "\n".join(lines)
