"""The one manifest file format: its fields, canonical JSON, content hash, text and checked reader.

A manifest records which pool examples a seed trains on and how often; its `hash` is the sha256
of the canonical JSON of every other field. The tasks layer builds and saves manifests through
this module and analysis reads them through it; the standard library only.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from analysis.storage import as_path

FIELDS = ("pool", "pool_size", "ids", "counts", "strategy", "seed", "targets", "stats", "hash")


def canonical_json(obj: Any) -> str:
    """Deterministic JSON (sorted keys, no spaces, no NaN) used for hashing."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )


def content_hash(fields: dict[str, Any]) -> str:
    """sha256 hex of the canonical JSON of every field except `hash`."""
    body = {k: v for k, v in fields.items() if k != "hash"}
    return hashlib.sha256(canonical_json(body).encode("ascii")).hexdigest()


def manifest_text(fields: dict[str, Any]) -> str:
    """The file text of a manifest's fields: a JSON object, one field per line, keys sorted."""
    lines = [f" {json.dumps(k)}: {json.dumps(fields[k], sort_keys=True)}" for k in sorted(fields)]
    return "{\n" + ",\n".join(lines) + "\n}\n"


def read_manifest_json(path: str | os.PathLike[str],
                       error: type[ValueError] = ValueError) -> dict[str, Any]:
    """A manifest file's fields, checked: JSON without NaN, exactly FIELDS, and a stored hash
    equal to the content hash; `error` (naming the file, and the line for bad JSON) otherwise."""

    def reject(constant: str) -> None:
        raise error(f"{path}: non-finite number {constant} in manifest JSON")

    try:
        with as_path(path).open(encoding="utf-8") as f:
            data = json.loads(f.read(), parse_constant=reject)
    except json.JSONDecodeError as err:
        raise error(f"{path}:{err.lineno}: malformed manifest JSON: {err.msg}") from None
    if not isinstance(data, dict) or set(data) != set(FIELDS):
        keys = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise error(f"{path}: manifest must be an object with keys {FIELDS}; got {keys}")
    digest = content_hash(data)
    if data["hash"] != digest:
        raise error(f"{path}: stored hash {data['hash']!r} does not match the content hash "
                    f"{digest}; the file was edited by hand or corrupted")
    return data
