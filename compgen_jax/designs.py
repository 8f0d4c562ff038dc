"""Experiment designs expanded to cells (factorial over manifest factors, with budget accounting).

A factor maps level labels to overrides, or lists plain values of one override key. Override keys
are ManifestSpec fields plus: `budget` (examples per pass: multiplicity = budget / N), `exposure`
(passes per unique example: train steps = ceil(N x E / batch)), `train_steps` and `num_seeds`.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import gin
import numpy as np

from compgen_jax.configs import CellConfig, TrainConfig
from tasks import manifest as manifest_lib
from tasks.selection import ManifestSpec, PoolIndex, cell_manifests

SPEC_KEYS = tuple(f.name for f in dataclasses.fields(ManifestSpec))
CELL_KEYS = ("budget", "exposure", "train_steps", "num_seeds")


@dataclasses.dataclass(frozen=True)
class DesignCell:
    """One design point: its factor levels, the cell (task + ManifestSpec) and how it trains
    (its TrainConfig: seeds, steps and batch included)."""

    name: str
    factors: dict[str, str]
    cell: CellConfig
    train: TrainConfig

    @property
    def exposure(self) -> float:
        """Passes per unique example: total_steps x batch_size / N."""
        return self.train.total_steps * self.train.batch_size / self.cell.manifest.n_unique


def _levels(factor: str, spec: Any) -> list[tuple[str, dict[str, Any]]]:
    """(label, overrides) per level of one factor."""
    if isinstance(spec, Mapping):
        levels = [(str(label), over) for label, over in spec.items()]
        bad = [label for label, over in levels if not isinstance(over, Mapping)]
        if bad:
            raise ValueError(f"factorial_cells.factors[{factor!r}]: levels {bad} must map to "
                             "dicts of overrides")
    elif isinstance(spec, Sequence) and not isinstance(spec, str):
        levels = [(str(value), {factor: value}) for value in spec]
    else:
        raise ValueError(f"factorial_cells.factors[{factor!r}] must be a dict of levels or a "
                         f"list of values, got {spec!r}")
    if not levels:
        raise ValueError(f"factorial_cells.factors[{factor!r}] has no levels")
    for label, over in levels:
        unknown = sorted(set(over) - set(SPEC_KEYS) - set(CELL_KEYS))
        if unknown:
            raise ValueError(f"factorial_cells.factors[{factor!r}][{label!r}]: unknown keys "
                             f"{unknown}; expected ManifestSpec fields or {CELL_KEYS}")
    return levels


def _cell(
    name: str, factors: dict[str, str], base: CellConfig, train: TrainConfig,
    over: dict[str, Any], defaults: dict[str, Any],
) -> DesignCell:
    """Apply merged overrides to the base cell and derive multiplicity and train steps."""
    settings = {**defaults, **{k: v for k, v in over.items() if k in CELL_KEYS}}
    spec = dataclasses.replace(base.manifest, **{k: v for k, v in over.items() if k in SPEC_KEYS})
    n = spec.n_unique
    if n < 1:
        raise ValueError(f"cell {name}: ManifestSpec.n_unique={n} must be >= 1")
    if settings["budget"]:
        if settings["budget"] % n:
            raise ValueError(f"cell {name}: budget={settings['budget']} is not a multiple of "
                             f"N={n} (multiplicity = budget / N must be an integer)")
        spec = dataclasses.replace(spec, multiplicity=settings["budget"] // n)
    steps = settings["train_steps"]
    if settings["exposure"]:
        steps = math.ceil(n * settings["exposure"] / settings["batch_size"])
    if steps < 1 or settings["num_seeds"] < 1:
        raise ValueError(f"cell {name}: train_steps={steps} and num_seeds="
                         f"{settings['num_seeds']} must be >= 1")
    train = dataclasses.replace(train, num_seeds=int(settings["num_seeds"]),
                                total_steps=int(steps), batch_size=int(settings["batch_size"]))
    return DesignCell(name=name, factors=factors, cell=dataclasses.replace(base, manifest=spec),
                      train=train)


@gin.configurable
def factorial_cells(
    name: str = gin.REQUIRED,
    base: CellConfig = gin.REQUIRED,
    factors: Mapping[str, Any] = gin.REQUIRED,
    num_seeds: int | None = None,
    train_steps: int | None = None,
    batch_size: int | None = None,
    budget: int = 0,
    exposure: float = 0.0,
    train_config: TrainConfig | None = None,
) -> list[DesignCell]:
    """Every combination of the factors' levels, in row-major order, named design-f=l-...; each
    cell trains as `train_config` (default: the gin-configured TrainConfig) with its own seeds,
    steps and batch (defaults: the train config's)."""
    if not factors:
        raise ValueError("factorial_cells.factors is empty")
    train_config = train_config or TrainConfig()
    per_factor = [[(factor, label, over) for label, over in _levels(factor, spec)]
                  for factor, spec in factors.items()]
    defaults = {"budget": budget, "exposure": exposure,
                "train_steps": train_config.total_steps if train_steps is None else train_steps,
                "num_seeds": train_config.num_seeds if num_seeds is None else num_seeds,
                "batch_size": train_config.batch_size if batch_size is None else batch_size}
    cells = []
    for combo in itertools.product(*per_factor):
        labels = {factor: label for factor, label, _ in combo}
        over: dict[str, Any] = {}
        for _, _, level in combo:
            over.update(level)
        cell_name = "-".join([name, *(f"{f}={lab}" for f, lab in labels.items())])
        cells.append(_cell(cell_name, labels, base, train_config, over, defaults))
    return cells


@gin.configurable
def design(cells: Sequence[DesignCell] = gin.REQUIRED) -> list[DesignCell]:
    """The cells of the configured design; cell names must be unique (they name directories)."""
    names = [c.name for c in cells]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"design.cells: duplicate cell names {duplicates}")
    return list(cells)


