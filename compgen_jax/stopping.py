"""Per-seed stopping rules, chosen by config (TrainConfig.stop_rules) and applied at every eval.

A rule freezes a seed through the trainer's `active` mask; the first rule that fires names the
stop reason. Rules read the eval's scores by name (a split, `split:group`, or a synthetic type)
and skip a seed when their score is absent from the eval.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import gin
import numpy as np

RUNNING = ""  # stop_reason of a seed still training
BUDGET = "max_steps"  # stop_reason of a seed that trained to the end of the budget
DIVERGED = "diverged"  # stop_reason of a seed frozen by a non-finite loss or gradient


class StopRule(Protocol):
    def fires(self, scores: Mapping[str, np.ndarray], epoch: np.ndarray,
              patience_from: np.ndarray, live: np.ndarray) -> np.ndarray:
        """Of the `live` seeds [S], those this rule stops now (it may update its `patience_from`
        [S] of live seeds in place)."""
        ...

    @property
    def reason(self) -> str:
        ...


@gin.configurable
@dataclasses.dataclass(frozen=True)
class ThresholdStop:
    """Stop a seed once its score on `split` reaches `threshold` (upstream coverage rule i; t5x-
    style early stopping on a held-out split)."""

    split: str = gin.REQUIRED
    threshold: float = 1.0

    @property
    def reason(self) -> str:
        return self.split

    def fires(self, scores: Mapping[str, np.ndarray], epoch: np.ndarray,
              patience_from: np.ndarray, live: np.ndarray) -> np.ndarray:
        if self.split not in scores:
            return np.zeros_like(live)
        return live & (scores[self.split] >= self.threshold)


@gin.configurable
@dataclasses.dataclass(frozen=True)
class PatienceStop:
    """Stop a seed more than `patience_epochs` epochs after its score on `split` first reached
    `threshold` (upstream coverage rule ii: memorised the training set, waited, no escape)."""

    split: str = gin.REQUIRED
    threshold: float = 0.99
    patience_epochs: int = 100

    @property
    def reason(self) -> str:
        return "patience"

    def fires(self, scores: Mapping[str, np.ndarray], epoch: np.ndarray,
              patience_from: np.ndarray, live: np.ndarray) -> np.ndarray:
        if self.split not in scores:
            return np.zeros_like(live)
        first = live & (patience_from < 0) & (scores[self.split] >= self.threshold)
        patience_from[first] = epoch[first]
        return live & (patience_from >= 0) & (epoch - patience_from > self.patience_epochs)


@dataclasses.dataclass
class SeedStops:
    """Per-seed stopping bookkeeping, saved with every checkpoint: for each rule the epoch its
    score first reached its threshold (-1: not yet), the stop reason and step (-1: running)."""

    patience_from: np.ndarray  # [R, S]
    reason: np.ndarray  # [S] str
    stop_step: np.ndarray  # [S]

    @classmethod
    def fresh(cls, num_rules: int, num_seeds: int) -> SeedStops:
        return cls(np.full((num_rules, num_seeds), -1, np.int64),
                   np.array([RUNNING] * num_seeds, dtype=object),
                   np.full(num_seeds, -1, np.int64))

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> SeedStops:
        return cls(np.asarray(meta["patience_from"], np.int64).reshape(
                       -1, len(meta["stop_step"])),
                   np.asarray(meta["stop_reason"], dtype=object),
                   np.asarray(meta["stop_step"], np.int64))

    def meta(self) -> dict[str, list]:
        return {"patience_from": self.patience_from.tolist(), "stop_reason": self.reason.tolist(),
                "stop_step": self.stop_step.tolist()}

    def update(self, rules: Sequence[StopRule], scores: Mapping[str, np.ndarray],
               epoch: np.ndarray, seed_steps: np.ndarray, active: np.ndarray,
               diverged: np.ndarray) -> np.ndarray:
        """Apply the rules, in order, to the active seeds that have not diverged (a diverged seed's
        reason is `diverged`); return the new active mask."""
        now = active.copy()
        for k, rule in enumerate(rules):
            fired = rule.fires(scores, epoch, self.patience_from[k], now & ~diverged)
            self.reason[fired] = rule.reason
            now &= ~fired
        self.reason[active & diverged & (self.reason == RUNNING)] = DIVERGED
        ended = active & (~now | diverged)
        self.stop_step[ended] = seed_steps[ended]
        return now

    def final(self, seed_steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(stop step, stop reason) per seed at the end of the run: a seed no rule stopped
        trained to the end of the budget."""
        return (np.where(self.stop_step < 0, seed_steps, self.stop_step),
                np.where(self.reason == RUNNING, BUDGET, self.reason).astype(object))
