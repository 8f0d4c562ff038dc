"""The one host loop: train one cell (S seeds in one compiled step), evaluate, stop, checkpoint.

Every model family and task kind runs through `run_cell`, read top to bottom: a `CellPlan` says
what the cell trains on (pool, each seed's order stream, budget) and how it is scored (evaluator
plug-ins); `TrainConfig.stop_rules` say when a seed stops; `CheckpointConfig` says when state is
saved. `compgen_jax.seq2seq` plans a benchmark cell, `compgen_jax.coverage_cells` a coverage cell;
`compgen_jax.train.cell_setup` configures either. The loop writes MODEL_DIR/config.gin (the
operative gin config), once per run of a cell, before its first step: its only writer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from analysis.atomic import write_text
from analysis.schema import STOP_COLUMNS, TRAIN_LOSS_WINDOW, write_results
from analysis.storage import remove_tree
from compgen_jax.checkpoints import (
    NO_CHECKPOINTS,
    CellCheckpointer,
    CheckpointConfig,
    check_resume,
    settings_meta,
)
from compgen_jax.configs import TrainConfig
from compgen_jax.evaluation import Evaluator, Scores
from compgen_jax.gin_utils import write_operative_config
from compgen_jax.lock import model_dir_lock
from compgen_jax.multiseed import MultiSeedTrainer, Pool
from compgen_jax.orders import EpochOrders, ManifestOrders
from compgen_jax.sharding import host_array, padded_seed_count, replicate, seed_mesh, shard_seeds
from compgen_jax.stopping import SeedStops
from compgen_jax.validation import check_lengths
from tasks import manifest as manifest_lib


@dataclasses.dataclass(frozen=True)
class CellPlan:
    """What one cell trains on and how it is scored, whatever the model family or task kind."""

    name: str
    task: str
    pool: Pool  # the train pool, on device
    lengths: Mapping[str, Mapping[str, int]]  # split -> feature -> padded length
    orders: ManifestOrders | EpochOrders  # each seed's example order
    total_steps: int
    steps_per_epoch: int
    columns: Sequence[Mapping[str, Any]]  # per seed: the cell's identity columns of every row
    evaluators: Sequence[Evaluator]
    manifests: Sequence[manifest_lib.Manifest] = ()  # saved under MODEL_DIR/manifests/

    @property
    def hashes(self) -> list[str]:
        """Per seed, the identity of its training data (manifest hash), checked on resume."""
        return [str(c["manifest_hash"]) for c in self.columns]


@dataclasses.dataclass
class LossWindow:
    """Each seed's losses of its last TRAIN_LOSS_WINDOW trained steps: their mean is the
    `train_loss` of its rows, the same whatever steps_per_call (saved with every checkpoint)."""

    losses: list[list[float]]

    def add(self, losses: np.ndarray, trained: np.ndarray) -> None:
        """Add one call's losses [S, steps]: a seed trained its first `trained[s]` steps (a
        frozen seed's later steps only rescore its frozen state)."""
        for window, seed_losses, count in zip(self.losses, losses, trained, strict=True):
            window.extend(seed_losses[:count].tolist())
            del window[:-TRAIN_LOSS_WINDOW]

    def means(self) -> np.ndarray:
        """Per seed, the mean of its window, in float64 on the host: a device reduction's order
        depends on the per-device shape, so it would differ between sharding layouts."""
        return np.array([np.mean(window) if window else np.nan for window in self.losses])


@contextlib.contextmanager
def ctrl_c_at_call_end() -> Iterator[threading.Event]:
    """While open, Ctrl-C sets the event (the loop stops at its next call end) instead of raising
    wherever the main thread is, where JAX's gc callback can swallow it; a second Ctrl-C raises
    at once. Only in the main thread, and only where Ctrl-C is not ignored."""
    event = threading.Event()
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield event
        return

    def requested(signum: int, frame: Any) -> None:
        event.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    signal.signal(signal.SIGINT, requested)
    try:
        yield event
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def run_cell(
    plan: CellPlan,
    model_dir: Path,
    trainer: MultiSeedTrainer,
    config: TrainConfig,
    checkpoint_config: CheckpointConfig = NO_CHECKPOINTS,
    progress: tqdm | None = None,
    *,
    settings: Mapping[str, str],
) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """Train the S seeds of one cell; return its results rows and per-seed stops table.

    Everything is checked before MODEL_DIR is touched: the config, the checkpoint schedule, every
    split's lengths against the model, and an existing MODEL_DIR's settings and data. The run
    resumes from the newest intact checkpoint_<step>; MODEL_DIR is locked against a second
    writer, and a MODEL_DIR this call created is removed again if training fails before its
    first checkpoint. With `shard_seeds`, seeds are spread over the devices; padding lanes
    (inactive, never reported) fill the last device. Ctrl-C raises a KeyboardInterrupt whose text
    names the step reached and the checkpoint to resume from, once any save in flight is whole.
    """
    config.validate()
    checkpoint_config.validate(config.steps_per_call)
    check_lengths(plan.task, plan.lengths, trainer.model_config)
    fresh = not model_dir.exists()
    # creates MODEL_DIR: every check above has passed
    with model_dir_lock(model_dir, exclusive=jax.process_index() == 0), \
            ctrl_c_at_call_end() as ctrl_c:
        check_resume(model_dir, settings, plan.hashes)
        try:
            rows, stops = _run_locked(plan, model_dir, trainer, config, checkpoint_config,
                                      progress, settings, ctrl_c)
        except BaseException:  # e.g. out of memory at the first step: leave no partial MODEL_DIR
            if fresh and not any(model_dir.glob("checkpoint_*")):
                remove_tree(model_dir)
            raise
    diverged = stops.loc[stops["diverged"], "seed"].tolist()
    if diverged:
        tqdm.write(f"warning: cell {plan.name}: seeds {diverged} of {config.seeds} diverged "
                   "(non-finite loss or gradients; frozen, rows flagged diverged=True)",
                   file=sys.stderr)
    return rows, stops


