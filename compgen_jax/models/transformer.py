"""Flax NNX encoder-decoder transformer (pre-LN), with a cached single-token decode step.

The model holds only `nnx.Param` state; dropout takes explicit keys so the multi-seed trainer can
split/merge it and vmap plain functions over a leading seed axis.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import gin
import jax
import jax.numpy as jnp
from flax import nnx

PAD_ID = 0
BOS_ID = 0  # t5x convention: the decoder input starts with the pad id


@gin.configurable
@dataclasses.dataclass(frozen=True)
class TransformerConfig:
    """Sizes of the encoder-decoder; vocab_size is filled in from the task's vocabulary."""

    vocab_size: int = 0
    emb_dim: int = 64
    num_heads: int = 4
    num_encoder_layers: int = 2
    num_decoder_layers: int = 2
    mlp_dim: int = 256
    max_len: int = 128
    dropout_rate: float = 0.0
    dtype: str = "float32"

    @property
    def head_dim(self) -> int:
        return self.emb_dim // self.num_heads


def _dropout(x: jax.Array, rate: float, key: jax.Array | None) -> jax.Array:
    if key is None or rate == 0.0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0.0).astype(x.dtype)


def _keys(key: jax.Array | None, n: int) -> list[jax.Array | None]:
    return [None] * n if key is None else list(jax.random.split(key, n))


class Attention(nnx.Module):
    """Multi-head dot-product attention; k/v may come from another sequence (cross-attention)."""

    def __init__(self, cfg: TransformerConfig, *, rngs: nnx.Rngs):
        d, dtype = cfg.emb_dim, jnp.dtype(cfg.dtype)
        self.num_heads, self.head_dim = cfg.num_heads, cfg.head_dim
        self.query = nnx.Linear(d, d, use_bias=False, dtype=dtype, rngs=rngs)
        self.key = nnx.Linear(d, d, use_bias=False, dtype=dtype, rngs=rngs)
        self.value = nnx.Linear(d, d, use_bias=False, dtype=dtype, rngs=rngs)
        self.out = nnx.Linear(d, d, use_bias=False, dtype=dtype, rngs=rngs)

    def heads(self, x: jax.Array) -> jax.Array:
        """[B, L, D] -> [B, L, H, Dh]."""
        return x.reshape(*x.shape[:-1], self.num_heads, self.head_dim)

    def project_kv(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        return self.heads(self.key(x)), self.heads(self.value(x))

    def attend(self, q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array) -> jax.Array:
        """q [B, Lq, H, Dh], k/v [B, Lk, H, Dh], mask [B, 1|H, Lq, Lk] bool -> [B, Lq, D]."""
        logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) / jnp.sqrt(q.shape[-1]).astype(q.dtype)
        logits = jnp.where(mask, logits, jnp.finfo(logits.dtype).min)
        weights = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).astype(q.dtype)
        out = jnp.einsum("bhqk,bkhd->bqhd", weights, v)
        return self.out(out.reshape(*out.shape[:2], -1))

    def __call__(self, x: jax.Array, kv_source: jax.Array, mask: jax.Array) -> jax.Array:
        k, v = self.project_kv(kv_source)
        return self.attend(self.heads(self.query(x)), k, v, mask)


class MLP(nnx.Module):
    def __init__(self, cfg: TransformerConfig, *, rngs: nnx.Rngs):
        dtype = jnp.dtype(cfg.dtype)
        self.wi = nnx.Linear(cfg.emb_dim, cfg.mlp_dim, dtype=dtype, rngs=rngs)
        self.wo = nnx.Linear(cfg.mlp_dim, cfg.emb_dim, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array, rate: float, key: jax.Array | None) -> jax.Array:
        return self.wo(_dropout(jax.nn.gelu(self.wi(x)), rate, key))


