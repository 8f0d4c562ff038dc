"""Flax NNX encoder-decoder transformer (pre-LN), with a cached single-token decode step.

The model holds only `nnx.Param` state; dropout takes explicit keys so the multi-seed trainer can
split/merge it and vmap plain functions over a leading seed axis. The defaults give the original
model (learned positions, GELU MLP, LayerNorm); the T5 options (relative position bias, gated GELU,
RMSNorm, unscaled attention, tied or untied head) reproduce Hugging Face T5 logits exactly.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import gin
import jax
import jax.numpy as jnp
import optax
from flax import nnx

PAD_ID = 0
BOS_ID = 0  # t5x convention: the decoder input starts with the pad id
EOS_ID = 1


POSITIONS = ("learned", "relative")
MLPS = ("gelu", "gated_gelu", "relu")
NORMS = ("layernorm", "rmsnorm")


@gin.configurable
@dataclasses.dataclass(frozen=True)
class TransformerConfig:
    """Sizes and architecture of the encoder-decoder; vocab_size comes from the task."""

    # T5 1.1 = position 'relative', mlp 'gated_gelu', norm 'rmsnorm', use_bias and scale_attention
    # False (T5 folds 1/sqrt(d) into the query init); T5 1.0 = mlp 'relu', logits_via_embedding.

    vocab_size: int = 0
    emb_dim: int = 64
    num_heads: int = 4
    num_encoder_layers: int = 2
    num_decoder_layers: int = 2
    mlp_dim: int = 256
    max_len: int = 128  # learned positions only; relative bias has no length limit
    dropout_rate: float = 0.0
    label_smoothing: float = 0.0  # training loss only: targets (1 - a) one-hot + a / vocab
    dtype: str = "float32"
    qkv_dim: int = 0  # num_heads * head_dim (T5's num_heads * d_kv); 0 means emb_dim
    position: str = "learned"  # "learned" absolute embeddings | "relative" T5 bias
    relative_buckets: int = 32
    relative_max_distance: int = 128
    mlp: str = "gelu"  # "gelu" | "gated_gelu" (T5 1.1) | "relu" (T5 1.0)
    norm: str = "layernorm"  # "layernorm" | "rmsnorm" (T5: no bias, eps 1e-6)
    use_bias: bool = True  # biases of the MLP and the output projection
    scale_attention: bool = True  # divide attention logits by sqrt(head_dim)
    logits_via_embedding: bool = False  # tied head: embedding.T applied to y * emb_dim**-0.5
    # Situation encoder (gSCAN): each of `situation_cells` grid cells, a [situation_channels]
    # feature vector, becomes one extra encoder token. Both come from the task's data; 0 = none.
    situation_cells: int = 0
    situation_channels: int = 0

    @property
    def head_dim(self) -> int:
        return (self.qkv_dim or self.emb_dim) // self.num_heads

    def validate(self) -> None:
        """Raise ValueError naming the first bad setting."""
        if self.vocab_size <= 0:
            raise ValueError("TransformerConfig.vocab_size must be set from the task's vocabulary")
        width = "qkv_dim" if self.qkv_dim else "emb_dim"
        if (self.qkv_dim or self.emb_dim) % self.num_heads:
            raise ValueError(
                f"TransformerConfig.{width}={self.qkv_dim or self.emb_dim} is not divisible by "
                f"num_heads={self.num_heads}"
            )
        if (self.situation_cells > 0) != (self.situation_channels > 0):
            raise ValueError(
                f"TransformerConfig.situation_cells={self.situation_cells} and "
                f"situation_channels={self.situation_channels} must both be set or both be 0")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"TransformerConfig.label_smoothing={self.label_smoothing} is not in "
                             "[0, 1)")
        for name, allowed in (("position", POSITIONS), ("mlp", MLPS), ("norm", NORMS)):
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"TransformerConfig.{name}={getattr(self, name)!r} is not one of {allowed}")


def matrices_only(params: nnx.State) -> nnx.State:
    """Weight-decay mask: True for matrices (kernels, embeddings), False for vectors (biases,
    LayerNorm scales), the GPT-2 / nanoGPT `configure_optimizers` rule."""
    return jax.tree.map(lambda leaf: leaf.ndim >= 2, params)


def _dropout(x: jax.Array, rate: float, key: jax.Array | None) -> jax.Array:
    """Inverted dropout of x [B, L, ...]. The mask is drawn length-major ([L, B, ...], then
    transposed), so a position's mask does not depend on how far the batch is padded: a seed
    draws the same masks whichever length bucket its step pads to."""
    if key is None or rate == 0.0:
        return x
    keep = jnp.swapaxes(jax.random.bernoulli(key, 1.0 - rate, (x.shape[1], x.shape[0],
                                                                   *x.shape[2:])), 0, 1)
    return jnp.where(keep, x / (1.0 - rate), 0.0).astype(x.dtype)


def _keys(key: jax.Array | None, n: int) -> list[jax.Array | None]:
    return [None] * n if key is None else list(jax.random.split(key, n))


def _norm(cfg: TransformerConfig, rngs: nnx.Rngs) -> nnx.LayerNorm | nnx.RMSNorm:
    if cfg.norm == "rmsnorm":
        return nnx.RMSNorm(cfg.emb_dim, epsilon=1e-6, rngs=rngs)
    return nnx.LayerNorm(cfg.emb_dim, rngs=rngs)


def relative_position_bucket(
    relative_position: jax.Array, bidirectional: bool, num_buckets: int, max_distance: int
) -> jax.Array:
    """T5's bucket of key_pos - query_pos: exact below num_buckets/4 (or /2), log-spaced beyond."""
    buckets = jnp.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        buckets = (relative_position > 0).astype(relative_position.dtype) * num_buckets
        distance = jnp.abs(relative_position)
    else:
        distance = -jnp.minimum(relative_position, 0)
    max_exact = num_buckets // 2
    scaled = (jnp.log(jnp.maximum(distance, 1).astype(jnp.float32) / max_exact)
              / math.log(max_distance / max_exact) * (num_buckets - max_exact))
    large = jnp.minimum(max_exact + scaled.astype(distance.dtype), num_buckets - 1)
    return buckets + jnp.where(distance < max_exact, distance, large)


