"""Where canonical benchmark files live: the COMPGEN_DATA_DIR setting (never copied into repo)."""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "COMPGEN_DATA_DIR"
DEFAULT_DATA_DIR = Path("../shared/data")  # beside the project root, when run from it


def data_dir(override: str | os.PathLike[str] | None = None) -> Path | None:
    """The benchmark data directory: an explicit override ("" for none), else $COMPGEN_DATA_DIR,
    else ../shared/data (relative to the working directory) when it exists, else None."""
    if override is not None:  # "" says: explicitly no data directory
        return Path(override).expanduser() if str(override) else None
    value = os.environ.get(DATA_DIR_ENV)
    if value:
        return Path(value).expanduser()
    # absolute: lazy loaders keep this path, and it must not move with the working directory
    return DEFAULT_DATA_DIR.resolve() if DEFAULT_DATA_DIR.is_dir() else None


def require_file(path: Path, what: str) -> Path:
    """Return `path` if it exists, else raise FileNotFoundError saying what was expected there."""
    if not path.is_file():
        raise FileNotFoundError(
            f"{what}: expected file {path} is missing (set {DATA_DIR_ENV} to a directory laid out "
            "as ../shared/data, e.g. export COMPGEN_DATA_DIR=../shared/data)"
        )
    return path


def benchmark_file(
    data_dir_setting: str | os.PathLike[str] | None, relpath: str, what: str
) -> Path:
    """`<data dir>/<relpath>`, a canonical benchmark file; FileNotFoundError naming it if absent."""
    root = data_dir(data_dir_setting)
    if root is None:
        raise FileNotFoundError(
            f"{what}: no data directory given, {DATA_DIR_ENV} is not set and "
            f"{DEFAULT_DATA_DIR} does not exist "
            f"(expected <dir>/{relpath})"
        )
    return require_file(root / relpath, what)
