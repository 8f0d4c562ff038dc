"""Step budgets that are not a multiple of steps_per_call: a shorter final call, resumable."""

from __future__ import annotations

import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from compgen_jax.cli import main
from compgen_jax.configs import TrainConfig
from compgen_jax.models.transformer import TransformerConfig, matrices_only
from compgen_jax.multiseed import MultiSeedTrainer
from compgen_jax.optim import OptimizerConfig, make_optimizer


@pytest.mark.parametrize(("total", "per_call", "start", "ends"), [
    (7, 5, 0, [5, 7]), (7, 5, 5, [7]), (7, 5, 7, []), (10, 5, 0, [5, 10]), (3, 5, 0, [3]),
    (12, 5, 10, [12]),
])
def test_call_ends(total: int, per_call: int, start: int, ends: list[int]) -> None:
    assert TrainConfig(total_steps=total, steps_per_call=per_call).call_ends(start) == ends


def test_five_plus_two_steps_equal_seven_in_one_call() -> None:
    cfg = TransformerConfig(vocab_size=12, emb_dim=32, num_heads=4, num_encoder_layers=1,
                            num_decoder_layers=1, mlp_dim=64, max_len=16, dropout_rate=0.1)
    optimizer = make_optimizer(OptimizerConfig(learning_rate=3e-3, warmup_steps=2),
                               matrices_only)
    rng = np.random.default_rng(0)
    pool = {"inputs": jnp.asarray(rng.integers(3, 12, (40, 6)), jnp.int32),
            "targets": jnp.asarray(np.c_[rng.integers(3, 12, (40, 6)), np.ones(40)], jnp.int32)}
    orders = jnp.asarray(rng.integers(0, 40, (2, 7 * 8)), jnp.int32)
    split = MultiSeedTrainer(cfg, optimizer, batch_size=8, steps_per_call=5)
    state, first = split.train(split.init(jnp.arange(2)), orders, pool)
    state, last = split.train(state, orders, pool, 2)
    assert first.shape == (2, 5) and last.shape == (2, 2)
    whole = MultiSeedTrainer(cfg, optimizer, batch_size=8, steps_per_call=7)
    one, losses = whole.train(whole.init(jnp.arange(2)), orders, pool)
    np.testing.assert_allclose(np.concatenate([first, last], axis=1), losses, rtol=1e-6)
    assert (np.asarray(state["step"]) == 7).all()
    for a, b in zip(jax.tree.leaves(state["params"]), jax.tree.leaves(one["params"]),
                    strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _train(model_dir: Path) -> None:
    """`compgen-jax train` of a 12-step micro cell, in this process (the CLI path is the same)."""
    assert main(
        ["train", f"--gin.MODEL_DIR='{model_dir}'",
         "--gin_file=experiments/scan_simple_cell_cpu.gin", "--gin.N_UNIQUE=40",
         "--gin.TransformerConfig.emb_dim=32", "--gin.TransformerConfig.mlp_dim=64",
         "--gin.TransformerConfig.num_encoder_layers=1",
         "--gin.TransformerConfig.num_decoder_layers=1", "--gin.BATCH_SIZE=8",
         "--gin.TrainConfig.max_eval_examples=30", "--gin.TRAIN_STEPS=12",
         "--gin.TrainConfig.steps_per_call=5", "--gin.NUM_SEEDS=2", "--gin.EVAL_PERIOD=5",
         "--gin.CheckpointConfig.period=5", "--gin.CheckpointConfig.keep=None"]) == 0


def test_resume_before_a_partial_final_call_is_bitwise_identical(tmp_path: Path) -> None:
    whole = tmp_path / "whole"
    _train(whole)
    table = pd.read_csv(whole / "results.csv")
    assert sorted(set(table["step"])) == [5, 10, 12]  # evals at 5, 10 and the final step
    assert set(table["seed_steps"]) == {5, 10, 12}
    assert sorted(p.name for p in whole.glob("checkpoint_*")) == [
        "checkpoint_10", "checkpoint_12", "checkpoint_5"]
    # As if killed after checkpoint_10: the resumed run makes the final 2-step call.
    resumed = tmp_path / "resumed"
    shutil.copytree(whole, resumed)
    for path in ("checkpoint_12", "results.csv", "predictions"):
        shutil.rmtree(resumed / path) if (resumed / path).is_dir() else (resumed / path).unlink()
    _train(resumed)
    pd.testing.assert_frame_equal(pd.read_csv(resumed / "results.csv"), table, check_exact=True)
