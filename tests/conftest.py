"""Shared fixtures: the real benchmark data dir (skipped cleanly when absent)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """$COMPGEN_DATA_DIR or ../shared/data beside the repo; skip the test when neither exists."""
    path = Path(os.environ.get("COMPGEN_DATA_DIR", DEFAULT_SHARED_DATA))
    if not path.is_dir():
        pytest.skip(f"benchmark data dir {path} not present")
    return path


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
