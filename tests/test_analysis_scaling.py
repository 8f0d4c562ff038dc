"""Power-law fit of the data requirement: planted exponents, CI, R^2, bad input, plot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_analysis_cli

from analysis.scaling import fit_power_law, plot_power_law

SIZES = np.array([30, 50, 70, 100, 150, 200], dtype=float)


def test_exact_power_law_is_recovered() -> None:
    fit = fit_power_law(SIZES, 3.0 * SIZES**2.5, n_boot=200, seed=0)
    assert fit["exponent"] == pytest.approx(2.5)
    assert fit["prefactor"] == pytest.approx(3.0)
    assert fit["r2"] == pytest.approx(1.0)
    assert fit["exponent_ci"] == pytest.approx((2.5, 2.5))


@pytest.mark.parametrize("exponent", [2.0, 2.5, 3.0])
def test_planted_noisy_exponent_within_ci(exponent: float) -> None:
    rng = np.random.default_rng(1)
    sizes = np.repeat(SIZES, 3)
    n_req = 0.5 * sizes**exponent * np.exp(rng.normal(0, 0.1, len(sizes)))
    fit = fit_power_law(sizes, n_req, n_boot=1000, seed=2)
    lo, hi = fit["exponent_ci"]
    assert lo < exponent < hi and hi - lo < 0.3
    assert abs(fit["exponent"] - exponent) < 0.1 and fit["r2"] > 0.98
    assert fit["prefactor_ci"][0] < fit["prefactor"] < fit["prefactor_ci"][1]
    assert fit == fit_power_law(sizes, n_req, n_boot=1000, seed=2)


def test_upstream_repository_series() -> None:
    fit = fit_power_law(SIZES, [4e3, 15e3, 30e3, 80e3, 250e3, 500e3], n_boot=500, seed=0)
    assert fit["exponent"] == pytest.approx(2.55, abs=0.01)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="equal length"):
        fit_power_law([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="> 0"):
        fit_power_law([1, 2, 3], [1, 0, 2])
    with pytest.raises(ValueError, match=">= 3 distinct sizes"):
        fit_power_law([10, 10, 20], [1, 2, 3])
    with pytest.raises(ValueError, match="n_boot"):
        fit_power_law([1, 2, 3], [1, 2, 3], n_boot=0)


def test_plot(tmp_path: Path) -> None:
    n_req = 2.0 * SIZES**2.2
    fit = fit_power_law(SIZES, n_req, n_boot=50)
    assert plot_power_law(SIZES, n_req, fit, tmp_path / "p.png").stat().st_size > 0


def test_cli_fits_the_reached_sizes_and_reports_the_rest(tmp_path: Path) -> None:
    """`python -m analysis scaling` on a sweep table: NaN sizes are left out and named."""
    table = pd.DataFrame({"num_tokens": [10, 14, 20, 30, 40],
                          "n_required": [2.0 * 10**2.5, 2.0 * 14**2.5, 2.0 * 20**2.5,
                                         2.0 * 30**2.5, np.nan],
                          "n_max_tried": [1, 1, 1, 1, 9]})
    table.to_csv(tmp_path / "n_required.csv", index=False)
    done = run_analysis_cli("scaling", str(tmp_path / "n_required.csv"), "--n_boot", "100")
    assert done.returncode == 0, done.stderr
    assert "|X|^2.50" in done.stdout and "no N_req reached at |X| = [40]" in done.stdout
    fit = json.loads((tmp_path / "power_law.json").read_text())
    assert fit["sizes"] == [10, 14, 20, 30] and fit["exponent"] == pytest.approx(2.5)
    assert (tmp_path / "power_law.png").stat().st_size > 0
    table.drop(columns="n_required").to_csv(tmp_path / "bad.csv", index=False)
    bad = run_analysis_cli("scaling", str(tmp_path / "bad.csv"))
    assert bad.returncode == 2 and "lacks column(s) ['n_required']" in bad.stderr
