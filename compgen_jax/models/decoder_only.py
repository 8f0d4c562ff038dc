"""GPT-2-style decoder-only transformer (Flax NNX) for the synthetic coverage-principle tasks.

Matches HF `GPT2LMHeadModel` as used by kaistAI/coverage-principle: learned absolute positions,
pre-LN blocks with a final LayerNorm (eps 1e-5), GELU-tanh MLP, biases everywhere, tied input and
output embeddings, N(0, 0.02) init with both `c_proj` kernels scaled by 1/sqrt(2 * num_layers), and
dropout on embeddings, attention weights and residual branches. The loss covers answer tokens only.
The model holds only `nnx.Param` state; dropout takes explicit keys (see transformer.py).
"""

from __future__ import annotations

import dataclasses
import math

import gin
import jax
import jax.numpy as jnp
import optax
from flax import nnx

from compgen_jax.models.transformer import _dropout, _keys, matrices_only, token_accuracy


@gin.configurable
@dataclasses.dataclass(frozen=True)
class DecoderConfig:
    """Sizes of the decoder-only model; vocab_size comes from the task's vocabulary."""

    vocab_size: int = 0
    emb_dim: int = 64
    num_heads: int = 4
    num_layers: int = 2
    mlp_dim: int = 256
    max_len: int = 16
    dropout_rate: float = 0.0
    dtype: str = "float32"

    @property
    def head_dim(self) -> int:
        return self.emb_dim // self.num_heads

    def validate(self) -> None:
        """Raise ValueError naming the first bad setting."""
        if self.vocab_size <= 0:
            raise ValueError("DecoderConfig.vocab_size must be set from the task's vocabulary")
        if self.emb_dim % self.num_heads:
            raise ValueError(f"DecoderConfig.emb_dim={self.emb_dim} is not divisible by "
                             f"num_heads={self.num_heads}")


def _linear(cfg: DecoderConfig, d_in: int, d_out: int, std: float, rngs: nnx.Rngs) -> nnx.Linear:
    return nnx.Linear(d_in, d_out, kernel_init=nnx.initializers.normal(std),
                      dtype=jnp.dtype(cfg.dtype), rngs=rngs)


class CausalSelfAttention(nnx.Module):
    """GPT-2 attention: fused q/k/v projection, causal mask, dropout on attention weights."""

    def __init__(self, cfg: DecoderConfig, *, rngs: nnx.Rngs):
        d, proj_std = cfg.emb_dim, 0.02 / math.sqrt(2 * cfg.num_layers)
        self.num_heads, self.head_dim, self.rate = cfg.num_heads, cfg.head_dim, cfg.dropout_rate
        self.c_attn = _linear(cfg, d, 3 * d, 0.02, rngs)
        self.c_proj = _linear(cfg, d, d, proj_std, rngs)

    def __call__(self, x: jax.Array, key: jax.Array | None) -> jax.Array:
        """x [B, L, D] -> [B, L, D]."""
        q, k, v = (a.reshape(*a.shape[:-1], self.num_heads, self.head_dim)
                   for a in jnp.split(self.c_attn(x), 3, axis=-1))
        logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) / jnp.sqrt(self.head_dim).astype(q.dtype)
        length = x.shape[1]
        causal = jnp.tril(jnp.ones((length, length), bool))[None, None]
        logits = jnp.where(causal, logits, jnp.finfo(logits.dtype).min)
        weights = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).astype(q.dtype)
        weights = _dropout(weights, self.rate, key)
        out = jnp.einsum("bhqk,bkhd->bqhd", weights, v)
        return self.c_proj(out.reshape(*out.shape[:2], -1))


