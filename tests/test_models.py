"""Both model families: seed independence under vmap, cached decoding, answer-only loss, sizes."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from compgen_jax.models import make_model, model_family, param_counts
from compgen_jax.models.__main__ import model_config
from compgen_jax.models.decoder_only import (
    DecoderConfig,
    answer_accuracy,
    answer_loss,
)
from compgen_jax.models.transformer import EncoderDecoder, TransformerConfig, shift_right
from compgen_jax.multiseed import MultiSeedTrainer

VOCAB = 12
FAST_COMPILE = {"xla_backend_optimization_level": 0}  # CPU compile ~3x faster; same in both runs
GPT = DecoderConfig(vocab_size=VOCAB, emb_dim=32, num_heads=4, num_layers=2, mlp_dim=64,
                    max_len=8, dropout_rate=0.1)
T5_11 = TransformerConfig(vocab_size=VOCAB, emb_dim=32, num_heads=4, num_encoder_layers=1,
                          num_decoder_layers=2, mlp_dim=48, dropout_rate=0.1, qkv_dim=24,
                          position="relative", relative_buckets=8, relative_max_distance=12,
                          mlp="gated_gelu", norm="rmsnorm", use_bias=False, scale_attention=False)


def _seq2seq_pool(n: int = 24) -> dict[str, jax.Array]:
    rng = np.random.default_rng(0)
    inputs = rng.integers(3, VOCAB, (n, 9))
    inputs[:, 6:] = 0
    return {"inputs": jnp.asarray(inputs, jnp.int32),
            "targets": jnp.asarray(rng.integers(3, VOCAB, (n, 12)), jnp.int32)}


def _lm_pool(n: int = 24) -> dict[str, jax.Array]:
    rng = np.random.default_rng(0)
    mask = np.zeros((n, 8), bool)
    mask[:, 3:5] = True  # two answer tokens after a three-token prompt, then padding
    return {"tokens": jnp.asarray(rng.integers(3, VOCAB, (n, 8)), jnp.int32),
            "loss_mask": jnp.asarray(mask)}


def _lane(tree: nnx.State, index: int) -> list[jax.Array]:
    return jax.tree.leaves(jax.tree.map(lambda a: a[index], tree))


@pytest.mark.parametrize(("config", "pool"), [
    (dataclasses.replace(GPT, num_layers=1), _lm_pool),
    (dataclasses.replace(T5_11, num_decoder_layers=1), _seq2seq_pool),
], ids=["gpt2", "t5"])
def test_seed_inside_vmapped_run_equals_seed_alone(config, pool: Callable):
    """Both model families through the real MultiSeedTrainer: lane k == seed k trained alone."""
    pool, seeds, steps, batch = pool(), [3, 7, 11], 4, 6
    # eps 1e-4: GPT-2's key bias has an exactly-zero gradient, and Adam with a tiny eps would
    # turn its float round-off (which differs between batched and single kernels) into lr-sized
    # steps of random sign.
    tx = optax.adamw(3e-3, eps=1e-4, weight_decay=0.1,
                     mask=model_family(config).weight_decay_mask)
    trainer = MultiSeedTrainer(config, tx, batch, steps)
    orders = jnp.asarray(np.stack([np.random.default_rng(s).integers(0, 24, steps * batch)
                                   for s in seeds]), jnp.int32)
    state, losses = trainer.train(trainer.init(jnp.asarray(seeds)), orders, pool)
    alone, alone_losses = trainer.train(trainer.init(jnp.asarray(seeds[1:2])), orders[1:2], pool)
    np.testing.assert_allclose(losses[1], alone_losses[0], rtol=1e-5, atol=1e-6)
    lane, alone = _lane(state["params"], 1), _lane(alone["params"], 0)
    assert len(lane) == len(alone) > 0
    for a, b in zip(lane, alone, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    assert not np.allclose(losses[0], losses[1])  # the seeds really differ


def test_decoder_only_trainer_learns_answer_tokens():
    """Answer-only loss falls and per-example teacher-forced accuracy rises on a memorised pool."""
    config = dataclasses.replace(GPT, num_layers=1)
    pool = _lm_pool()
    trainer = MultiSeedTrainer(config, optax.adam(1e-2), 8, 25)
    orders = jnp.asarray(np.tile(np.arange(8), (2, 25 * 4)), jnp.int32)
    state = trainer.init(jnp.arange(2))
    first = np.asarray(trainer.score(state["params"], jax.tree.map(lambda a: a[:8], pool)))
    for _ in range(4):
        state, losses = trainer.train(state, orders, pool)
    last = np.asarray(trainer.score(state["params"], jax.tree.map(lambda a: a[:8], pool)))
    assert first.shape == last.shape == (2, 8)
    assert np.all(np.asarray(losses[:, -1]) < 0.5) and last.mean() > first.mean() + 0.5


def test_cached_greedy_decode_matches_teacher_forced():
    """T5 1.1 options; tests/test_hf_t5.py checks decode_step of both T5 variants against HF."""
    model = EncoderDecoder(T5_11, rngs=nnx.Rngs(0))
    inputs, length = _seq2seq_pool()["inputs"][:5], 12  # 12 > the 6 exact causal buckets

    @functools.partial(jax.jit, compiler_options=FAST_COMPILE)
    def greedy(inputs: jax.Array) -> tuple[jax.Array, jax.Array]:
        caches = model.init_cache(model.encode(inputs), length)

        def step(carry, t):
            token, caches = carry
            logits, caches = model.decode_step(token, t, caches, inputs)
            nxt = jnp.argmax(logits, axis=-1).astype(jnp.int32)
            return (nxt, caches), (nxt, logits)

        init = (jnp.zeros((inputs.shape[0],), jnp.int32), caches)
        _, (tokens, logits) = jax.lax.scan(step, init, jnp.arange(length))
        return tokens.T, jnp.swapaxes(logits, 0, 1)

    tokens, step_logits = greedy(inputs)
    forced = jax.jit(lambda x, y: model(x, shift_right(y)), compiler_options=FAST_COMPILE)(
        inputs, tokens)
    np.testing.assert_allclose(step_logits, forced, atol=1e-5, rtol=1e-5)
    np.testing.assert_array_equal(tokens, jnp.argmax(forced, axis=-1))


def test_answer_loss_and_accuracy_cover_answer_tokens_only():
    rng = np.random.default_rng(0)
    tokens = jnp.asarray([[5, 6, 7, 8, 9]])
    mask = jnp.asarray([[False, False, True, True, False]])  # answer tokens: 7 and 8
    logits = rng.normal(size=(1, 5, 10)).astype(np.float32)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = -(log_probs[0, 1, 7] + log_probs[0, 2, 8]) / 2  # position i predicts token i + 1
    np.testing.assert_allclose(answer_loss(jnp.asarray(logits), tokens, mask), expected, rtol=1e-6)
    other = logits.copy()
    other[0, [0, 3, 4]] = rng.normal(size=(3, 10))  # logits that predict no answer token
    np.testing.assert_allclose(answer_loss(jnp.asarray(other), tokens, mask), expected, rtol=1e-6)
    other[0, 1] = np.eye(10)[7] * 9  # right at the first answer token
    other[0, 2] = np.eye(10)[3] * 9  # wrong at the second
    assert float(answer_accuracy(jnp.asarray(other), tokens, mask)[0]) == 0.5
    # With the model: tokens after the answer (padding) change neither loss nor accuracy.
    model, batch = make_model(GPT, rngs=nnx.Rngs(0)), _lm_pool(4)

    @jax.jit
    def metrics(tokens: jax.Array) -> jax.Array:  # [loss, accuracy per example...]
        logits = model(tokens)
        return jnp.concatenate([answer_loss(logits, tokens, batch["loss_mask"])[None],
                                answer_accuracy(logits, tokens, batch["loss_mask"])])

    np.testing.assert_allclose(metrics(batch["tokens"].at[:, 5:].set(0)),
                               metrics(batch["tokens"]), rtol=1e-6)


def test_tiny_gin_parameter_count_matches_hand_computation():
    d, m, max_len, layers, v = 64, 128, 64, 2, 20  # gin_configs/models/tiny.gin
    layer_norm, attention, mlp = 2 * d, 4 * d * d, d * m + m + m * d + d
    encoder_layer = 2 * layer_norm + attention + mlp
    decoder_layer = 3 * layer_norm + 2 * attention + mlp
    embeddings = v * d + 2 * max_len * d + (d * v + v)  # tokens, two position tables, head
    total = embeddings + layers * (encoder_layer + decoder_layer) + 2 * layer_norm
    assert param_counts(model_config("models/tiny.gin", v)) == (total, total - embeddings)


def test_parameter_counts_match_published_models():
    gpt2 = DecoderConfig(vocab_size=50257, emb_dim=768, num_heads=12, num_layers=12, mlp_dim=3072,
                         max_len=1024)
    assert param_counts(gpt2)[0] == 124_439_808  # HF "gpt2"
    t5_small = TransformerConfig(vocab_size=32128, emb_dim=512, num_heads=8, num_encoder_layers=6,
                                 num_decoder_layers=6, mlp_dim=2048, position="relative",
                                 mlp="relu", norm="rmsnorm", use_bias=False,
                                 scale_attention=False, logits_via_embedding=True)
    assert param_counts(t5_small)[0] == 60_506_624  # HF "t5-small"
    t5_11_small = dataclasses.replace(t5_small, num_heads=6, qkv_dim=384, num_encoder_layers=8,
                                      num_decoder_layers=8, mlp_dim=1024, mlp="gated_gelu",
                                      logits_via_embedding=False)
    assert param_counts(t5_11_small)[0] == 76_961_152  # HF "google/t5-v1_1-small"


def test_label_smoothing_loss_matches_hand_computation():
    """(1 - a) * NLL(target) + a * mean over the vocabulary of -log p, averaged over non-pad
    target tokens, computed by hand from the model's own logits; a = 0 is plain cross-entropy."""
    pool = _seq2seq_pool()
    batch = {"inputs": pool["inputs"][:4], "targets": pool["targets"][:4]}
    plain = EncoderDecoder(dataclasses.replace(T5_11, dropout_rate=0.0), rngs=nnx.Rngs(0))
    smoothed = EncoderDecoder(dataclasses.replace(T5_11, dropout_rate=0.0, label_smoothing=0.1),
                              rngs=nnx.Rngs(0))
    logp = np.asarray(jax.nn.log_softmax(
        plain(batch["inputs"], shift_right(batch["targets"])), axis=-1), np.float64)
    targets = np.asarray(batch["targets"])
    nll = -np.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
    uniform = -logp.mean(axis=-1)
    mask = targets != 0
    want = ((0.9 * nll + 0.1 * uniform) * mask).sum() / mask.sum()
    np.testing.assert_allclose(float(smoothed.loss(batch)), want, rtol=1e-5)
    np.testing.assert_allclose(float(plain.loss(batch)), (nll * mask).sum() / mask.sum(),
                               rtol=1e-5)
    with pytest.raises(ValueError, match="label_smoothing=1.0"):
        EncoderDecoder(dataclasses.replace(T5_11, label_smoothing=1.0), rngs=nnx.Rngs(0))


