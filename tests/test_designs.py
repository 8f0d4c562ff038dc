"""Design expansion: factorial cells, budget / exposure accounting, every experiment gin file."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from compgen_jax import designs, train  # noqa: F401  (registers the configurables)
from compgen_jax.configs import CellConfig
from compgen_jax.gin_utils import GIN_CONFIGS_DIR, parse_gin
from tasks import manifest as mf
from tasks import selection as sel
from tasks.example import Example
from tasks.selection import ManifestSpec

BASE = CellConfig(task="toy", manifest=ManifestSpec(n_unique=4))
EXPECTED = {  # experiment file -> (cells, seeds of the first cell, N levels)
    "cogs_e1": (4, 3, {200, 4000}),
    "cogs_e2": (4, 3, {200}),
    "cogs_e3": (4, 3, {200}),
    "cogs_e4": (7, 3, {50, 100, 200, 500, 1000, 2000, 4000}),
    "cogs_e5": (24, 5, {100, 250, 500, 1000, 2000, 4000}),
    "cogs_e6": (8, 5, {1000, 2000}),
    "cogs_seed_threshold": (4, 50, {250, 500, 1000, 2000}),
    "replication_scan_length": (12, 5, {100, 300, 1000, 3000, 10000, 16990}),
    "replication_recogs_gen": (12, 5, {100, 300, 1000, 3000, 10000, 20000}),
    "replication_gscan_adverb_1": (8, 5, {1000, 3000, 10000, 30000}),
    "replication_cfq_mcd1": (8, 5, {2000, 5000, 10000, 20000}),
}


def _cells(gin_file: str) -> list[designs.DesignCell]:
    parse_gin([f"experiments/{gin_file}.gin"], ["MODEL_DIR = '/tmp/unused'"])
    return designs.design()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_design_file_expands(name: str) -> None:
    n_cells, seeds, levels = EXPECTED[name]
    cells = _cells(name)
    assert len(cells) == n_cells and cells[0].train.num_seeds == seeds
    assert {c.cell.manifest.n_unique for c in cells} == levels
    cpu = _cells(f"{name}_cpu")
    assert len(cpu) <= len(cells)
    max_seeds = seeds if name == "cogs_seed_threshold" else 10  # its question is the seed count
    assert all(c.train.total_steps <= 1000 and c.train.num_seeds <= max_seeds for c in cpu)


def test_experiment_files_exist_for_every_design() -> None:
    files = {p.stem for p in (GIN_CONFIGS_DIR / "experiments").glob("*.gin")}
    assert set(EXPECTED) | {f"{n}_cpu" for n in EXPECTED} <= files


def test_budget_and_exposure_accounting() -> None:
    e1 = {c.name: c for c in _cells("cogs_e1")}
    low = e1["e1-coverage=low-difficulty=easy"]
    assert low.cell.manifest.multiplicity == 20 and low.cell.manifest.strategy == "random"
    assert e1["e1-coverage=high-difficulty=hard"].cell.manifest.coverage_split == "gen:hard"
    e5 = {c.name: c for c in _cells("cogs_e5")}
    cell = e5["e5-n_unique=1000-exposure=400"]
    assert cell.train.total_steps == 1000 * 400 // 128 and cell.exposure == 400
    e6 = _cells("cogs_e6")
    assert [c.cell.manifest.quantile for c in e6[:4]] == [0.01, 0.25, 0.75, 0.99]


@pytest.mark.parametrize(
    ("factors", "budget", "match"),
    [
        ({"n_unique": (3,)}, 4, "budget=4 is not a multiple of N=3"),
        ({"n_unique": {"a": 3}}, 0, "must map to dicts of overrides"),
        ({"size": {"a": {"width": 3}}}, 0, "unknown keys"),
        ({}, 0, "factors is empty"),
    ],
)
def test_bad_designs(factors: dict, budget: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        designs.factorial_cells(name="d", base=BASE, factors=factors, num_seeds=2,
                                train_steps=10, batch_size=4, budget=budget)


def _toy_index(task: str, split: str) -> sel.PoolIndex:
    pool = [Example("toy", "train", i, "i", "t", frozenset(), frozenset({(str(i % 7), "r")}),
                    i % 3, 2 + i % 5) for i in range(40)]
    gen = [Example("toy", "gen", i, "i", "t", frozenset(), frozenset({(str(i), "r")}), 0, 3)
           for i in range(10)]
    return sel.build_index(f"{task}:{split}", pool, {"gen": gen})


def test_same_design_and_seed_gives_identical_hashes(tmp_path: Path) -> None:
    cells = designs.factorial_cells(
        name="d", base=BASE, num_seeds=3, train_steps=10, batch_size=4, budget=8,
        factors={"strategy": {"greedy": {"strategy": "greedy"}, "random": {},
                              "prescreen": {"strategy": "prescreen", "n_candidates": 50,
                                            "out_len_tolerance": 3.0}},
                 "n_unique": (2, 4)})
    first = designs.build_manifests(cells, functools.cache(_toy_index), tmp_path)
    again = designs.build_manifests(cells, _toy_index)
    assert [[m.hash for m in ms] for _, ms in first] == [[m.hash for m in ms] for _, ms in again]
    files = sorted(tmp_path.rglob("seed_*.json"))
    assert len(files) == 6 * 3
    loaded = mf.load(tmp_path / "d-strategy=greedy-n_unique=4" / "manifests" / "seed_2.json")
    assert loaded == first[1][1][2] and loaded.counts == (2,) * 4
    rows = designs.summary_rows(first)
    assert rows[0]["N"] == 2 and rows[0]["mult"] == 4 and rows[0]["E"] == 20.0
    assert "cov[gen]" in rows[0] and "signatures" in designs.format_table(rows)


def test_a_failing_cell_writes_nothing(tmp_path: Path) -> None:
    cells = designs.factorial_cells(name="d", base=BASE, num_seeds=1, train_steps=10,
                                    batch_size=4, factors={"n_unique": (4, 41)})
    with pytest.raises(mf.ManifestError, match=r"cell d-n_unique=41: .*n_unique=41"):
        designs.build_manifests(cells, _toy_index, tmp_path)
    assert not list(tmp_path.iterdir())
