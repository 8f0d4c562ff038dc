"""Sweeps: a gin design expanded to cells with their identities, their finished markers, status
and the collected table (compgen_jax.runner runs the cells).

A sweep root (the design's MODEL_DIR) holds `sweep.json` (the design's cells and their identities)
and one directory per cell. A cell is finished once its `cell.json` marker exists; the marker is
written (atomically) only after the cell's process has written results.csv, predictions/ and
config.gin, so a killed sweep leaves finished cells intact and a relaunch runs only the rest.
Cell identity = sha256 of the cell's full gin config (MODEL_DIR excepted) + its manifest hashes.
Training identity = the same without the cell's label and selection settings: cells whose training
is identical (same manifests, model and run, e.g. random selection under two coverage splits)
are trained once, and the others receive its results under their own names.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gin
import pandas as pd

from analysis.atomic import write_text
from analysis.results import (
    CELL_FILE,
    RESULTS_SHA256,
    SWEEP_FILE,
    file_sha256,
    manifest_problems,
    read_results,
)
from analysis.results import SWEEP_RESULTS as COLLECTED_FILE
from analysis.schema import RESULT_COLUMNS
from analysis.storage import as_path
from compgen_jax import designs
from compgen_jax.gin_utils import configured_model_dir, parse_gin

_PLACEHOLDER_DIR = "<sweep-cell>"


@dataclasses.dataclass(frozen=True)
class SweepCell:
    """One cell of a sweep: its gin bindings for a train process and its identity."""

    name: str
    factors: dict[str, str]
    bindings: tuple[str, ...]
    manifest_hashes: tuple[str, ...]
    cell_id: str
    train_id: str = ""
    series: str = ""  # a series' cells run in design order; a skipped one skips the rest


@dataclasses.dataclass(frozen=True)
class Sweep:
    """A design's cells under one sweep root, with the gin flags that define them."""

    root: str
    gin_files: tuple[str, ...]
    gin_bindings: tuple[str, ...]
    search_paths: tuple[str, ...]
    cells: tuple[SweepCell, ...]
    checks: tuple[dict[str, Any], ...] = ()  # validation: one row per cell (lengths, memory)

    @property
    def design_hash(self) -> str:
        """sha256 over the cells' names and identities (a root belongs to one design)."""
        return _sha256([(c.name, c.cell_id) for c in self.cells])

    def cell_dir(self, cell: SweepCell) -> Path:
        return as_path(self.root) / cell.name

    def train_args(self, cell: SweepCell, model_dir: str, *extra: str) -> list[str]:
        """`compgen-jax train` arguments that train this cell into model_dir."""
        return [*(f"--gin_search_paths={p}" for p in self.search_paths),
                *(f"--gin_file={f}" for f in self.gin_files),
                *(f"--gin_bindings={b}" for b in (*self.gin_bindings, *cell.bindings)),
                f"--gin_bindings=MODEL_DIR = {model_dir!r}", *extra]