class EncoderLayer(nnx.Module):
    def __init__(self, cfg: TransformerConfig, *, rngs: nnx.Rngs):
        self.rate = cfg.dropout_rate
        self.norm_attn = nnx.LayerNorm(cfg.emb_dim, rngs=rngs)
        self.attn = Attention(cfg, rngs=rngs)
        self.norm_mlp = nnx.LayerNorm(cfg.emb_dim, rngs=rngs)
        self.mlp = MLP(cfg, rngs=rngs)

    def __call__(self, x: jax.Array, mask: jax.Array, key: jax.Array | None) -> jax.Array:
        k1, k2, k3 = _keys(key, 3)
        h = self.norm_attn(x)
        x = x + _dropout(self.attn(h, h, mask), self.rate, k1)
        return x + _dropout(self.mlp(self.norm_mlp(x), self.rate, k2), self.rate, k3)


class LayerCache(NamedTuple):
    """One decoder layer's cache: self-attention k/v [B, Lt, H, Dh], cross k/v [B, Li, H, Dh]."""

    self_k: jax.Array
    self_v: jax.Array
    cross_k: jax.Array
    cross_v: jax.Array


class DecoderLayer(nnx.Module):
    def __init__(self, cfg: TransformerConfig, *, rngs: nnx.Rngs):
        self.rate = cfg.dropout_rate
        self.norm_self = nnx.LayerNorm(cfg.emb_dim, rngs=rngs)
        self.self_attn = Attention(cfg, rngs=rngs)
        self.norm_cross = nnx.LayerNorm(cfg.emb_dim, rngs=rngs)
        self.cross_attn = Attention(cfg, rngs=rngs)
        self.norm_mlp = nnx.LayerNorm(cfg.emb_dim, rngs=rngs)
        self.mlp = MLP(cfg, rngs=rngs)

    def __call__(
        self,
        y: jax.Array,
        encoded: jax.Array,
        self_mask: jax.Array,
        cross_mask: jax.Array,
        key: jax.Array | None,
    ) -> jax.Array:
        k1, k2, k3, k4 = _keys(key, 4)
        h = self.norm_self(y)
        y = y + _dropout(self.self_attn(h, h, self_mask), self.rate, k1)
        y = y + _dropout(self.cross_attn(self.norm_cross(y), encoded, cross_mask), self.rate, k2)
        return y + _dropout(self.mlp(self.norm_mlp(y), self.rate, k3), self.rate, k4)

    def step(
        self, y: jax.Array, t: jax.Array, cache: LayerCache, cross_mask: jax.Array
    ) -> tuple[jax.Array, LayerCache]:
        """One decoding position: y [B, 1, D] at index t; writes its k/v into the cache."""
        h = self.norm_self(y)
        k, v = self.self_attn.project_kv(h)
        self_k = jax.lax.dynamic_update_slice_in_dim(cache.self_k, k, t, axis=1)
        self_v = jax.lax.dynamic_update_slice_in_dim(cache.self_v, v, t, axis=1)
        visible = (jnp.arange(self_k.shape[1]) <= t)[None, None, None, :]
        y = y + self.self_attn.attend(self.self_attn.heads(self.self_attn.query(h)), self_k, self_v,
                                      visible)
        q = self.cross_attn.heads(self.cross_attn.query(self.norm_cross(y)))
        y = y + self.cross_attn.attend(q, cache.cross_k, cache.cross_v, cross_mask)
        y = y + self.mlp(self.norm_mlp(y), 0.0, None)
        return y, cache._replace(self_k=self_k, self_v=self_v)


