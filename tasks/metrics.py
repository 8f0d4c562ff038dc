"""Metrics shared by the benchmark adapters (seqio metric fns take targets, predictions)."""

from __future__ import annotations

from collections.abc import Sequence


def check_aligned(targets: Sequence[str], predictions: Sequence[str]) -> None:
    """One prediction per target, and at least one example."""
    if len(targets) != len(predictions):
        raise ValueError(f"metric: {len(targets)} targets but {len(predictions)} predictions")
    if not targets:
        raise ValueError("metric: no examples to score")


def token_exact_match(targets: Sequence[str], predictions: Sequence[str]) -> dict[str, float]:
    """seqio metric fn: fraction (0-1) of predictions equal to their targets, token by token."""
    check_aligned(targets, predictions)
    hits = sum(t.split() == p.split() for t, p in zip(targets, predictions, strict=True))
    return {"exact_match": hits / len(targets)}
