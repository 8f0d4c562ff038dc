"""Metrics shared by the benchmark adapters and the trainer's evaluator.

Each benchmark module defines `match(target, prediction) -> bool` (its own notion of a correct
prediction), `METRIC_NAME` (how results name it) and `metric`, the seqio metric fn. Scores per
category and per difficulty group are computed here, once, for every caller.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

Match = Callable[[str, str], bool]


def check_aligned(targets: Sequence[str], predictions: Sequence[str]) -> None:
    """One prediction per target, and at least one example."""
    if len(targets) != len(predictions):
        raise ValueError(f"metric: {len(targets)} targets but {len(predictions)} predictions")
    if not targets:
        raise ValueError("metric: no examples to score")


def token_match(target: str, prediction: str) -> bool:
    """Exact match of the whitespace-token sequences."""
    return target.split() == prediction.split()


def token_exact_match(targets: Sequence[str], predictions: Sequence[str]) -> dict[str, float]:
    """seqio metric fn: fraction (0-1) of predictions equal to their targets, token by token."""
    check_aligned(targets, predictions)
    hits = sum(token_match(t, p) for t, p in zip(targets, predictions, strict=True))
    return {"exact_match": hits / len(targets)}


def category_groups(categories: Sequence[str | None]) -> dict[str, np.ndarray]:
    """Category -> positions of its examples, categories in first-seen order (None -> "")."""
    groups: dict[str, list[int]] = {}
    for i, category in enumerate(categories):
        groups.setdefault(category or "", []).append(i)
    return {name: np.asarray(rows, dtype=np.int64) for name, rows in groups.items()}


def difficulty_groups(
    categories: Sequence[str | None], difficulty: Mapping[str, str]
) -> dict[str, np.ndarray]:
    """Difficulty group (e.g. easy / hard) -> positions of its examples, in sorted group order.

    Examples whose category has no difficulty belong to no group.
    """
    groups: dict[str, list[int]] = {}
    for i, category in enumerate(categories):
        level = difficulty.get(category or "")
        if level:
            groups.setdefault(level, []).append(i)
    return {name: np.asarray(groups[name], dtype=np.int64) for name in sorted(groups)}


def group_means(correct: np.ndarray, groups: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Fraction correct within each group: correct [..., N] bool -> group -> [...] float."""
    return {name: correct[..., rows].mean(axis=-1) for name, rows in groups.items()}
