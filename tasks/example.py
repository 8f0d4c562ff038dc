"""The common loader record every benchmark adapter produces (BENCHMARKS.md section 7)."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class Example:
    """One benchmark example with its adapter measures (atoms, pairs, depth, output length)."""

    benchmark: str
    split: str
    id: int
    input: str
    target: str
    atoms: frozenset[str]
    pairs: frozenset[tuple[str, str]]
    depth: int
    out_len: int
    category: str | None = None
    meta: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False, hash=False)
