"""Sweeps: idempotent, resumable local launch; collect; bad input; multi-process."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pytest
from conftest import assert_results_equivalent

from compgen_jax import runner, sweep
from compgen_jax.cli import main

REPO = Path(__file__).resolve().parents[1]
MICRO = [
    "TransformerConfig.emb_dim = 32", "TransformerConfig.mlp_dim = 64",
    "TransformerConfig.num_encoder_layers = 1", "TransformerConfig.num_decoder_layers = 1",
    "TrainConfig.max_eval_examples = 30", "TrainConfig.steps_per_call = 5", "NUM_SEEDS = 2",
    "BATCH_SIZE = 8",
]
# 2 x 1 micro design: 5 and 10 steps of 8 examples.
MICRO_FACTORS = ("{'diversity': {'low': {'n_unique': 20}, 'high': {'n_unique': 40}}, "
                 "'exposure': {'low': {'exposure': 2}}}")


def _gin_file(tmp_path: Path, root: Path, factors: str = MICRO_FACTORS,
              bindings: Sequence[str] = ()) -> Path:
    """The micro design's gin file; `bindings` (conftest's micro_arrays) are added after it."""
    path = tmp_path / f"micro_{abs(hash(factors))}.gin"
    path.write_text("include 'experiments/scan_sweep_cpu.gin'\n"
                    + "\n".join([*MICRO, *bindings, f"MODEL_DIR = '{root}'",
                                 f"factorial_cells.factors = {factors}"]) + "\n")
    return path


def _launch_args(gin_file: Path, *extra: str) -> list[str]:
    return ["sweep", "launch", f"--gin_file={gin_file}", *extra]


def _table(root: Path) -> pd.DataFrame:
    """The collected table less train_loss and the results.csv fingerprint (which covers it)."""
    return sweep.collect(root).drop(columns=["train_loss", sweep.RESULTS_SHA256])


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory,
             micro_arrays: list[str]) -> tuple[Path, Path]:
    """(gin file, sweep root) of the micro sweep, launched once without interruption, one process
    per cell, from the exported task (as every sweep here that trains)."""
    tmp = tmp_path_factory.mktemp("whole")
    gin_file = _gin_file(tmp, tmp / "root", bindings=micro_arrays)
    assert main(_launch_args(gin_file)) == 0
    return gin_file, tmp / "root"


def test_relaunch_runs_no_finished_cell(finished: tuple[Path, Path]):
    gin_file, root = finished
    spec = sweep.expand([str(gin_file)])
    assert [c.name for c in spec.cells] == ["scan-diversity=low-exposure=low",
                                            "scan-diversity=high-exposure=low"]
    assert all(sweep.is_finished(spec, c) for c in spec.cells)
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    assert runner.launch_local(spec) == []
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()} == before
    table = _table(root)
    assert set(table["factor_diversity"]) == {"low", "high"}
    assert sorted(table["cell"].unique()) == sorted(c.name for c in spec.cells)
    assert (root / sweep.COLLECTED_FILE).exists()
    assert [r["state"] for r in sweep.status_rows(root)] == ["finished", "finished"]


def test_killed_sweep_resumes_to_the_uninterrupted_table(tmp_path: Path,
                                                         finished: tuple[Path, Path],
                                                         micro_arrays: list[str]):
    root = tmp_path / "root"
    gin_file = _gin_file(tmp_path, root, bindings=micro_arrays)
    cmd = [sys.executable, "-m", "compgen_jax.cli", *_launch_args(gin_file)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 600
    while not list(root.glob(f"*/{sweep.CELL_FILE}")) and proc.poll() is None:
        assert time.time() < deadline, "no cell finished"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert [r["state"] for r in sweep.status_rows(root)] == ["finished", "partial"]
    spec = sweep.expand([str(gin_file)])
    # relaunched in this process (the executors train alike: test_in_process_runner_equals_...)
    assert runner.launch_local(spec, in_process=True) == ["scan-diversity=high-exposure=low"]
    pd.testing.assert_frame_equal(_table(root), _table(finished[1]), check_exact=True)


def test_collect_rejects_duplicated_and_mixed_cells(tmp_path: Path, finished: tuple[Path, Path]):
    root = tmp_path / "root"
    shutil.copytree(finished[1], root)
    shutil.copytree(root / "scan-diversity=low-exposure=low", root / "copy")
    with pytest.raises(ValueError, match="duplicated"):
        sweep.collect(root)
    shutil.rmtree(root / "copy")
    marker = root / "scan-diversity=high-exposure=low" / sweep.CELL_FILE
    marker.write_text(json.dumps({**json.loads(marker.read_text()), "cell_id": "other"}))
    with pytest.raises(ValueError, match="does not belong to the design"):
        sweep.collect(root)


def _cut_mid_row(text: str) -> str:
    return text[:text.rindex(",")]  # the last row loses its last field(s)


def _abc(text: str) -> str:
    header, *rows = text.splitlines()
    col = header.split(",").index("exact_match")
    fields = rows[0].split(",")
    fields[col] = "abc"
    return "\n".join([header, ",".join(fields), *rows[1:]]) + "\n"


def _drop_last_row(text: str) -> str:
    return "".join(text.splitlines(keepends=True)[:-1])  # cut exactly at a row boundary


@pytest.mark.parametrize("damage, why", [
    (_cut_mid_row, "metric (expected str; 1 bad, first '' at line 3)"),
    (_abc, "exact_match (expected a fraction in [0, 1]; 1 bad, first 'abc' at line 2)"),
    (_drop_last_row, "1 seeds, the design has 2"),
    (lambda text: random.Random(0).randbytes(512).decode("latin-1"),
     "cannot read results table"),
])
def test_collect_and_status_refuse_bad_results_by_cell(tmp_path: Path,
                                                       finished: tuple[Path, Path],
                                                       damage, why: str):
    root = tmp_path / "root"
    shutil.copytree(finished[1], root)
    (root / sweep.COLLECTED_FILE).unlink(missing_ok=True)
    bad_cell = "scan-diversity=high-exposure=low"
    results = root / bad_cell / "results.csv"
    results.write_bytes(damage(results.read_text()).encode("latin-1"))
    with pytest.raises(ValueError) as err:
        sweep.collect(root)
    message = str(err.value)
    assert f"1 cells of {root} have bad results" in message
    assert f"{bad_cell} ({results}" in message and why in message
    assert "scan-diversity=low-exposure=low" not in message
    assert not (root / sweep.COLLECTED_FILE).exists()
    states = {r["cell"]: (r["state"], r["problem"]) for r in sweep.status_rows(root)}
    assert states["scan-diversity=low-exposure=low"] == ("finished", "")
    assert states[bad_cell][0] == "bad results" and why in states[bad_cell][1]


def _copy(finished: tuple[Path, Path], tmp_path: Path) -> Path:
    """A copy of the finished micro sweep root, without a collected table."""
    root = tmp_path / "root"
    shutil.copytree(finished[1], root)
    (root / sweep.COLLECTED_FILE).unlink(missing_ok=True)
    return root


LOW, HIGH = "scan-diversity=low-exposure=low", "scan-diversity=high-exposure=low"


def _refused(root: Path, cell: str) -> str:
    """collect's error for a sweep whose one bad cell is `cell` (status agrees, nothing written)."""
    with pytest.raises(ValueError) as err:
        sweep.collect(root)
    assert not (root / sweep.COLLECTED_FILE).exists()
    states = {r["cell"]: (r["state"], r["problem"]) for r in sweep.status_rows(root)}
    assert states[cell][0] == "bad results" and states[cell][1] in str(err.value)
    assert [s for c, (s, _) in states.items() if c != cell] == ["finished"]
    return str(err.value)