class Block(nnx.Module):
    """Pre-LN GPT-2 block: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, cfg: DecoderConfig, *, rngs: nnx.Rngs):
        proj_std = 0.02 / math.sqrt(2 * cfg.num_layers)
        self.rate = cfg.dropout_rate
        self.ln_1 = nnx.LayerNorm(cfg.emb_dim, epsilon=1e-5, rngs=rngs)
        self.attn = CausalSelfAttention(cfg, rngs=rngs)
        self.ln_2 = nnx.LayerNorm(cfg.emb_dim, epsilon=1e-5, rngs=rngs)
        self.c_fc = _linear(cfg, cfg.emb_dim, cfg.mlp_dim, 0.02, rngs)
        self.c_proj = _linear(cfg, cfg.mlp_dim, cfg.emb_dim, proj_std, rngs)

    def __call__(self, x: jax.Array, key: jax.Array | None) -> jax.Array:
        k_attn, k1, k2 = _keys(key, 3)
        x = x + _dropout(self.attn(self.ln_1(x), k_attn), self.rate, k1)
        mlp = self.c_proj(jax.nn.gelu(self.c_fc(self.ln_2(x)), approximate=True))
        return x + _dropout(mlp, self.rate, k2)


class DecoderOnly(nnx.Module):
    """GPT-2 language model: tokens [B, L] -> next-token logits [B, L, V]."""

    def __init__(self, cfg: DecoderConfig, *, rngs: nnx.Rngs):
        cfg.validate()
        self.cfg = cfg
        dtype, init = jnp.dtype(cfg.dtype), nnx.initializers.normal(0.02)
        self.wte = nnx.Embed(cfg.vocab_size, cfg.emb_dim, dtype=dtype, embedding_init=init,
                             rngs=rngs)
        self.wpe = nnx.Embed(cfg.max_len, cfg.emb_dim, dtype=dtype, embedding_init=init,
                             rngs=rngs)
        self.blocks = nnx.List([Block(cfg, rngs=rngs) for _ in range(cfg.num_layers)])
        self.ln_f = nnx.LayerNorm(cfg.emb_dim, epsilon=1e-5, rngs=rngs)

    def __call__(self, tokens: jax.Array, key: jax.Array | None = None) -> jax.Array:
        """Causal logits (float32); the output projection is the transposed token embedding."""
        if tokens.shape[1] > self.cfg.max_len:
            raise ValueError(f"sequence length {tokens.shape[1]} exceeds "
                             f"DecoderConfig.max_len={self.cfg.max_len}")
        keys = _keys(key, len(self.blocks) + 1)
        x = self.wte(tokens) + self.wpe(jnp.arange(tokens.shape[1]))[None]
        x = _dropout(x, self.cfg.dropout_rate, keys[0])
        for block, k in zip(self.blocks, keys[1:], strict=True):
            x = block(x, k)
        return self.wte.attend(self.ln_f(x)).astype(jnp.float32)

    weight_decay_mask = staticmethod(matrices_only)

    def loss(self, batch: dict[str, jax.Array], key: jax.Array | None = None) -> jax.Array:
        """Mean cross-entropy over the batch's answer tokens (COVERAGE_PRINCIPLE s.3)."""
        return answer_loss(self(batch["tokens"], key), batch["tokens"], batch["loss_mask"])

    def score(self, batch: dict[str, jax.Array]) -> jax.Array:
        """Teacher-forced, per example: the fraction of answer tokens predicted right [B]."""
        return answer_accuracy(self(batch["tokens"]), batch["tokens"], batch["loss_mask"])

    def predict(self, inputs: jax.Array, max_decode_len: int) -> jax.Array:
        """Greedy continuation of prompts [B, Lp] -> tokens [B, max_decode_len] (each step
        re-reads the whole causal prefix; the family's sequences are a few tokens long)."""
        prompt = inputs.shape[1]
        if prompt < 1 or prompt + max_decode_len > self.cfg.max_len:
            raise ValueError(f"prompt length {prompt} + max_decode_len {max_decode_len} must be "
                             f"within 1..DecoderConfig.max_len={self.cfg.max_len}")
        buffer = jnp.pad(inputs, ((0, 0), (0, max_decode_len)))

        def step(t: jax.Array, buffer: jax.Array) -> jax.Array:
            last = jax.lax.dynamic_index_in_dim(self(buffer), prompt + t - 1, axis=1,
                                                keepdims=False)
            token = jnp.argmax(last, axis=-1).astype(buffer.dtype)
            return jax.lax.dynamic_update_index_in_dim(buffer, token, prompt + t, axis=1)

        return jax.lax.fori_loop(0, max_decode_len, step, buffer)[:, prompt:]

    def hidden_states(self, tokens: jax.Array) -> jax.Array:
        """HF hidden_states [num_layers + 1, B, L, D]: embeddings, block outputs (last: ln_f)."""
        x = self.wte(tokens) + self.wpe(jnp.arange(tokens.shape[1]))[None]
        out = [x]
        for block in self.blocks:
            x = block(x, None)
            out.append(x)
        out[-1] = self.ln_f(x)
        return jnp.stack(out)

    def logits_from(self, x: jax.Array, layer: int) -> jax.Array:
        """Logits from hidden_states[layer], 1 <= layer < n_layers: blocks layer.., ln_f, W_E^T."""
        for block in self.blocks[layer:]:
            x = block(x, None)
        return self.wte.attend(self.ln_f(x)).astype(jnp.float32)

    def lens(self, x: jax.Array, layer: int) -> jax.Array:
        """Logit lens: ln_f (not re-applied at the last layer, Q24 fixed) then W_E^T."""
        h = x if layer == len(self.blocks) else self.ln_f(x)
        return self.wte.attend(h).astype(jnp.float32)


def answer_loss(logits: jax.Array, tokens: jax.Array, loss_mask: jax.Array) -> jax.Array:
    """Mean cross-entropy over answer tokens (loss_mask [B, L]: HF labels != -100) of the batch."""
    # Position i predicts token i + 1, so loss_mask[:, 0] can never count.
    weights = loss_mask[:, 1:].astype(jnp.float32)
    losses = optax.softmax_cross_entropy_with_integer_labels(logits[:, :-1], tokens[:, 1:])
    return jnp.sum(losses * weights) / jnp.maximum(jnp.sum(weights), 1.0)


def answer_accuracy(logits: jax.Array, tokens: jax.Array, loss_mask: jax.Array) -> jax.Array:
    """Per example, correct argmax answer tokens / answer tokens [B] (upstream's token-level
    eval accuracy); position i predicts token i + 1, as in `answer_loss`."""
    return token_accuracy(logits[:, :-1], tokens[:, 1:], loss_mask[:, 1:])
