"""Manifests: which pool examples a run trains on and how often, content-hashed (DESIGN.md s.2)."""

from __future__ import annotations

import dataclasses
import json
import os
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from analysis.atomic import write_text
from analysis.manifest_format import (
    FIELDS,
    canonical_json,
    content_hash,
    manifest_text,
    read_manifest_json,
)


class ManifestError(ValueError):
    """An impossible, inconsistent or corrupted manifest."""


def _stats(counts: Sequence[int]) -> dict[str, Any]:
    """n_unique, total and the multiplicity histogram {count (as str): number of ids}."""
    histogram = Counter(counts)
    return {
        "n_unique": len(counts),
        "total": sum(counts),
        "multiplicity": {str(c): histogram[c] for c in sorted(histogram)},
    }


def _is_int(x: Any) -> bool:
    """True for ints (numpy ints included), False for bools and floats."""
    return isinstance(x, int | np.integer) and not isinstance(x, bool)


@dataclasses.dataclass(frozen=True)
class Manifest:
    """Unique pool ids with multiplicities, how they were chosen, and a hash of all of it.

    `stats` and `hash` are computed when left empty and verified when given.
    """

    pool: str
    pool_size: int
    ids: tuple[int, ...]
    counts: tuple[int, ...]
    strategy: str
    seed: int
    targets: dict[str, Any] = dataclasses.field(default_factory=dict)
    stats: dict[str, Any] = dataclasses.field(default_factory=dict)
    hash: str = ""

    def __post_init__(self) -> None:
        """Normalise field types, check consistency, then fill or verify stats and hash."""
        if not (isinstance(self.pool, str) and self.pool):
            raise ManifestError(f"manifest pool must be a non-empty string, got {self.pool!r}")
        if not isinstance(self.strategy, str):
            raise ManifestError(f"manifest strategy must be a string, got {self.strategy!r}")
        for name in ("pool_size", "seed"):
            if not _is_int(getattr(self, name)):
                raise ManifestError(f"manifest {name} must be an int, got {getattr(self, name)!r}")
        if not isinstance(self.targets, dict):
            raise ManifestError(f"manifest targets must be a dict, got {self.targets!r}")
        try:
            ids, counts = list(self.ids), list(self.counts)
        except TypeError:
            raise ManifestError("manifest ids and counts must be sequences of integers") from None
        if not all(_is_int(i) for i in ids) or not all(_is_int(c) for c in counts):
            raise ManifestError("manifest ids and counts must be integers")
        if not ids:
            raise ManifestError(f"manifest over {self.pool!r} has no ids (n_unique must be >= 1)")
        if len(counts) != len(ids):
            raise ManifestError(f"manifest has {len(ids)} ids but {len(counts)} counts")
        if any(b <= a for a, b in zip(ids, ids[1:], strict=False)):
            raise ManifestError("manifest ids must be sorted and unique")
        if ids[0] < 0 or ids[-1] >= self.pool_size:
            raise ManifestError(
                f"manifest ids must lie in [0, {self.pool_size}) for pool {self.pool!r}; "
                f"got range [{ids[0]}, {ids[-1]}]"
            )
        if min(counts) < 1:
            raise ManifestError("manifest counts (multiplicities) must be >= 1")
        set_ = object.__setattr__
        set_(self, "pool_size", int(self.pool_size))
        set_(self, "seed", int(self.seed))
        set_(self, "ids", tuple(int(i) for i in ids))
        set_(self, "counts", tuple(int(c) for c in counts))
        try:
            set_(self, "targets", json.loads(canonical_json(self.targets)))
        except (TypeError, ValueError) as err:
            raise ManifestError(f"manifest targets are not plain JSON: {err}") from None
        stats = _stats(self.counts)
        if not isinstance(self.stats, dict):
            raise ManifestError(f"manifest stats must be a dict, got {self.stats!r}")
        counted = {k: self.stats[k] for k in stats if k in self.stats}
        if self.stats and counted != stats:
            raise ManifestError(f"manifest stats {counted} disagree with ids/counts ({stats})")
        try:  # measured statistics (coverage, typicality, ...) ride along as plain JSON
            set_(self, "stats", json.loads(canonical_json({**self.stats, **stats})))
        except (TypeError, ValueError) as err:
            raise ManifestError(f"manifest stats are not plain JSON: {err}") from None
        digest = self.content_hash()
        if self.hash and self.hash != digest:
            raise ManifestError(f"manifest hash {self.hash} != content hash {digest}")
        set_(self, "hash", digest)

    def content_hash(self) -> str:
        """sha256 hex of the canonical JSON of every field except `hash`."""
        return content_hash(self.to_json())

    def to_json(self) -> dict[str, Any]:
        """All fields as plain JSON values (tuples become lists)."""
        return {
            name: list(value) if isinstance(value, tuple) else value
            for name, value in ((f, getattr(self, f)) for f in FIELDS)
        }

    @property
    def n_unique(self) -> int:
        """Number of distinct pool examples."""
        return len(self.ids)

    @property
    def total(self) -> int:
        """Number of examples counting multiplicity (one pass over the manifest)."""
        return sum(self.counts)

    def exposure(self, steps: int, batch_size: int) -> float:
        """Passes per unique example over a run: steps * batch_size / n_unique."""
        return steps * batch_size / self.n_unique

    def with_stats(self, measured: dict[str, Any]) -> Manifest:
        """A copy whose stats also hold `measured` (coverage, typicality, ...), rehashed."""
        return dataclasses.replace(self, stats={**self.stats, **measured}, hash="")

    def __hash__(self) -> int:
        """Hashable by content (the dict fields make the generated hash unusable)."""
        return hash(self.hash)


