"""Every model family keeps the declared contract (models.ModelFamily): loss, score, predict and a
weight-decay mask, and its score / predict agree with what its loss trains."""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from compgen_jax.models import ModelFamily, make_model, model_family
from compgen_jax.models.decoder_only import DecoderConfig, DecoderOnly
from compgen_jax.models.transformer import EncoderDecoder, TransformerConfig, shift_right

ENC_DEC = TransformerConfig(vocab_size=9, emb_dim=16, num_heads=2, num_encoder_layers=1,
                            num_decoder_layers=1, mlp_dim=32, max_len=8)
DECODER = DecoderConfig(vocab_size=9, emb_dim=16, num_heads=2, num_layers=1, mlp_dim=32,
                        max_len=8)


@pytest.mark.parametrize("config", [ENC_DEC, DECODER], ids=["encoder_decoder", "decoder_only"])
def test_each_family_declares_the_contract(config) -> None:
    family = model_family(config)
    assert family in (EncoderDecoder, DecoderOnly)
    assert isinstance(make_model(config, rngs=nnx.Rngs(0)), ModelFamily)
    for name in ("loss", "score", "predict", "weight_decay_mask"):
        wanted = list(inspect.signature(getattr(ModelFamily, name)).parameters)
        have = list(inspect.signature(getattr(family, name)).parameters)
        assert have[:len(wanted)] == wanted, (family.__name__, name, have)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def test_encoder_decoder_score_and_loss_read_the_same_teacher_forced_logits() -> None:
    """By hand from the forward pass: loss = mean NLL of non-pad targets, score = per example the
    fraction of them at the argmax; padding after a target counts in neither."""
    model = make_model(ENC_DEC, rngs=nnx.Rngs(1))
    batch = {"inputs": jnp.asarray([[3, 4, 5, 1], [6, 7, 1, 0]]),
             "targets": jnp.asarray([[5, 4, 3, 1], [8, 1, 0, 0]])}
    logits = np.asarray(model(batch["inputs"], shift_right(batch["targets"])))
    targets = np.asarray(batch["targets"])
    real = targets != 0
    nll = -np.take_along_axis(_log_softmax(logits), targets[..., None], -1)[..., 0]
    np.testing.assert_allclose(float(model.loss(batch)), nll[real].mean(), rtol=1e-5)
    right = (logits.argmax(-1) == targets) & real
    np.testing.assert_allclose(np.asarray(model.score(batch)), right.sum(1) / real.sum(1))


def _memorise(model, batch: dict[str, jax.Array], steps: int = 150):
    """Fit one batch (Adam, no dropout) until the loss is near zero."""
    graph, params = nnx.split(model)
    opt = optax.adam(3e-2)

    @jax.jit
    def step(params, opt_state):
        loss, grads = jax.value_and_grad(lambda p: nnx.merge(graph, p).loss(batch))(params)
        updates, opt_state = opt.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state, loss

    opt_state = opt.init(params)
    for _ in range(steps):
        params, opt_state, loss = step(params, opt_state)
    assert float(loss) < 0.05
    return nnx.merge(graph, params)


def test_decoder_only_predicts_a_memorised_sequence() -> None:
    """After the loss has memorised 3 4 5 6 7 (every token scored), greedy predict continues the
    prompt with the rest and the teacher-forced score is 1; an untrained model's is not."""
    sequence = jnp.asarray([[3, 4, 5, 6, 7]])
    batch = {"tokens": sequence, "loss_mask": jnp.ones_like(sequence, bool)}
    untrained = make_model(DECODER, rngs=nnx.Rngs(0))
    assert float(untrained.score(batch)[0]) < 1
    model = _memorise(make_model(DECODER, rngs=nnx.Rngs(0)), batch)
    np.testing.assert_array_equal(model.predict(sequence[:, :1], 4), [[4, 5, 6, 7]])
    np.testing.assert_array_equal(model.predict(sequence[:, :3], 2), [[6, 7]])
    assert float(model.score(batch)[0]) == 1.0
    with pytest.raises(ValueError, match="DecoderConfig.max_len=8"):
        model.predict(sequence, 4)


def test_encoder_decoder_predicts_what_it_memorised() -> None:
    batch = {"inputs": jnp.asarray([[3, 4, 1]]), "targets": jnp.asarray([[6, 5, 7, 1]])}
    model = _memorise(make_model(ENC_DEC, rngs=nnx.Rngs(0)), batch)
    np.testing.assert_array_equal(model.predict(batch["inputs"], 6), [[6, 5, 7, 1, 0, 0]])
    assert float(model.score(batch)[0]) == 1.0
