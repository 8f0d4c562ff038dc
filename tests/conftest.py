"""Shared fixtures: the real benchmark data dir (skipped when absent); one session XLA cache and
unoptimised compiles, shared by the pytest-xdist workers, to keep the suite short."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
# One folder per session for what the pytest-xdist workers and the CLI subprocesses share (the
# XLA cache, exported task arrays); made by the first process, which removes it at the end.
_SESSION_DIR: str | None = None
if "COMPGEN_TEST_SESSION_DIR" not in os.environ:
    _SESSION_DIR = tempfile.mkdtemp(prefix="compgen-jax-test-session-")
    os.environ["COMPGEN_TEST_SESSION_DIR"] = _SESSION_DIR
SESSION_DIR = Path(os.environ["COMPGEN_TEST_SESSION_DIR"])
# Many tests train the same tiny model in new processes or with new jitted functions: with one
# persistent compilation cache per session XLA compiles each program once, not once per test. Set
# before any test module imports JAX; the subprocesses (CLI runs) inherit it.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = str(SESSION_DIR / "xla_cache")
    # Only programs (train steps, decoders), not the eager ops' one-primitive compiles: with a
    # size bound every write scans the whole cache, so thousands of tiny entries made each write
    # cost more than the compile it saved (3 model modules: 103 s with every compile, 70 s so).
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.1"
    # The pytest-xdist workers and the CLI subprocesses share this cache; with a size bound JAX
    # holds a file lock around each read and write, so no process reads a half-written entry.
    os.environ["JAX_COMPILATION_CACHE_MAX_SIZE"] = str(16 * 2**30)
# The tests train tiny models for a few steps: XLA's compile, mostly LLVM's optimisation passes,
# is most of their time, and without those passes a compile-bound test takes about half the CPU
# time; the classic fusion emitters compile a tiny train step in ~40 % less time again. Floats
# may then differ from optimised code in the last bit: every comparison in the suite is between
# runs under the same flags (subprocesses inherit them) or within a tolerance. A caller's own
# --xla_backend_optimization_level is kept.
if "--xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = " ".join([os.environ.get("XLA_FLAGS", ""),
                                        "--xla_backend_optimization_level=0",
                                        "--xla_llvm_disable_expensive_passes=true",
                                        "--xla_cpu_use_fusion_emitters=false"]).strip()


# The modules that run longest (local clusters, subprocess cells, real-data validation; measured
# in a full run), longest first. The workers take whole modules in collection order
# (--no-loadscope-reorder), so these start first and the workers end together.
LONGEST_FIRST = ("test_ray.py", "test_validation.py", "test_sweep.py",
                 "test_resume_and_sharding.py", "test_multiseed.py", "test_faults.py",
                 "test_accelerator_suite.py", "test_device_e4.py", "test_circuits.py",
                 "test_models.py", "test_synthetic.py", "test_schedule.py", "test_recogs.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The LONGEST_FIRST modules first (a stable sort: every other order is kept)."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the session folder: each session starts empty, as a fresh CI clone does."""
    if _SESSION_DIR is not None:
        shutil.rmtree(_SESSION_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """$COMPGEN_DATA_DIR or ../shared/data beside the repo; skip the test when neither exists."""
    path = Path(os.environ.get("COMPGEN_DATA_DIR", DEFAULT_SHARED_DATA))
    if not path.is_dir():
        pytest.skip(f"benchmark data dir {path} not present")
    return path


MICRO_TASK = "scan_simple"


@pytest.fixture(scope="session")
def micro_arrays(shared_data: Path) -> list[str]:
    """gin bindings that train the micro cells' task (scan_simple) from a TASK_ARRAYS file exported
    once a session, TensorBoard off: such a process imports no TensorFlow and tokenizes nothing,
    half a micro cell's process time (19 -> 9 s). For the tests about something else (sharding,
    backends, faults); tests/test_task_arrays.py holds the file bitwise the seqio task, and the
    seqio path in a fresh process stays tested by tests/test_cli.py, the kill-and-resume test and
    the kits' smoke runs."""
    out = SESSION_DIR / f"{MICRO_TASK}.npz"
    if not out.exists():  # written atomically: a worker exporting at the same time is harmless
        from tasks import arrays

        arrays.export(MICRO_TASK, out, data_dir=shared_data)
    return [f"TASK_ARRAYS = '{out}'", "TrainConfig.tensorboard = False"]


@pytest.fixture(autouse=True)
def _fresh_gin_config():
    """gin bindings are process-global: clear them after each test so none leaks into the next."""
    yield
    import gin

    gin.clear_config()


def run_analysis_cli(*args: str) -> subprocess.CompletedProcess:
    """Run `python -m analysis ARGS` in a fresh interpreter with the repo on the path."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-m", "analysis", *args], capture_output=True,
                          text=True, env=env, cwd=REPO_ROOT, check=False)


def assert_results_equivalent(a, b) -> None:
    """Results of one cell run under two device layouts (sharded, multi-process) agree.

    Layouts compile different per-device shapes, so XLA may order float reductions differently:
    the data (seeds, steps, manifests, example counts) must match exactly, the float32 training
    loss to rtol 1e-5, and exact match to within one example per seed and split (a greedy decode
    can flip on a near-tie). Same-layout reruns stay bitwise (the resume tests assert that).
    """
    import pandas as pd

    floats = ["train_loss", "exact_match"]
    pd.testing.assert_frame_equal(a.drop(columns=floats), b.drop(columns=floats), check_exact=True)
    pd.testing.assert_series_equal(a["train_loss"], b["train_loss"], rtol=1e-5)
    one_example = 1.0 / a["n_examples"] + 1e-9
    assert ((a["exact_match"] - b["exact_match"]).abs() <= one_example).all(), (
        a["exact_match"] - b["exact_match"]).abs().max()


_ABSENT = """
import runpy, sys
sys.modules.update(dict.fromkeys(ABSENT))  # None: `import x` fails, importlib finds no spec
target, sys.argv = sys.argv[1], sys.argv[1:]
if target.endswith(".py"):
    runpy.run_path(target, run_name="__main__")
else:
    runpy.run_module(target, run_name="__main__", alter_sys=True)
"""


def run_without(absent: Sequence[str], target: str, *args: str, env: dict[str, str] | None = None,
                timeout: float = 600) -> subprocess.CompletedProcess:
    """`python -m TARGET ARGS` (or `python TARGET.py ARGS`) in a fresh interpreter in which the
    packages `absent` cannot be imported, as on a machine where they are not installed (the
    accelerator image has no TensorFlow, seqio, gin-config wheels aside, or clu)."""
    code = f"ABSENT = {set(absent)!r}\n{_ABSENT}"
    return subprocess.run([sys.executable, "-c", code, target, *args], capture_output=True,
                          text=True, cwd=REPO_ROOT, timeout=timeout, check=False,
                          env={**os.environ, **(env or {}), "PYTHONPATH": str(REPO_ROOT)})
