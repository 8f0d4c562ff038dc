"""t5x-style gin handling: --gin.X=Y rewriting, search paths, parsing with one clear error."""

from __future__ import annotations

import importlib.util  # noqa: F401  (gin 0.5.0 calls importlib.util without importing it)
import logging
from collections.abc import Sequence
from pathlib import Path

import gin

from tasks.atomic import write_text

GIN_CONFIGS_DIR = Path(__file__).resolve().parents[1] / "gin_configs"


class GinConfigError(ValueError):
    """A gin file or binding that cannot be parsed or names nothing configurable."""


def rewrite_gin_args(args: Sequence[str]) -> list[str]:
    """Turn t5x's `--gin.NAME=VALUE` flags into `--gin_bindings=NAME = VALUE`."""
    out = []
    for arg in args:
        if arg.startswith("--gin.") and "=" in arg:
            name, value = arg[len("--gin."):].split("=", 1)
            out.append(f"--gin_bindings={name} = {value}")
        else:
            out.append(arg)
    return out


def parse_gin(
    gin_files: Sequence[str], bindings: Sequence[str], search_paths: Sequence[str] = ()
) -> None:
    """Parse files (resolved against search paths + gin_configs/) and bindings; finalize."""
    gin.clear_config()
    for path in [*search_paths, str(GIN_CONFIGS_DIR), "."]:
        gin.add_config_file_search_path(path)
    quiet = _DropMissedSearchPaths()
    logging.getLogger().addFilter(quiet)
    try:
        gin.parse_config_files_and_bindings(list(gin_files), list(bindings), finalize_config=True)
    except OSError as err:
        raise GinConfigError(f"gin file not found: {err}") from None
    except (ValueError, SyntaxError, TypeError) as err:
        culprit = _failing_binding(bindings)
        where = f"binding {culprit!r}" if culprit else f"gin files {', '.join(gin_files)}"
        raise GinConfigError(f"bad {where}: {_first_line(err)}") from None
    finally:
        logging.getLogger().removeFilter(quiet)


class _DropMissedSearchPaths(logging.Filter):
    """gin logs an ERROR for every search path a file is not under; those are not errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Path not found:")


def _failing_binding(bindings: Sequence[str]) -> str | None:
    """The first binding that gin rejects on its own (to name it in the error)."""
    for binding in bindings:
        with gin.unlock_config():
            try:
                gin.parse_config(binding)
            except (ValueError, SyntaxError, TypeError):
                return binding
    return None


def _first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def write_operative_config(model_dir: Path) -> Path:
    """MODEL_DIR/config.gin: every value gin actually used, as t5x records it."""
    path = model_dir / "config.gin"
    write_text(path, gin.operative_config_str())
    return path
