"""Optimizer configuration: per-seed clipping and schedules come for free under vmap."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import gin
import optax


@gin.configurable
@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """AdamW or Adafactor; linear warmup then inverse-sqrt or constant; global-norm clipping."""

    name: str = "adamw"
    learning_rate: float = 1e-3
    warmup_steps: int = 100
    decay: str = "rsqrt"
    weight_decay: float = 0.0
    b1: float = 0.9
    b2: float = 0.98
    grad_clip_norm: float = 1.0


def learning_rate_schedule(cfg: OptimizerConfig) -> optax.Schedule:
    warmup = optax.linear_schedule(0.0, cfg.learning_rate, max(cfg.warmup_steps, 1))
    if cfg.decay == "constant":
        after = optax.constant_schedule(cfg.learning_rate)
    elif cfg.decay == "rsqrt":
        warm = max(cfg.warmup_steps, 1)

        def after(step):
            return cfg.learning_rate * (warm / (step + warm)) ** 0.5
    else:
        raise ValueError(f"OptimizerConfig.decay={cfg.decay!r}: expected 'rsqrt' or 'constant'")
    return optax.join_schedules([warmup, after], [max(cfg.warmup_steps, 1)])


def make_optimizer(
    cfg: OptimizerConfig, weight_decay_mask: Callable[[Any], Any]
) -> optax.GradientTransformation:
    """The configured optimizer after per-seed global-norm clipping (per seed under vmap).

    `weight_decay_mask` (params -> bool tree) is the model family's: which parameters decay.
    """
    schedule = learning_rate_schedule(cfg)
    if cfg.name == "adamw":
        core = optax.adamw(schedule, b1=cfg.b1, b2=cfg.b2, weight_decay=cfg.weight_decay,
                           mask=weight_decay_mask)
    elif cfg.name == "adafactor":
        core = optax.adafactor(schedule, weight_decay_rate=cfg.weight_decay or None,
                               weight_decay_mask=weight_decay_mask)
    else:
        raise ValueError(f"OptimizerConfig.name={cfg.name!r}: expected 'adamw' or 'adafactor'")
    return optax.chain(optax.clip_by_global_norm(cfg.grad_clip_norm), core)
