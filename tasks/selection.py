"""How a cell's manifests are chosen: a gin-configurable spec expanded to one manifest per seed."""

from __future__ import annotations

import dataclasses

import gin

from tasks import manifest as manifest_lib


@gin.configurable
@dataclasses.dataclass(frozen=True)
class ManifestSpec:
    """Selection strategy and its targets; seed k of a cell uses `seed + k` when per_seed."""

    strategy: str = "random"
    n_unique: int = 1000
    multiplicity: int = 1
    seed: int = 0
    per_seed: bool = True


STRATEGIES = ("random",)


def cell_manifests(
    spec: ManifestSpec, pool: str, pool_size: int, num_seeds: int
) -> list[manifest_lib.Manifest]:
    """One manifest per seed of a cell (identical ones when the spec is not per-seed)."""
    if spec.strategy not in STRATEGIES:
        raise ValueError(f"ManifestSpec.strategy={spec.strategy!r}: expected one of {STRATEGIES}")
    seeds = [spec.seed + (k if spec.per_seed else 0) for k in range(num_seeds)]
    return [manifest_lib.random_manifest(pool, pool_size, spec.n_unique, seed, spec.multiplicity)
            for seed in seeds]
