"""Manifests: hashing, validation, atomic save/load, and per-seed order tables."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tasks import manifest as mf
from tasks.manifest import Manifest, ManifestError

REPO = Path(__file__).resolve().parents[1]
POOL = "scan_simple:train"


def _manifest(seed: int = 0, n: int = 500, multiplicity: int = 1) -> Manifest:
    return mf.random_manifest(POOL, 16_728, n, seed, multiplicity)


def test_hash_is_stable_and_content_addressed() -> None:
    first, again = _manifest(), _manifest()
    assert first.hash == again.hash and first == again
    assert len(first.hash) == 64 and int(first.hash, 16) >= 0
    other = _manifest(seed=1)
    assert other.hash != first.hash and other.ids != first.ids
    assert _manifest(multiplicity=2).hash != first.hash


def test_hash_in_fresh_process_equals_in_process() -> None:
    code = (
        "from tasks.manifest import random_manifest;"
        f"print(random_manifest({POOL!r}, 16728, 500, 0, 1).hash)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == _manifest().hash


def test_random_manifest_fields() -> None:
    m = _manifest(seed=3, n=200, multiplicity=3)
    assert m.n_unique == 200 and m.total == 600 and len(set(m.ids)) == 200
    assert list(m.ids) == sorted(m.ids) and 0 <= m.ids[0] and m.ids[-1] < 16_728
    assert m.counts == (3,) * 200
    assert m.stats == {"n_unique": 200, "total": 600, "multiplicity": {"3": 200}}
    assert (m.pool, m.strategy, m.seed) == (POOL, "random", 3)
    assert m.exposure(steps=100, batch_size=64) == pytest.approx(32.0)


def test_stats_histogram_of_mixed_counts() -> None:
    m = Manifest(pool="p", pool_size=10, ids=(0, 2, 3), counts=(2, 1, 3), strategy="s", seed=0)
    assert m.stats == {"n_unique": 3, "total": 6, "multiplicity": {"1": 1, "2": 1, "3": 1}}


def test_n_larger_than_pool_is_a_clear_error() -> None:
    with pytest.raises(ManifestError) as info:
        mf.random_manifest(POOL, 16_728, 20_000, 0)
    message = str(info.value)
    assert POOL in message and "16728" in message and "20000" in message


@pytest.mark.parametrize(
    ("n", "multiplicity", "match"), [(0, 1, "n_unique must be >= 1"), (5, 0, "multiplicity")]
)
def test_impossible_designs(n: int, multiplicity: int, match: str) -> None:
    with pytest.raises(ManifestError, match=match):
        mf.random_manifest(POOL, 100, n, 0, multiplicity)


@pytest.mark.parametrize(
    ("ids", "counts", "match"),
    [
        ((3, 1), (1, 1), "sorted and unique"),
        ((1, 1), (1, 1), "sorted and unique"),
        ((1, 10), (1, 1), r"\[0, 10\)"),
        ((-1, 2), (1, 1), r"\[0, 10\)"),
        ((1, 2), (1,), "2 ids but 1 counts"),
        ((1, 2), (1, 0), ">= 1"),
        ((), (), "no ids"),
    ],
)
def test_inconsistent_manifests(ids: tuple, counts: tuple, match: str) -> None:
    with pytest.raises(ManifestError, match=match):
        Manifest(pool="p", pool_size=10, ids=ids, counts=counts, strategy="s", seed=0)


def test_save_load_round_trip(tmp_path: Path) -> None:
    m = _manifest(n=50, multiplicity=2)
    path = tmp_path / "m.json"
    mf.save(m, path)
    assert list(tmp_path.iterdir()) == [path]  # atomic: no temp file left behind
    loaded = mf.load(path)
    assert loaded == m and loaded.hash == m.hash
    assert json.loads(path.read_text())["hash"] == m.hash


def test_hand_edited_file_fails_on_load(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    mf.save(_manifest(n=50), path)
    data = json.loads(path.read_text())
    data["counts"][0] = 2
    path.write_text(json.dumps(data))
    with pytest.raises(ManifestError) as info:
        mf.load(path)
    assert str(path) in str(info.value) and "edited by hand or corrupted" in str(info.value)


def test_malformed_json_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text('{\n "pool": "x",\n "ids": [1, 2,\n}\n')
    with pytest.raises(ManifestError, match=f"{path}:4: malformed manifest JSON"):
        mf.load(path)
    path.write_text('{"pool": "x"}')
    with pytest.raises(ManifestError, match=f"{path}: manifest must be an object with keys"):
        mf.load(path)


def test_order_table_rows_are_permutations_of_the_multiset() -> None:
    a = Manifest(
        pool="p", pool_size=50, ids=(1, 4, 7, 9), counts=(2, 1, 3, 1), strategy="s", seed=0
    )
    b = _manifest(seed=5, n=20, multiplicity=2)
    table = mf.order_table([a, a, b], data_seeds=[0, 1, 0], length=100)
    assert table.shape == (3, 100) and table.dtype == np.int32
    for row, m in zip(table, [a, a, b], strict=True):
        multiset = Counter(dict(zip(m.ids, m.counts, strict=True)))
        for start in range(0, 100 - m.total + 1, m.total):  # every full pass
            assert Counter(row[start : start + m.total].tolist()) == multiset
    assert not np.array_equal(table[0], table[1])  # different data seeds, different orders
    again = mf.order_table([a, a, b], data_seeds=[0, 1, 0], length=100)
    np.testing.assert_array_equal(table, again)


def test_order_table_rejects_mismatched_inputs() -> None:
    with pytest.raises(ManifestError, match="one manifest per data seed"):
        mf.order_table([_manifest()], data_seeds=[0, 1], length=10)
    with pytest.raises(ManifestError, match="length must be >= 1"):
        mf.order_table([_manifest()], data_seeds=[0], length=0)
