"""Paths of sweep roots and everything under them: a local path, or an object-storage URI
(`gs://bucket/prefix`) read and written through etils.epath on gcsfs.

`as_path` is the one place a sweep root, cell directory or results path becomes a path object:
`pathlib.Path` for a local path (unchanged behaviour), `etils.epath.Path` for `gs://`, which has
the same methods (`/`, read_text, write_text, open, exists, iterdir, glob, mkdir). orbax writes
its checkpoint metadata through the same epath and its arrays through tensorstore's own `gcs`
driver. epath would pick TensorFlow's gfile for `gs://` when TensorFlow is importable; `as_path`
makes it use gcsfs instead (EPATH_USE_TF=false, unless set), so every file of a sweep root goes
through one client, the one STORAGE_EMULATOR_HOST points at an emulator. The helpers below cover
what pathlib does through `shutil` or recursive globs, which epath lacks on `gs://`.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

GCS = "gs://"
GCS_EXTRA = "pip install 'compgen-jax[gcs]'"


def is_remote(path: str | os.PathLike) -> bool:
    """Whether `path` names an object in storage (gs://) rather than a local file."""
    return os.fspath(path).startswith(GCS)


def as_path(path: str | os.PathLike) -> Path:
    """A local path as `pathlib.Path`; `gs://...` as `etils.epath.Path` on gcsfs (ValueError,
    one line, when gcsfs is not installed)."""
    if not is_remote(path):
        return Path(path)
    if not _gcsfs_client():
        raise ValueError(f"{os.fspath(path)}: gs:// paths need the gcs extra ({GCS_EXTRA}); "
                         "gcsfs is not installed")
    from etils import epath

    return epath.Path(os.fspath(path))  # type: ignore[return-value]  # pathlib's methods


@functools.cache
def _gcsfs_client() -> bool:
    """Once per process: whether gcsfs is installed; if so, epath (orbax's too) is made to use it
    for gs:// (EPATH_USE_TF=false, unless set): one client for every file
    of a sweep root."""
    if importlib.util.find_spec("gcsfs") is None:
        return False
    os.environ.setdefault("EPATH_USE_TF", "false")
    from etils.epath import gpath

    # epath caches its TensorFlow-or-not choice at its first path of any kind (e.g. an orbax
    # checkpoint of a local dir earlier in this process): let it choose again under the setting.
    getattr(getattr(gpath, "_is_tf_installed", None), "cache_clear", lambda: None)()
    return True


def absolute(path: str | os.PathLike) -> Path:
    """The path as every process and node names it: absolute when local; a gs:// URI as it is
    (epath's `absolute()` would prefix it with the working directory)."""
    path = as_path(path)
    return path if is_remote(path) else path.absolute()


def rglob(root: Path, pattern: str) -> list[Path]:
    """The files and directories named `pattern` (a glob of one name) at any depth under `root`,
    sorted (epath cannot glob `**` on gs://: the remote tree is walked)."""
    if not is_remote(root):
        return sorted(root.rglob(pattern))
    import fnmatch

    found = []
    for top, dirs, files in _walk(root):
        found += [top / name for name in (*dirs, *files) if fnmatch.fnmatchcase(name, pattern)]
    return sorted(found)


def _walk(root: Path) -> list[tuple[Path, list[str], list[str]]]:
    """(directory, its subdirectory names, its file names) for each directory under a gs://
    root, as gs:// paths (gcsfs names them without the scheme)."""
    return [(as_path(top if is_remote(top) else GCS + os.fspath(top)), dirs, files)
            for top, dirs, files in root.walk()]


def copy_tree(src: Path, dst: Path) -> None:
    """Copy the directory `src` into `dst` (merged with what is there), file by file."""
    if not (is_remote(src) or is_remote(dst)):
        shutil.copytree(src, dst, dirs_exist_ok=True)
        return
    for top, _, files in _walk(src):
        for name in files:
            target = dst / (top / name).relative_to(src)
            target.write_bytes((top / name).read_bytes())


def remove_tree(path: Path) -> None:
    """Delete the directory `path` and everything under it; errors are ignored (best effort)."""
    if not is_remote(path):
        shutil.rmtree(path, ignore_errors=True)
        return
    with contextlib.suppress(Exception):
        path.rmtree(missing_ok=True)


def _reason(err: BaseException) -> str:
    """The first line of a storage error, for a one-line message."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:200]}" if text else type(err).__name__


def check_remote_writable(path: Path, name: str) -> None:
    """Raise ValueError (one line naming `name` and `path`) unless an object can be written and
    deleted under `path`: a bucket that does not exist, cannot be reached or refuses writes is
    found before any work. Writes nothing that stays (the probe object is deleted)."""
    bucket = os.fspath(path)[len(GCS):].split("/")[0]
    fs = gcs_filesystem()
    try:
        exists = fs.exists(bucket)
    except Exception as err:  # noqa: BLE001 (any client error: the root cannot be used)
        raise ValueError(f"{name} {path}: cannot reach bucket gs://{bucket} ({_reason(err)})"
                         ) from None
    if not exists:
        raise ValueError(f"{name} {path}: bucket gs://{bucket} does not exist (create it, e.g. "
                         f"`gcloud storage buckets create gs://{bucket}`)")
    probe = path / f".write-probe-{uuid.uuid4().hex}"
    try:
        probe.write_text("")
        probe.unlink()
    except Exception as err:  # noqa: BLE001 (403, a retention policy, ...: not writable)
        raise ValueError(f"{name} {path}: cannot write to it ({_reason(err)}); choose another "
                         f"{name} or grant write access") from None


def gcs_filesystem() -> Any:
    """The gcsfs filesystem epath uses for gs:// (the same instance and settings)."""
    from etils.epath import backend

    return backend.fsspec_backend.fs(GCS)


@contextlib.contextmanager
def staged_file(path: Path, append: bool = False) -> Iterator[Path]:
    """A local file to write `path` through (a log a process writes as it runs): `path` itself
    when local; for gs:// a temp file (holding the object's text when `append`) uploaded to
    `path` when the block ends, also on an error (objects cannot be appended to or streamed)."""
    if not is_remote(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="compgen-staged-") as staging:
        local = Path(staging) / path.name
        local.write_bytes(path.read_bytes() if append and path.exists() else b"")
        try:
            yield local
        finally:
            path.write_bytes(local.read_bytes())
