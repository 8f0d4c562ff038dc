"""Faults and bad input of `compgen-jax train`: a changed config, damaged checkpoints, a second
writer, an unusable MODEL_DIR, a zero budget, diverging seeds. Each error is one line on stderr,
exit 2, with MODEL_DIR exactly as it was."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import pandas as pd
import pytest

from compgen_jax.cli import main
from compgen_jax.lock import model_dir_lock

REPO = Path(__file__).resolve().parents[1]
BUDGET = ["--gin.TRAIN_STEPS=20", "--gin.TrainConfig.steps_per_call=5", "--gin.NUM_SEEDS=2",
          "--gin.CheckpointConfig.period=10", "--gin.CheckpointConfig.keep=5"]
MICRO = [
    "--gin_file=experiments/scan_simple_cell_cpu.gin", "--gin.N_UNIQUE=40",
    "--gin.TransformerConfig.emb_dim=32", "--gin.TransformerConfig.mlp_dim=64",
    "--gin.TransformerConfig.num_encoder_layers=1", "--gin.TransformerConfig.num_decoder_layers=1",
    "--gin.BATCH_SIZE=8", "--gin.TrainConfig.max_eval_examples=30", *BUDGET,
]


CELL = "scan_simple-random-N40"
UNENDING = "--gin.TRAIN_STEPS=100000"  # a run the test stops (or that fails) long before


EXPORTED: list[str] = []  # conftest's micro_arrays as flags: every cell here trains from them


@pytest.fixture(scope="module", autouse=True)
def _from_the_exported_task(micro_arrays: list[str]) -> None:
    """The runs here test faults, not data loading: a new process then imports no TensorFlow."""
    EXPORTED[:] = [f"--gin_bindings={b}" for b in micro_arrays]


def _args(model_dir: Path, *extra: str) -> list[str]:
    return ["train", f"--gin.MODEL_DIR='{model_dir}'", *MICRO, *EXPORTED, *extra]


def _cli(model_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    """`compgen-jax train` in a fresh process (its exit code and stderr, as a user sees them)."""
    return subprocess.run([sys.executable, "-m", "compgen_jax.cli", *_args(model_dir, *extra)],
                          capture_output=True, text=True, timeout=900, cwd=REPO)


def _in_process(capsys: pytest.CaptureFixture, model_dir: Path,
                *extra: str) -> subprocess.CompletedProcess:
    """`compgen-jax train` through cli.main in this process: its exit code and stderr (no new
    interpreter for a refusal; the fresh-process view is the tests' that use `_cli`)."""
    capsys.readouterr()
    code = main(_args(model_dir, *extra))
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(_args(model_dir, *extra), code, out, err)


def _error_line(proc: subprocess.CompletedProcess) -> str:
    """The one error line of a refused run (exit 2, no traceback)."""
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("compgen-jax")]
    assert len(errors) == 1, proc.stderr[-3000:]
    return errors[0]