def random_manifest(
    pool: str, pool_size: int, n_unique: int, seed: int, multiplicity: int = 1
) -> Manifest:
    """N ids drawn uniformly without replacement (PCG64(seed)), each `multiplicity` times."""
    if n_unique < 1:
        raise ManifestError(f"random_manifest: n_unique must be >= 1, got {n_unique}")
    if n_unique > pool_size:
        raise ManifestError(
            f"random_manifest: requested N={n_unique} unique examples but pool {pool!r} "
            f"has only {pool_size}"
        )
    if multiplicity < 1:
        raise ManifestError(f"random_manifest: multiplicity must be >= 1, got {multiplicity}")
    rng = np.random.Generator(np.random.PCG64(seed))
    ids = np.sort(rng.choice(pool_size, size=n_unique, replace=False))
    return Manifest(
        pool=pool,
        pool_size=pool_size,
        ids=tuple(ids.tolist()),
        counts=(multiplicity,) * n_unique,
        strategy="random",
        seed=seed,
        targets={"n_unique": n_unique, "multiplicity": multiplicity},
    )


def save(manifest: Manifest, path: str | os.PathLike[str]) -> None:
    """Write a manifest as JSON (one field per line), atomically (temp file + rename)."""
    write_text(path, manifest_text(manifest.to_json()))


def load(path: str | os.PathLike[str]) -> Manifest:
    """Read a manifest file, checking its schema and that its hash matches its content."""
    data = read_manifest_json(path, ManifestError)
    try:
        return Manifest(**data)
    except ManifestError as err:
        raise ManifestError(f"{path}: {err}") from None


def order_table(
    manifests: Sequence[Manifest], data_seeds: Sequence[int], length: int
) -> np.ndarray:
    """Per-seed data order [S, length] int32: concatenated PCG64 permutations of each multiset."""
    if len(manifests) != len(data_seeds) or not manifests:
        raise ManifestError(
            f"order_table: need one manifest per data seed, got {len(manifests)} manifests "
            f"and {len(data_seeds)} seeds"
        )
    if length < 1:
        raise ManifestError(f"order_table: length must be >= 1, got {length}")
    rows = []
    for manifest, seed in zip(manifests, data_seeds, strict=True):
        multiset = np.repeat(np.asarray(manifest.ids, dtype=np.int32), manifest.counts)
        rng = np.random.Generator(np.random.PCG64(seed))
        passes = -(-length // multiset.size)
        rows.append(np.concatenate([rng.permutation(multiset) for _ in range(passes)])[:length])
    return np.stack(rows).astype(np.int32)
