"""Orbax checkpoints of a cell's stacked state: MODEL_DIR/checkpoint_<step>/ (t5x layout)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import gin
import jax
import orbax.checkpoint as ocp

from compgen_jax.multiseed import State


@gin.configurable
@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
    """t5x SaveCheckpointConfig essentials: period in steps (0: final state only), how many kept
    (None: all)."""

    period: int = 0
    keep: int | None = 2
    async_save: bool = True


def _saveable(state: State) -> State:
    """Typed PRNG keys are stored as their uint32 key data."""
    return {**state, "key": jax.random.key_data(state["key"])}


class CellCheckpointer:
    """Save and restore (stacked state, JSON metadata) pairs of one cell's run."""

    def __init__(self, model_dir: Path, config: CheckpointConfig):
        self.config = config
        self.manager = ocp.CheckpointManager(
            Path(model_dir).absolute(),
            options=ocp.CheckpointManagerOptions(
                max_to_keep=config.keep, step_prefix="checkpoint",
                enable_async_checkpointing=config.async_save),
        )

    def due(self, step: int) -> bool:
        return self.config.period > 0 and step % self.config.period == 0

    def save(self, step: int, state: State, meta: dict[str, Any]) -> None:
        """Asynchronous save; the host copy of the state is taken before returning."""
        self.manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(_saveable(state)), meta=ocp.args.JsonSave(meta)))

    def restore(self, like: State, step: int | None = None
                ) -> tuple[int, State, dict[str, Any]] | None:
        """(step, state, meta) of checkpoint_<step> (default: the newest), or None if absent."""
        step = self.manager.latest_step() if step is None else step
        if step is None or step not in self.manager.all_steps():
            return None
        target = jax.tree.map(
            lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding), _saveable(like))
        out = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()))
        state = {**out["state"], "key": jax.random.wrap_key_data(out["state"]["key"])}
        return step, state, out["meta"]

    def close(self) -> None:
        """Wait for pending saves and release the manager."""
        self.manager.wait_until_finished()
        self.manager.close()


NO_CHECKPOINTS = CheckpointConfig()  # the default: only the final state is saved
ALL_CHECKPOINTS = CheckpointConfig(keep=None)  # callers choose the steps; every one is kept