def _console(stderr: str) -> list[str]:
    """stderr as a user reads it, the progress bars (training's and each split's decode, both
    named by the cell; a nested bar's cursor-up codes removed) and XLA's notice of a slow
    compile (a busy machine: `*****` / `[Compiling module ...] Very slow compile? ...` /
    `*****`) left out."""
    lines = (re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", line) for line in re.split(r"[\r\n]", stderr))
    return [line for line in lines
            if line.strip("* ") and not line.startswith(f"{CELL}:")
            and "Very slow compile?" not in line]


def _steps(model_dir: Path) -> list[int]:
    """The finished checkpoint_<step> directories, and nothing else that orbax left."""
    names = [p.name for p in model_dir.iterdir() if p.name.startswith("checkpoint_")]
    assert all(n.removeprefix("checkpoint_").isdigit() for n in names), names  # no *-tmp dirs
    return sorted(int(n.removeprefix("checkpoint_")) for n in names)


def _assert_intact(checkpoint: Path) -> None:
    """Every file orbax writes is there and every array reads back."""
    from compgen_jax.checkpoints import ORBAX_FILES, read_every_array

    assert all((checkpoint / name).is_file() for name in ORBAX_FILES), checkpoint
    read_every_array(checkpoint / "state")


def _listing(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under root with its size and modification time: 'nothing written' is equality."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


def _results(model_dir: Path) -> pd.DataFrame:
    return pd.read_csv(model_dir / "results.csv").sort_values(["split", "step", "seed"],
                                                              ignore_index=True)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 20-step, 2-seed cell with checkpoint_10 and checkpoint_20."""
    model_dir = tmp_path_factory.mktemp("faults") / "cell"
    assert main(_args(model_dir)) == 0
    assert sorted(p.name for p in model_dir.glob("checkpoint_*")) == ["checkpoint_10",
                                                                       "checkpoint_20"]
    return model_dir


def _copy(trained: Path, tmp_path: Path) -> Path:
    target = tmp_path / "cell"
    shutil.copytree(trained, target)
    return target


def test_changed_setting_is_refused_listing_it_and_nothing_written(trained: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture):
    model_dir = _copy(trained, tmp_path)
    before = _listing(model_dir)
    line = _error_line(_in_process(capsys, model_dir, "--gin.LEARNING_RATE=0.002"))
    assert "OptimizerConfig.learning_rate: 0.001 -> 0.002" in line
    assert "checkpoint_20" in line
    line = _error_line(_in_process(capsys, model_dir, "--gin.N_UNIQUE=50", "--gin.TRAIN_STEPS=30"))
    assert "ManifestSpec.n_unique: 40 -> 50" in line and "TrainConfig.total_steps: 20 -> 30" in line
    assert _listing(model_dir) == before  # manifests/, results.csv, checkpoints untouched


def test_output_only_settings_may_change_on_resume(trained: Path, tmp_path: Path):
    model_dir = _copy(trained, tmp_path)
    (model_dir / "results.csv").unlink()
    assert main(_args(model_dir, "--gin.TrainConfig.tensorboard=True",
                      "--gin.CheckpointConfig.period=5")) == 0
    pd.testing.assert_frame_equal(_results(model_dir), _results(trained), check_exact=True)


def _truncate_largest_chunk(checkpoint: Path) -> None:
    chunk = max((p for p in (checkpoint / "state").rglob("*") if p.is_file() and
                 p.parent.name == "d"), key=lambda p: p.stat().st_size)
    with chunk.open("r+b") as handle:
        handle.truncate(chunk.stat().st_size // 2)


def test_corrupt_newest_checkpoint_falls_back_to_identical_results(
        trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    model_dir = _copy(trained, tmp_path)
    (model_dir / "results.csv").unlink()
    _truncate_largest_chunk(model_dir / "checkpoint_20")
    proc = _in_process(capsys, model_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    warning = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and f"{model_dir}/checkpoint_20 is corrupt" in warning[0]
    assert "resuming from checkpoint_10" in warning[0]
    assert (model_dir / "corrupt_checkpoint_20").is_dir()
    assert (model_dir / "checkpoint_20").is_dir()  # saved again by the resumed run
    pd.testing.assert_frame_equal(_results(model_dir), _results(trained), check_exact=True)


def test_no_intact_checkpoint_is_one_clear_error(trained: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture):
    model_dir = _copy(trained, tmp_path)
    (model_dir / "checkpoint_20" / "state" / "_METADATA").unlink()
    _truncate_largest_chunk(model_dir / "checkpoint_10")
    before = _listing(model_dir)
    line = _error_line(_in_process(capsys, model_dir))
    assert "no intact checkpoint" in line
    assert "checkpoint_20: FileNotFoundError: missing state/_METADATA" in line
    assert "checkpoint_10:" in line
    assert _listing(model_dir) == before


def test_second_writer_is_refused_and_a_killed_holder_leaves_no_stale_lock(trained: Path,
                                                                           tmp_path: Path):
    model_dir = _copy(trained, tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom compgen_jax.lock import model_dir_lock\n"
         f"with model_dir_lock({str(model_dir)!r}):\n print('held', flush=True)\n"
         " time.sleep(600)"],
        cwd=REPO, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert holder.stdout.readline().strip() == "held"
        before = _listing(model_dir)
        line = _error_line(_cli(model_dir))
        assert f"MODEL_DIR {model_dir} is in use" in line
        assert _listing(model_dir) == before
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    deadline = time.time() + 10
    while True:  # the kernel releases a killed process's lock; no stale lock file to clean up
        try:
            with model_dir_lock(model_dir):
                break
        except ValueError:
            assert time.time() < deadline
            time.sleep(0.1)


def test_model_dir_that_is_a_file_is_one_clear_error(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture):
    path = tmp_path / "taken"
    path.write_text("not a directory\n")
    line = _error_line(_in_process(capsys, path))
    assert f"MODEL_DIR {path} is a file" in line
    assert path.read_text() == "not a directory\n"


def _as_nobody(path: Path) -> str:
    """check_model_dir(path)'s error as an unprivileged user (root may write anywhere): the
    child imports as root, then drops to uid 65534 before the check."""
    code = ("import os\nfrom pathlib import Path\nfrom compgen_jax.lock import check_model_dir\n"
            "os.setuid(65534)\ntry:\n    check_model_dir(Path(os.environ['CHECK_DIR']))\n"
            "    print('no error')\nexcept ValueError as err:\n    print(err)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO), "CHECK_DIR": str(path)},
                          check=True)
    return proc.stdout.strip()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become an unprivileged user")
def test_read_only_model_dir_is_one_clear_error():
    with tempfile.TemporaryDirectory() as tmp:  # under /tmp, so nobody can reach it
        model_dir = Path(tmp) / "ro"
        model_dir.mkdir()
        Path(tmp).chmod(0o755)
        assert _as_nobody(model_dir / "cell") == (
            f"MODEL_DIR {model_dir / 'cell'}: its parent {model_dir} is not writable; choose "
            "another MODEL_DIR")
        assert _as_nobody(model_dir) == (
            f"MODEL_DIR {model_dir}: MODEL_DIR is not writable; choose another MODEL_DIR")
        model_dir.chmod(0o777)
        assert _as_nobody(model_dir / "cell") == "no error"


@pytest.mark.parametrize("steps", ["0", "-10"])
def test_zero_or_negative_train_steps_names_the_setting(tmp_path: Path, steps: str,
                                                        capsys: pytest.CaptureFixture):
    model_dir = tmp_path / "cell"
    line = _error_line(_in_process(capsys, model_dir, f"--gin.TRAIN_STEPS={steps}"))
    assert f"TrainConfig.total_steps={steps} (TRAIN_STEPS) must be >= 1" in line
    assert not model_dir.exists()


def test_diverged_seeds_are_named_at_the_end_and_stopped_as_diverged(tmp_path: Path):
    proc = _cli(tmp_path / "cell", "--gin.LEARNING_RATE=1e8", "--gin.TRAIN_STEPS=10",
                "--gin.CheckpointConfig.period=0")
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = _results(tmp_path / "cell")
    assert table["diverged"].all() and (table["stop_reason"] == "diverged").all()
    stops = pd.read_csv(tmp_path / "cell" / "stops.csv")
    assert stops["stop_reason"].tolist() == ["diverged", "diverged"] and stops["diverged"].all()
    warning = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert warning == ["warning: cell scan_simple-random-N40: seeds [0, 1] of [0, 1] diverged "
                       "(non-finite loss or gradients; frozen, rows flagged diverged=True)"]
    assert _console(proc.stderr) == warning  # nothing else (numpy's "All-NaN slice" was)


def test_report_with_a_manifest_the_results_do_not_name_is_one_error_no_out_dir(tmp_path: Path):
    from conftest import run_analysis_cli
    from test_analysis_report import _sweep

    root = _sweep(tmp_path / "sweep")
    path = root / "cogs_n50_e100" / "results.csv"
    rows = pd.read_csv(path)
    rows.loc[rows["seed"] == 2, "manifest_hash"] = "0" * 64
    rows.to_csv(path, index=False)
    out = tmp_path / "report"
    proc = run_analysis_cli("report", str(root), "--out", str(out), "--measures",
                            str(root / "measures.csv"), "--constructs",
                            str(root / "constructs.json"), "--n-perm", "50", "--n-boot", "50")
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert f"cell 'cogs_n50_e100' seed 2: results name manifest '{'0' * 64}' but " in lines[0]
    assert str(root / "cogs_n50_e100" / "manifests" / "seed_2.json") in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep"]  # no out dir, no staging


def _scan_copy(shared_data: Path, tmp_path: Path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(shared_data / "scan", root / "scan")
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return root


def test_data_check_reports_a_truncated_local_file(shared_data: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture):
    from tasks import fetch

    root = _scan_copy(shared_data, tmp_path)
    assert set(fetch.verify_files("scan", root).values()) == {"ok"}  # the canonical table
    assert main(["data", "check", "scan", "--data_dir", str(root)]) == 0
    train = root / "scan" / "length_split" / "tasks_train_length.txt"
    with train.open("r+b") as handle:
        handle.truncate(train.stat().st_size - 1000)
    capsys.readouterr()
    assert main(["data", "check", "scan", "--data_dir", str(root)]) == 2
    out, err = capsys.readouterr()
    assert ("  scan/length_split/tasks_train_length.txt: MISMATCH (2722418 bytes, sha256 "
            in out) and "expected 2723418 bytes, sha256 b034212dc7cf)" in out
    assert err.strip().endswith(f"incomplete in {root}: scan")
    assert not (root / fetch.CHECKSUMS).exists()  # check alone writes nothing


def test_data_check_verifies_recorded_checksums_of_other_files(shared_data: Path,
                                                               tmp_path: Path):
    from tasks import fetch

    root = _scan_copy(shared_data, tmp_path)
    tasks_file = root / "scan" / "tasks.txt"
    lines = tasks_file.read_text().splitlines(keepends=True)
    tasks_file.write_text("".join(reversed(lines)))  # a local variant (still SCAN: it parses)
    assert fetch.verify_files("scan", root)["scan/tasks.txt"].startswith("MISMATCH")
    assert main(["data", "check", "scan", "--record", "--data_dir", str(root)]) == 0
    recorded = json.loads((root / fetch.CHECKSUMS).read_text())["scan/tasks.txt"]
    assert recorded == {"sha256": fetch.sha256(tasks_file), "bytes": tasks_file.stat().st_size}
    assert fetch.verify_files("scan", root)["scan/tasks.txt"] == "ok"  # the record wins
    with tasks_file.open("a") as handle:
        handle.write("IN: jump OUT: I_JUMP\n")
    assert fetch.verify_files("scan", root)["scan/tasks.txt"].startswith("MISMATCH")


def test_failure_before_the_first_checkpoint_leaves_no_model_dir(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch):
    """Out of memory at the first step (simulated: a real one would take the machine's memory)."""
    from compgen_jax.multiseed import MultiSeedTrainer

    def out_of_memory(*args, **kwargs):
        raise MemoryError("RESOURCE_EXHAUSTED: simulated")

    monkeypatch.setattr(MultiSeedTrainer, "train", out_of_memory)
    model_dir = tmp_path / "cell"
    with pytest.raises(MemoryError):
        main(_args(model_dir))
    assert not model_dir.exists()


# `python -m compgen_jax.cli` with Ctrl-C raising KeyboardInterrupt, as from a terminal (a
# background job, e.g. a test run with `&`, starts with SIGINT ignored)
AS_FROM_A_TERMINAL = ("import runpy, signal\n"
                      "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
                      "runpy.run_module('compgen_jax.cli', run_name='__main__')\n")


def test_ctrl_c_is_one_line_naming_the_step_and_the_checkpoint_to_resume_from(tmp_path: Path):
    model_dir, stderr = tmp_path / "cell", tmp_path / "stderr"
    with stderr.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-c", AS_FROM_A_TERMINAL,
                                 *_args(model_dir, UNENDING)],
                                cwd=REPO, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.time() + 600
        while not (model_dir / "checkpoint_10").is_dir():
            assert proc.poll() is None and time.time() < deadline, stderr.read_text()[-3000:]
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        try:
            proc.wait(timeout=300)
        finally:
            proc.kill()
    lines = _console(stderr.read_text())
    assert proc.returncode == 130, lines
    assert len(lines) == 1, lines
    found = re.fullmatch(r"compgen-jax train: interrupted at step (\d+), resumable from "
                         r"checkpoint_(\d+)", lines[0])
    assert found, lines
    step, saved = int(found[1]), int(found[2])
    assert 10 <= saved <= step < 100_000
    assert _steps(model_dir)[-1] == saved
    _assert_intact(model_dir / f"checkpoint_{saved}")


def test_disk_full_while_checkpointing_is_one_line_and_keeps_the_last_checkpoint(tmp_path: Path):
    """A real full disk: MODEL_DIR is on a 32 MiB tmpfs, mounted in a private mount namespace (so
    it goes away with the run), that is filled up once checkpoint_10 is saved."""
    mount, after = tmp_path / "mnt", tmp_path / "after"
    mount.mkdir()
    probe = subprocess.run(["unshare", "-m", "mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs",
                            str(mount)], capture_output=True, text=True, check=False) \
        if shutil.which("unshare") else None
    if probe is None or probe.returncode:
        pytest.skip("cannot mount a tmpfs in a private mount namespace (needs root)")
    model_dir = mount / "cell"
    script = f"""
mount -t tmpfs -o size=32m tmpfs {mount} || exit 90
{shlex.join([sys.executable, "-m", "compgen_jax.cli", *_args(model_dir, UNENDING)])} \\
    > /dev/null 2> {tmp_path / "stderr"} &
run=$!
while [ ! -d {model_dir / "checkpoint_10"} ] && kill -0 $run 2> /dev/null; do sleep 0.05; done
dd if=/dev/zero of={mount / "filler"} bs=64k 2> /dev/null
wait $run; code=$?
cp -a {model_dir} {after}
exit $code
"""
    proc = subprocess.run(["unshare", "-m", "bash", "-c", script], cwd=REPO, timeout=900,
                          check=False)
    lines = _console((tmp_path / "stderr").read_text())
    assert proc.returncode == 2, lines
    assert len(lines) == 1, lines
    found = re.fullmatch(rf"compgen-jax train: error: disk full: checkpoint_(\d+) could not be "
                         rf"written to {re.escape(str(model_dir))} \((\d+(\.\d)? [KMG]?i?B) "
                         r"free\); checkpoint_(\d+) is intact: free space and rerun to resume "
                         r"from it", lines[0])
    assert found, lines
    failed, saved = int(found[1]), int(found[4])
    assert 10 <= saved < failed
    assert _steps(after)[-1] == saved  # the partial checkpoint_<failed> is gone
    _assert_intact(after / f"checkpoint_{saved}")


def test_late_callbacks_of_an_abandoned_save_are_held_back_and_nothing_else(
        tmp_path: Path, monkeypatch):
    """A tensorstore write that finishes after the event loop awaiting it closed (what orbax
    leaves behind when a save fails: CI saw 54 tracebacks) reports through sys.unraisablehook;
    once a checkpointer exists that one error is held back, any other reaches the previous hook."""
    import asyncio

    import numpy as np
    import tensorstore as ts

    from compgen_jax.checkpoints import CellCheckpointer, CheckpointConfig

    seen: list[BaseException] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda args: seen.append(args.exc_value))
    CellCheckpointer(tmp_path / "cell", CheckpointConfig())
    CellCheckpointer(tmp_path / "other", CheckpointConfig())  # installs the hook once
    raised: list[BaseException] = []
    installed = sys.unraisablehook
    monkeypatch.setattr(sys, "unraisablehook",
                        lambda args: (raised.append(args.exc_value), installed(args)))
    store = ts.open({"driver": "zarr", "kvstore": {"driver": "file", "path": str(tmp_path / "z")}},
                    create=True, dtype=ts.float32, shape=[2000, 2000],
                    chunk_layout=ts.ChunkLayout(read_chunk_shape=[100, 100])).result()
    write = store.write(np.ones((2000, 2000), np.float32))
    loop = asyncio.new_event_loop()

    async def wait_for_write() -> None:
        await write

    loop.create_task(wait_for_write())
    loop.run_until_complete(asyncio.sleep(0))  # the task now awaits the write
    loop.close()
    write.result()
    time.sleep(0.5)  # the late callback runs on tensorstore's thread
    real = ValueError("real")
    sys.unraisablehook(types.SimpleNamespace(exc_value=real, exc_traceback=None))
    assert [repr(err) for err in raised[:-1]] == ["RuntimeError('Event loop is closed')"]
    assert seen == [real]


def test_disk_full_in_orbax_save_thread_is_one_line(tmp_path: Path, monkeypatch, capfd):
    """The same without root: orbax's real async save, whose write of the JSON item (in its
    background thread) fails with ENOSPC; the failure comes back on the next save or close."""
    import errno

    import jax
    import jax.numpy as jnp
    from etils import epath

    from compgen_jax.checkpoints import CellCheckpointer, CheckpointConfig

    state = {"params": {"w": jnp.arange(6.0).reshape(2, 3)}, "key": jax.random.key(0)}
    checkpointer = CellCheckpointer(tmp_path, CheckpointConfig(keep=5))
    checkpointer.save(10, state, {"step": 10})
    write_text = epath.Path(tmp_path).__class__.write_text

    def full_disk(self, *args, **kwargs):
        if "checkpoint_20.orbax-checkpoint-tmp/meta" in str(self):  # the JSON item's file
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return write_text(self, *args, **kwargs)

    monkeypatch.setattr(epath.Path(tmp_path).__class__, "write_text", full_disk)
    checkpointer.save(20, state, {"step": 20})
    with pytest.raises(ValueError) as raised:
        checkpointer.close()
    assert re.fullmatch(rf"disk full: checkpoint_20 could not be written to {tmp_path} \(.+ "
                        r"free\); checkpoint_10 is intact: free space and rerun to resume from "
                        r"it", str(raised.value)), raised.value
    assert _steps(tmp_path) == [10]
    _assert_intact(tmp_path / "checkpoint_10")
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err and "No space left" not in out + err, err[-3000:]
