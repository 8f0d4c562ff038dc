"""The Ray backend on a local multi-node cluster: equal to the in-process backend, a node killed
mid-cell resumes from its checkpoint, a killed driver's relaunch trains only unfinished cells,
bad input refused before anything runs."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pytest

from compgen_jax import ray_backend, runner, sweep
from compgen_jax.cli import main

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MB = 2**20
LOW, HIGH = "scan-diversity=low-exposure=long", "scan-diversity=high-exposure=long"
# 2 micro cells of 8 examples a step: 50 and 200 steps, a checkpoint every 10.
GIN = f"""include '{REPO / "tests" / "fixtures" / "micro_scan_sweep.gin"}'
CheckpointConfig.period = 10
factorial_cells.factors = {{'diversity': {{'low': {{'n_unique': 20}}, 'high': {{'n_unique': 80}}}},
                           'exposure': {{'long': {{'exposure': 20}}}}}}
"""
# node death noticed within ~1 s, so the dead node's task is retried promptly
FAST_HEALTH = {"health_check_period_ms": 300, "health_check_failure_threshold": 3,
               "health_check_initial_delay_ms": 0}


def _gin_file(tmp_path: Path, root: Path, bindings: Sequence[str] = ()) -> Path:
    """The micro design's gin file; `bindings` (conftest's micro_arrays) are added after it."""
    path = tmp_path / "ray_micro.gin"
    path.write_text(GIN + "".join(f"{b}\n" for b in bindings) + f"MODEL_DIR = '{root}'\n")
    return path


def _add_worker(cluster: Cluster) -> None:
    cluster.add_node(num_cpus=1, object_store_memory=80 * MB)
    cluster.wait_for_nodes()


@pytest.fixture(scope="module")
def cluster():
    """A head without CPUs (no cell runs there) and two one-CPU worker nodes."""
    made = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "include_dashboard": False, "object_store_memory": 100 * MB,
        "_system_config": FAST_HEALTH})
    for _ in range(2):
        _add_worker(made)
    yield made
    ray.shutdown()
    made.shutdown()


@pytest.fixture(scope="module")
def in_process(tmp_path_factory: pytest.TempPathFactory, micro_arrays: list[str]) -> Path:
    """The sweep root of the same design trained by the in-process backend."""
    tmp = tmp_path_factory.mktemp("in_process")
    root = tmp / "root"
    assert main(["sweep", "launch", f"--gin_file={_gin_file(tmp, root, micro_arrays)}",
                 "--backend=in-process"]) == 0
    return root


def _driver(gin_file: Path, address: str) -> subprocess.Popen:
    """`compgen-jax sweep launch --backend=ray` from a shell, in its own process group."""
    return subprocess.Popen(
        [sys.executable, "-m", "compgen_jax.cli", "sweep", "launch", f"--gin_file={gin_file}",
         "--backend=ray", f"--address={address}"], cwd=REPO, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _wait_for(directory: Path, pattern: str, proc: subprocess.Popen) -> None:
    """Until directory holds a file matching pattern (checkpoints come and go: CheckpointConfig
    keeps the newest 2), the driver still running."""
    deadline = time.time() + 600
    while not any(directory.glob(pattern)):
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        assert time.time() < deadline, f"no {directory / pattern}"
        time.sleep(0.05)


def _attempts(root: Path, cell: str) -> list[tuple[str, int]]:
    """(node id prefix, pid) of each attempt the cell's train.log records."""
    log = (root / cell / "train.log").read_text()
    return [(node, int(pid)) for node, pid in
            re.findall(r"--- attempt on node (\w+) \(pid (\d+),", log)]


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def test_node_killed_mid_cell_resumes_and_equals_in_process(tmp_path: Path, cluster: Cluster,
                                                            in_process: Path,
                                                            micro_arrays: list[str]):
    root = tmp_path / "root"
    proc = _driver(_gin_file(tmp_path, root, micro_arrays), cluster.address)
    _wait_for(root / HIGH, "checkpoint_*[0-9]", proc)
    [(node_id, pid)] = _attempts(root, HIGH)
    [node] = [n for n in cluster.worker_nodes if n.node_id.startswith(node_id)]
    cluster.remove_node(node, allow_graceful=False)  # the node dies with its processes
    _kill(pid)
    _add_worker(cluster)  # the replacement node
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out[-3000:]
    assert "retried 1" in out and out.rstrip().splitlines()[-1].startswith("ran 2 cells")
    assert len(_attempts(root, LOW)) == 1 and len(_attempts(root, HIGH)) == 2
    resumed = re.findall(rf"{re.escape(HIGH)}: resumed from checkpoint_(\d+) \(step \d+ of 200\)",
                         (root / HIGH / "train.log").read_text())
    assert len(resumed) == 1 and 10 <= int(resumed[0]) < 200
    # same machine, same device layout: byte-identical results (README Determinism)
    pd.testing.assert_frame_equal(sweep.collect(root), sweep.collect(in_process), check_exact=True)


