"""Checkpoint/resume after a kill, and seeds sharded over 8 (simulated) devices == unsharded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
from conftest import assert_results_equivalent

REPO = Path(__file__).resolve().parents[1]
MICRO = [
    "--gin_file=experiments/scan_simple_cell_cpu.gin", "--gin.N_UNIQUE=40",
    "--gin.TransformerConfig.emb_dim=32", "--gin.TransformerConfig.mlp_dim=64",
    "--gin.TransformerConfig.num_encoder_layers=1", "--gin.TransformerConfig.num_decoder_layers=1",
    "--gin.BATCH_SIZE=8", "--gin.TrainConfig.max_eval_examples=30",
]


def _train_args(model_dir: Path, *extra: str) -> list[str]:
    return ["train", f"--gin.MODEL_DIR='{model_dir}'", *MICRO, *extra]


def _train_command(model_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "compgen_jax.cli", *_train_args(model_dir, *extra)]


def _run(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=REPO,
                          env={**os.environ, **(env or {})})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _results(model_dir: Path) -> pd.DataFrame:
    table = pd.read_csv(model_dir / "results.csv")
    return table.sort_values(["split", "step", "seed"]).reset_index(drop=True)


def _main(model_dir: Path, *extra: str) -> None:
    """`compgen-jax train` in this process: the same code path, without a new interpreter."""
    from compgen_jax.cli import main

    assert main(_train_args(model_dir, *extra)) == 0


def test_killed_run_resumes_to_bitwise_identical_results(tmp_path: Path):
    budget = ["--gin.TRAIN_STEPS=120", "--gin.TrainConfig.steps_per_call=5", "--gin.NUM_SEEDS=3",
              "--gin.EVAL_PERIOD=60", "--gin.CheckpointConfig.period=10",
              "--gin.CheckpointConfig.keep=50"]
    whole = tmp_path / "whole"  # uninterrupted; checkpoints are output only, so it saves none
    _main(whole, *budget, "--gin.CheckpointConfig.period=0")

    killed = tmp_path / "killed"
    proc = subprocess.Popen(_train_command(killed, *budget), cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 600
    while not (killed / "checkpoint_30").is_dir() and proc.poll() is None:
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    saved = sorted(int(p.name.split("_")[1]) for p in killed.glob("checkpoint_*")
                   if p.name.split("_")[1].isdigit())  # not orbax's in-progress *-tmp dirs
    assert saved and saved[-1] < 120, f"the run was not interrupted (checkpoints {saved})"
    assert not (killed / "results.csv").exists()
    # t5x-style: the operative config is on disk (and in TensorBoard) before the first step
    assert "TRAIN_STEPS = 120" in (killed / "config.gin").read_text()
    events = list((killed / "tensorboard").glob("events.out.tfevents.*"))
    assert events and b"TRAIN_STEPS = 120" in events[0].read_bytes()

    _main(killed, *budget)  # the same command again resumes
    pd.testing.assert_frame_equal(_results(killed), _results(whole), check_exact=True)


def test_twelve_seeds_sharded_on_eight_devices_equal_unsharded(tmp_path: Path,
                                                              micro_arrays: list[str]):
    budget = ["--gin.TRAIN_STEPS=20", "--gin.TrainConfig.steps_per_call=10", "--gin.NUM_SEEDS=12",
              *(f"--gin_bindings={b}" for b in micro_arrays)]
    eight = {"XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} "
                          "--xla_force_host_platform_device_count=8"}
    _main(tmp_path / "plain", *budget)  # unsharded: one device, the same program as on eight
    _run(_train_command(tmp_path / "sharded", *budget, "--gin.TrainConfig.shard_seeds=True"),
         env=eight)
    plain, sharded = _results(tmp_path / "plain"), _results(tmp_path / "sharded")
    assert sorted(sharded["seed"].unique()) == list(range(12))  # padding lanes never reported
    assert_results_equivalent(sharded, plain)



def test_train_loss_is_the_same_whatever_steps_per_call(tmp_path: Path):
    """train_loss is the mean over the last TRAIN_LOSS_WINDOW = 100 steps (at step 60 all 60; at
    120 and 150 the window starts inside a 30-step call): the same training in calls of 10 or 30
    steps gives the same rows, train_loss included, at every eval step."""
    from analysis.schema import TRAIN_LOSS_WINDOW

    assert TRAIN_LOSS_WINDOW == 100
    budget = ["--gin.TRAIN_STEPS=150", "--gin.NUM_SEEDS=2", "--gin.EVAL_PERIOD=60",
              "--gin.TrainConfig.tensorboard=False", "--gin.TrainConfig.save_predictions='none'"]
    for calls in (10, 30):
        _main(tmp_path / str(calls), *budget, f"--gin.TrainConfig.steps_per_call={calls}")
    tens, thirties = _results(tmp_path / "10"), _results(tmp_path / "30")
    assert sorted(tens["step"].unique()) == [60, 120, 150]
    assert tens["train_loss"].notna().all() and tens["train_loss"].nunique() > 2
    pd.testing.assert_frame_equal(tens, thirties, check_exact=True)
