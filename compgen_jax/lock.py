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
from collections.abc import Iterator
from pathlib import Path

from analysis.atomic import check_output_dir

_HELD: dict[Path, int] = {}  # directories this process holds: resolved path -> open fd


def check_model_dir(model_dir: Path) -> None:
    """Raise ValueError unless MODEL_DIR is (or can be created as) a writable directory."""
    check_output_dir(model_dir, "MODEL_DIR")


@contextlib.contextmanager
def model_dir_lock(model_dir: Path, exclusive: bool = True) -> Iterator[None]:
    """Create MODEL_DIR if needed and hold its writer lock; a second writer gets ValueError.

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
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
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