def test_killed_driver_relaunch_trains_only_unfinished_cells(tmp_path: Path, cluster: Cluster,
                                                             in_process: Path,
                                                             micro_arrays: list[str]):
    root = tmp_path / "root"
    gin_file = _gin_file(tmp_path, root, micro_arrays)
    proc = _driver(gin_file, cluster.address)
    _wait_for(root / LOW, sweep.CELL_FILE, proc)
    _wait_for(root / HIGH, "checkpoint_*[0-9]", proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p: p.stat().st_mtime_ns for p in (root / LOW).rglob("*") if p.is_file()}
    spec = sweep.expand([str(gin_file)])
    ran = ray_backend.launch([spec], ray_backend.RayConfig(address=cluster.address))
    assert ran == [HIGH]
    assert {p: p.stat().st_mtime_ns for p in (root / LOW).rglob("*") if p.is_file()} == finished
    assert len(_attempts(root, LOW)) == 1 and len(_attempts(root, HIGH)) == 2
    assert "resumed from checkpoint_" in (root / HIGH / "train.log").read_text()
    pd.testing.assert_frame_equal(sweep.collect(root), sweep.collect(in_process), check_exact=True)
    assert runner.unfinished_cells(spec) == ([], [])


def _refused(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    """The one error line of a launch that must exit 2."""
    assert main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(err) == 1, err
    return err[0]


def test_unreachable_address_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    root = tmp_path / "root"
    line = _refused(["sweep", "launch", f"--gin_file={_gin_file(tmp_path, root)}",
                     "--backend=ray", f"--address=127.0.0.1:{port}"], capsys)
    assert f"--address=127.0.0.1:{port}: no Ray cluster answers there" in line
    assert "nothing launched" in line and not root.exists()


def test_unusable_sweep_root_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    line = _refused(["sweep", "launch", f"--gin_file={_gin_file(tmp_path, blocker / 'root')}",
                     "--backend=ray"], capsys)
    assert f"sweep root (MODEL_DIR) {blocker / 'root'}: {blocker} is a file" in line
    assert not ray.is_initialized()


def test_missing_resource_is_refused(tmp_path: Path, cluster: Cluster,
                                     capsys: pytest.CaptureFixture):
    root = tmp_path / "root"
    line = _refused(["sweep", "launch", f"--gin_file={_gin_file(tmp_path, root)}",
                     "--backend=ray", f"--address={cluster.address}", "--ray_gpus=0.5"], capsys)
    assert "no node of the Ray cluster holds one cell's request {'CPU': 1.0, 'GPU': 0.5}" in line
    assert "nothing launched" in line and not root.exists()
    assert not ray.is_initialized()  # the driver let go of the cluster


@pytest.mark.parametrize("flag, why", [
    ("--ray_resources=TPU:4", "--ray_resources='TPU:4': not JSON"),
    ("--ray_resources={\"TPU\": 0}", "expected a JSON object of positive amounts"),
    ("--ray_gpus=-1", "--ray_cpus, --ray_gpus and --max_retries must be >= 0"),
])
def test_bad_resource_flags_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture,
                                        flag: str, why: str):
    root = tmp_path / "root"
    line = _refused(["sweep", "launch", f"--gin_file={_gin_file(tmp_path, root)}",
                     "--backend=ray", flag], capsys)
    assert why in line and not root.exists() and not ray.is_initialized()