class RelativePositionBias(nnx.Module):
    """T5 relative position bias of one stack (shared by its layers): a [buckets, heads] table."""

    def __init__(self, cfg: TransformerConfig, *, bidirectional: bool, rngs: nnx.Rngs):
        self.bidirectional = bidirectional
        self.num_buckets, self.max_distance = cfg.relative_buckets, cfg.relative_max_distance
        self.embed = nnx.Embed(cfg.relative_buckets, cfg.num_heads, dtype=jnp.dtype(cfg.dtype),
                               rngs=rngs)

    def __call__(self, query_pos: jax.Array, key_pos: jax.Array) -> jax.Array:
        """query_pos [Lq], key_pos [Lk] -> additive attention bias [1, H, Lq, Lk]."""
        buckets = relative_position_bucket(key_pos[None, :] - query_pos[:, None],
                                           self.bidirectional, self.num_buckets, self.max_distance)
        return jnp.transpose(self.embed(buckets), (2, 0, 1))[None]


class Attention(nnx.Module):
    """Multi-head dot-product attention; k/v may come from another sequence (cross-attention)."""

    def __init__(self, cfg: TransformerConfig, *, rngs: nnx.Rngs):
        d, dtype = cfg.emb_dim, jnp.dtype(cfg.dtype)
        inner = cfg.num_heads * cfg.head_dim
        self.num_heads, self.head_dim = cfg.num_heads, cfg.head_dim
        self.scale = cfg.scale_attention
        self.query = nnx.Linear(d, inner, use_bias=False, dtype=dtype, rngs=rngs)
        self.key = nnx.Linear(d, inner, use_bias=False, dtype=dtype, rngs=rngs)
        self.value = nnx.Linear(d, inner, use_bias=False, dtype=dtype, rngs=rngs)
        self.out = nnx.Linear(inner, d, use_bias=False, dtype=dtype, rngs=rngs)

    def heads(self, x: jax.Array) -> jax.Array:
        """[B, L, D] -> [B, L, H, Dh]."""
        return x.reshape(*x.shape[:-1], self.num_heads, self.head_dim)

    def project_kv(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        return self.heads(self.key(x)), self.heads(self.value(x))

    def attend(
        self, q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array,
        bias: jax.Array | None = None,
    ) -> jax.Array:
        """q [B, Lq, H, Dh], k/v [B, Lk, H, Dh], mask/bias [B|1, 1|H, Lq, Lk] -> [B, Lq, D]."""
        logits = jnp.einsum("bqhd,bkhd->bhqk", q, k)
        if self.scale:
            logits = logits / jnp.sqrt(q.shape[-1]).astype(q.dtype)
        if bias is not None:
            logits = logits + bias
        logits = jnp.where(mask, logits, jnp.finfo(logits.dtype).min)
        weights = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).astype(q.dtype)
        out = jnp.einsum("bhqk,bkhd->bqhd", weights, v)
        return self.out(out.reshape(*out.shape[:2], -1))

    def __call__(
        self, x: jax.Array, kv_source: jax.Array, mask: jax.Array, bias: jax.Array | None = None
    ) -> jax.Array:
        k, v = self.project_kv(kv_source)
        return self.attend(self.heads(self.query(x)), k, v, mask, bias)


