"""Every shipped CPU design, launched as a sweep on the real data: all cells train and evaluate,
no seed diverges (slow: minutes per design; 2 seeds and fewer steps than shipped)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from compgen_jax import sweep

REPO = Path(__file__).resolve().parents[1]
SHORT_BUDGET = ["TRAIN_STEPS = 20"]  # designs with a fixed step budget
SHORT_EXPOSURE = ["EXPOSURE_LEVELS = (0.5, 1)"]  # replication designs: steps = N x E / batch
# design -> bindings that shorten it (NUM_SEEDS = 2 for all)
REDUCED = {
    "cogs_e1_cpu": SHORT_BUDGET, "cogs_e2_cpu": SHORT_BUDGET, "cogs_e3_cpu": SHORT_BUDGET,
    "cogs_e4_cpu": SHORT_BUDGET, "cogs_e6_cpu": SHORT_BUDGET,
    "cogs_e5_cpu": ["factorial_cells.factors = {'n_unique': (100, 400, 1600), "
                    "'exposure': (0.5, 1)}"],
    "cogs_seed_threshold_cpu": ["factorial_cells.exposure = 0.5"],
    "replication_scan_length_cpu": SHORT_EXPOSURE,
    "replication_gscan_adverb_1_cpu": SHORT_EXPOSURE,
    "replication_recogs_gen_cpu": SHORT_EXPOSURE,
    "replication_cfq_mcd1_cpu": SHORT_EXPOSURE,
    "replication_cfq_example_cpu": [],  # the 10-example CFQ sample: minutes as shipped
}


@pytest.mark.slow
@pytest.mark.parametrize("design", sorted(REDUCED))
def test_cpu_design_trains_every_cell_without_divergence(design: str, tmp_path: Path,
                                                         shared_data: Path) -> None:
    root = tmp_path / design
    bindings = [f"MODEL_DIR = '{root}'", "NUM_SEEDS = 2", *REDUCED[design]]
    try:
        spec = sweep.expand([f"experiments/{design}.gin"], bindings)
    except FileNotFoundError as err:  # e.g. CFQ's split files (`data fetch cfq`)
        pytest.skip(f"{design}: data not available locally ({err})")
    except ValueError as err:
        if "could not be registered" in str(err) or "has no split" in str(err):
            pytest.skip(f"{design}: data not available locally ({err})")
        raise
    proc = subprocess.run(
        [sys.executable, "-m", "compgen_jax.cli", "sweep", "launch",
         f"--gin_file=experiments/{design}.gin", *(f"--gin_bindings={b}" for b in bindings)],
        capture_output=True, text=True, cwd=REPO, timeout=3 * 3600,
        env={**os.environ, "PYTHONPATH": str(REPO), "COMPGEN_DATA_DIR": str(shared_data)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = sweep.collect(root)
    assert set(table["cell"]) == {c.name for c in spec.cells}
    assert set(table["seed"]) == {0, 1}
    assert not table["diverged"].any()
    assert table["train_loss"].notna().all() and (table["train_loss"] > 0).all()
    assert table["exact_match"].between(0, 1).all()