def _run_locked(
    plan: CellPlan, model_dir: Path, trainer: MultiSeedTrainer, config: TrainConfig,
    checkpoint_config: CheckpointConfig, progress: tqdm | None, settings: Mapping[str, str],
    ctrl_c: threading.Event,
) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    seeds = config.seeds
    mesh = seed_mesh() if config.shard_seeds else None
    lanes = padded_seed_count(len(seeds), mesh.size) if mesh else len(seeds)
    lane_seeds = seeds + [seeds[-1] + 1 + k for k in range(lanes - len(seeds))]
    state = trainer.init(jnp.asarray(lane_seeds))
    state["active"] = jnp.arange(lanes) < len(seeds)
    pool, evaluators = plan.pool, list(plan.evaluators)
    if mesh is not None:
        state, pool = shard_seeds(state, mesh), replicate(pool, mesh)
        evaluators = [e.on_mesh(mesh) for e in evaluators]

    checkpointer = CellCheckpointer(model_dir, checkpoint_config)
    start, rows = 0, []
    stops = SeedStops.fresh(len(config.stop_rules), len(seeds))
    window = LossWindow([[] for _ in seeds])
    restored = checkpointer.restore(state)
    if restored is not None:
        start, state, meta = restored
        if "train_losses" not in meta:
            raise ValueError(f"{model_dir}/checkpoint_{start} was written by an older compgen-jax "
                             "(no train-loss window); use a fresh MODEL_DIR")
        rows, stops = meta["rows"], SeedStops.from_meta(meta)
        window = LossWindow(meta["train_losses"])
        tqdm.write(f"{plan.name}: resumed from checkpoint_{start} (step {start} of "
                   f"{plan.total_steps})", file=sys.stderr)  # a retried cell says where from
        if progress is not None:
            progress.update(start)
    for s, m in zip(seeds, plan.manifests, strict=False):  # once a checkpoint has restored
        manifest_lib.save(m, model_dir / "manifests" / f"seed_{s}.json")
    writer = metric_writer(model_dir, config.tensorboard and jax.process_index() == 0)
    if jax.process_index() == 0:  # the run's config before its first step, as t5x records it
        config_text = write_operative_config(model_dir).read_text()
        writer.write_texts(start, {"config": f"```\n{config_text}\n```"})
    eval_period = config.eval_period or plan.total_steps
    positions_per_call = config.steps_per_call * trainer.batch_size
    orders, done = None, start
    reached = start
    try:
        for step in config.call_ends(start, plan.total_steps):
            num_steps, done = step - done, step
            steps_before = host_array(state["step"])[:len(seeds)].copy()  # the state is donated
            if orders is None or not plan.orders.fixed:
                positions = host_array(state["step"]).astype(np.int64) * trainer.batch_size
                orders = jnp.asarray(plan.orders.window(lane_seeds, positions, positions_per_call))
                orders = orders if mesh is None else shard_seeds(orders, mesh)
            state, losses = trainer.train(state, orders, pool, num_steps)
            reached = step
            window.add(host_array(losses)[:len(seeds)],
                       host_array(state["step"])[:len(seeds)] - steps_before)
            train_loss = window.means()
            writer.write_scalars(step, {f"seed_{s}/train_loss": float(v)
                                        for s, v in zip(seeds, train_loss, strict=True)})
            if progress is not None:
                progress.update(num_steps)
                finite = train_loss[np.isfinite(train_loss)]  # none: every seed diverged
                progress.set_postfix_str(f"{plan.name} loss/seed min {finite.min():.3f} max "
                                         f"{finite.max():.3f}" if finite.size else
                                         f"{plan.name} no finite loss")
            live = host_array(state["active"] & ~state["diverged"])[:len(seeds)]
            last = step == plan.total_steps or not live.any()
            if step % eval_period == 0 or last:
                seed_steps = host_array(state["step"])[:len(seeds)]
                diverged = host_array(state["diverged"])[:len(seeds)]
                epoch = seed_steps // plan.steps_per_epoch
                scores = _evaluate(evaluators, trainer, state["params"], seeds, step, model_dir)
                active = host_array(state["active"]).copy()
                active[:len(seeds)] = stops.update(config.stop_rules, scores.scores, epoch,
                                                   seed_steps, active[:len(seeds)], diverged)
                state["active"] = jax.device_put(active, state["active"].sharding)
                for name, score in scores.scores.items():
                    writer.write_scalars(step, {f"seed_{s}/{name}/{scores.metrics[name]}": float(v)
                                                for s, v in zip(seeds, score, strict=True)})
                    rows += [{
                        **plan.columns[i], "split": name, "seed": seed, "step": step,
                        "exact_match": float(score[i]), "n_examples": scores.sizes[name],
                        "train_loss": float(train_loss[i]), "diverged": bool(diverged[i]),
                        "seed_steps": int(seed_steps[i]), "metric": scores.metrics[name],
                        "epoch": int(epoch[i]), "stop_reason": str(stops.reason[i]),
                    } for i, seed in enumerate(seeds)]
                last = last or not (active & ~host_array(state["diverged"])).any()
            if checkpoint_config.due(step) or last:
                # copies: orbax writes the metadata in the background, while the loop goes on
                checkpointer.save(step, state, {"seeds": seeds, "manifest_hashes": plan.hashes,
                                                "cell": plan.name, "step": step, "rows": list(rows),
                                                "train_losses": [list(w) for w in window.losses],
                                                **stops.meta(), **settings_meta(settings)})
            if last:
                break
            if ctrl_c.is_set():
                raise KeyboardInterrupt
    except KeyboardInterrupt:  # Ctrl-C: one line saying where to resume (cli.main prints it)
        checkpointer.close()  # a save in flight finishes: every checkpoint on disk is whole
        newest = checkpointer.newest()
        raise KeyboardInterrupt(
            f"interrupted at step {reached}, " + (f"resumable from checkpoint_{newest}"
                                                  if newest is not None else
                                                  "before its first checkpoint (nothing to resume)")
        ) from None
    checkpointer.close()
    writer.close()
    for evaluator in evaluators:
        evaluator.finish(model_dir)
    write_results(rows, model_dir / "results.csv")
    stop_step, reason = stops.final(host_array(state["step"])[:len(seeds)])
    table = pd.DataFrame({"cell": plan.name, "seed": seeds, "stop_step": stop_step,
                          "stop_reason": reason,
                          "diverged": host_array(state["diverged"])[:len(seeds)]},
                         columns=list(STOP_COLUMNS))
    write_text(model_dir / "stops.csv", table.to_csv(index=False))
    return rows, table


