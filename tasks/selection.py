"""How a cell's manifests are chosen: random, greedy pair coverage, or coverage-quantile pre-screen.

Everything is measured on a `PoolIndex`: the pool's examples x pair-id incidence matrix (sparse),
their depths, output lengths and signatures, and the pair ids of each evaluation set. Coverage of
many candidate manifests is one sparse matrix product per chunk of candidates.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import gin
import numpy as np
import scipy.sparse as sp

from tasks import manifest as manifest_lib
from tasks import signature as signature_lib
from tasks.benchmarks.cogs import CATEGORY_DIFFICULTY
from tasks.example import Example
from tasks.manifest import Manifest, ManifestError

STRATEGIES = ("random", "greedy", "prescreen")
CHUNK = 500  # candidates per sparse product in `candidate_stats`


@gin.configurable
@dataclasses.dataclass(frozen=True)
class ManifestSpec:
    """Selection strategy and its targets; seed k of a cell uses `seed + k` when per_seed.

    coverage_split: the eval set whose pair coverage greedy maximises and pre-screening targets
    ("" = the first eval set). Pre-screening draws `n_candidates` random manifests (seeds
    seed, seed+1, ...), keeps those whose mean depth and mean output length lie within the
    tolerances of the pool medians, and takes the ones closest to the coverage `quantile`.
    """

    strategy: str = "random"
    n_unique: int = 1000
    multiplicity: int = 1
    seed: int = 0
    per_seed: bool = True
    coverage_split: str = ""
    quantile: float = 0.5
    n_candidates: int = 1000
    depth_tolerance: float = 0.5
    out_len_tolerance: float = 6.0

    def validate(self, pool_size: int, pool: str) -> None:
        """One clear ManifestError naming the bad setting."""
        if self.strategy not in STRATEGIES:
            raise ManifestError(
                f"ManifestSpec.strategy={self.strategy!r}: expected one of {STRATEGIES}")
        if not 1 <= self.n_unique <= pool_size:
            raise ManifestError(
                f"ManifestSpec.n_unique={self.n_unique}: must lie in [1, {pool_size}] "
                f"(pool {pool!r} has {pool_size} examples)")
        if self.multiplicity < 1:
            raise ManifestError(f"ManifestSpec.multiplicity={self.multiplicity} must be >= 1")
        if self.strategy == "prescreen":
            if not 0.0 < self.quantile < 1.0:
                raise ManifestError(
                    f"ManifestSpec.quantile={self.quantile} must lie strictly inside (0, 1)")
            if self.n_candidates < 1:
                raise ManifestError(
                    f"ManifestSpec.n_candidates={self.n_candidates} must be >= 1")
            for name in ("depth_tolerance", "out_len_tolerance"):
                if not getattr(self, name) >= 0:
                    raise ManifestError(f"ManifestSpec.{name}={getattr(self, name)} must be >= 0")


@dataclasses.dataclass(frozen=True)
class PoolIndex:
    """A pool's measures as arrays: incidence [n, P] over pool pairs, depth, out_len, signatures.

    eval_pairs[name] holds the pool-pair ids of eval set `name`'s distinct pairs that occur in the
    pool; eval_sizes[name] counts all its distinct pairs (the coverage denominator).
    """

    pool: str
    incidence: sp.csr_matrix
    depth: np.ndarray
    out_len: np.ndarray
    signatures: np.ndarray
    eval_pairs: dict[str, np.ndarray]
    eval_sizes: dict[str, int]
    scheme: str

    @property
    def size(self) -> int:
        """Number of pool examples."""
        return int(self.incidence.shape[0])

    @property
    def median_depth(self) -> float:
        """Pool median of example depth."""
        return float(np.median(self.depth))

    @property
    def median_out_len(self) -> float:
        """Pool median of output length."""
        return float(np.median(self.out_len))

    def eval_split(self, name: str) -> str:
        """`name`, or the first eval set for ""; ManifestError naming the known sets otherwise."""
        if not self.eval_pairs:
            raise ManifestError(f"pool {self.pool!r}: no eval sets to measure coverage on")
        name = name or next(iter(self.eval_pairs))
        if name not in self.eval_pairs:
            raise ManifestError(f"ManifestSpec.coverage_split={name!r}: unknown eval set; "
                                f"known: {sorted(self.eval_pairs)}")
        return name


def eval_subset(examples_by_split: Mapping[str, Sequence[Example]], name: str) -> list[Example]:
    """Eval set `split` or `split:group` (group: easy / hard, or a category name)."""
    split, _, group = name.partition(":")
    if split not in examples_by_split:
        raise ManifestError(f"eval set {name!r}: no split {split!r}; "
                            f"splits: {sorted(examples_by_split)}")
    examples = list(examples_by_split[split])
    if group:
        examples = [ex for ex in examples
                    if ex.category == group or CATEGORY_DIFFICULTY.get(ex.category or "") == group]
        if not examples:
            raise ManifestError(f"eval set {name!r}: no example of split {split!r} is in "
                                f"category or difficulty group {group!r}")
    return examples


def eval_sets(
    examples_by_split: Mapping[str, Sequence[Example]], splits: Sequence[str]
) -> dict[str, list[Example]]:
    """Each eval split, plus `split:easy` / `split:hard` where its categories have a difficulty."""
    out = {}
    for name in splits:
        out[name] = eval_subset(examples_by_split, name)
        if ":" not in name:
            groups = {CATEGORY_DIFFICULTY.get(ex.category or "") for ex in out[name]} - {None}
            out.update({f"{name}:{g}": eval_subset(examples_by_split, f"{name}:{g}")
                        for g in sorted(groups)})
    return out


def build_index(
    pool: str,
    pool_examples: Sequence[Example],
    eval_sets: Mapping[str, Sequence[Example]],
    scheme: str = signature_lib.DEFAULT_SCHEME,
) -> PoolIndex:
    """Index a pool (examples in id order) against named eval sets for vectorised measurement."""
    if not pool_examples:
        raise ManifestError(f"pool {pool!r} has no examples")
    if any(ex.id != i for i, ex in enumerate(pool_examples)):
        raise ManifestError(f"pool {pool!r}: examples must be in id order 0..n-1")
    vocab: dict[tuple[str, str], int] = {}
    rows, cols = [], []
    for i, ex in enumerate(pool_examples):
        for pair in ex.pairs:
            rows.append(i)
            cols.append(vocab.setdefault(pair, len(vocab)))
    n = len(pool_examples)
    incidence = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.int32), (np.array(rows, dtype=np.int64), cols)),
        shape=(n, max(len(vocab), 1)),
    )
    eval_pairs, eval_sizes = {}, {}
    for name, examples in eval_sets.items():
        distinct = set().union(*(ex.pairs for ex in examples))
        if not distinct:
            raise ManifestError(f"eval set {name!r} has no pairs to cover")
        eval_pairs[name] = np.array(sorted(vocab[p] for p in distinct if p in vocab), np.int64)
        eval_sizes[name] = len(distinct)
    features = signature_lib.feature_matrix(pool_examples)
    return PoolIndex(
        pool=pool,
        incidence=incidence,
        depth=features[:, 2].astype(np.float64),
        out_len=features[:, 3].astype(np.float64),
        signatures=signature_lib.signature_codes(features, scheme),
        eval_pairs=eval_pairs,
        eval_sizes=eval_sizes,
        scheme=scheme,
    )


def candidate_stats(index: PoolIndex, ids: np.ndarray) -> dict[str, np.ndarray]:
    """Coverage of every eval set, mean depth and mean output length of K manifests ids [K, N]."""
    ids = np.asarray(ids, dtype=np.int64)
    k, n = ids.shape
    out: dict[str, np.ndarray] = {f"coverage:{name}": np.zeros(k) for name in index.eval_pairs}
    for name, cols in index.eval_pairs.items():
        target = index.incidence[:, cols].tocsr()
        for start in range(0, k, CHUNK):
            block = ids[start:start + CHUNK]
            selector = sp.csr_matrix(
                (np.ones(block.size, dtype=np.int32), block.ravel(),
                 np.arange(0, block.size + 1, n)),
                shape=(len(block), index.size),
            )
            covered = np.diff((selector @ target).indptr)  # distinct eval pairs hit per candidate
            out[f"coverage:{name}"][start:start + len(block)] = covered / index.eval_sizes[name]
    out["mean_depth"] = index.depth[ids].mean(axis=1)
    out["mean_out_len"] = index.out_len[ids].mean(axis=1)
    return out


def typicality(index: PoolIndex, mean_depth: float, mean_out_len: float) -> float:
    """Distance from the pool medians in pool-SD units (0 = typical; larger = more atypical)."""
    sd_depth = float(np.std(index.depth)) or 1.0
    sd_len = float(np.std(index.out_len)) or 1.0
    return math.hypot((mean_depth - index.median_depth) / sd_depth,
                      (mean_out_len - index.median_out_len) / sd_len)


def measure(index: PoolIndex, manifest: Manifest) -> dict[str, Any]:
    """Measured statistics of a manifest over the pool it indexes (unique examples, unweighted)."""
    if manifest.pool != index.pool or manifest.pool_size != index.size:
        raise ManifestError(f"manifest over {manifest.pool!r} ({manifest.pool_size}) measured on "
                            f"pool {index.pool!r} ({index.size})")
    ids = np.asarray(manifest.ids, dtype=np.int64)
    stats = candidate_stats(index, ids[None])
    depth, length = float(stats["mean_depth"][0]), float(stats["mean_out_len"][0])
    return {
        "coverage": {name: round(float(stats[f"coverage:{name}"][0]), 6)
                     for name in index.eval_pairs},
        "mean_depth": round(depth, 6),
        "mean_out_len": round(length, 6),
        "typicality_distance": round(typicality(index, depth, length), 6),
        "signatures": int(np.unique(index.signatures[ids]).size),
        "signature_scheme": index.scheme,
    }


def random_ids(pool_size: int, n_unique: int, seeds: Sequence[int]) -> np.ndarray:
    """Sorted ids [K, N] of the random manifests of `seeds` (exactly `random_manifest`'s draw)."""
    return np.stack([
        np.sort(np.random.Generator(np.random.PCG64(s)).choice(pool_size, n_unique, replace=False))
        for s in seeds
    ])


def greedy_coverage_ids(index: PoolIndex, n_unique: int, split: str, seed: int) -> np.ndarray:
    """Greedy max pair coverage of eval set `split`: N ids, in pick order.

    Exact greedy with vectorised marginal gains: after each pick the gains of the examples that
    hold a newly covered pair drop by one per such pair (CSC columns). Ties, and the fill once no
    example adds a pair, go by a PCG64(seed) random priority.
    """
    split = index.eval_split(split)
    if not 1 <= n_unique <= index.size:
        raise ManifestError(f"greedy: N={n_unique} must lie in [1, {index.size}] "
                            f"(pool {index.pool!r})")
    target = index.incidence[:, index.eval_pairs[split]]
    by_pair = target.tocsc()
    by_example = target.tocsr()
    gains = np.diff(by_example.indptr).astype(np.int64)
    priority = np.random.Generator(np.random.PCG64(seed)).permutation(index.size)
    covered = np.zeros(target.shape[1], dtype=bool)
    taken = np.zeros(index.size, dtype=bool)
    picks: list[int] = []
    scale = index.size
    while len(picks) < n_unique:
        key = np.where(taken, -1, gains * scale + priority)
        best = int(np.argmax(key))
        if gains[best] <= 0:  # nothing left to cover: fill by priority
            rest = np.flatnonzero(~taken)
            picks.extend(rest[np.argsort(-priority[rest])][:n_unique - len(picks)].tolist())
            break
        picks.append(best)
        taken[best] = True
        pairs = by_example.indices[by_example.indptr[best]:by_example.indptr[best + 1]]
        new = pairs[~covered[pairs]]
        covered[new] = True
        holders = np.concatenate(
            [by_pair.indices[by_pair.indptr[p]:by_pair.indptr[p + 1]] for p in new])
        gains -= np.bincount(holders, minlength=index.size)
    return np.array(picks, dtype=np.int64)


def greedy_coverage_manifest(
    index: PoolIndex, n_unique: int, split: str = "", seed: int = 0, multiplicity: int = 1
) -> Manifest:
    """The greedy max-pair-coverage manifest of N examples, measured."""
    split = index.eval_split(split)
    ids = np.sort(greedy_coverage_ids(index, n_unique, split, seed))
    manifest = Manifest(
        pool=index.pool, pool_size=index.size, ids=tuple(ids.tolist()),
        counts=(multiplicity,) * n_unique, strategy="greedy", seed=seed,
        targets={"n_unique": n_unique, "multiplicity": multiplicity, "coverage_split": split},
    )
    return manifest.with_stats(measure(index, manifest))


def prescreen_seeds(index: PoolIndex, spec: ManifestSpec, count: int) -> list[int]:
    """Seeds of the `count` typical random candidates closest to the target coverage quantile."""
    spec.validate(index.size, index.pool)
    split = index.eval_split(spec.coverage_split)
    seeds = np.arange(spec.seed, spec.seed + spec.n_candidates)
    stats = candidate_stats(index, random_ids(index.size, spec.n_unique, seeds.tolist()))
    typical = (
        (np.abs(stats["mean_depth"] - index.median_depth) <= spec.depth_tolerance)
        & (np.abs(stats["mean_out_len"] - index.median_out_len) <= spec.out_len_tolerance)
    )
    if typical.sum() < count:
        raise ManifestError(
            f"ManifestSpec.depth_tolerance={spec.depth_tolerance} / out_len_tolerance="
            f"{spec.out_len_tolerance}: only {int(typical.sum())} of {spec.n_candidates} "
            f"candidates have mean depth and mean output length that close to the pool medians "
            f"({index.median_depth:g}, {index.median_out_len:g}); {count} needed")
    coverage = stats[f"coverage:{split}"][typical]
    goal = float(np.quantile(coverage, spec.quantile))
    order = np.lexsort((seeds[typical], np.abs(coverage - goal)))
    return sorted(seeds[typical][order[:count]].tolist())


def quantile_prescreen_manifests(
    index: PoolIndex, spec: ManifestSpec, count: int
) -> list[Manifest]:
    """`count` pre-screened random manifests (see ManifestSpec), measured, in seed order."""
    split = index.eval_split(spec.coverage_split)
    targets = {
        "n_unique": spec.n_unique, "multiplicity": spec.multiplicity, "coverage_split": split,
        "quantile": spec.quantile, "n_candidates": spec.n_candidates,
        "first_candidate_seed": spec.seed, "depth_tolerance": spec.depth_tolerance,
        "out_len_tolerance": spec.out_len_tolerance,
    }
    out = []
    for seed in prescreen_seeds(index, spec, count):
        base = manifest_lib.random_manifest(index.pool, index.size, spec.n_unique, seed,
                                            spec.multiplicity)
        chosen = dataclasses.replace(base, strategy="prescreen", targets=targets, hash="")
        out.append(chosen.with_stats(measure(index, chosen)))
    return out


def cell_manifests(spec: ManifestSpec, index: PoolIndex, num_seeds: int) -> list[Manifest]:
    """One measured manifest per seed of a cell (identical ones when the spec is not per-seed)."""
    spec.validate(index.size, index.pool)
    if num_seeds < 1:
        raise ManifestError(f"num_seeds={num_seeds} must be >= 1")
    distinct = num_seeds if spec.per_seed else 1
    if spec.strategy == "prescreen":
        manifests = quantile_prescreen_manifests(index, spec, distinct)
    elif spec.strategy == "greedy":
        manifests = [greedy_coverage_manifest(index, spec.n_unique, spec.coverage_split,
                                              spec.seed + k, spec.multiplicity)
                     for k in range(distinct)]
    else:
        manifests = [manifest_lib.random_manifest(index.pool, index.size, spec.n_unique,
                                                  spec.seed + k, spec.multiplicity)
                     for k in range(distinct)]
        manifests = [m.with_stats(measure(index, m)) for m in manifests]
    return manifests if spec.per_seed else manifests * num_seeds
