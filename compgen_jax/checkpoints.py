"""Orbax checkpoints of a cell's stacked state: MODEL_DIR/checkpoint_<step>/ (t5x layout).

Every checkpoint records the settings that define the run's results (`run_settings`) and their
hash; a rerun resumes only when its settings are the same (`check_resume`). A checkpoint that
cannot be read is moved aside as corrupt_checkpoint_<step> with a warning, and the run resumes
from the newest intact one. A save that finds the disk full is one line (MODEL_DIR, its free
space, the checkpoint to resume from), its partial directory removed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import itertools
import json
import logging
import os
import shutil
import sys
import threading
import traceback
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import gin
import jax
import orbax.checkpoint as ocp
import tensorstore as ts
from tqdm.auto import tqdm

from compgen_jax.multiseed import State

# Settings that only choose which outputs are written, never a number in them: a rerun may change
# them and still resume. Everything else in run_settings is part of the run's identity, including
# TrainConfig.total_steps: it fixes the exposure recorded in every row and the final eval step, so
# a longer budget is another cell (a fresh MODEL_DIR). MODEL_DIR, CheckpointConfig and
# DistributedConfig are not settings of the results at all (where and how often state is saved,
# how processes meet) and are not recorded.
OUTPUT_ONLY = frozenset({"TrainConfig.save_predictions", "TrainConfig.tensorboard"})
CORRUPT_PREFIX = "corrupt_"
# Files orbax writes into every finished checkpoint_<step>/ of a cell (two items: state, meta).
ORBAX_FILES = ("_CHECKPOINT_METADATA", "state/_METADATA", "meta/metadata")


@gin.configurable
@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
    """When state is saved (besides the run's last step), how many kept (None: all), async.

    `period`, one rule for every cadence: an int saves every `period` steps (0: the final state
    only); a tuple of (until_step, period) pairs saves every `period` steps up to `until_step`,
    the first pair that covers the step deciding (until_step 0: no end), e.g. upstream's
    coverage cadence ((5000, 250), (0, 2500)). Periods are multiples of steps_per_call, since
    state exists only at call ends.
    """

    period: int | tuple[tuple[int, int], ...] = 0
    keep: int | None = 2
    async_save: bool = True

    @property
    def schedule(self) -> tuple[tuple[int, int], ...]:
        """(until_step, period) pairs; until_step 0 means no end."""
        if isinstance(self.period, int):
            return ((0, self.period),)
        return tuple((int(until), int(period)) for until, period in self.period)

    def validate(self, steps_per_call: int) -> None:
        for _, period in self.schedule:
            if period < 0 or period % steps_per_call:
                raise ValueError(f"CheckpointConfig.period={self.period!r}: period {period} "
                                 f"must be 0 (off) or a multiple of TrainConfig.steps_per_call="
                                 f"{steps_per_call}")

    def due(self, step: int) -> bool:
        for until, period in self.schedule:
            if not until or step <= until:
                return period > 0 and step % period == 0
        return False


def run_settings(*configs: Any) -> dict[str, str]:
    """`Class.field -> repr(value)` of every field of the config dataclasses (nested ones
    flattened under their own class name, as gin names them), OUTPUT_ONLY left out; a config
    that is None (not known, e.g. a hand-built trainer's optimizer) adds nothing."""
    settings: dict[str, str] = {}
    for config in filter(None, configs):
        for field in dataclasses.fields(config):
            value = getattr(config, field.name)
            if dataclasses.is_dataclass(value):
                settings.update(run_settings(value))
            elif (name := f"{type(config).__name__}.{field.name}") not in OUTPUT_ONLY:
                settings[name] = repr(value)
    return settings


def settings_hash(settings: Mapping[str, str]) -> str:
    """sha256 of the settings (sorted JSON): the run identity stored with every checkpoint."""
    return hashlib.sha256(json.dumps(dict(settings), sort_keys=True).encode()).hexdigest()


def settings_meta(settings: Mapping[str, str]) -> dict[str, Any]:
    """The checkpoint metadata entries that record a run's settings."""
    return {"config": dict(settings), "config_hash": settings_hash(settings)}


def _saveable(state: State) -> State:
    """Typed PRNG keys are stored as their uint32 key data."""
    return {**state, "key": jax.random.key_data(state["key"])}


def _reason(err: BaseException) -> str:
    """One short line: the error's type and text (tensorstore's spec dump cut off)."""
    text = " ".join(str(err).split()).split(" See full TensorStore details")[0]
    return f"{type(err).__name__}: {text[:200]}" if text else type(err).__name__


_ARRAY_DRIVERS = {"/.zarray": "zarr", "/zarr.json": "zarr3"}  # array metadata key -> driver


def read_every_array(state_dir: Path) -> None:
    """Read each array of an orbax OCDBT state directory, one at a time; raise if one fails.

    orbax reads arrays concurrently and, when one fails, closes its event loop with the other
    reads in flight: their late callbacks print tracebacks. Reading sequentially first turns a
    damaged file into one exception and nothing else printed (the cost: a second read on resume).
    """
    base = {"driver": "ocdbt", "base": f"file://{Path(state_dir).absolute()}"}
    for key in ts.KvStore.open(base).result().list().result():
        name = key.decode()
        for suffix, driver in _ARRAY_DRIVERS.items():
            if name.endswith(suffix):
                spec = {"driver": driver, "kvstore": {**base, "path": name[:-len(suffix)] + "/"}}
                ts.open(spec).result().read().result()


_DISK_FULL = tuple(os.strerror(code) for code in (errno.ENOSPC, errno.EDQUOT))


def disk_full(err: BaseException | None) -> bool:
    """Whether `err`, or an error it was raised from, is a full disk or quota (ENOSPC, EDQUOT:
    an OSError, or tensorstore's ValueError that quotes the OS error's text)."""
    while err is not None:
        if (isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)
                or any(text in str(err) for text in _DISK_FULL)):
            return True
        err = err.__cause__ or err.__context__
    return False


class _DiskFullRecords(logging.Filter):
    """Holds back orbax's log records of a write that found the disk full (a traceback from
    each of its save threads): CellCheckpointer reports it as one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        err = record.exc_info[1] if record.exc_info else None
        return not (disk_full(err) or any(text in record.getMessage() for text in _DISK_FULL))


_ORBAX_LOG_FILTER = _DiskFullRecords()


def _is_abandoned_write_callback(value: BaseException | None, tb: TracebackType | None) -> bool:
    """Whether `value` is a tensorstore write finishing after orbax closed the event loop of a
    save it gave up on (a failed save: the failure itself is raised by `save`/`close`)."""
    frames = [frame.name for frame in traceback.extract_tb(tb)]
    return (isinstance(value, RuntimeError) and str(value) == "Event loop is closed"
            and "call_soon_threadsafe" in frames)


def _hold_back_abandoned_write_callbacks() -> None:
    """tensorstore reports each such late callback through sys.unraisablehook (a traceback per
    array chunk of the failed save); hold those back and pass everything else on."""
    previous = sys.unraisablehook
    if getattr(previous, "holds_back_abandoned_writes", False):
        return

    def hook(unraisable: Any) -> None:
        if not _is_abandoned_write_callback(unraisable.exc_value, unraisable.exc_traceback):
            previous(unraisable)

    hook.holds_back_abandoned_writes = True  # type: ignore[attr-defined]
    sys.unraisablehook = hook


def _size(num_bytes: int) -> str:
    """A byte count for people: 0 B, 512 B, 3.2 MiB, 41.0 GiB."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if num_bytes >= scale:
            return f"{num_bytes / scale:.1f} {unit}"
    return f"{num_bytes} B"


class CellCheckpointer:
    """Save and restore (stacked state, JSON metadata) pairs of one cell's run."""

    def __init__(self, model_dir: Path, config: CheckpointConfig):
        self.model_dir = Path(model_dir).absolute()
        self.config = config
        self.manager = ocp.CheckpointManager(
            self.model_dir,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=config.keep, step_prefix="checkpoint",
                enable_async_checkpointing=config.async_save),
        )
        for logger in ("absl", "asyncio"):  # orbax's threads log through absl; its abandoned
            logging.getLogger(logger).addFilter(_ORBAX_LOG_FILTER)  # tasks through asyncio
        _hold_back_abandoned_write_callbacks()

    def save(self, step: int, state: State, meta: dict[str, Any]) -> None:
        """Asynchronous save; the host copy of the state is taken before returning (an earlier
        save that failed on a full disk is raised here, see `_disk_full_is_one_line`)."""
        with self._disk_full_is_one_line():
            self.manager.save(step, args=ocp.args.Composite(
                state=ocp.args.StandardSave(_saveable(state)), meta=ocp.args.JsonSave(meta)))

    def newest(self) -> int | None:
        """The newest finished checkpoint_<step> on disk (orbax renames a checkpoint to that name
        only once it is whole), whatever the manager's state after a failure; None if none."""
        steps = [p.name.removeprefix("checkpoint_") for p in self.model_dir.glob("checkpoint_*")]
        return max((int(step) for step in steps if step.isdigit()), default=None)

    @contextlib.contextmanager
    def _disk_full_is_one_line(self) -> Iterator[None]:
        """A checkpoint write that found the disk full becomes one ValueError naming MODEL_DIR,
        its free space and the checkpoint to resume from; the partial checkpoint is removed, the
        finished ones are left as they are (orbax removes old ones only after a save finishes).
        """
        try:
            yield
        except Exception as err:  # orbax raises tensorstore's ValueError, or an OSError
            if not disk_full(err):
                raise
            # orbax's other writes of the failed save run on: wait for them, so that none
            # recreates a directory once it is removed (each raises its own failure again)
            threads = [t for t in threading.enumerate() if type(t).__module__.startswith("orbax.")]
            for wait in (self.manager.close, *(t.join for t in threads)):
                with contextlib.suppress(Exception):
                    wait()
            partial = sorted(p for p in self.model_dir.iterdir()
                             if ocp.path.step.TMP_DIR_SUFFIX in p.name)
            for path in partial:
                shutil.rmtree(path, ignore_errors=True)
            newest = self.newest()
            names = ", ".join(p.name.split(ocp.path.step.TMP_DIR_SUFFIX)[0] for p in partial)
            raise ValueError(
                f"disk full: {names or 'a checkpoint'} could not be written to {self.model_dir} "
                f"({_size(shutil.disk_usage(self.model_dir).free)} free); "
                + (f"checkpoint_{newest} is intact: free space and rerun to resume from it"
                   if newest is not None else "no checkpoint was saved: free space and rerun")
            ) from None

    def _restore(self, like: State, step: int) -> tuple[int, State, dict[str, Any]]:
        path = self.model_dir / f"checkpoint_{step}"
        missing = [f for f in ORBAX_FILES if not (path / f).is_file()]
        if missing:  # orbax's own error for these is a pytree mismatch that names neither
            raise FileNotFoundError(f"missing {', '.join(missing)}")
        read_every_array(path / "state")
        target = jax.tree.map(
            lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding), _saveable(like))
        out = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()))
        state = {**out["state"], "key": jax.random.wrap_key_data(out["state"]["key"])}
        return step, state, out["meta"]

    def restore(self, like: State, step: int | None = None
                ) -> tuple[int, State, dict[str, Any]] | None:
        """(step, state, meta) of checkpoint_<step>, or None if there is none.

        Without a step: the newest intact checkpoint; each newer one that cannot be read is
        moved aside (corrupt_checkpoint_<step>) with a warning, and none intact is a ValueError.
        A given step that cannot be read is a ValueError naming it.
        """
        if step is not None:
            if step not in self.manager.all_steps():
                return None
            try:
                return self._restore(like, step)
            except Exception as err:  # orbax/tensorstore raise many types for a damaged file
                raise ValueError(f"{self.model_dir}/checkpoint_{step} cannot be read "
                                 f"({_reason(err)})") from None
        bad: list[tuple[int, str]] = []
        for candidate in sorted(self.manager.all_steps(), reverse=True):
            try:
                restored = self._restore(like, candidate)
            except Exception as err:  # as above: any failure to read it means it is damaged
                bad.append((candidate, _reason(err)))
                continue
            if bad:
                self._set_aside(bad, candidate)
            return restored
        if bad:
            raise ValueError(f"{self.model_dir}: no intact checkpoint to resume from ("
                             + "; ".join(f"checkpoint_{s}: {why}" for s, why in bad)
                             + "); use a fresh MODEL_DIR")
        return None

    def _set_aside(self, bad: list[tuple[int, str]], resumed: int) -> None:
        """Move damaged checkpoints out of orbax's sight (corrupt_checkpoint_<step>), warn."""
        for step, why in bad:
            path = self.model_dir / f"checkpoint_{step}"
            aside = path.with_name(CORRUPT_PREFIX + path.name)
            for k in itertools.count(1):  # a step damaged again keeps the earlier copy too
                if not aside.exists():
                    break
                aside = path.with_name(f"{CORRUPT_PREFIX}{path.name}.{k}")
            if path.exists():
                path.rename(aside)
            tqdm.write(f"warning: {path} is corrupt ({why}); moved to {aside.name}, resuming "
                       f"from checkpoint_{resumed}", file=sys.stderr)  # clear of progress bars
        self.manager.reload()

    def close(self) -> None:
        """Wait for pending saves (a full disk: one ValueError) and release the manager."""
        with self._disk_full_is_one_line():
            self.manager.wait_until_finished()
        self.manager.close()


