"""The Ray backend of the runner: each unfinished cell of one or more sweeps is a Ray task with
its resource request, as many at a time as the cluster holds.

The task body is the runner's one cell body (`runner.train_in_process`, then `mark_finished`
with its results check), run where Ray places it; its output goes to <cell>/train.log. A task
whose node dies is retried (`max_retries`) elsewhere and resumes from the cell's newest
checkpoint, because the sweep root is on storage every node sees; a cell finished by an earlier
attempt or launch is never trained again. Bad input (an unreachable address, a cluster with no
node that holds one cell's request, an unusable sweep root) is refused before any task starts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from analysis.atomic import check_output_dir
from compgen_jax import runner
from compgen_jax.lock import model_dir_lock
from compgen_jax.sweep import (
    SWEEP_FILE,
    Sweep,
    SweepCell,
    check_root,
    is_finished,
    mark_finished,
    write_sweep_file,
)
from tasks.data_dir import DATA_DIR_ENV, data_dir

STATES = ("pending", "running", "retried", "done", "failed")
HEAD = "node:__internal_head__"  # the resource only Ray's head node has
LOCK_WAIT_S = 300.0  # a retry waits this long for the process of the attempt before to end


@dataclasses.dataclass(frozen=True)
class RayConfig:
    """Where cells run and what each asks for: a Ray address (None: a local instance), the
    per-cell request (CPUs, GPU fraction, custom resources such as {'TPU': 4}) and retries."""

    address: str | None = None
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    resources: dict[str, float] = dataclasses.field(default_factory=dict)
    max_retries: int = 3

    def request(self) -> dict[str, float]:
        """One cell's resource request, as Ray names the resources."""
        wanted = {"CPU": self.num_cpus, "GPU": self.num_gpus, **self.resources}
        return {name: amount for name, amount in wanted.items() if amount > 0}


