"""Each seed's stream of example ids, read by the compiled step at position step * batch.

A stream hands the host loop the order table of every lane before a call: a manifest cell's whole
table once (`fixed`), or, for the synthetic tasks' endless per-epoch permutations, a ring buffer of
the next call's positions (MultiSeedTrainer.seed_batch reads position p at p % len(table)).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from tasks import manifest as manifest_lib


@dataclasses.dataclass(frozen=True)
class ManifestOrders:
    """Each seed's manifest order over the whole budget (padding lanes repeat the last one)."""

    manifests: Sequence[manifest_lib.Manifest]
    positions: int  # total_steps * batch_size
    fixed = True

    def window(self, lane_seeds: Sequence[int], start: np.ndarray, length: int) -> np.ndarray:
        """[lanes, positions] int32 (the same every call)."""
        padding = len(lane_seeds) - len(self.manifests)
        lanes = [*self.manifests, *self.manifests[-1:] * padding]
        return manifest_lib.order_table(lanes, list(lane_seeds), self.positions)


def order_window(seed: int, n: int, start: int, length: int) -> np.ndarray:
    """Positions [start, start+length) of a seed's stream of per-epoch PCG64 permutations of n."""
    first, last = start // n, (start + length - 1) // n
    stream = np.concatenate([np.random.default_rng([seed, e]).permutation(n)
                             for e in range(first, last + 1)])
    return stream[start - first * n: start - first * n + length].astype(np.int32)


@dataclasses.dataclass(frozen=True)
class EpochOrders:
    """Each seed reads its own endless stream of per-epoch permutations of the n examples."""

    n: int
    fixed = False

    def window(self, lane_seeds: Sequence[int], start: np.ndarray, length: int) -> np.ndarray:
        """[lanes, length] ring buffer holding each lane's positions [start, start + length)."""
        return np.stack([np.roll(order_window(s, self.n, int(p), length), int(p) % length)
                         for s, p in zip(lane_seeds, start, strict=True)])
