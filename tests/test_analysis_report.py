"""`python -m analysis report`: every section, its plots, explicit exclusions, one-line errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
from conftest import run_analysis_cli

from analysis.planted_sweeps import Dataset, synthetic_sweep, write_sweep

CONSTRUCTS = {"cogs": "thematic bindings", "cfq": "surface co-occurrence of output tokens"}
TAGS = {  # cell -> (experiment, coverage): the E1-E3 chain on the cogs cells
    "cogs_n50_e100": ("E1", "low"), "cogs_n200_e100": ("E1", "high"),
    "cogs_n50_e400": ("E2", "low"), "cogs_n100_e100": ("E2", "high"),
    "cogs_n100_e400": ("E3", "low"), "cogs_n200_e400": ("E3", "high"),
}  # fmt: skip


def _sweep(root: Path) -> Path:
    """A cogs N x E sweep tagged as E1-E3, a flat cfq sweep, one NaN seed, one thin cell."""
    datasets = [
        Dataset("cogs", 0.12, 0.01, exposure_slope=0.02, pool_size=800),
        Dataset("cfq", 0.0, 0.106, pool_size=800, pairs_per_atom=5.0),
    ]
    sweep = synthetic_sweep(datasets, [50, 100, 200], [100, 400], n_seeds=4, seed=1)
    write_sweep(sweep, root)
    for cell, (exp, cov) in TAGS.items():
        path = root / cell / "results.csv"
        pd.read_csv(path).assign(factor_experiment=exp, factor_coverage=cov).to_csv(path,
                                                                              index=False)
    path = root / "cfq_n50_e100" / "results.csv"
    rows = pd.read_csv(path)
    rows.loc[(rows["seed"] == 0) & (rows["step"] == 300), "exact_match"] = np.nan
    rows.to_csv(path, index=False)
    path = root / "cfq_n200_e400" / "results.csv"
    rows = pd.read_csv(path)
    rows[rows["seed"] == 3].to_csv(path, index=False)
    for path in root.glob("*/results.csv"):  # trainer / sweep bookkeeping, never design factors
        rows = pd.read_csv(path)
        rows.assign(seed_steps=rows["step"] * (1 + rows["seed"]), cell_id=path.parent.name,
                    note=rows["seed"] % 2).to_csv(path, index=False)  # fmt: skip
    (root / "constructs.json").write_text(json.dumps(CONSTRUCTS))
    return root


def test_report_writes_every_section_and_plot(tmp_path: Path) -> None:
    root = _sweep(tmp_path / "sweep")
    out = tmp_path / "report"
    proc = run_analysis_cli(
        "report", str(root), "--out", str(out), "--measures", str(root / "measures.csv"),
        "--constructs", str(root / "constructs.json"), "--n-perm", "300", "--n-boot", "200",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"report: {out / 'report.md'}"
    text = (out / "report.md").read_text()
    for heading in (
        "## Inputs", "## cfq", "## cogs", "### Diversity dose-response", "### Diversity x exposure",
        "### Escape audit", "### Slope comparisons", "### Additive decomposition",
        "### Closed-headroom null calibration",
        "### Audit: measures, signatures, bucketization robustness", "### Seed-count threshold",
    ):  # fmt: skip
        assert heading in text, heading
    # Exclusions are listed, never silent.
    assert "| cfq_n50_e100 | 0 | exact_match is NaN |" in text
    assert "| cfq_n200_e400 | 3 | cell has 1 usable seed(s) < 2 |" in text
    assert "| diversity confound |" in text and "| total |" in text
    assert "Share of the 44 bucket schemes" in text and "| sign pattern: cfq flat" in text
    assert "| thematic bindings |" in text and "Mean distinct unified signatures" in text
    assert "Partial eta^2 (type III): diversity" in text and "Exposure floor" in text
    assert "### Diversity x coverage" in text and "TOST coverage = high vs low" in text
    # Item 3: only factor_* columns are design factors.
    for junk in ("seed_steps", "cell_id", "note", "factor_coverage"):
        assert f"Diversity x {junk}" not in text
    assert "Design factors (results schema `factor_*`): `experiment`, `coverage`" in text
    # Both modes, side by side, with the reason.
    assert "p_paper" in text and "p_holm" in text and "paper_ci_lo_pp" in text
    for png in ("dose_cogs", "dose_cfq", "heatmap_cogs", "strip_cogs", "robustness", "power"):
        assert (out / f"{png}.png").read_bytes()[:4] == b"\x89PNG", png
        assert f"]({png}.png)" in text
    inputs = pd.read_csv(out / "inputs.csv")
    assert len(inputs) == 12 * 4 - 5 and inputs["manifest_hash"].str.len().eq(64).all()


def test_report_bad_input_exits_2_in_one_line(tmp_path: Path) -> None:
    root = _sweep(tmp_path / "sweep")
    path = root / "cogs_n50_e100" / "results.csv"
    pd.read_csv(path).drop(columns=["exposure"]).to_csv(path, index=False)
    proc = run_analysis_cli("report", str(root), "--out", str(tmp_path / "r"))
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and "exposure" in lines[0]
    assert not (tmp_path / "r" / "report.md").exists()
    bad = tmp_path / "constructs.json"
    bad.write_text("[1, 2]")
    pd.read_csv(root / "cfq_n50_e100" / "results.csv").to_csv(path, index=False)
    proc = run_analysis_cli("report", str(root), "--out", str(tmp_path / "r"),
                            "--constructs", str(bad))
    assert proc.returncode == 2 and "constructs must be a JSON object" in proc.stderr


def test_report_refuses_zero_resamples_and_keeps_the_previous_run(tmp_path: Path) -> None:
    """Item 10: --n-boot 0 is one line and exit 2, and a previous report's files stay as they
    were (the old code crashed with an IndexError after rewriting inputs.csv)."""
    root = _sweep(tmp_path / "sweep")
    out = tmp_path / "report"
    out.mkdir()
    (out / "inputs.csv").write_text("previous run\n")
    (out / "report.md").write_text("previous report\n")
    proc = run_analysis_cli("report", str(root), "--out", str(out), "--n-boot", "0")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip() == "error: report option --n_boot must be a positive integer, got 0"
    assert (out / "inputs.csv").read_text() == "previous run\n"
    assert sorted(p.name for p in out.iterdir()) == ["inputs.csv", "report.md"]


def test_report_on_an_e5_like_table(tmp_path: Path) -> None:
    """E5-like N x E table (bimodal seeds) with one cell entirely diverged, plus a second dataset
    on another N grid: both modes side by side, effect-size CIs, Holm, GLM and diagnostics."""
    from analysis.planted_sweeps import e5_like_results
    from analysis.report import ReportOptions, write_report

    e5 = e5_like_results(6, seed=2, diverged=6)  # cell N = 100, E = 100: every seed diverged
    other = e5_like_results(6, seed=3, benchmark="scan", ns=(100, 1000, 10000), es=(400.0,),
                            coef=(-14.0, 2.0, 0.0))  # fmt: skip
    root = tmp_path / "e5"
    root.mkdir()
    pd.concat([e5, other]).to_csv(root / "results.csv", index=False)
    options = ReportOptions(n_boot=200, n_perm=200, power_draws=20, power_perm=20,
                            power_ns=(5, 10))  # fmt: skip
    text = write_report(root, tmp_path / "out", options=options).read_text()
    # Item 4: the empty cell is named, type III refused, the dominance sentence uses type II.
    assert "Empty cells (every seed excluded): N = 100, E = 100; type II only" in text
    assert "Gaussian ANOVA, type III" not in text
    assert "Partial eta^2 (type II): diversity" in text
    assert "eta_ci_lo" in text and "p_holm" in text
    assert "Binomial GLM of per-seed exact_match" in text and "24 clusters" not in text
    assert "Residual diagnostics (seed minus cell mean): Shapiro-Wilk" in text
    # Item 5: converged shown, clustered SEs; the single-exposure dataset is refused in one line.
    assert "converged: yes" in text and "cluster-robust by cell (23 clusters)" in text
    assert "'exposure' has a single level" in text
    # Both modes of the headroom null, the slope CI and the between-dataset test.
    assert "Default: log-spread share" in text and "Paper: null share" in text
    assert "Slope per log N. Primary (cell-means OLS" in text and "p_paper" in text
    assert "Primary (cell-means OLS on centred log N, log E" in text
    assert re.search(r"p = 0(?![.\d])", text) is None  # underflow reads "p < 1e-300"
    assert "pilot cells of 6 seeds" in text and "too small" in text