class MLP(nnx.Module):
    """Feed-forward block: GELU (tanh approximation), T5 1.1 gated GELU, or T5 1.0 ReLU."""

    def __init__(self, cfg: TransformerConfig, *, rngs: nnx.Rngs):
        dtype = jnp.dtype(cfg.dtype)
        self.kind = cfg.mlp
        self.wi = nnx.Linear(cfg.emb_dim, cfg.mlp_dim, use_bias=cfg.use_bias, dtype=dtype,
                             rngs=rngs)
        if cfg.mlp == "gated_gelu":
            self.wi_linear = nnx.Linear(cfg.emb_dim, cfg.mlp_dim, use_bias=cfg.use_bias,
                                        dtype=dtype, rngs=rngs)
        self.wo = nnx.Linear(cfg.mlp_dim, cfg.emb_dim, use_bias=cfg.use_bias, dtype=dtype,
                             rngs=rngs)

    def __call__(self, x: jax.Array, rate: float, key: jax.Array | None) -> jax.Array:
        h = jax.nn.relu(self.wi(x)) if self.kind == "relu" else jax.nn.gelu(self.wi(x))
        if self.kind == "gated_gelu":
            h = h * self.wi_linear(x)
        return self.wo(_dropout(h, rate, key))


class EncoderLayer(nnx.Module):
    def __init__(self, cfg: TransformerConfig, *, rngs: nnx.Rngs):
        self.rate = cfg.dropout_rate
        self.norm_attn = _norm(cfg, rngs)
        self.attn = Attention(cfg, rngs=rngs)
        self.norm_mlp = _norm(cfg, rngs)
        self.mlp = MLP(cfg, rngs=rngs)

    def __call__(
        self, x: jax.Array, mask: jax.Array, bias: jax.Array | None, key: jax.Array | None
    ) -> jax.Array:
        k1, k2, k3 = _keys(key, 3)
        h = self.norm_attn(x)
        x = x + _dropout(self.attn(h, h, mask, bias), self.rate, k1)
        return x + _dropout(self.mlp(self.norm_mlp(x), self.rate, k2), self.rate, k3)


class LayerCache(NamedTuple):
    """One decoder layer's cache: self-attention k/v [B, Lt, H, Dh], cross k/v [B, Li, H, Dh]."""

    self_k: jax.Array
    self_v: jax.Array
    cross_k: jax.Array
    cross_v: jax.Array


DecodeState = tuple[jax.Array, list[LayerCache], jax.Array]  # last token [B], caches, done [B]


