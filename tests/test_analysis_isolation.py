"""The analysis package must run on a laptop: importing and using it pulls in no ML framework."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = ("jax", "flax", "optax", "orbax", "tensorflow", "seqio", "compgen_jax", "tasks")

SCRIPT = """
import sys, tempfile, pathlib
import pandas as pd
import analysis, analysis.results, analysis.dose_response, analysis.atomic, analysis.__main__
import analysis.stats, analysis.escape
from analysis.dose_response import diversity_summary, plot_dose_response
from analysis.results import read_results
tmp = pathlib.Path(tempfile.mkdtemp())
pd.DataFrame({
    "cell": ["a", "b"], "benchmark": "scan", "task": "t", "split": "test", "strategy": "random",
    "n_unique": [10, 20], "exposure": 1.0, "manifest_hash": "h", "seed": 0, "step": 1,
    "exact_match": [0.1, 0.2], "n_examples": 5, "train_loss": 0.3, "diverged": False,
}).to_csv(tmp / "results.csv", index=False)
df = read_results(tmp)
diversity_summary(df, "test")
plot_dose_response(df, "test", tmp / "p.png")
analysis.stats.tost_ind([0.1, 0.2], [0.15, 0.1], 3.0)
analysis.escape.escape_regression(pd.DataFrame(
    {"n_unique": [1, 2, 3, 4, 1, 2, 3, 4], "exposure": [1, 1, 2, 2, 2, 2, 1, 1],
     "escaped": [0, 1, 0, 1, 1, 0, 1, 0]}))
forbidden = sys.argv[1].split(",")
print(",".join(sorted({m.split(".")[0] for m in sys.modules} & set(forbidden))))
"""


def test_analysis_imports_no_ml_framework() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, ",".join(FORBIDDEN)],
        capture_output=True, text=True, env=env, cwd=REPO_ROOT, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"analysis imported {proc.stdout.strip()}"