def _sha256(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def cell_bindings(cell: designs.DesignCell) -> tuple[str, ...]:
    """The gin bindings that make a `compgen-jax train` process train this design cell."""
    spec = cell.cell.manifest
    return (
        f"CellConfig.task = {cell.cell.task!r}",
        f"CellConfig.train_split = {cell.cell.train_split!r}",
        f"CellConfig.label = {cell.name!r}",
        *(f"ManifestSpec.{f.name} = {getattr(spec, f.name)!r}"
          for f in dataclasses.fields(spec)),
        f"TrainConfig.num_seeds = {cell.train.num_seeds}",
        f"TrainConfig.total_steps = {cell.train.total_steps}",
        f"TrainConfig.batch_size = {cell.train.batch_size}",
    )


def _index_builder() -> Callable[[str, str], Any]:
    """A cached (task, split) -> PoolIndex against the configured eval splits."""
    from compgen_jax.configs import TrainConfig
    from compgen_jax.task_data import pool_index

    eval_splits = TrainConfig().eval_splits

    @functools.cache
    def index_for(task: str, split: str) -> Any:
        return pool_index(task, split, eval_splits)

    return index_for


def expand(
    gin_files: Sequence[str], gin_bindings: Sequence[str] = (), search_paths: Sequence[str] = ()
) -> Sweep:
    """Parse the experiment file, validate its design (validation.validate_design: nothing runs
    or is written when a cell cannot), expand it to cells and hash each cell's identities."""
    from compgen_jax import train, validation  # noqa: F401  (registers configurables)

    parse_gin(gin_files, gin_bindings, search_paths)
    root = str(configured_model_dir("MODEL_DIR (the sweep root)"))
    design_cells = designs.configured_design()
    checks = validation.validate_configured_design(design_cells)
    built = designs.build_manifests(design_cells, _index_builder())
    cells = []
    for design_cell, manifests in built:
        bindings = cell_bindings(design_cell)
        hashes = tuple(m.hash for m in manifests)
        training = [b for b in bindings if not b.startswith(("CellConfig.label", "ManifestSpec."))]
        cells.append(SweepCell(
            name=design_cell.name, factors=dict(design_cell.factors), bindings=bindings,
            manifest_hashes=hashes,
            cell_id=config_id(gin_files, [*gin_bindings, *bindings], search_paths, hashes),
            train_id=config_id(gin_files, [*gin_bindings, *training], search_paths, hashes)))
    return Sweep(root=root, gin_files=tuple(gin_files), gin_bindings=tuple(gin_bindings),
                 search_paths=tuple(search_paths), cells=tuple(cells), checks=tuple(checks))


def config_id(gin_files: Sequence[str], bindings: Sequence[str], search_paths: Sequence[str],
              manifest_hashes: Sequence[str] = ()) -> str:
    """A cell's identity: sha256 of its full gin config (MODEL_DIR excepted) + its manifests."""
    parse_gin(gin_files, [*bindings, f"MODEL_DIR = {_PLACEHOLDER_DIR!r}"], search_paths)
    return _sha256([gin.config_str(), list(manifest_hashes)])


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: unreadable sweep metadata ({err})") from None


def check_root(sweep: Sweep) -> None:
    """Refuse a sweep root written for another design or holding cells of another config."""
    root = as_path(sweep.root)
    if (root / SWEEP_FILE).exists():
        recorded = _read_json(root / SWEEP_FILE)
        if recorded.get("design_hash") != sweep.design_hash:
            raise ValueError(
                f"sweep root {root} belongs to a different design (design hash "
                f"{str(recorded.get('design_hash'))[:12]} != {sweep.design_hash[:12]} of this "
                "config); use a fresh MODEL_DIR. Nothing was overwritten.")
    for cell in sweep.cells:
        marker = sweep.cell_dir(cell) / CELL_FILE
        if marker.exists() and _read_json(marker).get("cell_id") != cell.cell_id:
            raise ValueError(f"{marker}: cell {cell.name} was trained with another config "
                             "(cell id mismatch); use a fresh MODEL_DIR. Nothing was overwritten.")


def is_finished(sweep: Sweep, cell: SweepCell) -> bool:
    return (sweep.cell_dir(cell) / CELL_FILE).exists()


def write_sweep_file(sweep: Sweep) -> None:
    write_text(as_path(sweep.root) / SWEEP_FILE, json.dumps({
        "design_hash": sweep.design_hash, "gin_files": sweep.gin_files,
        "gin_bindings": sweep.gin_bindings,
        "cells": [dataclasses.asdict(c) for c in sweep.cells]}, indent=1))


def mark_finished(sweep: Sweep, cell: SweepCell, wall_s: float) -> None:
    """Check the cell's results against the schema and its design, then write cell.json (with
    the training's wall time: 0 for a cell that received another cell's training)."""
    record = dataclasses.asdict(cell)
    cell_results(sweep.cell_dir(cell), record)
    record["wall_s"] = round(wall_s, 1)
    write_text(sweep.cell_dir(cell) / CELL_FILE, json.dumps(record, indent=1))


def _bound(cell: dict[str, Any], name: str) -> Any:
    """The value a cell's gin bindings (cell_bindings) give `name`."""
    for binding in cell["bindings"]:
        key, _, value = binding.partition(" = ")
        if key == name:
            return ast.literal_eval(value)
    raise ValueError(f"cell {cell['name']}: no {name} binding in the sweep record")


def cell_results(cell_dir: Path, cell: dict[str, Any]) -> pd.DataFrame:
    """A cell's results.csv, checked before anything trusts it; ValueError naming the file.

    Checks the results schema (analysis.results: the columns, their types, fractions in [0, 1],
    one row per key, plus every column of analysis.schema.RESULT_COLUMNS present), a score
    (exact_match) on every row of a seed that did not diverge, and the cell's design: only this
    cell's name, every manifests/seed_<k>.json the one its seed's rows name
    (analysis.results.manifest_problems), the design's manifests and seed count, the same
    (split, eval step) rows for every seed (missing rows named), no eval step beyond the cell's
    train steps. A cell without design manifests (a coverage cell: every seed trains on its
    dataset's whole train.json, for whole epochs) must name one training set for all seeds.
    """
    path = cell_dir / "results.csv"
    checked = read_results(path)  # raises ValueError naming the file, line and column
    table = pd.read_csv(path)
    missing = [c for c in RESULT_COLUMNS if c not in table]
    problems = [f"missing columns {missing}"] if missing else []
    if set(checked["cell"]) != {cell["name"]}:
        problems.append(f"rows of cells {sorted(set(checked['cell']))}, expected only "
                        f"{cell['name']} (mixed cells)")
    unscored = checked["exact_match"].isna() & ~checked["diverged"]
    if unscored.any():
        problems.append(
            f"exact_match is NaN on {int(unscored.sum())} row(s) of seeds "
            f"{sorted(set(checked.loc[unscored, 'seed']))} that did not diverge (first at line "
            f"{int(unscored.to_numpy().argmax()) + 2})")
    design = list(cell["manifest_hashes"])  # seed k's manifest is the design's k-th
    per_seed = checked.groupby("seed")["manifest_hash"].first()
    if not design:  # a coverage cell: every seed trains on its dataset's whole train.json
        if per_seed.nunique() > 1:
            problems.append(f"seeds name {per_seed.nunique()} training sets, expected one")
    else:
        problems += manifest_problems(checked, cell_dir)
        foreign = sorted(set(per_seed) - set(design))
        if foreign:
            problems.append(f"manifest hashes {[h[:12] for h in foreign]} are not the design's")
        elif len(per_seed) == len(design) and list(per_seed) != design:
            problems.append("manifest hashes differ from the design's (another seed order)")
        if len(per_seed) != len(design):
            problems.append(f"{len(per_seed)} seeds, the design has {len(design)}")
    evals = checked.groupby(["split", "step"]).size().index
    present = set(zip(checked["seed"], checked["split"], checked["step"], strict=True))
    absent = [(seed, split, step) for seed in sorted(set(checked["seed"]))
              for split, step in evals if (seed, split, step) not in present]
    if absent:
        shown = ", ".join(f"seed {s} at {sp!r} step {st}" for s, sp, st in absent[:5])
        problems.append(f"{len(absent)} row(s) missing ({shown}"
                        f"{', ...' if len(absent) > 5 else ''})")
    steps = _bound(cell, "TrainConfig.total_steps") if design else None  # coverage: whole epochs
    if (checked["step"] < 1).any() or (steps is not None and (checked["step"] > steps).any()):
        problems.append(f"eval steps {sorted(set(checked['step']))} outside 1..{steps}")
    if problems:
        raise ValueError(f"{path}: {'; '.join(problems)}")
    return table


def status_rows(root: Path) -> list[dict[str, Any]]:
    """One row per cell of the sweep under root: finished (results pass cell_results),
    bad results (marked finished but its results.csv fails the check; why in `problem`),
    partial (started) or pending."""
    recorded = _read_json(_sweep_file(root))
    rows = []
    for cell in recorded["cells"]:
        cell_dir = root / cell["name"]
        state, problem = "pending", ""
        if (cell_dir / CELL_FILE).exists():
            try:
                cell_results(cell_dir, cell)
                state = "finished"
            except ValueError as err:
                state, problem = "bad results", str(err)
        elif cell_dir.exists():
            state = "partial"
        rows.append({"cell": cell["name"], "state": state, **cell["factors"], "problem": problem})
    return rows


def _sweep_file(root: Path) -> Path:
    path = root / SWEEP_FILE
    if not path.exists():
        raise ValueError(f"{root}: not a sweep root (no {SWEEP_FILE}; run `sweep launch` first)")
    return path


def collect(root: Path, allow_missing: bool = False) -> pd.DataFrame:
    """Merge the finished cells' results into one tidy table (factor_<name> columns added).

    Refuses cells of another design (mixed), a cell found in two directories or rows repeated
    across cells (duplicated), cells whose results fail `cell_results` (all named), and missing
    cells unless allow_missing. Writes sweep_results.csv only when every check passes, with each
    cell's results.csv sha256 (RESULTS_SHA256), so readers can tell a table gone stale.
    """
    recorded = _read_json(_sweep_file(root))
    expected = {c["cell_id"]: c for c in recorded["cells"]}
    seen: dict[str, Path] = {}
    tables, bad = [], []
    for marker in sorted(root.glob(f"*/{CELL_FILE}")):
        cell = _read_json(marker)
        cell_dir = marker.parent
        if cell.get("cell_id") not in expected:
            raise ValueError(f"{cell_dir}: cell {cell.get('name')} does not belong to the design "
                             f"of {root} (mixed cells); move it out of the sweep root")
        if cell["cell_id"] in seen:
            raise ValueError(f"cell {cell['name']} is duplicated: {seen[cell['cell_id']]} and "
                             f"{cell_dir} hold the same cell; remove one")
        if cell_dir.name != cell["name"]:
            raise ValueError(f"{cell_dir}: holds cell {cell['name']} under another directory "
                             "name (duplicated or moved cell); remove or rename it")
        seen[cell["cell_id"]] = cell_dir
        try:
            table = cell_results(cell_dir, expected[cell["cell_id"]])
        except ValueError as err:
            bad.append(f"{cell['name']} ({err})")
            continue
        for factor, level in cell["factors"].items():
            table[f"factor_{factor}"] = level
        table["cell_id"] = cell["cell_id"]
        table[RESULTS_SHA256] = file_sha256(cell_dir / "results.csv")  # read_results checks it
        tables.append(table)
    if bad:
        raise ValueError(f"{len(bad)} cells of {root} have bad results, nothing collected: "
                         f"{'; '.join(bad)} (retrain them: delete the cell directory and "
                         "relaunch)")
    missing = sorted(c["name"] for i, c in expected.items() if i not in seen)
    if missing and not allow_missing:
        raise ValueError(f"{len(missing)} cells of {root} are not finished: {missing} "
                         "(relaunch the sweep, or pass --allow_missing)")
    if not tables:
        raise ValueError(f"{root}: no finished cells to collect")
    merged = pd.concat(tables, ignore_index=True)
    repeated = merged.duplicated(["cell", "seed", "step", "split"], keep=False)
    if repeated.any():
        raise ValueError(f"duplicated result rows for cells "
                         f"{sorted(merged.loc[repeated, 'cell'].unique())}")
    merged = merged.sort_values(["cell", "split", "step", "seed"]).reset_index(drop=True)
    write_text(root / COLLECTED_FILE, merged.to_csv(index=False))
    return merged
