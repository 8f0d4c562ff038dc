"""The paper's programme as one job: parts (a sweep design each) run into one root, then one report.

A programme gin file binds `programme.parts` (one `Part` per experiment: its design files, scale
bindings, which analysis reads it and on which split) and `programme.root`. Every part's design is
expanded and validated before any cell trains; each part is an ordinary resumable sweep under
<root>/<part>, so a rerun trains nothing that finished and rewrites the same report.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

import gin
from tqdm.auto import tqdm

from analysis.storage import as_path
from compgen_jax import runner, sweep
from compgen_jax.gin_utils import parse_gin

ANALYSES = ("dose_response", "decomposition", "factorial", "equivalence", "replication")


@gin.configurable
@dataclasses.dataclass(frozen=True)
class Part:
    """One experiment of the programme: a sweep design plus the analysis that reads it."""

    name: str = gin.REQUIRED
    gin_files: tuple[str, ...] = gin.REQUIRED
    analysis: str = gin.REQUIRED
    split: str = gin.REQUIRED
    bindings: tuple[str, ...] = ()
    smoke_test: bool = False  # results are shown but no finding is read from them

    def __post_init__(self) -> None:
        if self.analysis not in ANALYSES:
            raise ValueError(f"Part {self.name!r}: analysis {self.analysis!r} is not one of "
                             f"{ANALYSES}")


@dataclasses.dataclass(frozen=True)
class Programme:
    """The parts, where they run, settings every part shares and the decomposition chain."""

    root: str
    parts: tuple[Part, ...]
    bindings: tuple[str, ...]
    decomposition: tuple[str, ...]
    not_run: tuple[tuple[str, str], ...] = ()  # (part, why this scale does not run it)


@gin.configurable
def programme(
    root: str = gin.REQUIRED,
    parts: Sequence[Part] = gin.REQUIRED,
    bindings: Sequence[str] = (),
    decomposition: Sequence[str] = (),
    not_run: Mapping[str, str] | None = None,
) -> Programme:
    """The configured programme; names are checked (unique parts, a chain of known parts).

    `not_run` names the parts of the full programme a scaled-down one leaves out, with why (the
    report lists them): a part that cannot leave the floor at that scale is said so, not run."""
    names = [p.name for p in parts]
    if len(set(names)) != len(names):
        raise ValueError(f"programme.parts: part names repeat: {names}")
    unknown = [n for n in decomposition if n not in names]
    if unknown or len(decomposition) == 1:
        raise ValueError(f"programme.decomposition = {tuple(decomposition)}: needs >= 2 of the "
                         f"parts {names}")
    skipped = dict(not_run or {})
    both = sorted(set(skipped) & set(names))
    if both or not all(isinstance(why, str) and why.strip() for why in skipped.values()):
        raise ValueError(f"programme.not_run = {skipped}: each entry needs a reason, and a part "
                         f"cannot be both run and not run ({both})")
    return Programme(root=str(root), parts=tuple(parts), bindings=tuple(bindings),
                     decomposition=tuple(decomposition), not_run=tuple(skipped.items()))


def load(gin_files: Sequence[str], bindings: Sequence[str],
         search_paths: Sequence[str] = ()) -> Programme:
    """Parse a programme gin file (e.g. programme/cpu.gin) into a Programme."""
    from compgen_jax import train, validation  # noqa: F401  (registers configurables)

    parse_gin(gin_files, bindings, search_paths)
    return programme()


def expand(prog: Programme, search_paths: Sequence[str] = ()) -> list[tuple[Part, sweep.Sweep]]:
    """Every part's sweep, validated (lengths, steps, pool, memory) before anything runs."""
    specs = []
    for part in prog.parts:
        model_dir = str(as_path(prog.root) / part.name)
        spec = sweep.expand(part.gin_files,
                            [*prog.bindings, *part.bindings, f"MODEL_DIR = {model_dir!r}"],
                            search_paths)
        sweep.check_root(spec)
        specs.append((part, spec))
    return specs


def run_local(specs: Sequence[tuple[Part, sweep.Sweep]], parallel: int = 1,
              in_process: bool = False) -> int:
    """Run every part's unfinished cells (an overall bar over all cells) and collect each part;
    returns how many cells trained."""
    total = sum(len(spec.cells) for _, spec in specs)
    done = sum(sweep.is_finished(spec, c) for _, spec in specs for c in spec.cells)
    ran = 0
    with tqdm(total=total, initial=done, unit="cell", desc="programme", position=1,
              dynamic_ncols=True) as bar:
        for part, spec in specs:
            bar.set_postfix_str(f"part {part.name}")
            before = sum(sweep.is_finished(spec, c) for c in spec.cells)
            ran += len(runner.launch_local(spec, parallel=parallel, in_process=in_process))
            bar.update(len(spec.cells) - before)
            sweep.collect(as_path(spec.root))
    return ran


def part_records(specs: Sequence[tuple[Part, sweep.Sweep]]) -> list[dict[str, Any]]:
    """What the report needs of each part (plain data: analysis imports no ML framework)."""
    records = []
    for part, spec in specs:
        markers = [json.loads((spec.cell_dir(c) / sweep.CELL_FILE).read_text())
                   for c in spec.cells]
        walls = [m.get("wall_s") for m in markers]
        records.append({
            "name": part.name, "analysis": part.analysis, "split": part.split,
            "smoke_test": part.smoke_test,
            "results": str(as_path(spec.root) / sweep.COLLECTED_FILE),
            "gin_files": list(part.gin_files), "bindings": list(part.bindings),
            "cells": len(spec.cells),
            "trainings": len({c.name for c in runner.trained_as(spec).values()}),
            "wall_s": None if None in walls else round(sum(walls), 1),
        })
    return records
