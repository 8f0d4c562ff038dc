"""The one multi-cell runner: a design's cells (sweep.expand) run in this process, as local
`compgen-jax train` processes (`parallel` at a time), or rendered as a Cloud TPU script.

Launching is idempotent: a cell is finished once its cell.json marker exists (written only after
its results passed sweep.cell_results), so a killed sweep leaves finished cells intact and a
relaunch runs only the rest; cells with the same training identity are trained once.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import pandas as pd
from tqdm.auto import tqdm

from analysis.atomic import write_text
from compgen_jax.gin_utils import parse_gin
from compgen_jax.sweep import (
    CELL_FILE,
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


def _copy_training(sweep: Sweep, source: SweepCell, cell: SweepCell) -> None:
    """Give `cell` the results of `source` (same training): its rows under its own name, the
    manifests, predictions and operative config; a note names the source."""
    src, dst = sweep.cell_dir(source), sweep.cell_dir(cell)
    for name in ("manifests", "predictions"):
        if (src / name).is_dir():
            shutil.copytree(src / name, dst / name, dirs_exist_ok=True)
    if (src / "config.gin").exists():
        shutil.copy2(src / "config.gin", dst / "config.gin")
    write_text(dst / "trained_as.txt", f"{source.name}\n")
    table = pd.read_csv(src / "results.csv")
    table["cell"] = cell.name
    write_text(dst / "results.csv", table.to_csv(index=False))


def train_in_process(sweep: Sweep, cell: SweepCell) -> None:
    """Train one cell in this process, configured exactly as its `compgen-jax train` process
    would be (inside `trainers.sharing_across_cells`, cells of one task share the loaded data and
    the compiled step)."""
    from compgen_jax.gin_utils import write_operative_config
    from compgen_jax.train import train

    model_dir = sweep.cell_dir(cell)
    parse_gin(sweep.gin_files, [*sweep.gin_bindings, *cell.bindings,
                                f"MODEL_DIR = {str(model_dir)!r}"], sweep.search_paths)
    train()
    write_operative_config(model_dir)


def launch_local(
    sweep: Sweep, parallel: int = 1, dry_run: bool = False, out: TextIO | None = None,
    in_process: bool = False,
) -> list[str]:
    """Run the unfinished cells, `parallel` processes at a time (or, `in_process`, one after
    another in this process); returns the cells it ran.

    A cell whose training identity equals an earlier cell's is not trained again: once that cell
    has finished, it receives its results under its own name.
    """
    if parallel < 1:
        raise ValueError(f"--parallel={parallel} must be >= 1")
    check_root(sweep)
    source = trained_as(sweep)
    unfinished = [c for c in sweep.cells if not is_finished(sweep, c)]
    pending = [c for c in unfinished if source[c.name] is c]
    copies = [c for c in unfinished if source[c.name] is not c]
    if dry_run:
        out = out or sys.stdout  # the stream current at the call (not at import)
        for cell in pending:
            print(shlex.join(local_command(sweep, cell)), file=out)
        for cell in copies:
            print(f"# {cell.name}: same training as {source[cell.name].name} (results copied)",
                  file=out)
        return []
    if not (Path(sweep.root) / SWEEP_FILE).exists():
        write_sweep_file(sweep)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    running: dict[str, tuple[subprocess.Popen, SweepCell, float]] = {}
    failed: list[str] = []
    queue = list(pending)
    bar = tqdm(total=len(sweep.cells), initial=len(sweep.cells) - len(pending), unit="cell",
               desc="sweep", dynamic_ncols=True)
    try:
        if in_process:
            from compgen_jax.trainers import sharing_across_cells

            with sharing_across_cells():
                while queue:
                    cell = queue.pop(0)
                    bar.set_postfix_str(f"running {cell.name}")
                    start = time.monotonic()
                    train_in_process(sweep, cell)
                    mark_finished(sweep, cell, time.monotonic() - start)
                    bar.update(1)
        while queue or running:
            started = queue and len(running) < parallel
            while queue and len(running) < parallel:
                cell = queue.pop(0)
                log = sweep.cell_dir(cell) / "train.log"
                log.parent.mkdir(parents=True, exist_ok=True)
                with log.open("w") as handle:
                    proc = subprocess.Popen(local_command(sweep, cell), stdout=handle,
                                            stderr=subprocess.STDOUT)
                running[cell.name] = (proc, cell, time.monotonic())
            if started:
                bar.set_postfix_str("running " + ", ".join(running))
            for name, (proc, cell, start) in list(running.items()):
                if proc.poll() is None:
                    continue
                del running[name]
                if proc.returncode == 0:
                    mark_finished(sweep, cell, time.monotonic() - start)
                    bar.update(1)
                else:
                    failed.append(f"{name} (exit {proc.returncode}, log "
                                  f"{sweep.cell_dir(cell) / 'train.log'})")
            if running:
                time.sleep(0.2)
    finally:
        for proc, _, _ in running.values():
            proc.terminate()
            proc.wait()
        bar.close()
        signal.signal(signal.SIGTERM, previous)
    for cell in copies:
        if is_finished(sweep, source[cell.name]):
            _copy_training(sweep, source[cell.name], cell)
            mark_finished(sweep, cell, 0.0)
        else:
            failed.append(f"{cell.name} (same training as {source[cell.name].name}, unfinished)")
    if failed:
        raise ValueError(f"{len(failed)} cells failed: {'; '.join(failed)}")
    return [c.name for c in pending]


@dataclasses.dataclass(frozen=True)
class TpuConfig:
    """Where and how Cloud TPU cells run: one TPU VM (or pod slice) per cell."""

    project: str
    zone: str
    accelerator_type: str = "v5litepod-8"
    runtime_version: str = "v2-alpha-tpuv5-lite"
    gcs_root: str = "gs://BUCKET/sweeps"
    spot: bool = False
    source: str = "https://github.com/OWNER/compgen-jax.git"
    ref: str = "main"
    name_prefix: str = "compgen"

    @property
    def location(self) -> str:
        return f"--project={self.project} --zone={self.zone}"


_LIBTPU = "https://storage.googleapis.com/jax-releases/libtpu_releases.html"
_LOCAL_DIR = "/tmp/compgen-sweep"


def render_tpu(sweep: Sweep, tpu: TpuConfig) -> str:
    """A bash script of the gcloud commands that run every cell of the sweep on its own TPU VM.

    Every host of a slice runs the same train command (--worker=all) with jax.distributed
    initialized from the TPU metadata and seeds sharded over all chips; worker 0 then writes the
    cell.json marker and copies MODEL_DIR to <gcs_root>/<sweep>/<cell>.
    """
    gcs_sweep = f"{tpu.gcs_root.rstrip('/')}/{Path(sweep.root).name}"
    lines = ["#!/bin/bash", f"# sweep {sweep.root}: {len(sweep.cells)} cells on "
             f"{tpu.accelerator_type} ({'spot, queued resources' if tpu.spot else 'on demand'})",
             "set -euo pipefail"]
    for k, cell in enumerate(sweep.cells):
        node = f"{tpu.name_prefix}-{k:03d}"
        model_dir = f"{_LOCAL_DIR}/{cell.name}"
        install = (f"(test -d compgen-jax || git clone --depth 1 --branch {tpu.ref} {tpu.source} "
                   "compgen-jax) && cd compgen-jax && python3 -m pip install -q -e . "
                   f"'jax[tpu]' -f {_LIBTPU}")
        train = shlex.join(["python3", "-m", "compgen_jax.cli", "train", *sweep.train_args(
            cell, model_dir, "--gin_bindings=TrainConfig.shard_seeds = True",
            "--gin_bindings=DistributedConfig.enabled = True")])
        marker = json.dumps(dataclasses.asdict(cell), sort_keys=True)
        upload = (f"printf '%s' {shlex.quote(marker)} > {model_dir}/{CELL_FILE} && "
                  f"gcloud storage rsync --recursive {model_dir} {gcs_sweep}/{cell.name}")
        ssh = f"gcloud compute tpus tpu-vm ssh {node} {tpu.location}"
        lines += ["", f"# cell {cell.name}"]
        if tpu.spot:
            lines += [
                f"gcloud compute tpus queued-resources create {node} --node-id={node} "
                f"{tpu.location} --accelerator-type={tpu.accelerator_type} "
                f"--runtime-version={tpu.runtime_version} --spot",
                f"until [ \"$(gcloud compute tpus queued-resources describe {node} "
                f"{tpu.location} --format='value(state.state)')\" = ACTIVE ]; do sleep 60; done",
            ]
        else:
            lines.append(f"gcloud compute tpus tpu-vm create {node} {tpu.location} "
                         f"--accelerator-type={tpu.accelerator_type} "
                         f"--version={tpu.runtime_version}")
        lines += [
            f"{ssh} --worker=all --command={shlex.quote(f'{install} && {train}')}",
            f"{ssh} --worker=0 --command={shlex.quote(upload)}",
            (f"gcloud compute tpus queued-resources delete {node} {tpu.location} --force --quiet"
             if tpu.spot else f"gcloud compute tpus tpu-vm delete {node} {tpu.location} --quiet"),
        ]
    return "\n".join(lines) + "\n"