class EncoderDecoder(nnx.Module):
    """Encoder-decoder transformer over t5x batch keys (encoder/decoder_input_tokens)."""

    def __init__(self, cfg: TransformerConfig, *, rngs: nnx.Rngs):
        if cfg.vocab_size <= 0:
            raise ValueError("TransformerConfig.vocab_size must be set from the task's vocabulary")
        if cfg.emb_dim % cfg.num_heads:
            raise ValueError(
                f"TransformerConfig.emb_dim={cfg.emb_dim} is not divisible by "
                f"num_heads={cfg.num_heads}"
            )
        self.cfg = cfg
        dtype = jnp.dtype(cfg.dtype)
        self.embed = nnx.Embed(cfg.vocab_size, cfg.emb_dim, dtype=dtype, rngs=rngs)
        self.enc_pos = nnx.Embed(cfg.max_len, cfg.emb_dim, dtype=dtype, rngs=rngs)
        self.dec_pos = nnx.Embed(cfg.max_len, cfg.emb_dim, dtype=dtype, rngs=rngs)
        self.encoder = nnx.List(
            [EncoderLayer(cfg, rngs=rngs) for _ in range(cfg.num_encoder_layers)])
        self.decoder = nnx.List(
            [DecoderLayer(cfg, rngs=rngs) for _ in range(cfg.num_decoder_layers)])
        self.enc_norm = nnx.LayerNorm(cfg.emb_dim, rngs=rngs)
        self.dec_norm = nnx.LayerNorm(cfg.emb_dim, rngs=rngs)
        self.logits = nnx.Linear(cfg.emb_dim, cfg.vocab_size, dtype=dtype, rngs=rngs)

    def encode(self, tokens: jax.Array, key: jax.Array | None = None) -> jax.Array:
        """tokens [B, Li] -> encoded [B, Li, D]."""
        keys = _keys(key, len(self.encoder) + 1)
        x = self.embed(tokens) + self.enc_pos(jnp.arange(tokens.shape[1]))[None]
        x = _dropout(x, self.cfg.dropout_rate, keys[0])
        mask = (tokens != PAD_ID)[:, None, None, :]
        for layer, k in zip(self.encoder, keys[1:], strict=True):
            x = layer(x, mask, k)
        return self.enc_norm(x)

    def decode(
        self,
        encoded: jax.Array,
        encoder_tokens: jax.Array,
        decoder_input_tokens: jax.Array,
        key: jax.Array | None = None,
    ) -> jax.Array:
        """Teacher-forced decoder: -> logits [B, Lt, V]."""
        keys = _keys(key, len(self.decoder) + 1)
        lt = decoder_input_tokens.shape[1]
        y = self.embed(decoder_input_tokens) + self.dec_pos(jnp.arange(lt))[None]
        y = _dropout(y, self.cfg.dropout_rate, keys[0])
        causal = jnp.tril(jnp.ones((lt, lt), bool))[None, None]
        cross_mask = (encoder_tokens != PAD_ID)[:, None, None, :]
        for layer, k in zip(self.decoder, keys[1:], strict=True):
            y = layer(y, encoded, causal, cross_mask, k)
        return self.logits(self.dec_norm(y)).astype(jnp.float32)

    def __call__(
        self,
        encoder_input_tokens: jax.Array,
        decoder_input_tokens: jax.Array,
        key: jax.Array | None = None,
    ) -> jax.Array:
        k_enc, k_dec = _keys(key, 2)
        encoded = self.encode(encoder_input_tokens, k_enc)
        return self.decode(encoded, encoder_input_tokens, decoder_input_tokens, k_dec)

    def init_cache(self, encoded: jax.Array, max_decode_len: int) -> list[LayerCache]:
        """Empty self-attention caches plus precomputed cross-attention k/v for every layer."""
        b = encoded.shape[0]
        empty = jnp.zeros((b, max_decode_len, self.cfg.num_heads, self.cfg.head_dim), encoded.dtype)
        return [LayerCache(empty, empty, *layer.cross_attn.project_kv(encoded))
                for layer in self.decoder]

    def decode_step(
        self,
        token: jax.Array,
        t: jax.Array,
        caches: list[LayerCache],
        encoder_tokens: jax.Array,
    ) -> tuple[jax.Array, list[LayerCache]]:
        """Logits [B, V] for position t given the token [B] fed at t, and updated caches."""
        y = self.embed(token[:, None]) + self.dec_pos(t[None])[None]
        cross_mask = (encoder_tokens != PAD_ID)[:, None, None, :]
        new_caches = []
        for layer, cache in zip(self.decoder, caches, strict=True):
            y, cache = layer.step(y, t, cache, cross_mask)
            new_caches.append(cache)
        return self.logits(self.dec_norm(y))[:, 0].astype(jnp.float32), new_caches


def shift_right(targets: jax.Array) -> jax.Array:
    """Decoder inputs from targets: [BOS, t0, ..., t_{L-2}] (t5x convention)."""
    return jnp.pad(targets, ((0, 0), (1, 0)), constant_values=BOS_ID)[:, :-1]


def count_params(params: nnx.State) -> int:
    return int(sum(x.size for x in jax.tree.leaves(params)))
