"""The command line end to end: gin flags, operative config, results table, clear errors."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from analysis.results import read_results
from analysis.schema import RESULT_COLUMNS
from compgen_jax import loop
from compgen_jax.cli import main
from compgen_jax.gin_utils import rewrite_gin_args

MICRO = [
    "--gin.TransformerConfig.emb_dim=32", "--gin.TransformerConfig.mlp_dim=64",
    "--gin.TransformerConfig.num_encoder_layers=1", "--gin.TransformerConfig.num_decoder_layers=1",
    "--gin.TRAIN_STEPS=10", "--gin.TrainConfig.steps_per_call=5", "--gin.NUM_SEEDS=2",
    "--gin.TrainConfig.max_eval_examples=40", "--gin.BATCH_SIZE=8",
]


def test_rewrite_gin_args_follows_t5x():
    assert rewrite_gin_args(["--gin.MODEL_DIR=\"/tmp/x\"", "--gin_file=a.gin"]) == [
        "--gin_bindings=MODEL_DIR = \"/tmp/x\"", "--gin_file=a.gin"]


def test_train_writes_operative_config_manifests_and_results(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    written = []
    monkeypatch.setattr(loop, "write_operative_config",
                        lambda d, write=loop.write_operative_config: written.append(d) or write(d))
    model_dir = tmp_path / "cell"
    rc = main(["train", "--gin_file=experiments/scan_simple_cell_cpu.gin",
               f"--gin.MODEL_DIR='{model_dir}'", "--gin.N_UNIQUE=30", *MICRO])
    assert rc == 0
    assert written == [model_dir]  # config.gin is written once, by the host loop
    config = (model_dir / "config.gin").read_text()
    assert "cell_setup.cell = @CellConfig()" in config
    assert re.search(r"TransformerConfig\.emb_dim = 32\n", config)
    assert re.search(r"TRAIN_STEPS = 10\n", config)
    table = pd.read_csv(model_dir / "results.csv")
    assert list(table.columns) == list(RESULT_COLUMNS)
    assert sorted(table["seed"]) == [0, 1] and set(table["step"]) == {10}
    assert set(table["n_unique"]) == {30} and set(table["n_examples"]) == {40}
    assert table["exposure"].iloc[0] == pytest.approx(10 * 8 / 30)
    assert sorted(p.name for p in (model_dir / "manifests").iterdir()) == [
        "seed_0.json", "seed_1.json"]
    assert table["manifest_hash"].nunique() == 2  # per-seed manifests


def test_unknown_gin_binding_is_one_clear_error(tmp_path: Path):
    proc = subprocess.run(
        [sys.executable, "-m", "compgen_jax.cli", "train",
         "--gin_file=experiments/scan_simple_cell_cpu.gin", f"--gin.MODEL_DIR='{tmp_path}'",
         "--gin.TrainConfig.num_sedes=3"],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1, proc.stderr
    assert "TrainConfig.num_sedes" in err[0] and "error" in err[0]
    assert not list(tmp_path.iterdir())  # nothing written


def test_manifest_larger_than_pool_is_one_clear_error(tmp_path: Path, capsys):
    rc = main(["train", "--gin_file=experiments/scan_simple_cell_cpu.gin",
               f"--gin.MODEL_DIR='{tmp_path / 'm'}'", "--gin.N_UNIQUE=999999", *MICRO])
    assert rc == 2
    err = capsys.readouterr().err
    assert "999999" in err and "scan_simple:train" in err
    assert not (tmp_path / "m" / "results.csv").exists()


def test_train_on_a_design_file_points_at_sweep_launch(tmp_path: Path, capsys):
    rc = main(["train", "--gin_file=experiments/cogs_e1_cpu.gin",
               f"--gin.MODEL_DIR='{tmp_path / 'm'}'"])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "compgen-jax sweep launch --gin_file=experiments/cogs_e1_cpu.gin" \
        in err[0]
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("command", [["manifest", "build"], ["sweep", "launch", "--dry_run"]])
def test_design_commands_on_a_single_cell_config_are_one_clear_error(
        tmp_path: Path, capsys, command: list[str]):
    rc = main([*command, "--gin_file=experiments/scan_simple_cell_cpu.gin",
               f"--gin.MODEL_DIR='{tmp_path / 'm'}'"])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "single-cell config" in err[0] and "compgen-jax train" in err[0]
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(("binding", "message"), [
    ("--gin.TRAIN_STEP=50", "macro TRAIN_STEP; did you mean TRAIN_STEPS?"),
    ("--gin.TRAIN_STEPS='abc'", "TrainConfig.total_steps = 'abc' (through %TRAIN_STEPS): "
                                "expected int, got str"),
    ("--gin.LEARNING_RATE='0.1'", "learning_rate = '0.1' (through %LEARNING_RATE): expected "
                                  "float"),
    ("--gin.TrainConfig.shard_seeds=1", "TrainConfig.shard_seeds = 1: expected bool"),
])
def test_misspelled_macro_and_wrong_type_are_one_clear_error(
        tmp_path: Path, capsys, binding: str, message: str):
    rc = main(["train", "--gin_file=experiments/scan_simple_cell_cpu.gin",
               f"--gin.MODEL_DIR='{tmp_path / 'm'}'", binding])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "m").exists()


@pytest.mark.slow
def test_demo_main_job_shows_em_rising_with_n(tmp_path: Path):
    proc = subprocess.run(
        [sys.executable, "-m", "compgen_jax.cli", "demo", f"--gin.MODEL_DIR='{tmp_path}'"],
        capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = read_results(tmp_path)
    means = table.groupby("n_unique")["exact_match"].mean().sort_index()
    assert means.is_monotonic_increasing and means.iloc[-1] > means.iloc[0]
    assert (tmp_path / "dose_response.png").stat().st_size > 0
    assert "plot:" in proc.stdout