class DecoderLayer(nnx.Module):
    def __init__(self, cfg: TransformerConfig, *, rngs: nnx.Rngs):
        self.rate = cfg.dropout_rate
        self.norm_self = _norm(cfg, rngs)
        self.self_attn = Attention(cfg, rngs=rngs)
        self.norm_cross = _norm(cfg, rngs)
        self.cross_attn = Attention(cfg, rngs=rngs)
        self.norm_mlp = _norm(cfg, rngs)
        self.mlp = MLP(cfg, rngs=rngs)

    def __call__(
        self,
        y: jax.Array,
        encoded: jax.Array,
        self_mask: jax.Array,
        self_bias: jax.Array | None,
        cross_mask: jax.Array,
        key: jax.Array | None,
    ) -> jax.Array:
        k1, k2, k3, k4 = _keys(key, 4)
        h = self.norm_self(y)
        y = y + _dropout(self.self_attn(h, h, self_mask, self_bias), self.rate, k1)
        y = y + _dropout(self.cross_attn(self.norm_cross(y), encoded, cross_mask), self.rate, k2)
        return y + _dropout(self.mlp(self.norm_mlp(y), self.rate, k3), self.rate, k4)

    def step(
        self,
        y: jax.Array,
        t: jax.Array,
        cache: LayerCache,
        self_bias: jax.Array | None,
        cross_mask: jax.Array,
    ) -> tuple[jax.Array, LayerCache]:
        """One decoding position: y [B, 1, D] at index t; writes its k/v into the cache."""
        h = self.norm_self(y)
        k, v = self.self_attn.project_kv(h)
        self_k = jax.lax.dynamic_update_slice_in_dim(cache.self_k, k, t, axis=1)
        self_v = jax.lax.dynamic_update_slice_in_dim(cache.self_v, v, t, axis=1)
        visible = (jnp.arange(self_k.shape[1]) <= t)[None, None, None, :]
        y = y + self.self_attn.attend(self.self_attn.heads(self.self_attn.query(h)), self_k, self_v,
                                      visible, self_bias)
        q = self.cross_attn.heads(self.cross_attn.query(self.norm_cross(y)))
        y = y + self.cross_attn.attend(q, cache.cross_k, cache.cross_v, cross_mask)
        y = y + self.mlp(self.norm_mlp(y), 0.0, None)
        return y, cache._replace(self_k=self_k, self_v=self_v)


class SituationEmbedding(nnx.Module):
    """Grid cells as encoder tokens: a linear map of each cell's features + a learned cell id.

    The features are binary (object size / shape / colour one-hots, agent bit, agent direction),
    so the linear map sums one learned vector per feature present in the cell.
    """

    def __init__(self, cfg: TransformerConfig, *, rngs: nnx.Rngs):
        dtype = jnp.dtype(cfg.dtype)
        self.dtype = cfg.dtype
        self.features = nnx.Linear(cfg.situation_channels, cfg.emb_dim, dtype=dtype, rngs=rngs)
        self.cells = nnx.Embed(cfg.situation_cells, cfg.emb_dim, dtype=dtype, rngs=rngs)

    def __call__(self, situation: jax.Array) -> jax.Array:
        """situation [B, C, F] (any numeric dtype) -> cell tokens [B, C, D]."""
        x = self.features(situation.astype(self.dtype))
        return x + self.cells(jnp.arange(situation.shape[1]))[None]


def encoder_mask(encoder_tokens: jax.Array, encoded_length: int) -> jax.Array:
    """Attention mask over encoder positions [B, 1, 1, Lk]: non-pad tokens, then every cell."""
    extra = encoded_length - encoder_tokens.shape[1]
    return jnp.pad(encoder_tokens != PAD_ID, ((0, 0), (0, extra)),
                   constant_values=True)[:, None, None, :]