def test_collect_refuses_nan_exact_match_unless_the_seed_diverged(tmp_path: Path,
                                                                  finished: tuple[Path, Path]):
    """Issue 30 case 5: a NaN score is only legitimate on a seed flagged diverged."""
    root = _copy(finished, tmp_path)
    results = root / HIGH / "results.csv"
    table = pd.read_csv(results)
    table.loc[table["seed"] == 1, "exact_match"] = float("nan")
    table.to_csv(results, index=False)
    message = _refused(root, HIGH)
    assert f"{results}: exact_match is NaN on 1 row(s) of seeds [1] that did not diverge " \
           "(first at line 3)" in message
    table.loc[table["seed"] == 1, "diverged"] = True
    table.to_csv(results, index=False)
    collected = sweep.collect(root)
    assert collected.loc[collected["cell"] == HIGH, "exact_match"].isna().sum() == 1


def test_collect_says_a_deleted_row_is_missing(tmp_path: Path, finished: tuple[Path, Path]):
    """Issue 30 case 11: a seed's deleted row is named as missing, not as a hash mismatch."""
    root = _copy(finished, tmp_path)
    results = root / LOW / "results.csv"
    table = pd.read_csv(results)
    table[table["seed"] == 0].to_csv(results, index=False)
    message = _refused(root, LOW)
    assert "seed 1 has no rows (manifests/seed_1.json is there): rows missing" in message
    assert "manifest hashes differ" not in message


