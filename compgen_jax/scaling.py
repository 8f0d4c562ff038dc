"""The data-requirement design (`compgen-jax coverage scaling`): one coverage cell per (|X|, N),
run by the one runner, and N_required per |X|.

For each |X| the cells train sizes round(f * |X|^2) in ascending order, as one series: the series
ends (the runner skips its remaining cells) once a finished size's share of seeds stopped by
type_0 reaches `success_fraction`, or a size's dataset cannot be generated, or its test set holds
fewer than `min_type0_items` type_0 items. A cell generates its dataset only when it is reached.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import gin
import numpy as np
import pandas as pd

from analysis.atomic import write_text
from analysis.coverage_dataset import read_items
from compgen_jax import runner
from compgen_jax.gin_utils import configured_model_dir, parse_gin
from compgen_jax.sweep import Sweep, SweepCell, config_id, is_finished
from tasks.benchmarks import coverage


@gin.configurable
@dataclasses.dataclass(frozen=True)
class ScalingSweep:
    """Data-requirement design: for each |X|, train sizes round(f * |X|^2) in ascending order,
    datasets generated under `data_root`.

    A size whose test set holds fewer than `min_type0_items` type_0 items ends that |X|: near
    the ~0.49 |X|^3 all-seen chains training exhausts them, and 0.99 of a handful is not a
    measurement (at |X| = 8, 256 training chains leave 2).
    """

    data_root: str = ""
    task: str = "twohop"
    num_tokens: tuple[int, ...] = (30, 50)
    size_factors: tuple[float, ...] = (2.0, 4.0, 6.0, 8.0, 12.0, 16.0)
    success_fraction: float = 0.5
    data_seed: int = 42
    min_type0_items: int = 100

    def dataset_dir(self, num_tokens: int, n_train: int) -> Path:
        """Where the dataset of one (|X|, N) cell lives."""
        name = coverage.dataset_name(self.task, num_tokens, n_train, False, "inf")
        return Path(self.data_root) / name

    def series_end(self, sweep: Sweep, cell: SweepCell) -> str | None:
        """The runner's series rule: why the series of `cell` ends before it trains (an earlier
        size sufficed, its data cannot be generated, too few type_0 items), else None; generates
        the cell's dataset when missing."""
        earlier = sweep.cells[:sweep.cells.index(cell)]
        for done in (c for c in earlier if c.series == cell.series and is_finished(sweep, c)):
            share = success_share(sweep.cell_dir(done))
            if share >= self.success_fraction:
                return (f"{done.name} reached type_0 in {share:.0%} of seeds >= "
                        f"ScalingSweep.success_fraction={self.success_fraction}")
        x, n = int(cell.factors["num_tokens"]), int(cell.factors["n_train"])
        directory = self.dataset_dir(x, n)
        if not (directory / "test.json").is_file():
            try:
                coverage.generate(self.task, self.data_root, x, n, seed=self.data_seed)
            except ValueError as err:
                return str(err)
        n_type0 = sum(item["type"] == "type_0" for item in read_items(directory, "test"))
        if n_type0 < self.min_type0_items:
            return (f"{n_type0} type_0 items < ScalingSweep.min_type0_items="
                    f"{self.min_type0_items}")
        return None


def success_share(cell_dir: Path) -> float:
    """The share of a finished cell's seeds that stopped by reaching type_0 (rule i)."""
    return float((pd.read_csv(cell_dir / "stops.csv")["stop_reason"] == "type_0").mean())


def scaling_design(gin_files: Sequence[str], gin_bindings: Sequence[str] = (),
                   search_paths: Sequence[str] = ()) -> tuple[Sweep, ScalingSweep]:
    """Parse the scaling gin files: the design's cells under MODEL_DIR (one series per |X|,
    sizes ascending; each cell binds its dataset dir) and the configured ScalingSweep."""
    from compgen_jax import train  # noqa: F401  (registers the cell setup)

    parse_gin(gin_files, gin_bindings, search_paths)
    root = str(configured_model_dir("MODEL_DIR (the design root)"))
    design = ScalingSweep()
    if not design.data_root:
        raise ValueError("ScalingSweep.data_root is not set: pass --gin.DATA_ROOT=\\\"/path\\\"")
    cells = []
    for x in design.num_tokens:
        for n in sorted({round(f * x * x) for f in design.size_factors}):
            directory = design.dataset_dir(x, n)
            bindings = (f"cell_setup.dataset_dir = {str(directory)!r}",)
            cells.append(SweepCell(
                name=directory.name, factors={"num_tokens": str(x), "n_train": str(n)},
                bindings=bindings, manifest_hashes=(), series=f"num_tokens={x}",
                cell_id=config_id(gin_files, [*gin_bindings, *bindings], search_paths)))
    sweep = Sweep(root=root, gin_files=tuple(gin_files), gin_bindings=tuple(gin_bindings),
                  search_paths=tuple(search_paths), cells=tuple(cells))
    return sweep, design


def n_required_table(stops: pd.DataFrame, success_fraction: float = 0.5) -> pd.DataFrame:
    """(num_tokens, n_required): smallest n_train whose share of type_0-stopped seeds suffices.

    n_required is NaN where no size reached it; n_max_tried records the largest size tried.
    """
    stops = stops.assign(success=stops["stop_reason"] == "type_0")
    rate = stops.groupby(["num_tokens", "n_train"])["success"].mean().reset_index()
    rows = []
    for x, group in rate.groupby("num_tokens"):
        ok = group.loc[group["success"] >= success_fraction, "n_train"]
        rows.append({"num_tokens": int(x), "n_required": float(ok.min()) if len(ok) else np.nan,
                     "n_max_tried": int(group["n_train"].max())})
    return pd.DataFrame(rows, columns=["num_tokens", "n_required", "n_max_tried"])


def run_scaling(gin_files: Sequence[str], gin_bindings: Sequence[str] = (),
                search_paths: Sequence[str] = ()) -> pd.DataFrame:
    """Run the scaling design's cells in this process (a relaunch runs only unfinished cells),
    then write MODEL_DIR/stops.csv (every trained seed) and n_required.csv; returns the table."""
    sweep, design = scaling_design(gin_files, gin_bindings, search_paths)
    runner.launch_local(sweep, in_process=True, series_end=design.series_end)
    trained = [c for c in sweep.cells if is_finished(sweep, c)]
    if not trained:
        raise ValueError(f"ScalingSweep trained no cell: no size of {design.size_factors} x "
                         f"|X|^2 for |X| in {design.num_tokens} has a usable test set")
    stops = pd.concat([pd.read_csv(sweep.cell_dir(c) / "stops.csv").assign(
        num_tokens=int(c.factors["num_tokens"]), n_train=int(c.factors["n_train"]))
        for c in trained], ignore_index=True)
    table = n_required_table(stops, design.success_fraction)
    out = Path(sweep.root)
    write_text(out / "stops.csv", stops.to_csv(index=False))
    write_text(out / "n_required.csv", table.to_csv(index=False))
    return table
