"""Timing and FLOP accounting shared by the throughput harnesses (JAX side).

FLOPs are counted analytically: the matmuls of one forward pass (projections, attention scores
and values, MLP, output head) at 2 FLOPs per multiply-add, training = 3x forward (the backward pass
costs two forwards). Attention is counted over the full square (the model computes the causal
scores densely and masks them). Elementwise work (norms, softmax, optimizer) is left out, as MFU
conventionally does.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from compgen_jax.models.transformer import TransformerConfig
from compgen_jax.multiseed import MultiSeedTrainer, Pool


def best_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Fastest of `repeats` timed calls after one untimed (compiling) call."""
    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return min(times)


def matmul_peak_flops(n: int = 2048, dtype: str = "float32", repeats: int = 5) -> float:
    """FLOP/s of a square n x n matmul in `dtype`: the device's practical peak for that dtype."""
    a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n)), jnp.dtype(dtype))
    mm = jax.jit(lambda x: x @ x)
    return 2 * n**3 / best_seconds(lambda: mm(a), repeats)


def seconds_per_step(trainer: MultiSeedTrainer, groups: list, pool: Pool, repeats: int) -> float:
    """Best per-step time of running every (state, orders) group once per call.

    Call 1 compiles; states are donated and replaced, so no copies enter the timing.
    """
    best = float("inf")
    for call in range(repeats + 1):
        start = time.perf_counter()
        results = [trainer.train(state, orders, pool) for state, orders in groups]
        jax.block_until_ready([loss for _, loss in results])
        groups = [(state, orders) for (state, _), (_, orders) in zip(results, groups, strict=True)]
        if call:
            best = min(best, time.perf_counter() - start)
    return best / trainer.steps_per_call


def forward_matmul_flops(cfg: TransformerConfig, input_len: int, target_len: int) -> float:
    """Matmul FLOPs of one encoder-decoder forward pass over one example (see module docstring)."""
    d, inner, ff, li, lt = cfg.emb_dim, cfg.num_heads * cfg.head_dim, cfg.mlp_dim, input_len, \
        target_len
    mlp_mats = 3 if cfg.mlp == "gated_gelu" else 2
    encoder = 4 * d * inner * li + 2 * li * li * inner + mlp_mats * d * ff * li
    decoder = (4 * d * inner * lt + 2 * lt * lt * inner  # self-attention
               + 2 * d * inner * lt + 2 * d * inner * li + 2 * lt * li * inner  # cross-attention
               + mlp_mats * d * ff * lt)
    head = d * cfg.vocab_size * lt
    macs = cfg.num_encoder_layers * encoder + cfg.num_decoder_layers * decoder + head
    return 2.0 * macs


def train_matmul_flops(cfg: TransformerConfig, input_len: int, target_len: int) -> float:
    """Matmul FLOPs of one training step per example: forward + backward (2x forward)."""
    return 3.0 * forward_matmul_flops(cfg, input_len, target_len)
