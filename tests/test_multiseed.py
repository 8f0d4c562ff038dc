"""The vmapped multi-seed engine: seed independence and cached decoding."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from compgen_jax.models.transformer import (
    EncoderDecoder,
    TransformerConfig,
    matrices_only,
    shift_right,
)
from compgen_jax.multiseed import MultiSeedTrainer
from compgen_jax.optim import OptimizerConfig, make_optimizer

CFG = TransformerConfig(vocab_size=12, emb_dim=32, num_heads=4, num_encoder_layers=1,
                        num_decoder_layers=1, mlp_dim=64, max_len=16, dropout_rate=0.1)
BATCH, STEPS = 8, 5



def _lane(tree, seed_index: int):
    """One seed's lane of a stacked pytree."""
    return jax.tree.map(lambda a: a[seed_index], tree)

def _trainer() -> MultiSeedTrainer:
    optimizer = make_optimizer(OptimizerConfig(learning_rate=3e-3, warmup_steps=2), matrices_only)
    return MultiSeedTrainer(CFG, optimizer, BATCH, STEPS)


def _pool(n: int = 40) -> dict[str, jax.Array]:
    rng = np.random.default_rng(0)
    inputs = rng.integers(3, 12, (n, 6))
    inputs[:, 4:] = 0  # padding is masked
    targets = rng.integers(3, 12, (n, 7))
    targets[:, -1] = 1
    return {"inputs": jnp.asarray(inputs, jnp.int32), "targets": jnp.asarray(targets, jnp.int32)}


def _orders(seeds: list[int], n: int = 40) -> jax.Array:
    return jnp.asarray(np.stack([np.random.default_rng(s).integers(0, n, STEPS * BATCH * 2)
                                 for s in seeds]), jnp.int32)


def test_seed_inside_vmapped_run_equals_seed_alone():
    trainer, pool = _trainer(), _pool()
    seeds = [3, 7, 11]
    state = trainer.init(jnp.asarray(seeds))
    orders = _orders(seeds)
    for _ in range(2):
        state, losses = trainer.train(state, orders, pool)
    alone = trainer.init(jnp.asarray([7]))
    for _ in range(2):
        alone, alone_losses = trainer.train(alone, orders[1:2], pool)
    np.testing.assert_allclose(losses[1], alone_losses[0], rtol=1e-5, atol=1e-6)
    flat_vmapped = jax.tree.leaves(_lane(state["params"], 1))
    flat_alone = jax.tree.leaves(_lane(alone["params"], 0))
    assert len(flat_vmapped) == len(flat_alone) > 0
    for a, b in zip(flat_vmapped, flat_alone, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # The seeds really differ (independent init, order and dropout), so the test can fail.
    assert not np.allclose(jax.tree.leaves(_lane(state["params"], 0))[0], flat_alone[0])


def test_training_reduces_loss_per_seed():
    trainer, pool = _trainer(), _pool()
    state = trainer.init(jnp.arange(2))
    orders = jnp.asarray(np.tile(np.arange(BATCH), (2, STEPS * 20)), jnp.int32)  # one batch
    first = None
    for _ in range(6):
        state, losses = trainer.train(state, orders, pool)
        first = losses[:, 0] if first is None else first
    assert np.all(np.asarray(losses[:, -1]) < np.asarray(first) * 0.5)


def test_cached_greedy_decode_matches_teacher_forced_argmax():
    trainer, pool = _trainer(), _pool()
    state = trainer.init(jnp.arange(2))
    tokens = trainer.decode(state["params"], pool["inputs"][:5], 7)
    assert tokens.shape == (2, 5, 7)
    for s in range(2):
        model: EncoderDecoder = nnx.merge(trainer.graphdef, _lane(state["params"], s))
        seq = np.asarray(tokens[s])
        # Feeding the greedy output back teacher-forced must reproduce each argmax (until EOS).
        logits = model(pool["inputs"][:5], shift_right(jnp.asarray(seq)))
        argmax = np.asarray(jnp.argmax(logits, -1))
        for b in range(5):
            end = int(np.argmax(seq[b] == 1)) + 1 if (seq[b] == 1).any() else 7
            np.testing.assert_array_equal(seq[b, :end], argmax[b, :end])
            assert np.all(seq[b, end:] == 0)


def test_model_config_errors_name_the_setting():
    with pytest.raises(ValueError, match="vocab_size"):
        EncoderDecoder(TransformerConfig(vocab_size=0), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="num_heads"):
        EncoderDecoder(TransformerConfig(vocab_size=5, emb_dim=30, num_heads=4), rngs=nnx.Rngs(0))


def test_diverging_seed_is_frozen_and_flagged_others_bitwise_unaffected():
    trainer, pool = _trainer(), _pool()
    seeds = [3, 7, 11]
    orders = _orders(seeds)
    normal = trainer.init(jnp.asarray(seeds))
    poisoned = trainer.init(jnp.asarray(seeds))
    # seed 7's Adam first moment: its first update throws the params far enough (finite) that
    # the second step's loss overflows
    mu = optax.tree_utils.tree_get(poisoned["opt"], "mu")
    poisoned["opt"] = optax.tree_utils.tree_set(
        poisoned["opt"], mu=jax.tree.map(lambda m: m.at[1].set(1e20), mu))
    for _ in range(2):
        normal, _ = trainer.train(normal, orders, pool)
        poisoned, losses = trainer.train(poisoned, orders, pool)
    np.testing.assert_array_equal(poisoned["diverged"], [False, True, False])
    assert not np.isfinite(np.asarray(losses[1])).all()
    for lane in (0, 2):
        for a, b in zip(jax.tree.leaves(_lane(poisoned["params"], lane)),
                        jax.tree.leaves(_lane(normal["params"], lane)), strict=True):
            np.testing.assert_array_equal(a, b)
    frozen_at = int(poisoned["step"][1])
    assert 0 < frozen_at < 2 * STEPS
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(_lane(poisoned["params"], 1)))
    again, _ = trainer.train(poisoned, orders, pool)
    assert int(again["step"][1]) == frozen_at  # stays frozen


