"""Hugging Face T5 import: our EncoderDecoder reproduces HF's logits from a saved checkpoint."""

from __future__ import annotations

import types
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from compgen_jax.models.hf_t5 import load_hf_t5
from compgen_jax.models.transformer import EncoderDecoder, count_params, shift_right

BATCH, ENC_LEN, DEC_LEN, VOCAB = 3, 40, 20, 50


@pytest.fixture(scope="module")
def hf() -> types.SimpleNamespace:
    """transformers and torch, imported when these tests run (not when the suite is collected:
    a worker that runs none of them never imports torch)."""
    return types.SimpleNamespace(transformers=pytest.importorskip("transformers"),
                                 torch=pytest.importorskip("torch"))


def _save_hf_t5(hf: types.SimpleNamespace, path: Path, tied: bool, **config) -> object:
    """A random HF T5ForConditionalGeneration, saved to `path`."""
    transformers, torch = hf.transformers, hf.torch
    torch.manual_seed(0)
    model = transformers.T5ForConditionalGeneration(transformers.T5Config(
        vocab_size=VOCAB, d_model=32, d_kv=6, num_heads=4, num_layers=2, num_decoder_layers=3,
        dropout_rate=0.0, tie_word_embeddings=tied, **config))
    if not tied and model.lm_head.weight is model.shared.weight:
        # transformers 5 ties T5's head regardless; a T5 1.1 checkpoint has its own lm_head.
        model.lm_head.weight = torch.nn.Parameter(torch.randn(VOCAB, 32))
    model.eval()
    model.save_pretrained(path)
    if tied:  # the older pytorch_model.bin format, with the tied copies written out
        (path / "model.safetensors").unlink()
        torch.save({k: v.contiguous() for k, v in model.state_dict().items()},
                   path / "pytorch_model.bin")
    return model


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    inputs = rng.integers(2, VOCAB, (BATCH, ENC_LEN))
    inputs[0, 25:] = 0  # padding is masked on both sides
    targets = rng.integers(2, VOCAB, (BATCH, DEC_LEN))
    return inputs, targets


def _hf_logits(hf: types.SimpleNamespace, model, inputs: np.ndarray,
               decoder_inputs: np.ndarray) -> np.ndarray:
    torch = hf.torch
    with torch.no_grad():
        out = model(input_ids=torch.tensor(inputs), attention_mask=torch.tensor(inputs != 0),
                    decoder_input_ids=torch.tensor(decoder_inputs))
    return out.logits.numpy()


@pytest.mark.parametrize(("tied", "config"), [
    (False, {"feed_forward_proj": "gated-gelu"}),  # T5 1.1 / Flan-T5
    (True, {"feed_forward_proj": "relu", "relative_attention_num_buckets": 16,
            "relative_attention_max_distance": 24}),  # T5 1.0, buckets saturating within 40
])
def test_logits_match_hugging_face(hf: types.SimpleNamespace, tmp_path: Path, tied: bool,
                                   config: dict):
    hf_model = _save_hf_t5(hf, tmp_path, tied, **config)
    cfg, params = load_hf_t5(tmp_path)
    assert cfg.logits_via_embedding == tied
    assert count_params(params) == sum(p.numel() for p in hf_model.parameters())
    inputs, targets = _inputs()
    decoder_inputs = np.asarray(shift_right(jnp.asarray(targets)))
    expected = _hf_logits(hf, hf_model, inputs, decoder_inputs)
    model: EncoderDecoder = nnx.merge(nnx.graphdef(nnx.eval_shape(
        lambda: EncoderDecoder(cfg, rngs=nnx.Rngs(0)))), params)
    ours = np.asarray(jax.jit(model)(jnp.asarray(inputs), jnp.asarray(decoder_inputs)))
    np.testing.assert_allclose(ours, expected, atol=1e-4, rtol=0)
    # The KV-cached decoder gives the same logits position by position.
    caches = model.init_cache(model.encode(jnp.asarray(inputs)), DEC_LEN)
    decode_step = jax.jit(model.decode_step)
    for t in range(DEC_LEN):
        step_logits, caches = decode_step(jnp.asarray(decoder_inputs[:, t]), jnp.asarray(t),
                                          caches, jnp.asarray(inputs))
        np.testing.assert_allclose(np.asarray(step_logits), expected[:, t], atol=1e-4, rtol=0)


def test_rejects_unsupported_checkpoints(hf: types.SimpleNamespace, tmp_path: Path):
    _save_hf_t5(hf, tmp_path, True, feed_forward_proj="gated-silu")
    with pytest.raises(ValueError, match="feed_forward_proj"):
        load_hf_t5(tmp_path)
    with pytest.raises(FileNotFoundError, match="no model.safetensors"):
        load_hf_t5(_empty_checkpoint(tmp_path / "empty"))


def _empty_checkpoint(path: Path) -> Path:
    path.mkdir()
    (path / "config.json").write_text('{"model_type": "t5"}')
    return path
