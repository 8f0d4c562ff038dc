"""Unified surface signature: bucketized (atom count, pair count, depth, output length).

One definition for every benchmark, so "how many kinds of example does a manifest hold" can be
compared across SCAN, COGS, ReCOGS, gSCAN and CFQ. A bucket scheme maps each raw feature to a
bucket index; schemes are pluggable (`register_scheme`) and looked up by name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from tasks.example import Example

FEATURES = ("atoms", "pairs", "depth", "out_len")


@dataclasses.dataclass(frozen=True)
class BucketScheme:
    """Per-feature ascending bucket edges: value v falls in bucket #edges <= v (np.digitize).

    A feature with no edges is kept exact (its raw value is its bucket).
    """

    name: str
    edges: dict[str, tuple[float, ...]]

    def __post_init__(self) -> None:
        """Check feature names and that every edge list is strictly ascending."""
        unknown = sorted(set(self.edges) - set(FEATURES))
        if unknown:
            raise ValueError(f"bucket scheme {self.name!r}: unknown features {unknown}; "
                             f"expected some of {FEATURES}")
        for feature, edges in self.edges.items():
            if any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
                raise ValueError(f"bucket scheme {self.name!r}: edges of {feature!r} must be "
                                 f"strictly ascending, got {edges}")

    def buckets(self, values: np.ndarray) -> np.ndarray:
        """Bucket indices [n, 4] of raw feature values [n, 4] (columns in FEATURES order)."""
        out = np.asarray(values, dtype=np.int64).copy()
        for j, feature in enumerate(FEATURES):
            edges = self.edges.get(feature, ())
            if edges:
                out[:, j] = np.digitize(values[:, j], edges, right=False)
        return out


_POW2 = tuple(float(2**k) for k in range(1, 12))
SCHEMES: dict[str, BucketScheme] = {
    "exact": BucketScheme("exact", {}),
    "log2": BucketScheme("log2", {"atoms": _POW2, "pairs": _POW2, "out_len": _POW2}),
    "coarse": BucketScheme(
        "coarse",
        {"atoms": (4, 8, 16), "pairs": (2, 4, 8, 16), "depth": (1, 2, 3), "out_len": (16, 32, 64)},
    ),
}
DEFAULT_SCHEME = "log2"


def register_scheme(scheme: BucketScheme) -> None:
    """Make `scheme` available by its name (replacing one of the same name)."""
    SCHEMES[scheme.name] = scheme


def get_scheme(name: str) -> BucketScheme:
    """The registered scheme called `name`; ValueError naming the registered ones otherwise."""
    if name not in SCHEMES:
        raise ValueError(f"unknown signature scheme {name!r}; registered: {sorted(SCHEMES)}")
    return SCHEMES[name]


def feature_matrix(examples: Sequence[Example]) -> np.ndarray:
    """Raw features [n, 4] int64: atom count, pair count, depth, output length."""
    return np.array(
        [(len(ex.atoms), len(ex.pairs), ex.depth, ex.out_len) for ex in examples], dtype=np.int64
    ).reshape(len(examples), len(FEATURES))


def signature_codes(features: np.ndarray, scheme: str = DEFAULT_SCHEME) -> np.ndarray:
    """One int64 code per example: its bucket tuple packed in mixed radix (equal iff same tuple)."""
    buckets = get_scheme(scheme).buckets(features)
    if buckets.size == 0:
        return np.zeros(0, dtype=np.int64)
    if buckets.min() < 0:
        raise ValueError("signature features must be non-negative")
    radix = buckets.max(axis=0) + 1
    codes = np.zeros(len(buckets), dtype=np.int64)
    for j in range(buckets.shape[1]):
        codes = codes * radix[j] + buckets[:, j]
    return codes


def signature(ex: Example, scheme: str = DEFAULT_SCHEME) -> tuple[int, ...]:
    """The bucket tuple (atoms, pairs, depth, out_len) of one example."""
    return tuple(int(b) for b in get_scheme(scheme).buckets(feature_matrix([ex]))[0])


def count_signatures(examples: Sequence[Example], scheme: str = DEFAULT_SCHEME) -> int:
    """Number of distinct signatures among `examples`."""
    return int(np.unique(signature_codes(feature_matrix(examples), scheme)).size)