def newest_meta(model_dir: Path) -> tuple[int, dict[str, Any]] | None:
    """(step, metadata) of the newest checkpoint whose metadata reads; None if there is none.

    Writes nothing, so it can run before any validation has passed.
    """
    if not Path(model_dir).is_dir():
        return None
    manager = ocp.CheckpointManager(
        Path(model_dir).absolute(),
        options=ocp.CheckpointManagerOptions(step_prefix="checkpoint", create=False,
                                             max_to_keep=None, enable_async_checkpointing=False))
    try:
        for step in sorted(manager.all_steps(), reverse=True):
            try:
                out = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
            except Exception:  # a damaged one: restore() reports it when the run resumes
                continue
            if isinstance(out["meta"], dict):
                return step, out["meta"]
        return None
    finally:
        manager.close()


def check_resume(model_dir: Path, settings: Mapping[str, str],
                 manifest_hashes: Sequence[str] | None = None) -> None:
    """Raise ValueError unless MODEL_DIR's checkpoints were written by a run with these settings
    (and, when given, these manifests): one line listing every differing setting."""
    found = newest_meta(model_dir)
    if found is None:
        return
    step, meta = found
    where = f"MODEL_DIR {model_dir} holds checkpoint_{step}"
    if "config" not in meta:
        raise ValueError(f"{where} without recorded settings (an older compgen-jax); it cannot "
                         "be checked against this run: use a fresh MODEL_DIR")
    recorded = meta["config"]
    if settings_hash(recorded) != settings_hash(settings):
        changed = [f"{k}: {recorded.get(k, '<unset>')} -> {settings.get(k, '<unset>')}"
                   for k in sorted(set(recorded) | set(settings))
                   if recorded.get(k) != settings.get(k)]
        raise ValueError(f"{where} of a run with other settings ({'; '.join(changed)}); rerun "
                         "with the checkpoint's settings or use a fresh MODEL_DIR")
    if manifest_hashes is not None and list(meta["manifest_hashes"]) != list(manifest_hashes):
        raise ValueError(f"{where} of other manifests than this config builds (the data "
                         "changed?); use a fresh MODEL_DIR")


NO_CHECKPOINTS = CheckpointConfig()  # the default: only the final state is saved
ALL_CHECKPOINTS = CheckpointConfig(keep=None)  # callers choose the steps; every one is kept
