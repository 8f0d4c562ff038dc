"""The PyTorch peer of the project's encoder-decoder, for side-by-side throughput.

`Seq2Seq` mirrors `compgen_jax.models.transformer.EncoderDecoder` for a given TransformerConfig:
the same layers, parameter count and matmuls (einsum attention like the JAX model, learned or T5
relative positions, GELU / gated GELU / ReLU MLP, LayerNorm / RMSNorm, biases as configured).
Two ways to train it with AdamW + global-norm clipping:
- `PlainLoop`: one seed, the ordinary `loss.backward(); optimizer.step()` loop;
- `Ensemble`: S seeds as one `torch.func` ensemble (stack_module_state + functional_call,
  vmap over torch.func.grad), each seed on its own batch and clipped by its own gradient norm.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad_and_value, stack_module_state, vmap

from compgen_jax.models.transformer import TransformerConfig
from compgen_jax.optim import OptimizerConfig


def shift_right(targets: torch.Tensor) -> torch.Tensor:
    """Decoder inputs [0, t0, ..., t_{L-2}] (t5x convention, as the JAX model)."""
    return F.pad(targets, (1, 0))[..., :-1]


def _norm(cfg: TransformerConfig) -> nn.Module:
    if cfg.norm == "rmsnorm":
        return nn.RMSNorm(cfg.emb_dim, eps=1e-6)
    return nn.LayerNorm(cfg.emb_dim, eps=1e-6)


def relative_position_bucket(relative: torch.Tensor, bidirectional: bool, num_buckets: int,
                             max_distance: int) -> torch.Tensor:
    """T5's bucket of key_pos - query_pos (the JAX model's function, in torch)."""
    buckets = torch.zeros_like(relative)
    if bidirectional:
        num_buckets //= 2
        buckets = (relative > 0).long() * num_buckets
        distance = relative.abs()
    else:
        distance = -torch.clamp(relative, max=0)
    max_exact = num_buckets // 2
    scaled = (torch.log(distance.clamp(min=1).float() / max_exact)
              / math.log(max_distance / max_exact) * (num_buckets - max_exact))
    large = torch.clamp(max_exact + scaled.long(), max=num_buckets - 1)
    return buckets + torch.where(distance < max_exact, distance, large)


class Attention(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        inner = cfg.num_heads * cfg.head_dim
        self.num_heads, self.head_dim, self.scale = cfg.num_heads, cfg.head_dim, cfg.scale_attention
        self.query = nn.Linear(cfg.emb_dim, inner, bias=False)
        self.key = nn.Linear(cfg.emb_dim, inner, bias=False)
        self.value = nn.Linear(cfg.emb_dim, inner, bias=False)
        self.out = nn.Linear(inner, cfg.emb_dim, bias=False)

    def heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(*x.shape[:-1], self.num_heads, self.head_dim)

    def forward(self, x: torch.Tensor, kv: torch.Tensor, mask: torch.Tensor,
                bias: torch.Tensor | None = None) -> torch.Tensor:
        q, k, v = self.heads(self.query(x)), self.heads(self.key(kv)), self.heads(self.value(kv))
        logits = torch.einsum("bqhd,bkhd->bhqk", q, k)
        if self.scale:
            logits = logits / math.sqrt(self.head_dim)
        if bias is not None:
            logits = logits + bias
        logits = logits.masked_fill(~mask, torch.finfo(logits.dtype).min)
        weights = torch.softmax(logits.float(), dim=-1).to(v.dtype)
        out = torch.einsum("bhqk,bkhd->bqhd", weights, v)
        return self.out(out.reshape(*out.shape[:2], -1))


class MLP(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.kind, self.rate = cfg.mlp, cfg.dropout_rate
        self.wi = nn.Linear(cfg.emb_dim, cfg.mlp_dim, bias=cfg.use_bias)
        if cfg.mlp == "gated_gelu":
            self.wi_linear = nn.Linear(cfg.emb_dim, cfg.mlp_dim, bias=cfg.use_bias)
        self.wo = nn.Linear(cfg.mlp_dim, cfg.emb_dim, bias=cfg.use_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.wi(x)) if self.kind == "relu" else F.gelu(self.wi(x), approximate="tanh")
        if self.kind == "gated_gelu":
            h = h * self.wi_linear(x)
        return self.wo(F.dropout(h, self.rate, self.training))


class EncoderLayer(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.rate = cfg.dropout_rate
        self.norm_attn, self.attn = _norm(cfg), Attention(cfg)
        self.norm_mlp, self.mlp = _norm(cfg), MLP(cfg)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, bias: torch.Tensor | None):
        h = self.norm_attn(x)
        x = x + F.dropout(self.attn(h, h, mask, bias), self.rate, self.training)
        return x + F.dropout(self.mlp(self.norm_mlp(x)), self.rate, self.training)


class DecoderLayer(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.rate = cfg.dropout_rate
        self.norm_self, self.self_attn = _norm(cfg), Attention(cfg)
        self.norm_cross, self.cross_attn = _norm(cfg), Attention(cfg)
        self.norm_mlp, self.mlp = _norm(cfg), MLP(cfg)

    def forward(self, y: torch.Tensor, encoded: torch.Tensor, self_mask: torch.Tensor,
                self_bias: torch.Tensor | None, cross_mask: torch.Tensor) -> torch.Tensor:
        h = self.norm_self(y)
        y = y + F.dropout(self.self_attn(h, h, self_mask, self_bias), self.rate, self.training)
        y = y + F.dropout(self.cross_attn(self.norm_cross(y), encoded, cross_mask), self.rate,
                          self.training)
        return y + F.dropout(self.mlp(self.norm_mlp(y)), self.rate, self.training)


class Seq2Seq(nn.Module):
    """The encoder-decoder a TransformerConfig describes, in torch; forward -> float32 logits."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.emb_dim)
        if cfg.position == "learned":
            self.enc_pos = nn.Embedding(cfg.max_len, cfg.emb_dim)
            self.dec_pos = nn.Embedding(cfg.max_len, cfg.emb_dim)
        else:
            self.enc_rel = nn.Embedding(cfg.relative_buckets, cfg.num_heads)
            self.dec_rel = nn.Embedding(cfg.relative_buckets, cfg.num_heads)
        self.encoder = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.num_encoder_layers))
        self.decoder = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.num_decoder_layers))
        self.enc_norm, self.dec_norm = _norm(cfg), _norm(cfg)
        if not cfg.logits_via_embedding:
            self.logits = nn.Linear(cfg.emb_dim, cfg.vocab_size, bias=cfg.use_bias)

    def _embed(self, tokens: torch.Tensor, encoder: bool):
        x = self.embed(tokens)
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        if self.cfg.position == "learned":
            return x + (self.enc_pos if encoder else self.dec_pos)(positions)[None], None
        buckets = relative_position_bucket(positions[None, :] - positions[:, None], encoder,
                                           self.cfg.relative_buckets,
                                           self.cfg.relative_max_distance)
        table = self.enc_rel if encoder else self.dec_rel
        return x, table(buckets).permute(2, 0, 1)[None]

    def forward(self, inputs: torch.Tensor, decoder_inputs: torch.Tensor) -> torch.Tensor:
        rate, training = self.cfg.dropout_rate, self.training
        x, bias = self._embed(inputs, encoder=True)
        x = F.dropout(x, rate, training)
        pad_mask = (inputs != 0)[:, None, None, :]
        for layer in self.encoder:
            x = layer(x, pad_mask, bias)
        encoded = self.enc_norm(x)
        y, bias = self._embed(decoder_inputs, encoder=False)
        y = F.dropout(y, rate, training)
        lt = decoder_inputs.shape[1]
        causal = torch.ones(lt, lt, dtype=torch.bool, device=y.device).tril()[None, None]
        for layer in self.decoder:
            y = layer(y, encoded, causal, bias, pad_mask)
        y = self.dec_norm(y)
        if self.cfg.logits_via_embedding:
            return F.linear(y * self.cfg.emb_dim ** -0.5, self.embed.weight).float()
        return self.logits(y).float()


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def token_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over non-pad targets (the JAX trainer's loss)."""
    losses = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
    weights = (targets != 0).float()
    return (losses * weights).sum() / weights.sum().clamp(min=1.0)


def make_models(cfg: TransformerConfig, seeds: list[int], device: torch.device) -> list[Seq2Seq]:
    """One freshly initialised model per seed, in training mode."""
    models = []
    for seed in seeds:
        torch.manual_seed(seed)
        models.append(Seq2Seq(cfg).to(device).train())
    return models


def adamw(params, cfg: OptimizerConfig) -> torch.optim.AdamW:
    """torch AdamW with the JAX optimizer's hyper-parameters (constant learning rate)."""
    return torch.optim.AdamW(params, lr=cfg.learning_rate, betas=(cfg.b1, cfg.b2), eps=1e-8,
                             weight_decay=cfg.weight_decay)


def _autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


class PlainLoop:
    """One seed trained by the ordinary PyTorch loop."""

    def __init__(self, model: Seq2Seq, cfg: OptimizerConfig, bf16: bool):
        self.model, self.clip, self.bf16 = model, cfg.grad_clip_norm, bf16
        self.device = next(model.parameters()).device
        self.optimizer = adamw(model.parameters(), cfg)

    def step(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """inputs [B, Li], targets [B, Lt] -> the loss before the update."""
        with _autocast(self.device, self.bf16):
            loss = token_loss(self.model(inputs, shift_right(targets)), targets)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        self.optimizer.step()
        return loss.detach()


class Ensemble:
    """S seeds as one torch.func ensemble: stacked params [S, ...], one vmapped grad per step."""

    def __init__(self, models: list[Seq2Seq], cfg: OptimizerConfig, bf16: bool):
        self.params, self.buffers = stack_module_state(models)
        self.clip, self.bf16 = cfg.grad_clip_norm, bf16
        self.device = next(iter(self.params.values())).device
        base = copy.deepcopy(models[0]).to("meta")

        def loss_one(params, buffers, inputs, targets):
            logits = functional_call(base, (params, buffers), (inputs, shift_right(targets)))
            return token_loss(logits, targets)

        self.grad_fn = vmap(grad_and_value(loss_one), randomness="different")
        self.optimizer = adamw(list(self.params.values()), cfg)

    def step(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """inputs [S, B, Li], targets [S, B, Lt] (a batch per seed) -> losses [S] before update."""
        with _autocast(self.device, self.bf16):
            grads, losses = self.grad_fn(self.params, self.buffers, inputs, targets)
        norms = torch.stack([g.float().pow(2).flatten(1).sum(1) for g in grads.values()]).sum(0)
        scale = (self.clip / (norms.sqrt() + 1e-6)).clamp(max=1.0)  # clip_grad_norm_, per seed
        for name, param in self.params.items():
            g = grads[name]
            param.grad = g * scale.view(-1, *[1] * (g.dim() - 1)).to(g.dtype)
        self.optimizer.step()
        return losses.detach()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_step(step: Callable[[], object], device: torch.device, warmup: int, timed: int,
                     rounds: int = 1) -> float:
    """Mean seconds of `timed` consecutive steps after `warmup` untimed ones; the best of `rounds`
    such means (more rounds for a shared, noisy machine)."""
    for _ in range(warmup):
        step()
    best = float("inf")
    for _ in range(rounds):
        synchronize(device)
        start = time.perf_counter()
        for _ in range(timed):
            step()
        synchronize(device)
        best = min(best, (time.perf_counter() - start) / timed)
    return best