def test_collect_and_report_check_every_manifest_against_its_rows(
        tmp_path: Path, finished: tuple[Path, Path], capsys: pytest.CaptureFixture):
    """Issue 30 case 3: another cell's (valid, self-consistent) manifest copied over seed_0."""
    root = _copy(finished, tmp_path)
    target = root / HIGH / "manifests" / "seed_0.json"
    original = target.read_bytes()
    shutil.copyfile(root / LOW / "manifests" / "seed_0.json", target)
    other = json.loads(target.read_text())["hash"]
    rows = json.loads((root / HIGH / sweep.CELL_FILE).read_text())["manifest_hashes"][0]
    message = _refused(root, HIGH)
    assert (f"manifests/seed_0.json has hash {other[:12]}, but seed 0's rows name {rows[:12]}"
            in message)
    target.write_bytes(original)
    sweep.collect(root)
    shutil.copyfile(root / LOW / "manifests" / "seed_0.json", target)  # after collect
    assert main(["report", str(root), "--out", str(tmp_path / "report")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and HIGH in err and LOW not in err
    assert f"manifests/seed_0.json has hash {other[:12]}" in err
    assert not (tmp_path / "report").exists()


@pytest.mark.parametrize("damage", ["delete the cell", "bad results", "unmark the cell"])
def test_report_refuses_a_collected_table_the_cells_no_longer_match(
        tmp_path: Path, finished: tuple[Path, Path], capsys: pytest.CaptureFixture, damage: str):
    """Issue 30 case 1: a report is built from the cells as they are now, or refused naming
    the stale cells, through both entry points."""
    from analysis.__main__ import main as analysis_main

    root = _copy(finished, tmp_path)
    sweep.collect(root)
    flags = ["--out", str(tmp_path / "report"), "--n-perm", "20", "--n-boot", "20"]
    assert analysis_main(["report", str(root), *flags]) == 0
    shutil.rmtree(tmp_path / "report")
    if damage == "delete the cell":
        shutil.rmtree(root / HIGH)
        why = f"{HIGH} (deleted since collect)"
    elif damage == "bad results":
        (root / HIGH / "results.csv").write_text(
            _abc((root / HIGH / "results.csv").read_text()))
        why = f"{HIGH} (results.csv changed since collect)"
    else:
        (root / HIGH / sweep.CELL_FILE).unlink()
        why = f"{HIGH} (not finished: no {sweep.CELL_FILE})"
    capsys.readouterr()
    for entry in (main, analysis_main):
        assert entry(["report", str(root), *flags]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and why in err and LOW not in err
        assert f"compgen-jax sweep collect {root}" in err
        assert not (tmp_path / "report").exists()


def test_report_refuses_a_table_missing_a_cell_finished_since(tmp_path: Path,
                                                               finished: tuple[Path, Path],
                                                               capsys: pytest.CaptureFixture):
    root = _copy(finished, tmp_path)
    marker = root / HIGH / sweep.CELL_FILE
    saved = marker.read_bytes()
    marker.unlink()
    sweep.collect(root, allow_missing=True)
    marker.write_bytes(saved)
    assert main(["report", str(root), "--out", str(tmp_path / "report")]) == 2
    assert f"{HIGH} (finished since collect, not in the table)" in capsys.readouterr().err


def test_manifest_show_on_a_sweep_root_lists_its_manifests(finished: tuple[Path, Path],
                                                           capsys: pytest.CaptureFixture):
    """Issue 30 case 12: every <cell>/manifests/seed_<k>.json, not the sweep's other JSON."""
    root = finished[1]
    assert main(["manifest", "show", str(root)]) == 0
    out = capsys.readouterr().out
    listed = [line.split(":")[0] for line in out.splitlines() if not line.startswith(" ")]
    assert listed == [str(root / cell / "manifests" / f"seed_{k}.json")
                      for cell in sorted([LOW, HIGH]) for k in (0, 1)]
    for cell in (LOW, HIGH):
        hashes = json.loads((root / cell / sweep.CELL_FILE).read_text())["manifest_hashes"]
        assert all(f"hash={h[:12]}" in out for h in hashes)


def test_root_of_another_design_is_refused_untouched(tmp_path: Path, finished: tuple[Path, Path],
                                                     capsys: pytest.CaptureFixture):
    root = tmp_path / "root"
    shutil.copytree(finished[1], root)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    other = _gin_file(tmp_path, root, MICRO_FACTORS.replace("'exposure': 2", "'exposure': 4"))
    assert main(_launch_args(other)) == 2
    assert "belongs to a different design" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before


def test_unknown_factor_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture):
    root = tmp_path / "root"
    gin_file = _gin_file(tmp_path, root, "{'colour': {'red': {'hue': 1}}}")
    assert main(_launch_args(gin_file)) == 2
    assert "factors['colour']['red']: unknown keys ['hue']" in capsys.readouterr().err
    assert not root.exists()


def test_cells_with_the_same_training_are_trained_once(tmp_path: Path,
                                                      capfd: pytest.CaptureFixture,
                                                      micro_arrays: list[str]):
    """Two cells that differ only in their label train once; both are finished and collected."""
    root = tmp_path / "root"
    gin_file = _gin_file(tmp_path, root, "{'copy': {'a': {'n_unique': 20, 'exposure': 2}, "
                                         "'b': {'n_unique': 20, 'exposure': 2}}}", micro_arrays)
    assert main(_launch_args(gin_file, "--dry_run")) == 0
    out = capfd.readouterr().out
    assert out.count("compgen_jax.cli train") == 1
    assert "# scan-copy=b: same training as scan-copy=a (results copied)" in out
    assert "peak_GB" in out and not root.exists()
    assert main(_launch_args(gin_file)) == 0
    first, second = root / "scan-copy=a", root / "scan-copy=b"
    assert (first / "train.log").exists() and not (second / "train.log").exists()
    assert (second / "trained_as.txt").read_text() == "scan-copy=a\n"
    table = sweep.collect(root)
    a, b = (table[table["cell"] == c].drop(columns=["cell", "factor_copy", "cell_id",
                                                         sweep.RESULTS_SHA256])
            .reset_index(drop=True) for c in ("scan-copy=a", "scan-copy=b"))
    assert len(a) == 2 and a.equals(b)


def test_a_design_whose_cells_cannot_fit_writes_nothing(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture):
    root = tmp_path / "root"
    gin_file = _gin_file(tmp_path, root)
    for command in (["--dry_run"], []):
        assert main(_launch_args(gin_file, *command, "--gin.TransformerConfig.max_len=16",
                                 "--gin.DeviceBudget.memory_gb=0.00001")) == 2
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 6, err  # per cell: train and test lengths, memory
        assert err[0].startswith("compgen-jax sweep: error: cell scan-diversity=low-")
        assert all(line.startswith("cell scan-diversity=") for line in err[1:])
        assert sum("TransformerConfig.max_len=16" in line for line in err) == 4
        assert sum("DeviceBudget.memory_gb=1e-05" in line for line in err) == 2
    assert main(["manifest", "build", f"--gin_file={gin_file}",
                 "--gin.TransformerConfig.max_len=16"]) == 2
    assert "TransformerConfig.max_len=16" in capsys.readouterr().err
    assert not root.exists()


def _train(model_dir: Path, bindings: Sequence[str], *extra: str) -> subprocess.Popen:
    args = ["--gin_file=experiments/scan_simple_cell_cpu.gin",
            *(f"--gin_bindings={b}" for b in (*MICRO, *bindings)), "--gin.N_UNIQUE=40",
            "--gin.TRAIN_STEPS=20",
            "--gin.TrainConfig.steps_per_call=10", "--gin.NUM_SEEDS=3",
            f"--gin.MODEL_DIR='{model_dir}'", *extra]
    return subprocess.Popen([sys.executable, "-m", "compgen_jax.cli", "train", *args], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_two_processes_with_jax_distributed_equal_one(tmp_path: Path, micro_arrays: list[str]):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    joined = ["--gin.TrainConfig.shard_seeds=True", "--gin.DistributedConfig.enabled=True",
              f"--gin.DistributedConfig.coordinator_address='127.0.0.1:{port}'",
              "--gin.DistributedConfig.num_processes=2",
              "--gin.DistributedConfig.cpu_collectives='gloo'"]
    procs = [_train(tmp_path / "two", micro_arrays, *joined,
                    f"--gin.DistributedConfig.process_id={k}") for k in range(2)]
    procs.append(_train(tmp_path / "one", micro_arrays))
    for proc in procs:
        _, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, err[-3000:]
    two, one = (pd.read_csv(tmp_path / d / "results.csv") for d in ("two", "one"))
    assert sorted(two["seed"].unique()) == [0, 1, 2]  # 3 seeds on 2 devices: one padding lane
    assert_results_equivalent(two.sort_values(['split', 'step', 'seed']).reset_index(drop=True),
                              one.sort_values(['split', 'step', 'seed']).reset_index(drop=True))


def test_in_process_runner_equals_one_process_per_cell(tmp_path: Path,
                                                       finished: tuple[Path, Path],
                                                       micro_arrays: list[str]):
    """The one runner's two local executors train the same cells to the same table."""
    root = tmp_path / "root"
    gin_file = _gin_file(tmp_path, root, bindings=micro_arrays)
    assert main(_launch_args(gin_file, "--backend=in-process")) == 0
    assert [r["state"] for r in sweep.status_rows(root)] == ["finished", "finished"]
    pd.testing.assert_frame_equal(_table(root), _table(finished[1]), check_exact=True)
    for cell in ("scan-diversity=low-exposure=low", "scan-diversity=high-exposure=low"):
        assert (root / cell / "config.gin").is_file() and (root / cell / "stops.csv").is_file()
