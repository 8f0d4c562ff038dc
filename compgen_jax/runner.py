"""The one multi-cell runner: a design's cells (sweep.expand) run in this process, or as local
`compgen-jax train` processes (`parallel` at a time); compgen_jax.ray_backend runs the same cell
body (`train_in_process`) as Ray tasks across a cluster.

Launching is idempotent: a cell is finished once its cell.json marker exists (written only after
its results passed sweep.cell_results), so a killed sweep leaves finished cells intact and a
relaunch runs only the rest; cells with the same training identity are trained once.
"""

from __future__ import annotations

import contextlib
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

import pandas as pd
from tqdm.auto import tqdm

from analysis.atomic import check_output_dir, write_text
from analysis.storage import as_path, copy_tree, staged_file
from compgen_jax.gin_utils import parse_gin
from compgen_jax.sweep import (
    SWEEP_FILE,
    Sweep,
    SweepCell,
    check_root,
    is_finished,
    mark_finished,
    write_sweep_file,
)


def _interrupt(signum: int, frame: Any) -> None:
    """SIGTERM behaves like Ctrl-C: running cells are stopped, finished cells stay."""
    raise KeyboardInterrupt


def local_command(sweep: Sweep, cell: SweepCell) -> list[str]:
    """The process that trains one cell locally into <root>/<cell>."""
    return [sys.executable, "-m", "compgen_jax.cli", "train",
            *sweep.train_args(cell, str(sweep.cell_dir(cell)))]


def trained_as(sweep: Sweep) -> dict[str, SweepCell]:
    """cell name -> the first cell of the design with the same training identity (itself if
    none comes before it): each training is run once."""
    first: dict[str, SweepCell] = {}
    return {c.name: first.setdefault(c.train_id or c.cell_id, c) for c in sweep.cells}


def unfinished_cells(sweep: Sweep) -> tuple[list[SweepCell], list[SweepCell]]:
    """(cells to train, cells that receive an earlier cell's training) among the unfinished
    cells: the work of a launch, whichever backend runs it."""
    source = trained_as(sweep)
    unfinished = [c for c in sweep.cells if not is_finished(sweep, c)]
    return ([c for c in unfinished if source[c.name] is c],
            [c for c in unfinished if source[c.name] is not c])


def finish_copies(sweep: Sweep, copies: list[SweepCell]) -> list[str]:
    """Give each copy its source's training once that has finished; returns the copies that
    could not be finished (their source is unfinished), as failure lines."""
    source, failed = trained_as(sweep), []
    for cell in copies:
        if is_finished(sweep, source[cell.name]):
            _copy_training(sweep, source[cell.name], cell)
            mark_finished(sweep, cell, 0.0)
        else:
            failed.append(f"{cell.name} (same training as {source[cell.name].name}, unfinished)")
    return failed


def _copy_training(sweep: Sweep, source: SweepCell, cell: SweepCell) -> None:
    """Give `cell` the results of `source` (same training): its rows under its own name, the
    manifests, predictions and operative config; a note names the source."""
    src, dst = sweep.cell_dir(source), sweep.cell_dir(cell)
    for name in ("manifests", "predictions"):
        if (src / name).is_dir():
            copy_tree(src / name, dst / name)
    if (src / "config.gin").exists():
        write_text(dst / "config.gin", (src / "config.gin").read_text())
    write_text(dst / "trained_as.txt", f"{source.name}\n")
    table = pd.read_csv(src / "results.csv")
    table["cell"] = cell.name
    write_text(dst / "results.csv", table.to_csv(index=False))


def train_in_process(sweep: Sweep, cell: SweepCell) -> None:
    """Train one cell in this process, configured exactly as its `compgen-jax train` process
    would be (inside `trainers.sharing_across_cells`, cells of one task share the loaded data and
    the compiled step)."""
    from compgen_jax.train import train

    parse_gin(sweep.gin_files, [*sweep.gin_bindings, *cell.bindings,
                                f"MODEL_DIR = {str(sweep.cell_dir(cell))!r}"], sweep.search_paths)
    train()


SeriesEnd = Callable[[Sweep, SweepCell], str | None]


