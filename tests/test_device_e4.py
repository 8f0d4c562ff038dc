"""benchmarks/device/e4.py: the kit's E4 run (programme/gpu_run.gin) at smoke size on CPU, its
files and report against the results it wrote; the stratified eval subset it asks for."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.results import final_step, read_results
from compgen_jax.task_data import subset_rows
from tasks.benchmarks import cogs

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "device" / "e4.py"
SHIPPED = {"report.md", "results.csv", "e4_dose.png", "gpu_run.gin", "gpu_run_smoke.gin",
           "log.txt"}


def _run(*args: str, data: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, **({"COMPGEN_DATA_DIR": str(data)} if data else {}))
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=900)


def test_subset_rows_spreads_the_subset_evenly_over_categories():
    categories = ["b"] * 5 + ["a"] * 10 + ["c"] * 2
    rows = subset_rows(len(categories), 7, categories)
    picked = [categories[r] for r in rows]
    # 7 = 3 categories x 2 + 1: the first category in sorted order ('a') gives the extra row
    assert (picked.count("a"), picked.count("b"), picked.count("c")) == (3, 2, 2)
    assert list(rows) == sorted(set(rows.tolist())) and rows.max() < len(categories)
    # a category smaller than its share gives all of its rows
    picked = [categories[r] for r in subset_rows(len(categories), 9, categories)]
    assert (picked.count("a"), picked.count("b"), picked.count("c")) == (3, 3, 2)
    # without categories (or with one) the subset is the seeded random one of before
    want = np.sort(np.random.default_rng(0).choice(17, 7, replace=False))
    np.testing.assert_array_equal(subset_rows(17, 7), want)
    np.testing.assert_array_equal(subset_rows(17, 7, ["x"] * 17), want)


def test_bad_output_folder_is_one_line_and_exit_2(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]):
    spec = importlib.util.spec_from_file_location("device_e4", SCRIPT)
    e4 = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(e4)
    taken = tmp_path / "taken"
    taken.write_text("keep\n")
    assert e4.main(["--smoke", "--out", str(taken)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("e4: error: --out") and "is a file" in err and err.count("\n") == 1
    assert taken.read_text() == "keep\n"
    used = tmp_path / "used"  # a folder of an earlier run (run.sh's env.txt is welcome)
    used.mkdir()
    (used / "env.txt").write_text("x")
    (used / "report.md").write_text("earlier\n")
    assert e4.main(["--smoke", "--out", str(used)]) == 2
    assert "already holds report.md" in capsys.readouterr().err
    assert sorted(p.name for p in used.iterdir()) == ["env.txt", "report.md"]
    assert (used / "report.md").read_text() == "earlier\n"


@pytest.fixture(scope="module")
def smoke(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One `e4.py --smoke` run on the real COGS data in a fresh interpreter: its --out folder."""
    tmp = tmp_path_factory.mktemp("e4")
    # a budget no busy machine reaches: the kit's 450 s guard is for the accelerator's session
    proc = _run("--smoke", "--out", str(tmp / "out"), "--work", str(tmp / "work"),
                "--budget_s", "3600", data=shared_data)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp / "out"


def test_smoke_writes_the_kit_files(smoke: Path):
    assert {p.name for p in smoke.iterdir()} == SHIPPED and len(SHIPPED) <= 8
    assert (smoke / "e4_dose.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "report:" in (smoke / "log.txt").read_text()
    assert (smoke / "gpu_run.gin").read_text() == (
        REPO / "gin_configs" / "programme" / "gpu_run.gin").read_text()


def test_smoke_results_are_per_seed_with_every_gen_category(smoke: Path):
    table = read_results(smoke / "results.csv")
    assert sorted(table["n_unique"].unique()) == [50, 500, 4000]
    assert set(table["seed"]) == {0, 1} and not table["diverged"].any()
    gen = table[table["split"].str.startswith("gen:")]
    sizes = gen.groupby("split")["n_examples"].first()
    # 21 examples stratified over the 21 categories: 1 from each, 18 lexical (easy), 3 hard
    assert {f"gen:{c}" for c in cogs.GEN_CATEGORIES} <= set(sizes.index)
    assert all(sizes[f"gen:{c}"] == 1 for c in cogs.GEN_CATEGORIES)
    assert (sizes["gen:easy"], sizes["gen:hard"]) == (18, 3)
    assert set(table.loc[table["split"] == "dev", "n_examples"]) == {21}


def test_smoke_report_tables_match_the_results(smoke: Path):
    report = (smoke / "report.md").read_text()
    final = final_step(read_results(smoke / "results.csv"))
    for split in ("dev", "gen:easy", "gen:hard"):
        rows = final[final["split"] == split].groupby("n_unique")["exact_match"]
        for n, mean, sd in zip(rows.mean().index, rows.mean(), rows.std(), strict=True):
            row = re.search(rf"^\| {n} \|(.*)\|$", report, re.M).group(1).split("|")
            column = ("dev", "gen:easy", "gen:hard").index(split)
            assert row[column].strip() == f"{100 * mean:.2f} +/- {100 * sd:.2f}"
    assert "Status: complete: 3 of 3 cells finished" in report
    floor = (final.loc[final["split"] == "gen:easy", "exact_match"] < 0.01).all()
    verdict = re.search(r"^\| e4: dose response \|.*\| ([^|]+) \|$", report, re.M).group(1)
    assert verdict.startswith("untested: floor") == floor
    # the scale and recipe are printed from the gin files the run used
    assert "TRAIN_STEPS = 3000" in report and "TRAIN_STEPS = 2" in report
    assert "LEARNING_RATE = 3e-3" in report and "e4-n_unique=4000" in report
    per_category = pd.read_csv(smoke / "results.csv")
    assert per_category["split"].str.startswith("gen:").sum() == 3 * 2 * (21 + 2)
