"""The vmapped multi-seed engine: seed independence and cached decoding."""

from __future__ import annotations

import dataclasses
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from compgen_jax import multiseed
from compgen_jax.configs import TrainConfig
from compgen_jax.evaluation import decode
from compgen_jax.models.transformer import (
    EncoderDecoder,
    TransformerConfig,
    matrices_only,
    shift_right,
)
from compgen_jax.multiseed import MultiSeedTrainer, bucket_index, bucket_lengths
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


def _ragged_pool(n: int = 40) -> dict[str, jax.Array]:
    """Mostly short examples (targets 2-6 tokens, EOS included) and every 20th 30 tokens long,
    padded to 32 target / 10 input positions: steps fall into different length buckets."""
    rng = np.random.default_rng(1)
    inputs = np.zeros((n, 10), np.int32)
    targets = np.zeros((n, 32), np.int32)
    for i in range(n):
        length = 30 if i % 20 == 0 else int(rng.integers(2, 7))
        inputs[i, :min(length, 10)] = rng.integers(3, 12, min(length, 10))
        targets[i, :length - 1] = rng.integers(3, 12, length - 1)
        targets[i, length - 1] = 1
    return {"inputs": jnp.asarray(inputs), "targets": jnp.asarray(targets)}


def _bucketed(length_buckets: int) -> MultiSeedTrainer:
    optimizer = make_optimizer(OptimizerConfig(learning_rate=3e-3, warmup_steps=2), matrices_only)
    return MultiSeedTrainer(dataclasses.replace(CFG, max_len=32), optimizer, BATCH, STEPS,
                            length_buckets=length_buckets)


def test_bucket_lengths_and_index_by_hand():
    # 154 * k / 8 = 19.25, 38.5, 57.75, 77, ... rounded up to whole tokens, then to multiples of 8
    assert bucket_lengths(154, 8) == [24, 40, 64, 80, 104, 120, 136, 154]
    assert bucket_lengths(32, 4) == [8, 16, 24, 32]
    assert bucket_lengths(7, 8) == [7]  # every bucket rounds to the full length: one shape
    assert bucket_lengths(154, 1) == [154]
    targets = np.zeros((2, 3, 32), np.int32)
    targets[0, 1, :9] = 5  # seed 0's longest example: 9 tokens
    targets[1, 2, :30] = 5  # seed 1's: 30 tokens
    batch = {"inputs": jnp.ones((2, 3, 4), jnp.int32), "targets": jnp.asarray(targets)}
    lengths = [8, 16, 24, 32]
    assert int(bucket_index(batch, jnp.asarray([True, True]), lengths)) == 3
    assert int(bucket_index(batch, jnp.asarray([True, False]), lengths)) == 1  # 9 -> 16
    assert int(bucket_index(batch, jnp.asarray([False, False]), lengths)) == 0


def test_bucketed_steps_equal_full_padding_and_seed_alone():
    pool, seeds = _ragged_pool(), [3, 7, 11]
    orders = _orders(seeds)
    full, bucketed = _bucketed(1), _bucketed(2)  # buckets 16 and 32
    # The test can fail: this stream's steps use both buckets, 16 and the full 32.
    shapes = {int(bucket_index({f: a[orders[:, i * BATCH:(i + 1) * BATCH]]
                                for f, a in pool.items()}, jnp.ones(3, bool), [16, 32]))
              for i in range(2 * STEPS)}
    assert shapes == {0, 1}, shapes
    runs = {}
    for name, trainer, lanes in (("full", full, seeds), ("bucketed", bucketed, seeds),
                                 ("alone", bucketed, [7])):
        state = trainer.init(jnp.asarray(lanes))
        rows = orders if len(lanes) == 3 else orders[1:2]
        for _ in range(2):
            state, losses = trainer.train(state, rows, pool)
        runs[name] = (state, losses)
    (full_state, full_losses), (state, losses) = runs["full"], runs["bucketed"]
    alone, alone_losses = runs["alone"]
    np.testing.assert_allclose(losses, full_losses, rtol=1e-5, atol=1e-6)  # dropout 0.1 too
    np.testing.assert_allclose(losses[1], alone_losses[0], rtol=1e-5, atol=1e-6)
    for lane, other in ((1, _lane(full_state["params"], 1)), (1, _lane(alone["params"], 0))):
        for a, b in zip(jax.tree.leaves(_lane(state["params"], lane)), jax.tree.leaves(other),
                        strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # The same command twice gives the same bits.
    again = bucketed.init(jnp.asarray(seeds))
    for _ in range(2):
        again, again_losses = bucketed.train(again, orders, pool)
    np.testing.assert_array_equal(again_losses, losses)
    for a, b in zip(jax.tree.leaves(again["params"]), jax.tree.leaves(state["params"]),
                    strict=True):
        np.testing.assert_array_equal(a, b)


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


@pytest.mark.parametrize("eos_bias", [2.0, 3.5, 100.0], ids=["some-never", "mid", "at-once"])
def test_early_stopping_decode_equals_full_length_greedy(eos_bias: float,
                                                         monkeypatch: pytest.MonkeyPatch):
    # A hand-set EOS logit bias: at 2.0 some rows never end (every chunk runs), at 3.5 rows end
    # at varied positions, at 100 every row ends at its first position (one chunk runs).
    monkeypatch.setattr(multiseed, "DECODE_CHUNK", 4)  # 20 positions: up to 5 chunks
    trainer, pool = _trainer(), _pool()
    params = trainer.init(jnp.arange(3))["params"]
    bias = params["logits"]["bias"]
    bias[...] = bias[...].at[:, 1].add(eos_bias)
    calls = []
    chunk = trainer._decode_chunk
    monkeypatch.setitem(trainer.__dict__, "_decode_chunk",
                        lambda *args: calls.append(args[3]) or chunk(*args))
    inputs = pool["inputs"][:16]
    tokens = np.asarray(trainer.decode(params, inputs, 20))
    # one scan over all 20 positions (no chunks, no stop), 0 after a row's EOS
    np.testing.assert_array_equal(tokens, trainer.full_decode(params, inputs, 20))
    ended = (tokens == 1).any(-1)
    last_end = int((tokens == 1).argmax(-1).max()) if ended.all() else 19
    assert calls == list(range(0, 4 * (last_end // 4 + 1), 4))  # stopped at the chunk it ended
    assert {2.0: not ended.all() and ended.any(), 3.5: ended.all() and 4 <= last_end < 16,
            100.0: ended.all() and last_end == 0}[eos_bias], tokens


def test_chunked_decode_shows_progress_named_by_cell(capsys: pytest.CaptureFixture[str]):
    trainer, pool = _trainer(), _pool()
    params = trainer.init(jnp.arange(2))["params"]
    tokens = decode(trainer, params, pool, 16, desc="cell_a: decode test")  # chunks 16, 16, 8
    np.testing.assert_array_equal(tokens, trainer.decode(params, pool["inputs"], 7))
    err = capsys.readouterr().err
    assert "cell_a: decode test:" in err and "0/40 [" in err, err  # the bar, before any chunk
    assert all(line.startswith("cell_a:") for line in re.split(r"[\r\n]", err)
               if line.strip()), err  # every line of it carries the cell's name
    decode(trainer, params, pool, 16)
    assert capsys.readouterr().err == ""  # no name, no bar


def test_model_config_errors_name_the_setting():
    with pytest.raises(ValueError, match="TrainConfig.length_buckets=0"):
        TrainConfig(length_buckets=0).validate()
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