def _series_ended(sweep: Sweep, cell: SweepCell, series_end: SeriesEnd | None,
                  ended: dict[str, str]) -> str | None:
    """Why `cell` is skipped (its series ended at an earlier cell, or the design's rule ends it
    here: then the rest of its series is skipped too), or None to run it."""
    if cell.series in ended:
        return ended[cell.series]
    reason = series_end(sweep, cell) if series_end is not None else None
    if reason is not None and cell.series:
        ended[cell.series] = f"series {cell.series} ended at {cell.name}: {reason}"
    return reason


def launch_local(
    sweep: Sweep, parallel: int = 1, dry_run: bool = False, out: TextIO | None = None,
    in_process: bool = False, series_end: SeriesEnd | None = None,
) -> list[str]:
    """Run the unfinished cells, `parallel` processes at a time (or, `in_process`, one after
    another in this process); returns the cells it ran.

    `series_end(sweep, cell)` (in process only), asked before each unfinished cell, says why its
    series (SweepCell.series, run in design order) ends there: that cell and the rest of its
    series are skipped. The rule reads finished cells, so a relaunch skips the same cells.

    A cell whose training identity equals an earlier cell's is not trained again: once that cell
    has finished, it receives its results under its own name.
    """
    if parallel < 1:
        raise ValueError(f"--parallel={parallel} must be >= 1")
    if series_end is not None and not in_process:
        raise ValueError("a design with a series rule runs its cells in process")
    check_root(sweep)
    pending, copies = unfinished_cells(sweep)
    source = trained_as(sweep)
    if dry_run:
        out = out or sys.stdout  # the stream current at the call (not at import)
        for cell in pending:
            print(shlex.join(local_command(sweep, cell)), file=out)
        for cell in copies:
            print(f"# {cell.name}: same training as {source[cell.name].name} (results copied)",
                  file=out)
        return []
    check_output_dir(sweep.root, "sweep root (MODEL_DIR)")  # e.g. a gs:// bucket that is absent
    if not (as_path(sweep.root) / SWEEP_FILE).exists():
        write_sweep_file(sweep)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    running: dict[str, tuple[subprocess.Popen, SweepCell, float, contextlib.ExitStack]] = {}
    failed: list[str] = []
    queue, ran, ended = list(pending), list(pending), {}
    bar = tqdm(total=len(sweep.cells), initial=len(sweep.cells) - len(pending), unit="cell",
               desc="sweep", dynamic_ncols=True)
    try:
        if in_process:
            from compgen_jax.trainers import sharing_across_cells

            with sharing_across_cells():
                while queue:
                    cell = queue.pop(0)
                    skip = _series_ended(sweep, cell, series_end, ended)
                    if skip is not None:
                        tqdm.write(f"skipping {cell.name}: {skip}")
                        ran.remove(cell)
                        bar.update(1)
                        continue
                    bar.set_postfix_str(f"running {cell.name}")
                    start = time.monotonic()
                    train_in_process(sweep, cell)
                    mark_finished(sweep, cell, time.monotonic() - start)
                    bar.update(1)
        while queue or running:
            names = list(running)
            while queue and len(running) < parallel:
                cell = queue.pop(0)
                log = contextlib.ExitStack()  # a gs:// log is uploaded when the process ends
                local_log = log.enter_context(staged_file(sweep.cell_dir(cell) / "train.log"))
                with local_log.open("w") as handle:
                    proc = subprocess.Popen(local_command(sweep, cell), stdout=handle,
                                            stderr=subprocess.STDOUT)
                running[cell.name] = (proc, cell, time.monotonic(), log)
            for name, (proc, cell, start, log) in list(running.items()):
                if proc.poll() is None:
                    continue
                del running[name]
                log.close()
                if proc.returncode == 0:
                    mark_finished(sweep, cell, time.monotonic() - start)
                    bar.update(1)
                else:
                    failed.append(f"{name} (exit {proc.returncode}, log "
                                  f"{sweep.cell_dir(cell) / 'train.log'})")
            if list(running) != names:  # the cells running now, not the ones just finished
                bar.set_postfix_str("running " + ", ".join(running) if running else "")
            if running:
                time.sleep(0.2)
    finally:
        for proc, _, _, log in running.values():
            proc.terminate()
            proc.wait()
            log.close()
        bar.close()
        signal.signal(signal.SIGTERM, previous)
    failed += finish_copies(sweep, copies)
    if failed:
        raise ValueError(f"{len(failed)} cells failed: {'; '.join(failed)}")
    return [c.name for c in ran]

