"""Runner pieces the Ray backend relies on: a retried cell waits for the attempt before it."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path

import pytest

from compgen_jax.lock import model_dir_lock


def test_lock_waits_for_the_previous_holder_then_takes_the_cell(tmp_path: Path):
    """A process still exiting holds the cell's lock: with wait_s the next attempt takes it as
    soon as it is released; without, it is refused at once."""
    held = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(held, fcntl.LOCK_EX)  # another open file: conflicts like another process
    with pytest.raises(ValueError, match="is in use"), model_dir_lock(tmp_path):
        pass
    release = threading.Timer(1.0, os.close, [held])
    release.start()
    start = time.monotonic()
    with model_dir_lock(tmp_path, wait_s=60):
        waited = time.monotonic() - start
    release.join()
    assert 0.9 < waited < 30
    with pytest.raises(ValueError, match="is in use"):
        blocker = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(blocker, fcntl.LOCK_EX)
        try:
            with model_dir_lock(tmp_path, wait_s=1.0):
                pass
        finally:
            os.close(blocker)
