"""The cell's trainer (one compiled step per model, optimizer and batch) and the in-process
sharing cache: inside `sharing_across_cells`, cells share each task's loaded data and trainer."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

from compgen_jax.configs import TrainConfig
from compgen_jax.models import ModelConfig, model_family
from compgen_jax.multiseed import MultiSeedTrainer
from compgen_jax.optim import OptimizerConfig, make_optimizer


def build_trainer(
    model_config: ModelConfig, optimizer_config: OptimizerConfig, train_config: TrainConfig,
    vocab_size: int, situation_shape: tuple[int, int] = (0, 0), batch_size: int | None = None,
) -> MultiSeedTrainer:
    """The cell's trainer for any model family: vocabulary size and (gSCAN) situation (cells,
    channels) come from the task; the optimizer decays what the family says decays."""
    cells, channels = situation_shape
    sizes = {"situation_cells": cells, "situation_channels": channels} if cells else {}
    model_config = dataclasses.replace(model_config, vocab_size=vocab_size, **sizes)
    batch_size = batch_size or train_config.batch_size
    return shared(("trainer", model_config, optimizer_config, batch_size,
                   train_config.steps_per_call, train_config.length_buckets),
                  lambda: MultiSeedTrainer(
        model_config=model_config,
        optimizer=make_optimizer(optimizer_config, model_family(model_config).weight_decay_mask),
        batch_size=batch_size, steps_per_call=train_config.steps_per_call,
        optimizer_config=optimizer_config, length_buckets=train_config.length_buckets))


_SHARED: dict[Any, Any] | None = None  # open while `sharing_across_cells` is


@contextlib.contextmanager
def sharing_across_cells() -> Iterator[None]:
    """While open, the cells trained in this process share each task's loaded data and one
    trainer (one compiled step) per setting, as the in-process runner wants; nothing is kept
    once it closes, so a later call reads its data afresh."""
    global _SHARED
    _SHARED = {}
    try:
        yield
    finally:
        _SHARED = None


def shared(key: Any, make: Callable[[], Any]) -> Any:
    """`make()`, or, inside `sharing_across_cells`, the value made for `key` before."""
    if _SHARED is None:
        return make()
    if key not in _SHARED:
        _SHARED[key] = make()
    return _SHARED[key]
