"""The programme report: verdicts against synthetic sweeps whose answer is known by construction,
statistics equal to the analysis functions they quote, floors untested, byte-identical reruns."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import stats
from analysis.programme import write_programme_report
from analysis.report import ReportOptions

OPTIONS = ReportOptions(n_boot=50, n_perm=50, power_draws=5, power_perm=5)


def _sweep(path: Path, name: str, benchmark: str, split: str, cells: list[dict],
           seeds: int = 5) -> str:
    """A sweep_results.csv: one final-step row per (cell, seed) with the given EM."""
    rows = []
    for cell in cells:
        label = f"{name}-" + "-".join(f"{k}={v}" for k, v in cell["factors"].items())
        for seed in range(seeds):
            rows.append({
                "cell": label, "benchmark": benchmark, "task": benchmark, "split": split,
                "strategy": "random", "n_unique": cell["n"], "exposure": cell.get("e", 1.0),
                "manifest_hash": hashlib.sha256(f"{label}{seed}".encode()).hexdigest(),
                "seed": seed, "step": 100, "exact_match": cell["em"][seed], "n_examples": 100,
                "train_loss": 0.5, "diverged": False, "seed_steps": 100,
                "metric": "exact_match",
                **{f"factor_{k}": v for k, v in cell["factors"].items()},
            })
    path.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(path / "sweep_results.csv", index=False)
    return str(path / "sweep_results.csv")


def _part(name: str, analysis: str, split: str, results: str, smoke: bool = False) -> dict:
    return {"name": name, "analysis": analysis, "split": split, "smoke_test": smoke,
            "results": results, "gin_files": [f"experiments/{name}.gin"], "bindings": [],
            "cells": 4, "trainings": 4, "wall_s": 60.0}


def _noise(mean: float, k: int = 0) -> list[float]:
    return list(np.clip(mean + np.array([-0.02, -0.01, 0.0, 0.01, 0.02]) * (1 + k % 3), 0, 1))


def _findings(report: Path) -> dict[str, list[str]]:
    lines = report.read_text().splitlines()
    start = lines.index("## Findings") + 4
    rows = {}
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells
    return rows


def test_verdicts_follow_the_data(tmp_path: Path) -> None:
    levels = (50, 200, 500, 1000, 4000)
    dose = _sweep(tmp_path / "e4", "e4", "cogs", "gen:easy", [
        {"n": n, "factors": {"n_unique": n}, "em": _noise(0.05 + 0.06 * i, i)}
        for i, n in enumerate(levels)])
    flat = _sweep(tmp_path / "flat", "flat", "cogs", "gen:easy", [
        {"n": n, "factors": {"n_unique": n}, "em": _noise(0.2 - 0.03 * i, i)}
        for i, n in enumerate(levels)])
    factorial = _sweep(tmp_path / "e5", "e5", "cogs", "gen:easy", [
        {"n": n, "e": e, "factors": {"n_unique": n, "exposure": e},
         "em": _noise(0.1 + 0.3 * i + 0.02 * j, i + j)}
        for i, n in enumerate((100, 400)) for j, e in enumerate((2, 8))])
    equivalence = _sweep(tmp_path / "e6", "e6", "cogs", "gen:easy", [
        {"n": n, "factors": {"n_unique": n, "quantile": q}, "em": _noise(0.3 + 0.1 * i, i)}
        for i, n in enumerate((1000, 2000)) for q in ("q1", "q99")])
    apart = _sweep(tmp_path / "e6b", "e6b", "cogs", "gen:easy", [
        {"n": n, "factors": {"n_unique": n, "quantile": q},
         "em": _noise(0.3 + 0.1 * i + (0.1 if q == "q99" else 0), i)}
        for i, n in enumerate((1000, 2000)) for q in ("q1", "q99")])
    floor = _sweep(tmp_path / "scan", "scan", "scan", "test", [
        {"n": n, "e": e, "factors": {"n_unique": n, "exposure": e}, "em": [0.0] * 5}
        for n in (100, 400) for e in (2, 8)])
    parts = [_part("e4", "dose_response", "gen:easy", dose),
             _part("flat", "dose_response", "gen:easy", flat),
             _part("e5", "factorial", "gen:easy", factorial),
             _part("e6", "equivalence", "gen:easy", equivalence),
             _part("e6b", "equivalence", "gen:easy", apart),
             _part("scan", "replication", "test", floor),
             _part("cfq", "replication", "test", floor, smoke=True)]
    report = write_programme_report(parts, (), tmp_path / "report", "compgen-jax reproduce",
                                    OPTIONS, ("NUM_SEEDS = 5",))
    rows = _findings(report)
    assert rows["e4: dose response"][3] == "yes"
    # issue 30 case 6: rho = 1 over 5 levels has the exact p 2 / 5! (main printed "p = 0")
    assert "rho = 1.000 (p = 0.0167)" in rows["e4: dose response"][2]
    assert rows["flat: dose response"][3] == "no"
    assert rows["e5: factorial"][3] == "yes"
    final = pd.read_csv(factorial)
    anova = stats.two_way_anova(final, "n_unique", "exposure", "exact_match")
    assert f"diversity {anova.loc['n_unique', 'partial_eta_sq']:.3f}" in rows["e5: factorial"][2]
    assert rows["e6: equivalence"][3] == "yes"
    assert rows["e6b: equivalence"][3].startswith("no")
    assert "q99 - q1 = +10.00 pp" in rows["e6b: equivalence"][2]
    assert rows["scan: replication"][3].startswith("untested: floor")
    assert rows["cfq: replication"][3] == "smoke test: no finding read"
    assert (tmp_path / "report" / "e4_dose.png").is_file()
    assert (tmp_path / "report" / "e4" / "report.md").is_file()
    assert "Total wall time: 7.0 min (" in report.read_text()
    assert "Programme-wide settings: NUM_SEEDS = 5." in report.read_text()


def test_decomposition_and_rerun_is_byte_identical(tmp_path: Path) -> None:
    def arm(name: str, high: float, low: float) -> str:
        return _sweep(tmp_path / name, name, "cogs", "gen:easy", [
            {"n": 200, "factors": {"coverage": c, "difficulty": "easy"}, "em": _noise(m, k)}
            for k, (c, m) in enumerate((("high", high), ("low", low)))], seeds=5)

    parts = [_part("e1", "decomposition", "gen:easy", arm("e1", 0.34, 0.08)),
             _part("e2", "decomposition", "gen:easy", arm("e2", 0.04, 0.08)),
             _part("e3", "decomposition", "gen:easy", arm("e3", 0.08, 0.08))]
    report = write_programme_report(parts, ("e1", "e2", "e3"), tmp_path / "report", "cmd",
                                    OPTIONS)
    row = _findings(report)["E1 -> E2 -> E3: decomposition"]
    assert row[2].startswith("+30.00 pp diversity confound -4.00 pp typicality penalty "
                             "+0.00 pp coverage = +26.00 pp")
    assert row[3] == "yes"
    first = {p: p.read_bytes() for p in sorted((tmp_path / "report").rglob("*")) if p.is_file()}
    write_programme_report(parts, ("e1", "e2", "e3"), tmp_path / "report", "cmd", OPTIONS)
    again = {p: p.read_bytes() for p in sorted((tmp_path / "report").rglob("*")) if p.is_file()}
    assert first == again


def test_unknown_analysis_is_refused() -> None:
    from compgen_jax.programme import Part

    with pytest.raises(ValueError, match="analysis 'anova' is not one of"):
        Part(name="x", gin_files=("a.gin",), analysis="anova", split="test")


def test_a_floor_leaves_findings_untested(tmp_path: Path) -> None:
    def zeros(name: str, factors: list[dict]) -> str:
        return _sweep(tmp_path / name, name, "cogs", "gen:easy",
                      [{**f, "em": [0.0] * 5} for f in factors])

    arms = [{"n": 200, "factors": {"coverage": c, "difficulty": "easy"}} for c in ("high", "low")]
    parts = [_part(e, "decomposition", "gen:easy", zeros(e, arms)) for e in ("e1", "e2", "e3")]
    parts.append(_part("e6", "equivalence", "gen:easy", zeros("e6", [
        {"n": n, "factors": {"n_unique": n, "quantile": q}}
        for n in (1000, 2000) for q in ("q1", "q99")])))
    rows = _findings(write_programme_report(parts, ("e1", "e2", "e3"), tmp_path / "report",
                                            "cmd", OPTIONS))
    assert rows["E1 -> E2 -> E3: decomposition"][3] == "untested: floor"
    assert rows["e6: equivalence"][3] == "untested: floor"


def test_gen_floor_with_learning_dev_is_untested_and_reports_dev(tmp_path: Path) -> None:
    levels = (50, 200, 500, 1000, 4000)
    gen = pd.read_csv(_sweep(tmp_path / "gen", "e4", "cogs", "gen:easy", [
        {"n": n, "factors": {"n_unique": n}, "em": [0.0] * 5} for n in levels]))
    dev = pd.read_csv(_sweep(tmp_path / "dev", "e4", "cogs", "dev", [
        {"n": n, "factors": {"n_unique": n}, "em": _noise(0.05 + 0.04 * i, i)}
        for i, n in enumerate(levels)]))
    (tmp_path / "e4").mkdir()
    pd.concat([dev, gen]).to_csv(tmp_path / "e4" / "sweep_results.csv", index=False)
    part = _part("e4", "dose_response", "gen:easy", str(tmp_path / "e4" / "sweep_results.csv"))
    row = _findings(write_programme_report([part], (), tmp_path / "report", "cmd", OPTIONS))
    verdict, measured = row["e4: dose response"][3], row["e4: dose response"][2]
    assert verdict.startswith("untested: floor")
    assert "in-distribution dev: EM 5.00% -> 21.00%, rho = 1.000" in measured


def test_parts_not_run_at_this_scale_are_listed_with_their_reason(tmp_path: Path) -> None:
    e4 = _sweep(tmp_path / "e4", "e4", "cogs", "gen:easy", [
        {"n": n, "factors": {"n_unique": n}, "em": _noise(0.1 * i, i)}
        for i, n in enumerate((50, 200, 500, 1000, 4000))])
    not_run = [("e1", "floor at 100 CPU steps"), ("cfq_example", "10-example sample")]
    text = write_programme_report([_part("e4", "dose_response", "gen:easy", e4)], (),
                                  tmp_path / "report", "cmd", OPTIONS, (), not_run).read_text()
    section = text[text.index("Not run at this scale"):text.index("## Findings")]
    assert "| e1 | floor at 100 CPU steps |" in section
    assert "| cfq_example | 10-example sample |" in section
    assert "| e1 |" not in text[text.index("## Findings"):]
