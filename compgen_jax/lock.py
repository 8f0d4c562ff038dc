"""MODEL_DIR guards: a usable directory, and one writer at a time.

The lock is `flock` on the directory itself: it writes nothing into MODEL_DIR, and the kernel
drops it when the holding process ends, however it ends (a kill -9 leaves no stale lock).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from analysis.atomic import check_output_dir

_HELD: dict[Path, int] = {}  # directories this process holds: resolved path -> open fd


def check_model_dir(model_dir: Path) -> None:
    """Raise ValueError unless MODEL_DIR is (or can be created as) a writable directory."""
    check_output_dir(model_dir, "MODEL_DIR")


def _flock(fd: int, wait_s: float) -> OSError | None:
    """Take the exclusive lock on fd, retrying for up to wait_s while another holds it; the
    error of the last try, or None once held."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return None
        except OSError as err:
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN) or time.monotonic() >= deadline:
                return err
        time.sleep(0.5)


@contextlib.contextmanager
def model_dir_lock(model_dir: Path, exclusive: bool = True,
                   wait_s: float = 0.0) -> Iterator[None]:
    """Create MODEL_DIR if needed and hold its writer lock; a second writer gets ValueError
    (after waiting up to `wait_s` for the holder to end: a retried cell waits out the process
    of its previous attempt, still exiting).

    Re-entrant within a process (a nested hold of a directory already held is a no-op). The
    processes of one multi-process job share MODEL_DIR: only the first locks it (`exclusive`).
    """
    path = Path(model_dir)
    check_model_dir(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"MODEL_DIR {path}: cannot create it ({err.strerror})") from None
    key = path.resolve()
    if key in _HELD or not exclusive:
        yield
        return
    fd = os.open(key, os.O_RDONLY | os.O_DIRECTORY)
    err = _flock(fd, wait_s)
    if err is not None:
        os.close(fd)
        if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
            print(f"warning: cannot lock MODEL_DIR {path} ({err.strerror}); concurrent writers "
                  "are not prevented on this filesystem", file=sys.stderr)
            yield
            return
        raise ValueError(f"MODEL_DIR {path} is in use: another process is writing to it (wait "
                         "for it to finish, or use another MODEL_DIR)") from None
    _HELD[key] = fd
    try:
        yield
    finally:
        del _HELD[key]
        os.close(fd)
