"""Import a Hugging Face `transformers` T5 checkpoint directory into our EncoderDecoder.

Reads config.json plus model.safetensors (sharded or not; via `safetensors.numpy`) or
pytorch_model.bin (via torch). T5 1.1 / Flan-T5 (gated GELU, untied head) and T5 1.0 (ReLU, tied
head with the emb_dim**-0.5 rescale) both map onto TransformerConfig options.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from flax import nnx

from compgen_jax.models.transformer import EncoderDecoder, TransformerConfig

_MLPS = {"gated-gelu": "gated_gelu", "relu": "relu"}


def t5_config(hf: dict) -> TransformerConfig:
    """Our config for an HF T5 config.json dict (the head's tying is decided by the weights)."""
    if hf.get("model_type") not in ("t5", "mt5"):
        raise ValueError(f"model_type={hf.get('model_type')!r} is not a T5 checkpoint")
    if hf.get("feed_forward_proj", "relu") not in _MLPS:
        raise ValueError(f"feed_forward_proj={hf['feed_forward_proj']!r} is not supported "
                         f"(supported: {sorted(_MLPS)})")
    if hf.get("layer_norm_epsilon", 1e-6) != 1e-6:
        raise ValueError(f"layer_norm_epsilon={hf['layer_norm_epsilon']} is not supported (1e-6)")
    return TransformerConfig(
        vocab_size=hf["vocab_size"],
        emb_dim=hf["d_model"],
        num_heads=hf["num_heads"],
        num_encoder_layers=hf["num_layers"],
        num_decoder_layers=hf.get("num_decoder_layers") or hf["num_layers"],
        mlp_dim=hf["d_ff"],
        dropout_rate=hf.get("dropout_rate", 0.1),
        qkv_dim=hf["num_heads"] * hf["d_kv"],
        position="relative",
        relative_buckets=hf.get("relative_attention_num_buckets", 32),
        relative_max_distance=hf.get("relative_attention_max_distance", 128),
        mlp=_MLPS[hf.get("feed_forward_proj", "relu")],
        norm="rmsnorm",
        use_bias=False,
        scale_attention=False,
    )


def _read_weights(directory: Path) -> dict[str, np.ndarray]:
    """All tensors of the checkpoint as float32 NumPy arrays, by HF name."""
    index = directory / "model.safetensors.index.json"
    files = (sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.exists()
             else ["model.safetensors"])
    if (directory / files[0]).exists():
        from safetensors.numpy import load_file

        weights = {}
        for name in files:
            weights.update(load_file(directory / name))
        return {k: np.asarray(v, np.float32) for k, v in weights.items()}
    if (directory / "pytorch_model.bin").exists():
        import torch

        state = torch.load(directory / "pytorch_model.bin", map_location="cpu", weights_only=True)
        return {k: v.float().numpy() for k, v in state.items()}
    raise FileNotFoundError(f"{directory}: no model.safetensors or pytorch_model.bin")


def _attention(w: dict[str, np.ndarray], prefix: str) -> dict:
    return {ours: {"kernel": w[f"{prefix}.{hf}.weight"].T}
            for ours, hf in (("query", "q"), ("key", "k"), ("value", "v"), ("out", "o"))}


def _mlp(w: dict[str, np.ndarray], prefix: str, gated: bool) -> dict:
    names = {"wi": "wi_0", "wi_linear": "wi_1"} if gated else {"wi": "wi"}
    return {**{ours: {"kernel": w[f"{prefix}.{hf}.weight"].T} for ours, hf in names.items()},
            "wo": {"kernel": w[f"{prefix}.wo.weight"].T}}


def _scale(w: dict[str, np.ndarray], name: str) -> dict:
    return {"scale": w[name]}


def load_hf_t5(checkpoint_dir: str | Path) -> tuple[TransformerConfig, nnx.State]:
    """(config, params) for EncoderDecoder from an HF T5ForConditionalGeneration directory."""
    directory = Path(checkpoint_dir)
    hf = json.loads((directory / "config.json").read_text())
    w = _read_weights(directory)
    shared = w["shared.weight"]
    lm_head = w.get("lm_head.weight")
    untied = lm_head is not None and not np.array_equal(lm_head, shared)
    # transformers < 5 scales when tied; 5.x records it as scale_decoder_outputs.
    rescale = hf.get("scale_decoder_outputs", hf.get("tie_word_embeddings", True) is not False)
    cfg = dataclasses.replace(t5_config(hf), logits_via_embedding=rescale and not untied)
    gated = cfg.mlp == "gated_gelu"

    params: dict = {
        "embed": {"embedding": shared},
        "enc_rel": {"embed": {"embedding": w[
            "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"]}},
        "dec_rel": {"embed": {"embedding": w[
            "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"]}},
        "enc_norm": _scale(w, "encoder.final_layer_norm.weight"),
        "dec_norm": _scale(w, "decoder.final_layer_norm.weight"),
        "encoder": {i: {
            "norm_attn": _scale(w, f"encoder.block.{i}.layer.0.layer_norm.weight"),
            "attn": _attention(w, f"encoder.block.{i}.layer.0.SelfAttention"),
            "norm_mlp": _scale(w, f"encoder.block.{i}.layer.1.layer_norm.weight"),
            "mlp": _mlp(w, f"encoder.block.{i}.layer.1.DenseReluDense", gated),
        } for i in range(cfg.num_encoder_layers)},
        "decoder": {i: {
            "norm_self": _scale(w, f"decoder.block.{i}.layer.0.layer_norm.weight"),
            "self_attn": _attention(w, f"decoder.block.{i}.layer.0.SelfAttention"),
            "norm_cross": _scale(w, f"decoder.block.{i}.layer.1.layer_norm.weight"),
            "cross_attn": _attention(w, f"decoder.block.{i}.layer.1.EncDecAttention"),
            "norm_mlp": _scale(w, f"decoder.block.{i}.layer.2.layer_norm.weight"),
            "mlp": _mlp(w, f"decoder.block.{i}.layer.2.DenseReluDense", gated),
        } for i in range(cfg.num_decoder_layers)},
    }
    if not cfg.logits_via_embedding:
        # An untied head, or a tied one without the rescale, becomes our (untied) projection.
        head = lm_head if untied else shared
        factor = cfg.emb_dim ** -0.5 if rescale else 1.0
        params["logits"] = {"kernel": head.T * np.float32(factor)}

    abstract = nnx.eval_shape(lambda: EncoderDecoder(cfg, rngs=nnx.Rngs(0)))
    state = nnx.state(abstract, nnx.Param)
    expected = nnx.to_pure_dict(state)
    _check_shapes(expected, params, "")
    dtype = jnp.dtype(cfg.dtype)
    nnx.replace_by_pure_dict(state, _to_jax(params, dtype))
    return cfg, state


def _check_shapes(expected: dict, got: dict, where: str) -> None:
    """Every parameter of the model is filled, with the right shape, and nothing extra."""
    if set(expected) != set(got):
        raise ValueError(f"T5 import at {where or '/'}: missing {set(expected) - set(got)}, "
                         f"unexpected {set(got) - set(expected)}")
    for name, value in expected.items():
        if isinstance(value, dict):
            _check_shapes(value, got[name], f"{where}/{name}")
        elif tuple(value.shape) != tuple(got[name].shape):
            raise ValueError(f"T5 import at {where}/{name}: shape {got[name].shape}, "
                             f"expected {value.shape}")


def _to_jax(tree: dict, dtype: jnp.dtype) -> dict:
    return {k: _to_jax(v, dtype) if isinstance(v, dict) else jnp.asarray(v, dtype)
            for k, v in tree.items()}
