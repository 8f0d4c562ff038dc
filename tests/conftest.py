"""Shared fixtures: the real benchmark data dir (skipped cleanly when absent)."""

from __future__ import annotations

import os
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
