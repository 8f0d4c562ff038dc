"""t5x-style gin handling: --gin.X=Y rewriting, search paths, parsing with one clear error."""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import inspect
import logging
import os
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gin
from gin import config as gin_config

from analysis.atomic import write_text
from analysis.storage import as_path


class GinConfigError(ValueError):
    """A gin file or binding that cannot be parsed or names nothing configurable."""


def installed_configs_dir() -> Path:
    """The gin tree shipped with the package: the checkout's gin_configs/ or the wheel's copy."""
    checkout = Path(__file__).resolve().parents[1] / "gin_configs"
    if checkout.is_dir():
        return checkout
    spec = importlib.util.find_spec("compgen_jax.gin_configs")
    if spec is None or not spec.submodule_search_locations:
        raise GinConfigError("the installed package has no gin_configs (reinstall compgen-jax)")
    return Path(next(iter(spec.submodule_search_locations)))


GIN_CONFIGS_DIR = installed_configs_dir()


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


def _resolve_files_ourselves(search_paths: Sequence[str]) -> None:
    """Make gin look for files (and `include`s) in the search paths, the installed configs, then
    the working directory, as plain files only.

    gin 0.5.0 otherwise tries the working directory first and then treats `runs/train.gin` as the
    Python package `runs`: any `runs/` or `models/` directory in the working directory becomes a
    namespace package and breaks resolution. gin has no public API to reset either list.
    """
    prefixes = [str(Path(p).resolve()) for p in search_paths]
    gin_config._LOCATION_PREFIXES[:] = [*prefixes, str(GIN_CONFIGS_DIR), ""]
    gin_config._FILE_READERS[:] = [(open, os.path.isfile)]


def parse_gin(
    gin_files: Sequence[str], bindings: Sequence[str], search_paths: Sequence[str] = ()
) -> None:
    """Parse files (resolved against search paths + gin_configs/) and bindings; finalize.

    A binding of a macro that no file defines and nothing references (a typo such as
    TRAIN_STEP), or a value of the wrong type for a typed setting, is a GinConfigError.
    """
    gin.clear_config()
    _resolve_files_ourselves(search_paths)
    quiet = _DropMissedSearchPaths()
    logging.getLogger().addFilter(quiet)
    try:
        gin.parse_config_files_and_bindings(list(gin_files), [], finalize_config=False)
        file_macros = _macro_names()
        gin.parse_config_files_and_bindings([], list(bindings), finalize_config=False)
    except OSError as err:
        raise GinConfigError(f"gin file not found: {err}") from None
    except (ValueError, SyntaxError, TypeError) as err:
        culprit = _failing_binding(bindings)
        where = f"binding {culprit!r}" if culprit else f"gin files {', '.join(gin_files)}"
        raise GinConfigError(f"bad {where}: {_first_line(err)}") from None
    finally:
        logging.getLogger().removeFilter(quiet)
    _check_macro_bindings(bindings, file_macros)
    _check_types()
    gin.finalize()


def _macro_names() -> set[str]:
    return {scope for scope, selector in gin_config._CONFIG if selector == "gin.macro"}


def _references(value: Any) -> list[gin_config.ConfigurableReference]:
    """Every `%MACRO` / `@fn` reference inside a bound value (lists, tuples, dicts nested)."""
    if isinstance(value, gin_config.ConfigurableReference):
        return [value]
    if isinstance(value, dict):
        return [r for v in value.values() for r in _references(v)]
    if isinstance(value, list | tuple):
        return [r for v in value for r in _references(v)]
    return []


def _macro_name(ref: gin_config.ConfigurableReference) -> str | None:
    return ref.scoped_selector.rsplit("/", 1)[0] if ref.selector == "gin.macro" else None


def _check_macro_bindings(bindings: Sequence[str], file_macros: set[str]) -> None:
    """A command-line macro must be one the gin files define or one some binding references."""
    referenced = {_macro_name(ref) for params in gin_config._CONFIG.values()
                  for value in params.values() for ref in _references(value)}
    known = file_macros | (referenced - {None})
    for binding in bindings:
        name = binding.split("=", 1)[0].strip()
        if "." in name or "/" in name or name in known:
            continue
        close = difflib.get_close_matches(name, sorted(known), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise GinConfigError(f"bad binding {binding.strip()!r}: no gin file defines or uses the "
                             f"macro {name}{hint}")


def _macro_value(ref: gin_config.ConfigurableReference, depth: int = 0) -> Any:
    value = gin_config._CONFIG.get((_macro_name(ref), "gin.macro"), {}).get("value", ref)
    if isinstance(value, gin_config.ConfigurableReference) and depth < 20:
        return _macro_value(value, depth + 1) if _macro_name(value) else value
    return value


def _parameter_types(selector: str) -> dict[str, Any]:
    """Annotated parameter types of a registered configurable ({} when they cannot be read)."""
    configurable = gin_config._REGISTRY.get_match(selector)
    if configurable is None:
        return {}
    target = configurable.wrapped
    try:
        hints = typing.get_type_hints(target)
        if dataclasses.is_dataclass(target):
            return {f.name: hints[f.name] for f in dataclasses.fields(target) if f.name in hints}
        if inspect.isfunction(target):
            return {n: hints[n] for n in inspect.signature(target).parameters if n in hints}
    except (NameError, TypeError, ValueError):
        pass
    return {}


def _matches(value: Any, hint: Any) -> bool:
    """Whether a gin literal fits a simple annotation; anything richer is left to the code."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if hint is type(None):
        return value is None
    if origin in (tuple, list):
        return isinstance(value, tuple | list)
    return True


def _check_types() -> None:
    """Every literal bound to a typed dataclass field or function parameter fits its type."""
    for (scope, selector), params in gin_config._CONFIG.items():
        if selector == "gin.macro":
            continue
        hints = _parameter_types(selector)
        for name, raw in params.items():
            value, via = raw, ""
            if isinstance(raw, gin_config.ConfigurableReference):
                if not _macro_name(raw):
                    continue
                value, via = _macro_value(raw), f" (through %{_macro_name(raw)})"
            if name not in hints or isinstance(value, gin_config.ConfigurableReference) or (
                    value is gin.REQUIRED):
                continue
            if not _matches(value, hints[name]):
                where = f"{scope}/{selector}" if scope else selector
                short = where.rsplit(".", 1)[-1] if "." in where else where
                raise GinConfigError(
                    f"bad binding {short}.{name} = {value!r}{via}: expected "
                    f"{_type_name(hints[name])}, got {type(value).__name__}")


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


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


def configured_model_dir(what: str = "MODEL_DIR") -> Path:
    """The parsed config's %MODEL_DIR; unset, a ValueError naming `what` and the flag to pass."""
    try:
        return as_path(gin.query_parameter("%MODEL_DIR"))
    except ValueError:
        raise ValueError(f"{what} is not set: pass --gin.MODEL_DIR=\\\"/path\\\"") from None


def write_operative_config(model_dir: Path) -> Path:
    """MODEL_DIR/config.gin: every value gin actually used, as t5x records it."""
    path = model_dir / "config.gin"
    write_text(path, gin.operative_config_str())
    return path