def test_inactive_seed_is_frozen():
    trainer, pool = _trainer(), _pool()
    state = trainer.init(jnp.arange(2))
    before = jax.tree.map(np.asarray, _lane(state["params"], 0))
    state["active"] = jnp.asarray([False, True])
    state, _ = trainer.train(state, _orders([0, 1]), pool)
    for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(_lane(state["params"], 0)),
                    strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(state["step"], [0, STEPS])


@pytest.mark.parametrize("optimizer", [
    OptimizerConfig(name="adafactor", learning_rate=1e-2, warmup_steps=2),
    OptimizerConfig(learning_rate=3e-3, warmup_steps=2),
], ids=["adafactor", "adamw"])
def test_optimizers_and_bf16_compute_train(optimizer: OptimizerConfig):
    pool = _pool()
    for dtype in ("float32", "bfloat16"):
        cfg = dataclasses.replace(CFG, dtype=dtype, dropout_rate=0.0)
        trainer = MultiSeedTrainer(cfg, make_optimizer(optimizer, matrices_only), BATCH, STEPS)
        orders = jnp.asarray(np.tile(np.arange(BATCH), (2, STEPS * 20)), jnp.int32)
        state, first = trainer.train(trainer.init(jnp.arange(2)), orders, pool)
        for _ in range(5):
            state, loss = trainer.train(state, orders, pool)
        assert np.isfinite(np.asarray(loss)).all()
        assert np.all(np.asarray(loss[:, -1]) < np.asarray(first[:, 0]) * 0.7), dtype
        leaf = jax.tree.leaves(state["params"])[0]
        assert leaf.dtype == jnp.float32  # parameters stay float32; only compute is bf16


def test_unknown_optimizer_names_the_setting():
    with pytest.raises(ValueError, match="OptimizerConfig.name"):
        make_optimizer(OptimizerConfig(name="sgdd"), matrices_only)