def test_bad_architecture_options_name_the_setting():
    with pytest.raises(ValueError, match="position='absolute'"):
        EncoderDecoder(TransformerConfig(vocab_size=5, position="absolute"), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="qkv_dim=30"):
        EncoderDecoder(TransformerConfig(vocab_size=5, qkv_dim=30), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="DecoderConfig.vocab_size"):
        make_model(DecoderConfig(), rngs=nnx.Rngs(0))


SITUATED = dataclasses.replace(T5_11, dropout_rate=0.0, situation_cells=9, situation_channels=5)


def _grids(n: int) -> np.ndarray:
    """Binary cell features [n, 9 cells, 5 channels], like gSCAN's grid encoding."""
    return np.random.default_rng(1).integers(0, 2, (n, 9, 5)).astype(np.uint8)


@pytest.mark.parametrize("position", ["relative", "learned"])
def test_changing_the_grid_changes_that_examples_logits(position: str):
    config = dataclasses.replace(SITUATED, position=position, max_len=16)
    model = make_model(config, rngs=nnx.Rngs(0))
    pool, grids = _seq2seq_pool(4), _grids(4)
    forward = jax.jit(lambda g: model(pool["inputs"], shift_right(pool["targets"]), situation=g),
                      compiler_options=FAST_COMPILE)
    base = np.asarray(forward(jnp.asarray(grids)))
    flipped = grids.copy()
    flipped[0, 4] ^= 1  # example 0: every feature of cell 4 flipped
    moved = grids.copy()
    moved[2, [1, 7]] = moved[2, [7, 1]]  # example 2: the contents of cells 1 and 7 swapped
    assert not np.array_equal(grids[2, 1], grids[2, 7])
    for changed, example in ((flipped, 0), (moved, 2)):
        out = np.asarray(forward(jnp.asarray(changed)))
        assert np.abs(out[example] - base[example]).max() > 1e-3
        others = [i for i in range(4) if i != example]
        np.testing.assert_allclose(out[others], base[others], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="needs the situation"):
        model(pool["inputs"], shift_right(pool["targets"]))
    with pytest.raises(ValueError, match="without a situation encoder"):
        make_model(T5_11, rngs=nnx.Rngs(0))(pool["inputs"], shift_right(pool["targets"]),
                                            situation=jnp.asarray(grids))