def configured_design() -> list[DesignCell]:
    """The cells of the design the parsed gin files bind; a single-cell config is a ValueError."""
    try:
        gin.query_parameter("design.cells")
    except ValueError:
        raise ValueError("the gin files bind no design (design.cells): this is a single-cell "
                         "config; `compgen-jax train` trains and writes the manifests of one "
                         "cell") from None
    return design()


def build_manifests(
    cells: Sequence[DesignCell],
    index_for: Callable[[str, str], PoolIndex],
    out_dir: Path | None = None,
    first_seed: int = 0,
) -> list[tuple[DesignCell, list[manifest_lib.Manifest]]]:
    """Per-seed manifests of every cell; written to out_dir/<cell>/manifests/seed_<s>.json."""
    out = []
    for cell in cells:
        index = index_for(cell.cell.task, cell.cell.train_split)
        try:
            manifests = cell_manifests(cell.cell.manifest, index, cell.train.num_seeds)
        except manifest_lib.ManifestError as err:
            raise manifest_lib.ManifestError(f"cell {cell.name}: {err}") from None
        out.append((cell, manifests))
    if out_dir is not None:  # write only once every cell has been built
        for cell, manifests in out:
            for k, m in enumerate(manifests):
                path = out_dir / cell.name / "manifests" / f"seed_{first_seed + k}.json"
                manifest_lib.save(m, path)
    return out


def summary_rows(
    built: Sequence[tuple[DesignCell, list[manifest_lib.Manifest]]],
) -> list[dict[str, Any]]:
    """One row per cell: budget accounting and seed-averaged measured statistics."""
    rows = []
    for cell, manifests in built:
        spec = cell.cell.manifest
        stats = [m.stats for m in manifests]
        row: dict[str, Any] = {
            "cell": cell.name, "seeds": cell.train.num_seeds,
            "distinct": len({m.hash for m in manifests}),
            "strategy": spec.strategy, "N": spec.n_unique, "mult": spec.multiplicity,
            "pass": manifests[0].total, "steps": cell.train.total_steps, "E": cell.exposure,
            "split": spec.coverage_split or next(iter(stats[0]["coverage"])),
        }
        for name in stats[0]["coverage"]:
            row[f"cov[{name}]"] = float(np.mean([s["coverage"][name] for s in stats]))
        for key in ("mean_depth", "mean_out_len", "typicality_distance", "signatures"):
            row[key] = float(np.mean([s[key] for s in stats]))
        row["hash"] = manifests[0].hash[:10]
        rows.append(row)
    return rows


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A plain-text table of summary rows (floats to 4 significant digits)."""
    if not rows:
        return "(no cells)"
    columns = list(rows[0])
    cells = [[f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c]) for c in columns]
             for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)
