"""The analysis package must run on a laptop: importing and using it pulls in no ML framework."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = (
    "jax",
    "jaxlib",
    "flax",
    "optax",
    "orbax",
    "tensorflow",
    "seqio",
    "compgen_jax",
    "tasks",
)

SCRIPT = """
import importlib, pkgutil, sys, tempfile, pathlib

FORBIDDEN = set(sys.argv[1].split(","))


class Block:
    '''A meta-path finder that makes every forbidden top-level package unimportable.'''

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in FORBIDDEN:
            raise ImportError(f"blocked import of {name}")
        return None


sys.meta_path.insert(0, Block())
import pandas as pd
import analysis
modules = sorted(m.name for m in pkgutil.iter_modules(analysis.__path__, "analysis."))
for name in modules:
    importlib.import_module(name)
from analysis.report import ReportOptions, write_report
from analysis.planted_sweeps import Dataset, synthetic_sweep, write_sweep
import analysis.escape, analysis.stats, analysis.coverage, analysis.scaling
import numpy as np

tmp = pathlib.Path(tempfile.mkdtemp())
datasets = [Dataset("scan", 0.1, pool_size=200), Dataset("cfq", 0.0, 0.1, pool_size=200)]
sweep = synthetic_sweep(datasets, [10, 20, 40], n_seeds=3)
write_sweep(sweep, tmp / "sweep")
options = ReportOptions(n_boot=100, n_perm=100, power_draws=20, power_perm=20, power_ns=(5, 10))
report = write_report(tmp / "sweep", tmp / "out", options=options).read_text()
assert "## scan" in report and "Seed-count threshold" in report
assert "_Not computed: pass --measures CSV and --constructs JSON to run the audit._" in report
analysis.stats.tost_ind([0.1, 0.2], [0.15, 0.1], 3.0, "exact_match")
analysis.escape.escape_regression(pd.DataFrame(
    {"n_unique": [1, 2, 3, 4, 1, 2, 3, 4], "exposure": [1, 1, 2, 2, 2, 2, 1, 1],
     "escaped": [0, 1, 0, 1, 1, 0, 1, 0]}))
cov = analysis.coverage.coverage_matrix(
    np.array([[0, 1, 2], [1, 1, 2]]), np.array([0, 0]), np.array([[2, 1, 2]]), np.array([0]), 3, 2)
assert cov.shape == (1, 2)
analysis.scaling.fit_power_law([1, 2, 3], [1, 4, 9], n_boot=10)
print(",".join(modules))
print(",".join(sorted({m.split(".")[0] for m in sys.modules} & FORBIDDEN)))
"""


def test_analysis_imports_and_reports_with_ml_frameworks_blocked() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, ",".join(FORBIDDEN)],
        capture_output=True, text=True, env=env, cwd=REPO_ROOT, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    modules, loaded = proc.stdout.split("\n")[:2]
    expected = {"analysis.audit", "analysis.report", "analysis.seeds", "analysis.coverage",
                "analysis.scaling"}  # fmt: skip
    assert expected <= set(modules.split(","))
    assert loaded == "", f"analysis imported {loaded}"
