"""Manifest selection: coverage by hand, greedy, quantile pre-screening, measured stats, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tasks import manifest as mf
from tasks import selection as sel
from tasks.example import Example
from tasks.manifest import Manifest, ManifestError
from tasks.selection import ManifestSpec


def _ex(i: int, pairs: set[tuple[str, str]], depth: int = 0, out_len: int = 4,
        split: str = "train", category: str | None = None) -> Example:
    return Example("toy", split, i, f"in{i}", "t " * out_len, frozenset({"a"}), frozenset(pairs),
                   depth, out_len, category)


POOL = [
    _ex(0, {("a", "x"), ("b", "x")}),
    _ex(1, {("a", "x")}, depth=1, out_len=8),
    _ex(2, {("c", "y"), ("d", "y"), ("e", "y")}, depth=2, out_len=16),
    _ex(3, {("b", "x"), ("z", "z")}),
    _ex(4, set()),
]
EVAL = [
    _ex(0, {("a", "x"), ("c", "y")}, split="gen", category="subj_to_obj_common"),
    _ex(1, {("d", "y"), ("q", "q")}, split="gen", category="cp_recursion"),
    _ex(2, {("b", "x")}, split="gen", category="cp_recursion"),
]


@pytest.fixture(scope="module")
def toy() -> sel.PoolIndex:
    return sel.build_index("toy:train", POOL, sel.eval_sets({"gen": EVAL}, ["gen"]))


def test_eval_sets_add_difficulty_groups(toy: sel.PoolIndex) -> None:
    assert list(toy.eval_sizes) == ["gen", "gen:easy", "gen:hard"]
    assert toy.eval_sizes == {"gen": 5, "gen:easy": 2, "gen:hard": 3}


def test_coverage_of_a_hand_built_manifest(toy: sel.PoolIndex) -> None:
    m = Manifest(pool="toy:train", pool_size=5, ids=(1, 3), counts=(2, 1), strategy="hand",
                 seed=0)
    stats = sel.measure(toy, m)
    # ids 1, 3 hold (a,x), (b,x), (z,z): gen pairs {(a,x),(c,y),(d,y),(q,q),(b,x)} -> 2 of 5
    assert stats["coverage"] == {"gen": 0.4, "gen:easy": 0.5, "gen:hard": pytest.approx(1 / 3,
                                                                                       abs=1e-6)}
    assert stats["mean_depth"] == 0.5 and stats["mean_out_len"] == 6.0
    assert stats["signatures"] == 2
    measured = m.with_stats(stats)
    assert measured.stats["n_unique"] == 2 and measured.stats["coverage"]["gen"] == 0.4
    assert measured.hash != m.hash and measured.ids == m.ids


def test_greedy_on_toy_pool(toy: sel.PoolIndex) -> None:
    assert sel.greedy_coverage_ids(toy, 2, "gen", seed=0).tolist()[0] in (0, 2)
    full = sel.greedy_coverage_manifest(toy, 3, "gen", seed=0)
    assert full.stats["coverage"]["gen"] == 0.8  # (q, q) is not in the pool
    assert full.strategy == "greedy" and full.targets["coverage_split"] == "gen"


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        (ManifestSpec(n_unique=6), r"n_unique=6: must lie in \[1, 5\]"),
        (ManifestSpec(strategy="best"), "strategy='best'"),
        (ManifestSpec(strategy="prescreen", n_unique=2, quantile=1.0), "quantile=1.0"),
        (ManifestSpec(strategy="prescreen", n_unique=2, quantile=0.0), "quantile=0.0"),
        (ManifestSpec(strategy="greedy", n_unique=2, coverage_split="dev"),
         "coverage_split='dev': unknown eval set"),
        (ManifestSpec(strategy="prescreen", n_unique=5, n_candidates=20,
                      out_len_tolerance=1.0), "out_len_tolerance=1.0: only 0 of 20"),
    ],
)
def test_bad_specs_are_one_clear_error(toy: sel.PoolIndex, spec: ManifestSpec, match: str) -> None:
    with pytest.raises(ManifestError, match=match):
        sel.cell_manifests(spec, toy, num_seeds=2)


def test_per_seed_and_shared_manifests(toy: sel.PoolIndex) -> None:
    per_seed = sel.cell_manifests(ManifestSpec(n_unique=2), toy, 3)
    assert [m.seed for m in per_seed] == [0, 1, 2]
    shared = sel.cell_manifests(ManifestSpec(n_unique=2, per_seed=False), toy, 3)
    assert len({m.hash for m in shared}) == 1 and len(shared) == 3
    assert per_seed[0].ids == mf.random_manifest("toy:train", 5, 2, 0).ids


def test_hand_edited_measured_manifest_fails_on_load(toy: sel.PoolIndex, tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    mf.save(sel.cell_manifests(ManifestSpec(n_unique=2), toy, 1)[0], path)
    assert mf.load(path).stats["coverage"]
    data = json.loads(path.read_text())
    data["stats"]["coverage"]["gen"] = 0.99
    path.write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="edited by hand or corrupted"):
        mf.load(path)


# --- the real COGS pool -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cogs_index(shared_data: Path) -> sel.PoolIndex:
    from tasks.benchmarks import cogs

    gen = cogs.load("gen", shared_data)
    return sel.build_index("cogs:train", cogs.load("train", shared_data),
                           sel.eval_sets({"gen": gen}, ["gen"]))


def test_greedy_is_monotone_and_beats_random(cogs_index: sel.PoolIndex) -> None:
    coverages = []
    for n in (50, 200, 1000, 4000):
        greedy = sel.greedy_coverage_manifest(cogs_index, n, "gen:easy", seed=0)
        random = sel.cell_manifests(ManifestSpec(n_unique=n), cogs_index, 1)[0]
        coverages.append(greedy.stats["coverage"]["gen:easy"])
        assert coverages[-1] >= random.stats["coverage"]["gen:easy"]
    assert coverages == sorted(coverages) and coverages[0] < coverages[-1]


def test_e2_e3_logic_greedy_200_vs_random_200(cogs_index: sel.PoolIndex) -> None:
    greedy = sel.greedy_coverage_manifest(cogs_index, 200, "gen:easy", seed=0).stats
    random = sel.cell_manifests(ManifestSpec(n_unique=200), cogs_index, 1)[0].stats
    for name, s in (("greedy-200", greedy), ("random-200", random)):
        print(f"{name}: coverage[gen:easy]={s['coverage']['gen:easy']:.4f} "
              f"typicality_distance={s['typicality_distance']:.3f} mean_depth={s['mean_depth']:.3f}"
              f" mean_out_len={s['mean_out_len']:.2f} signatures={s['signatures']}")
    assert greedy["coverage"]["gen:easy"] > random["coverage"]["gen:easy"]
    assert greedy["typicality_distance"] > random["typicality_distance"]


def test_prescreened_quantiles_differ_in_coverage_not_typicality(
    cogs_index: sel.PoolIndex,
) -> None:
    base = ManifestSpec(strategy="prescreen", n_unique=200, n_candidates=1000,
                        coverage_split="gen:easy")
    low, high = (sel.cell_manifests(ManifestSpec(**{**base.__dict__, "quantile": q}),
                                    cogs_index, 3) for q in (0.025, 0.975))
    ids = sel.random_ids(cogs_index.size, 200, range(1000))
    stats = sel.candidate_stats(cogs_index, ids)
    typical = ((np.abs(stats["mean_depth"] - cogs_index.median_depth) <= base.depth_tolerance)
               & (np.abs(stats["mean_out_len"] - cogs_index.median_out_len)
                  <= base.out_len_tolerance))
    q_low, q_high = np.quantile(stats["coverage:gen:easy"][typical], [0.025, 0.975])
    cov = {name: np.mean([m.stats["coverage"]["gen:easy"] for m in ms])
           for name, ms in (("low", low), ("high", high))}
    print(f"pre-screen N=200: low {cov['low']:.4f} high {cov['high']:.4f} "
          f"target gap {q_high - q_low:.4f}")
    assert cov["high"] - cov["low"] == pytest.approx(q_high - q_low, abs=0.002)
    for m in [*low, *high]:
        assert abs(m.stats["mean_depth"] - cogs_index.median_depth) <= base.depth_tolerance
        assert abs(m.stats["mean_out_len"] - cogs_index.median_out_len) <= base.out_len_tolerance
        assert m.strategy == "prescreen" and m.ids == mf.random_manifest(
            "cogs:train", cogs_index.size, 200, m.seed).ids
    again = sel.cell_manifests(ManifestSpec(**{**base.__dict__, "quantile": 0.975}), cogs_index, 3)
    assert [m.hash for m in again] == [m.hash for m in high]
