"""analysis.dose_response: Spearman vs scipy, hand-computed per-N summary, trend, table, plot."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.dose_response import (
    diversity_summary,
    diversity_trend,
    format_summary,
    plot_dose_response,
    spearman,
)

# Final-step exact match per (N, seed); earlier steps below carry decoy values that must not count.
FINAL = {50: [0.0, 0.1, 0.2], 200: [0.3, 0.5], 1000: [0.6, 0.6, 0.8, 0.8]}


def _hand_table() -> pd.DataFrame:
    """Three N levels, several eval steps per seed, a second split, one diverged seed."""
    rows = []
    for n, finals in FINAL.items():
        for seed, em in enumerate(finals):
            last = 300 if seed % 2 else 200  # seeds of one cell may stop at different steps
            for step, value in ((100, 0.95), (last, em)):
                for split, v in (("test", value), ("train", 1.0)):
                    rows.append(
                        {
                            "cell": f"n{n}", "benchmark": "cogs", "task": "cogs_gen",
                            "split": split, "strategy": "random", "n_unique": n,
                            "exposure": 4000 / n, "manifest_hash": f"h{n}", "seed": seed,
                            "step": step, "exact_match": v, "n_examples": 10,
                            "train_loss": 0.1, "diverged": n == 200 and seed == 1,
                        }
                    )  # fmt: skip
    return pd.DataFrame(rows).sample(frac=1.0, random_state=0)  # order must not matter


def _exact_spearman_p(x: np.ndarray, y: np.ndarray) -> float:
    """scipy's exact permutation p of Spearman's rho (Pearson r of scipy's average ranks) over
    every pairing: the reference."""
    rx = stats.rankdata(x)

    def rho(v: np.ndarray, axis: int) -> np.ndarray:
        return stats.pearsonr(np.broadcast_to(rx, v.shape), stats.rankdata(v, axis=-1),
                              axis=-1).statistic  # fmt: skip

    return stats.permutation_test((y,), rho, permutation_type="pairings", vectorized=True,
                                  n_resamples=np.inf).pvalue  # fmt: skip


@pytest.mark.parametrize("trial", range(40))
def test_spearman_matches_scipy(trial: int) -> None:
    """rho as scipy's; p exact (all pairings) up to 8 pairs, scipy's t approximation above."""
    rng = np.random.default_rng(trial)
    n = int(rng.integers(3, 60)) if trial % 4 else int(rng.integers(3, 8))
    if trial % 2:  # heavy ties
        x, y = rng.integers(0, 4, n), rng.integers(0, 3, n)
    else:
        x, y = rng.normal(size=n), rng.normal(size=n) + 0.3 * rng.normal(size=n)
    if np.unique(x).size < 2 or np.unique(y).size < 2:
        x[0], y[0] = 99, 99
    expected = stats.spearmanr(x, y)
    rho, p = spearman(x, y)
    assert rho == pytest.approx(expected.statistic, abs=1e-12)
    if n <= 8:
        assert p == pytest.approx(_exact_spearman_p(x, y), rel=1e-9)
    else:
        assert p == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)


def test_spearman_exact_p_for_a_perfect_trend() -> None:
    """Issue 30 case 6: rho = 1 over 6 levels has exact p = 2 / 6! = 0.0028, not 0 (the t
    approximation's value); 3 levels: 2 / 3! = 1/3; many pairs at |rho| = 1: never 0."""
    assert spearman([1, 2, 3, 4, 5, 6], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]) == (1.0, 2 / 720)
    assert spearman([1, 2, 3], [3, 2, 1]) == (-1.0, pytest.approx(1 / 3))
    rho, p = spearman(np.arange(30), np.arange(30))
    assert rho == 1.0 and 0 < p <= 2 / 10000


def test_spearman_edge_cases() -> None:
    rho, p = spearman([1, 1, 1], [1, 2, 3])
    assert math.isnan(rho) and math.isnan(p)
    with pytest.raises(ValueError, match="equal length"):
        spearman([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="NaN"):
        spearman([1, 2, float("nan")], [1, 2, 3])


def test_diversity_summary_by_hand() -> None:
    summary = diversity_summary(_hand_table(), "test")
    assert summary["N"].tolist() == [50, 200, 1000]
    # The diverged seed (N = 200, EM 0.5) is counted but left out, as the report leaves it out.
    assert summary["n_seeds"].tolist() == [3, 1, 4]
    assert summary["n_diverged"].tolist() == [0, 1, 0]
    # means: (0+.1+.2)/3, .3, (.6+.6+.8+.8)/4
    np.testing.assert_allclose(summary["mean"], [0.1, 0.3, 0.7], atol=1e-12)
    # sd (ddof=1): sqrt((.01+0+.01)/2), undefined for one seed, sqrt(4*.01/3)
    np.testing.assert_allclose(summary["sd"], [0.1, np.nan, math.sqrt(0.04 / 3)], atol=1e-12)
    np.testing.assert_allclose(summary["min"], [0.0, 0.3, 0.6], atol=1e-12)
    np.testing.assert_allclose(summary["max"], [0.2, 0.3, 0.8], atol=1e-12)


def test_diversity_trend_over_seeds_and_means() -> None:
    trend = diversity_trend(_hand_table(), "test")
    kept = [(n, em) for n, finals in FINAL.items() for s, em in enumerate(finals)
            if not (n == 200 and s == 1)]  # the diverged seed is left out  # fmt: skip
    expected = stats.spearmanr(*zip(*kept, strict=True))
    assert trend["rho_seeds"] == pytest.approx(expected.statistic, abs=1e-12)
    # 8 seeds: the exact permutation p (scipy's), not the t approximation
    n, em = map(np.array, zip(*kept, strict=True))
    assert trend["p_seeds"] == pytest.approx(_exact_spearman_p(n, em))
    assert trend["n_seeds"] == 8 and trend["n_levels"] == 3
    assert trend["rho_means"] == 1.0 and trend["p_means"] == pytest.approx(2 / 6)


def test_bad_split_metric_and_mixed_benchmarks() -> None:
    df = _hand_table()
    with pytest.raises(ValueError, match=r"no rows for split 'dev' \(present: 'test', 'train'\)"):
        diversity_summary(df, "dev")
    with pytest.raises(ValueError, match="missing required columns: accuracy"):
        diversity_summary(df, "test", metric="accuracy")
    with pytest.raises(ValueError, match="outside"):
        diversity_summary(df, "test", metric="exposure")
    mixed = df.copy()
    mixed.loc[mixed["n_unique"] == 50, "benchmark"] = "scan"
    with pytest.raises(ValueError, match="mixes benchmarks"):
        diversity_summary(mixed, "test")


def test_format_summary_shows_percent_table_and_rho() -> None:
    df = _hand_table()
    text = format_summary(diversity_summary(df, "test"), diversity_trend(df, "test"))
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["N", "seeds"])
    body = [line.split() for line in lines[header + 1 : header + 4]]
    assert body[0] == ["50", "3", "0", "10.00", "10.00", "0.00", "20.00"]
    assert body[1] == ["200", "1", "1", "30.00", "-", "30.00", "30.00"]
    assert body[2] == ["1000", "4", "0", "70.00", "11.55", "60.00", "80.00"]
    assert "exact_match (%)" in text
    assert "means +1.000 (p = 0.333, 3 levels)" in lines[-1] and "Spearman rho" in lines[-1]
    assert "p = <" not in text and "p = 0 " not in text and "p = 0," not in text
    assert len({len(line) for line in lines[header : header + 4]}) == 1  # fixed width


def test_plot_writes_png_atomically(tmp_path: Path) -> None:
    out = tmp_path / "plots" / "dose.png"
    got = plot_dose_response(_hand_table(), "test", out)
    assert got == out
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    assert sorted(p.name for p in out.parent.iterdir()) == ["dose.png"]


def test_plot_leaves_nothing_on_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        plot_dose_response(_hand_table(), "dev", tmp_path / "dose.png")
    assert list(tmp_path.iterdir()) == []
