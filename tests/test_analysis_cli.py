"""`python -m analysis summary`: prints the table and plot path; bad input exits 2 in one line."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from conftest import run_analysis_cli


def _write_results(path: Path) -> None:
    """Two N levels x two seeds; an early eval step whose values must be ignored."""
    rows = [
        {
            "cell": f"n{n}", "benchmark": "scan", "task": "scan_length", "split": "test",
            "strategy": "random", "n_unique": n, "exposure": 1000 / n, "manifest_hash": "abc",
            "seed": seed, "step": step, "exact_match": em if step == 20 else 0.0,
            "n_examples": 8, "train_loss": 0.2, "diverged": False,
        }
        for n, ems in ((100, (0.125, 0.25)), (400, (0.5, 0.75)))
        for seed, em in enumerate(ems)
        for step in (10, 20)
    ]  # fmt: skip
    pd.DataFrame(rows).to_csv(path, index=False)


def test_summary_prints_table_and_writes_plot(tmp_path: Path) -> None:
    results = tmp_path / "results.csv"
    _write_results(results)
    plot = tmp_path / "dose.png"
    proc = run_analysis_cli("summary", str(results), "--split", "test", "--plot", str(plot))
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines()]
    assert ["100", "2", "0", "18.75", "8.84", "12.50", "25.00"] in rows
    assert ["400", "2", "0", "62.50", "17.68", "50.00", "75.00"] in rows
    assert "Spearman rho" in proc.stdout
    assert f"plot: {plot}" in proc.stdout
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_input_exits_2_with_one_line(tmp_path: Path) -> None:
    results = tmp_path / "results.csv"
    _write_results(results)
    pd.read_csv(results).drop(columns=["seed"]).to_csv(results, index=False)
    proc = run_analysis_cli("summary", str(results))
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(results) in lines[0] and "seed" in lines[0]


def test_unknown_split_exits_2(tmp_path: Path) -> None:
    results = tmp_path / "results.csv"
    _write_results(results)
    proc = run_analysis_cli("summary", str(results), "--split", "gen")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: results table: no rows for split 'gen' (present: 'test')"


def test_decompose_runs_from_three_sweeps(tmp_path: Path) -> None:
    """`python -m analysis decompose E1=... E2=... E3=...` on sweep_results.csv files."""
    for name, gap in (("e1", 0.25), ("e2", -0.04), ("e3", 0.004)):
        rows = [
            {"cell": f"{name}-{cov}", "benchmark": "cogs", "task": "cogs_gen", "split": "test",
             "strategy": "random", "n_unique": 200, "exposure": 20.0, "manifest_hash": "abc",
             "seed": seed, "step": 10, "exact_match": 0.1 + (gap if cov == "high" else 0) + d,
             "n_examples": 8, "train_loss": 0.2, "diverged": False, "seed_steps": 10,
             "factor_coverage": cov, "cell_id": f"{name}-{cov}"}
            for cov in ("high", "low") for seed, d in enumerate((-0.01, 0.0, 0.01))
        ]  # fmt: skip
        (tmp_path / name).mkdir()
        pd.DataFrame(rows).to_csv(tmp_path / name / "sweep_results.csv", index=False)
    proc = run_analysis_cli("decompose", *(f"E{i}={tmp_path / f'e{i}'}" for i in (1, 2, 3)))
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    confound = next(line for line in text.splitlines() if "diversity confound" in line)
    total = next(line for line in text.splitlines() if line.split()[0] == "total")
    assert confound.split()[3] == "29.00" and total.split()[2] == "25.00"
    proc = run_analysis_cli("decompose", "E1", "--split", "test")
    assert proc.returncode == 2 and "expected NAME=RESULTS, got 'E1'" in proc.stderr
