"""Atomic file writes (temp file beside the target + rename): readers never see half a file.

The one atomic writer of the project (tasks and compgen_jax write through it too); it depends on
the standard library (and, for gs:// targets, analysis.storage) only, so the analysis package
stays free of ML frameworks. A gs:// target is written into a local temp file and uploaded as one
object when it is whole: Cloud Storage makes an object visible only once its upload completes, so
readers see the old object or the whole new one, as with the rename.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from analysis.storage import as_path, check_remote_writable, is_remote


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux /proc)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside `path`; rename it onto `path` on success, delete it on error.

    The file gets the mode a plain `open(path, "w")` would give (0666 less the umask), not
    mkstemp's private 0600, so collaborators on a shared disk can read results.
    """
    target = as_path(path)
    if is_remote(target):
        with tempfile.TemporaryDirectory(prefix="compgen-upload-") as staging:
            tmp = Path(staging) / target.name
            yield tmp
            target.write_bytes(tmp.read_bytes())  # one upload: the object appears whole
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` (parents created) so readers see the old file or the whole new one."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def check_output_dir(path: str | os.PathLike, name: str) -> None:
    """Raise ValueError (one line naming `name`) unless `path` is, or can be created as, a
    writable directory: checked before any work, so a bad output path writes nothing. A gs://
    path: its bucket exists and takes a probe object (analysis.storage.check_remote_writable)."""
    path = as_path(path)
    if is_remote(path):
        check_remote_writable(path, name)
        return
    if path.exists() and not path.is_dir():
        raise ValueError(f"{name} {path} is a file, not a directory; choose another {name}")
    existing = next(p for p in (path, *path.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise ValueError(f"{name} {path}: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = name if existing == path else f"its parent {existing}"
        raise ValueError(f"{name} {path}: {what} is not writable; choose another {name}")
