"""The run configs (gin-configurable): what a cell trains on, how it trains, evaluates and stops,
and how processes join; below the host loop, which reads them, and the designs, which hold them."""

from __future__ import annotations

import dataclasses

import gin
import jax

from compgen_jax.stopping import StopRule
from tasks.selection import ManifestSpec


@gin.configurable
@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How a cell trains, evaluates and stops: seeds, budget, batch, eval cadence, stop rules."""

    num_seeds: int = 5
    total_steps: int = 1000
    batch_size: int = 64
    steps_per_call: int = 50
    length_buckets: int = 1  # call lengths per pool (multiseed.bucket_lengths); 1 = full padding
    eval_period: int = 0
    eval_splits: tuple[str, ...] = ("test",)
    max_eval_examples: int = 0
    stratify_eval: bool = False  # eval subsets spread evenly over a split's categories
    eval_batch_size: int = 512
    random_seed: int = 0
    shard_seeds: bool = False
    stop_rules: tuple[StopRule, ...] = ()
    save_predictions: str = "final"
    tensorboard: bool = True

    def validate(self) -> None:
        if self.num_seeds < 1:
            raise ValueError(f"TrainConfig.num_seeds={self.num_seeds} must be >= 1")
        if self.total_steps < 1:
            raise ValueError(f"TrainConfig.total_steps={self.total_steps} (TRAIN_STEPS) must be "
                             ">= 1")
        if self.steps_per_call < 1:
            raise ValueError(f"TrainConfig.steps_per_call={self.steps_per_call} must be >= 1")
        if self.length_buckets < 1:
            raise ValueError(f"TrainConfig.length_buckets={self.length_buckets} must be >= 1")
        if self.eval_period < 0 or self.eval_period % self.steps_per_call:
            raise ValueError(
                f"TrainConfig.eval_period={self.eval_period} must be 0 (end only) or a multiple "
                f"of TrainConfig.steps_per_call={self.steps_per_call}"
            )
        if self.save_predictions not in ("none", "final", "all"):
            raise ValueError(f"TrainConfig.save_predictions={self.save_predictions!r}: expected "
                             "'none', 'final' or 'all'")

    @property
    def seeds(self) -> list[int]:
        return list(range(self.random_seed, self.random_seed + self.num_seeds))

    def call_ends(self, start: int, total: int | None = None) -> list[int]:
        """The step at which each compiled call ends, resuming after `start`, up to `total`
        (default total_steps).

        Calls end every `steps_per_call` steps; a budget that is not a multiple ends with one
        shorter call, so checkpoints (taken at call ends) always resume onto the same schedule.
        """
        total = self.total_steps if total is None else total
        ends = list(range(start + self.steps_per_call, total + 1, self.steps_per_call))
        if start < total and (not ends or ends[-1] != total):
            ends.append(total)
        return ends


@gin.configurable
@dataclasses.dataclass(frozen=True)
class DistributedConfig:
    """jax.distributed for multi-process cells: Cloud TPU metadata, or an explicit coordinator.

    With `enabled`, every process runs the same command and the cell's seeds are sharded over the
    devices of all processes (TrainConfig.shard_seeds). Empty address / None fields are detected
    (Cloud TPU); `cpu_collectives='gloo'` lets CPU processes gather results (tests, debugging).
    """

    enabled: bool = False
    coordinator_address: str = ""
    num_processes: int | None = None
    process_id: int | None = None
    cpu_collectives: str = ""

    def initialize(self) -> None:
        """Join the other processes (before any JAX computation); a no-op unless enabled."""
        if not self.enabled:
            return
        if self.cpu_collectives:
            jax.config.update("jax_cpu_collectives_implementation", self.cpu_collectives)
        jax.distributed.initialize(self.coordinator_address or None, self.num_processes,
                                   self.process_id)


@gin.configurable
@dataclasses.dataclass(frozen=True)
class CellConfig:
    """One design point: which pool, and how its manifests are chosen (label: its name, if set)."""

    task: str = "scan_simple"
    train_split: str = "train"
    manifest: ManifestSpec = ManifestSpec()
    label: str = ""

    @property
    def pool(self) -> str:
        return f"{self.task}:{self.train_split}"

    @property
    def name(self) -> str:
        return self.label or f"{self.task}-{self.manifest.strategy}-N{self.manifest.n_unique}"