def _check_address(address: str) -> None:
    """Refuse a host:port that nothing answers on within 5 s (ray.init would wait minutes)."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        if address != "auto":
            raise ValueError(f"--address={address}: expected HOST:PORT (or 'auto'); "
                             "nothing launched")
        return
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as err:
        raise ValueError(f"--address={address}: no Ray cluster answers there ({err}); "
                         "nothing launched") from None


def connect(config: RayConfig) -> bool:
    """Connect to the cluster at config.address, or start a local instance; True if this call
    started the connection (the caller shuts it down). ValueError if none answers."""
    import ray

    if ray.is_initialized():
        return False
    if config.address:
        _check_address(config.address)
    local: dict[str, Any] = {}
    if not config.address:  # this machine: its data directory, a small object store
        data = data_dir()
        local = {"object_store_memory": 200 * 2**20,
                 "runtime_env": {"env_vars": {DATA_DIR_ENV: str(data)}} if data else None}
    try:
        ray.init(address=config.address, log_to_driver=False, include_dashboard=False,
                 configure_logging=False, **local)
    except ConnectionError as err:
        raise ValueError(f"--address={config.address}: cannot connect to a Ray cluster "
                         f"({str(err).splitlines()[0]}); nothing launched") from None
    return True


def check_resources(config: RayConfig) -> None:
    """Refuse a request that no live node of the cluster can hold (it would wait forever)."""
    import ray

    request = config.request()
    nodes = [n["Resources"] for n in ray.nodes() if n["Alive"]]
    if not any(all(node.get(k, 0) >= v for k, v in request.items()) for node in nodes):
        offered = sorted({k for node in nodes for k in node
                          if not k.startswith(("node:", "memory", "object_store"))})
        raise ValueError(f"no node of the Ray cluster holds one cell's request {request} "
                         f"(its nodes offer {offered}); nothing launched")


@contextlib.contextmanager
def _cell_log(path: Path) -> Iterator[None]:
    """This attempt's stdout and stderr appended to the cell's train.log, under a header."""
    import ray

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle, contextlib.redirect_stdout(handle), \
            contextlib.redirect_stderr(handle):
        node = ray.get_runtime_context().get_node_id()[:12]
        print(f"--- attempt on node {node} (pid {os.getpid()}, {time.strftime('%H:%M:%S')})",
              flush=True)
        yield


def cell_task(sweep: Sweep, cell: SweepCell, board: Any) -> float:
    """The body of one cell's Ray task: the runner's cell body (train_in_process, resuming from
    the cell's newest checkpoint), then the checked finished marker; returns the wall seconds."""
    if is_finished(sweep, cell):  # an earlier attempt finished it just before its node died
        return 0.0
    board.started.remote(cell.name)  # not awaited: the table's count never stops a cell
    start = time.monotonic()
    with _cell_log(sweep.cell_dir(cell) / "train.log"), \
            model_dir_lock(sweep.cell_dir(cell), wait_s=LOCK_WAIT_S):
        if is_finished(sweep, cell):  # by the attempt before, while this one waited for it
            print("finished by the attempt before: nothing to train")
            return 0.0
        runner.train_in_process(sweep, cell)
        mark_finished(sweep, cell, time.monotonic() - start)
    return time.monotonic() - start


class Board:
    """The attempts each cell's task has started (a Ray actor on the cluster's head node, which
    outlives any worker): how the driver tells running from pending, and retried from first
    attempts."""

    def __init__(self) -> None:
        self.attempts: dict[str, int] = {}

    def started(self, name: str) -> None:
        self.attempts[name] = self.attempts.get(name, 0) + 1

    def snapshot(self) -> dict[str, int]:
        return dict(self.attempts)


def _failure(err: Exception) -> str:
    """One line for a failed task: the cell's own error, or why Ray gave up on it."""
    cause = getattr(err, "cause", None)
    text = str(cause) if cause is not None else f"{type(err).__name__}: {err}"
    return text.strip().splitlines()[0] if text.strip() else type(err).__name__


def counts(states: dict[str, str]) -> str:
    """The live table's line: cells per state."""
    return "  ".join(f"{s} {list(states.values()).count(s)}" for s in STATES)


def launch(sweeps: Sequence[Sweep], config: RayConfig, out: TextIO | None = None) -> list[str]:
    """Run the unfinished cells of `sweeps` as Ray tasks; print a live table (a line whenever
    the counts of pending / running / retried / done / failed cells change) and return the
    cells trained. Cells whose training an earlier cell shares receive its results afterwards
    (runner.finish_copies). ValueError naming every failed cell."""
    import ray

    out = out or sys.stdout
    for spec in sweeps:
        check_output_dir(spec.root, "sweep root (MODEL_DIR)")
        check_root(spec)
    # tasks run in other processes and on other nodes: the root as an absolute path
    sweeps = [dataclasses.replace(s, root=str(Path(s.root).absolute())) for s in sweeps]
    work = [(spec, runner.unfinished_cells(spec)) for spec in sweeps]
    owned = connect(config)
    try:
        check_resources(config)
        for spec in sweeps:
            if not (Path(spec.root) / SWEEP_FILE).exists():
                write_sweep_file(spec)
        board = ray.remote(num_cpus=0, resources={HEAD: 0.001}, max_restarts=-1)(Board).remote()
        accelerated = config.num_gpus > 0 or bool(config.resources)
        task = ray.remote(max_calls=1 if accelerated else 0)(cell_task).options(  # 1: a new
            num_cpus=config.num_cpus, num_gpus=config.num_gpus,  # process frees the chips
            resources=config.resources, max_retries=config.max_retries, retry_exceptions=False)
        refs = {task.remote(spec, cell, board): (spec, cell)
                for spec, (pending, _) in work for cell in pending}
        failed = _follow(refs, board, out)
    finally:
        if owned:
            ray.shutdown()
    for spec, (_, copies) in work:
        failed += runner.finish_copies(spec, copies)
    if failed:
        raise ValueError(f"{len(failed)} cells failed: {'; '.join(failed)}")
    return [cell.name for _, (pending, _) in work for cell in pending]


def _follow(refs: dict[Any, tuple[Sweep, SweepCell]], board: Any, out: TextIO) -> list[str]:
    """Wait for the cells' tasks, printing the table's line on every change; the failures.
    Interrupted (Ctrl-C, SIGTERM), it cancels the tasks still running and re-raises."""
    import ray

    states = {cell.name: "pending" for _, cell in refs.values()}
    failed: list[str] = []
    waiting, shown, began = list(refs), "", time.monotonic()
    try:
        while True:
            try:
                attempts = ray.get(board.snapshot.remote(), timeout=30)
            except ray.exceptions.RayError:  # restarting: the table waits, the cells go on
                attempts = {}
            for name, n in attempts.items():
                if states[name] not in ("done", "failed"):
                    states[name] = "retried" if n > 1 else "running"
            line = counts(states)
            if line != shown:
                print(f"[{time.monotonic() - began:6.0f} s] {line}", file=out, flush=True)
                shown = line
            if not waiting:
                return failed
            ready, waiting = ray.wait(waiting, num_returns=len(waiting), timeout=1.0)
            for ref in ready:
                spec, cell = refs[ref]
                try:
                    ray.get(ref)
                except Exception as err:  # the cell's own error, or its retries ran out
                    states[cell.name] = "failed"
                    failed.append(f"{cell.name} ({_failure(err)}; log "
                                  f"{spec.cell_dir(cell) / 'train.log'})")
                    continue
                if is_finished(spec, cell):
                    states[cell.name] = "done"
                else:
                    states[cell.name] = "failed"
                    failed.append(f"{cell.name} (finished on its node, but no marker under "
                                  f"{spec.root}: the sweep root must be on storage every node "
                                  "sees)")
    except BaseException:
        for ref in waiting:
            ray.cancel(ref, force=True)
        raise