class EncoderDecoder(nnx.Module):
    """Encoder-decoder transformer over t5x batch keys (encoder/decoder_input_tokens).

    With a situation encoder (TransformerConfig.situation_cells), `situation` [B, C, F] adds C
    grid-cell tokens after the command tokens; the decoder cross-attends to both. Cells carry no
    relative-position bias (their place in the grid is their learned cell embedding).
    """

    def __init__(self, cfg: TransformerConfig, *, rngs: nnx.Rngs):
        cfg.validate()
        self.cfg = cfg
        dtype = jnp.dtype(cfg.dtype)
        self.embed = nnx.Embed(cfg.vocab_size, cfg.emb_dim, dtype=dtype, rngs=rngs)
        if cfg.position == "learned":
            self.enc_pos = nnx.Embed(cfg.max_len, cfg.emb_dim, dtype=dtype, rngs=rngs)
            self.dec_pos = nnx.Embed(cfg.max_len, cfg.emb_dim, dtype=dtype, rngs=rngs)
        else:
            self.enc_rel = RelativePositionBias(cfg, bidirectional=True, rngs=rngs)
            self.dec_rel = RelativePositionBias(cfg, bidirectional=False, rngs=rngs)
        self.encoder = nnx.List(
            [EncoderLayer(cfg, rngs=rngs) for _ in range(cfg.num_encoder_layers)])
        self.decoder = nnx.List(
            [DecoderLayer(cfg, rngs=rngs) for _ in range(cfg.num_decoder_layers)])
        if cfg.situation_cells:
            self.situation = SituationEmbedding(cfg, rngs=rngs)
        self.enc_norm = _norm(cfg, rngs)
        self.dec_norm = _norm(cfg, rngs)
        if not cfg.logits_via_embedding:
            self.logits = nnx.Linear(cfg.emb_dim, cfg.vocab_size, use_bias=cfg.use_bias,
                                     dtype=dtype, rngs=rngs)

    def _embed(
        self, tokens: jax.Array, query_pos: jax.Array, key_pos: jax.Array, encoder: bool
    ) -> tuple[jax.Array, jax.Array | None]:
        """Token embeddings (+ learned positions), and the self-attention bias (relative)."""
        x = self.embed(tokens)
        if self.cfg.position == "learned":
            return x + (self.enc_pos if encoder else self.dec_pos)(query_pos)[None], None
        return x, (self.enc_rel if encoder else self.dec_rel)(query_pos, key_pos)

    def _head(self, y: jax.Array) -> jax.Array:
        """Final norm and output projection -> float32 logits."""
        y = self.dec_norm(y)
        if self.cfg.logits_via_embedding:
            return self.embed.attend(y * self.cfg.emb_dim ** -0.5).astype(jnp.float32)
        return self.logits(y).astype(jnp.float32)

    def encode(
        self, tokens: jax.Array, key: jax.Array | None = None, situation: jax.Array | None = None
    ) -> jax.Array:
        """tokens [B, Li] (+ situation [B, C, F]) -> encoded [B, Li (+ C), D]."""
        if (situation is None) != (not self.cfg.situation_cells):
            raise ValueError(
                "a model with a situation encoder needs the situation of every example"
                if situation is None else
                "situation features given to a model without a situation encoder "
                "(TransformerConfig.situation_cells=0)")
        keys = _keys(key, len(self.encoder) + 1)
        positions = jnp.arange(tokens.shape[1])
        x, bias = self._embed(tokens, positions, positions, encoder=True)
        if situation is not None:
            x = jnp.concatenate([x, self.situation(situation)], axis=1)
            if bias is not None:
                cells = situation.shape[1]
                bias = jnp.pad(bias, ((0, 0), (0, 0), (0, cells), (0, cells)))
        x = _dropout(x, self.cfg.dropout_rate, keys[0])
        mask = encoder_mask(tokens, x.shape[1])
        for layer, k in zip(self.encoder, keys[1:], strict=True):
            x = layer(x, mask, bias, k)
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
        positions = jnp.arange(lt)
        y, bias = self._embed(decoder_input_tokens, positions, positions, encoder=False)
        y = _dropout(y, self.cfg.dropout_rate, keys[0])
        causal = jnp.tril(jnp.ones((lt, lt), bool))[None, None]
        cross = encoder_mask(encoder_tokens, encoded.shape[1])
        for layer, k in zip(self.decoder, keys[1:], strict=True):
            y = layer(y, encoded, causal, bias, cross, k)
        return self._head(y)

    def __call__(
        self,
        encoder_input_tokens: jax.Array,
        decoder_input_tokens: jax.Array,
        key: jax.Array | None = None,
        situation: jax.Array | None = None,
    ) -> jax.Array:
        k_enc, k_dec = _keys(key, 2)
        encoded = self.encode(encoder_input_tokens, k_enc, situation)
        return self.decode(encoded, encoder_input_tokens, decoder_input_tokens, k_dec)

    weight_decay_mask = staticmethod(matrices_only)

    def loss(self, batch: dict[str, jax.Array], key: jax.Array | None = None) -> jax.Array:
        """Mean cross-entropy over the batch's non-pad target tokens (t5x), against targets
        smoothed by `label_smoothing`."""
        targets = batch["targets"]
        logits = self(batch["inputs"], shift_right(targets), key, situation=batch.get("situation"))
        weights = (targets != 0).astype(jnp.float32)
        if self.cfg.label_smoothing:
            labels = optax.smooth_labels(jax.nn.one_hot(targets, logits.shape[-1]),
                                         self.cfg.label_smoothing)
            losses = optax.softmax_cross_entropy(logits, labels)
        else:
            losses = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
        return jnp.sum(losses * weights) / jnp.maximum(jnp.sum(weights), 1.0)

    def score(self, batch: dict[str, jax.Array]) -> jax.Array:
        """Teacher-forced, per example: the fraction of non-pad targets predicted right [B]."""
        targets = batch["targets"]
        logits = self(batch["inputs"], shift_right(targets), situation=batch.get("situation"))
        return token_accuracy(logits, targets, targets != PAD_ID)

    def predict(
        self, inputs: jax.Array, max_decode_len: int, situation: jax.Array | None = None
    ) -> jax.Array:
        """Greedy decoding with a KV cache: inputs [B, Li] -> tokens [B, max_decode_len] (one
        scan over every position; `decode_chunk` runs it in pieces)."""
        start = self.decode_start(inputs, max_decode_len, situation)
        return self.decode_chunk(start, inputs, 0, max_decode_len)[1]

    def decode_start(
        self, inputs: jax.Array, max_decode_len: int, situation: jax.Array | None = None
    ) -> DecodeState:
        """The greedy decoder's state before position 0: (BOS token [B], caches, done [B])."""
        caches = self.init_cache(self.encode(inputs, situation=situation), max_decode_len)
        batch = inputs.shape[0]
        return jnp.zeros((batch,), jnp.int32), caches, jnp.zeros((batch,), bool)

    def decode_chunk(
        self, state: DecodeState, inputs: jax.Array, start: jax.Array | int, length: int
    ) -> tuple[DecodeState, jax.Array]:
        """Greedy positions start .. start + length - 1 -> (state, tokens [B, length]); a row's
        positions after its EOS hold 0."""

        def step(carry: DecodeState, t: jax.Array) -> tuple[DecodeState, jax.Array]:
            token, caches, done = carry
            logits, caches = self.decode_step(token, t, caches, inputs)
            nxt = jnp.where(done, 0, jnp.argmax(logits, axis=-1).astype(jnp.int32))
            return (nxt, caches, done | (nxt == EOS_ID)), nxt

        state, tokens = jax.lax.scan(step, state, start + jnp.arange(length, dtype=jnp.int32))
        return state, tokens.T

    def init_cache(self, encoded: jax.Array, max_decode_len: int) -> list[LayerCache]:
        """Empty self-attention caches plus precomputed cross-attention k/v for every layer."""
        b = encoded.shape[0]
        empty = jnp.zeros((b, max_decode_len, self.cfg.num_heads, self.cfg.head_dim),
                          jnp.dtype(self.cfg.dtype))  # the self-attention k/v dtype (bf16 too)
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
        cache_positions = jnp.arange(caches[0].self_k.shape[1])
        y, bias = self._embed(token[:, None], t[None], cache_positions, encoder=False)
        cross = encoder_mask(encoder_tokens, caches[0].cross_k.shape[1])
        new_caches = []
        for layer, cache in zip(self.decoder, caches, strict=True):
            y, cache = layer.step(y, t, cache, bias, cross)
            new_caches.append(cache)
        return self._head(y)[:, 0], new_caches


def shift_right(targets: jax.Array) -> jax.Array:
    """Decoder inputs from targets: [BOS, t0, ..., t_{L-2}] (t5x convention)."""
    return jnp.pad(targets, ((0, 0), (1, 0)), constant_values=BOS_ID)[:, :-1]


def token_accuracy(logits: jax.Array, targets: jax.Array, weights: jax.Array) -> jax.Array:
    """Per example, the fraction of weighted positions whose argmax logit is the target [B]."""
    weights = weights.astype(jnp.float32)
    correct = (jnp.argmax(logits, axis=-1) == targets) * weights
    return correct.sum(axis=1) / jnp.maximum(weights.sum(axis=1), 1.0)


def count_params(params: nnx.State) -> int:
    """Number of parameters (works on arrays or ShapeDtypeStructs)."""
    return int(sum(x.size for x in jax.tree.leaves(params)))