def test_situated_greedy_decode_matches_teacher_forced_argmax():
    """Cached decoding cross-attends to the grid cells exactly as the teacher-forced pass does."""
    trainer = MultiSeedTrainer(SITUATED, optax.adam(1e-3), 4, 1)
    state = trainer.init(jnp.arange(2))
    inputs, grids = _seq2seq_pool(5)["inputs"], jnp.asarray(_grids(5))
    tokens = np.asarray(trainer.decode(state["params"], inputs, 10, grids))
    for s in range(2):
        model = trainer.model(jax.tree.map(lambda a, s=s: a[s], state["params"]))
        logits = model(inputs, shift_right(jnp.asarray(tokens[s])), situation=grids)
        argmax = np.asarray(jnp.argmax(logits, -1))
        for b in range(5):
            end = int(np.argmax(tokens[s, b] == 1)) + 1 if (tokens[s, b] == 1).any() else 10
            np.testing.assert_array_equal(tokens[s, b, :end], argmax[b, :end])
    blank = np.asarray(trainer.decode(state["params"], inputs, 10, jnp.zeros_like(grids)))
    assert not np.array_equal(blank, tokens)  # the grid steers decoding


def test_situation_encoder_parameters_hand_counted():
    d, cells, channels = SITUATED.emb_dim, SITUATED.situation_cells, SITUATED.situation_channels
    extra = channels * d + d + cells * d  # feature projection (+ bias), cell embeddings
    assert param_counts(SITUATED)[0] - param_counts(T5_11)[0] == extra
    with pytest.raises(ValueError, match="situation_cells=9 and situation_channels=0"):
        make_model(dataclasses.replace(SITUATED, situation_channels=0), rngs=nnx.Rngs(0))