class NoMetrics:
    """The metric writer of a run without TensorBoard files: results.csv holds every number, and
    neither clu nor TensorFlow need be installed (the accelerator image has neither)."""

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        """Nothing to write: the scalars reach results.csv through the rows."""

    def write_texts(self, step: int, texts: Mapping[str, str]) -> None:
        """Nothing to write: the operative config is MODEL_DIR/config.gin."""

    def close(self) -> None:
        """Nothing is open."""


def metric_writer(model_dir: Path, tensorboard: bool) -> Any:
    """clu's TensorBoard writer under MODEL_DIR/tensorboard, or `NoMetrics` when off (TrainConfig
    .tensorboard = False, or not the first process); clu imports TensorFlow, only when on."""
    if not tensorboard:
        return NoMetrics()
    try:
        from clu import metric_writers
    except ImportError as err:
        raise ValueError(f"TrainConfig.tensorboard=True needs clu and TensorFlow ({err}); bind "
                         "TrainConfig.tensorboard = False where they are not installed") from None
    return metric_writers.create_default_writer(str(model_dir / "tensorboard"))


def _evaluate(evaluators: Sequence[Evaluator], trainer: MultiSeedTrainer, params: Any,
              seeds: Sequence[int], step: int, model_dir: Path) -> Scores:
    """Every evaluator's scores of one eval step, merged (names are unique across evaluators)."""
    merged = Scores({}, {}, {})
    for evaluator in evaluators:
        result = evaluator(trainer, params, seeds, step, model_dir)
        merged.scores.update(result.scores)
        merged.sizes.update(result.sizes)
        merged.metrics.update(result.metrics)
    return merged
