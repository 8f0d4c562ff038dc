"""COGS train-step time: the train pool padded to every split's longest example vs to its own.

Until per-split padding, `load_task_data` padded the train pool to the longest input / target of
any split (COGS gen: 62 / 481 tokens) although the train split needs only 23 / 154. Both pools
are timed side by side in one run: the tiny model (max_len raised to 512 so both fit), 2 seeds,
batch 32, the same compiled trainer and data order.

Run: COMPGEN_DATA_DIR=../shared/data python benchmarks/padding_step_time.py [--calls 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np

from compgen_jax.models.transformer import TransformerConfig, matrices_only
from compgen_jax.multiseed import MultiSeedTrainer, Pool
from compgen_jax.optim import OptimizerConfig, make_optimizer
from compgen_jax.task_data import split_arrays

SEEDS, BATCH, STEPS_PER_CALL = 2, 32, 5
TINY = TransformerConfig(emb_dim=64, num_heads=4, num_encoder_layers=2, num_decoder_layers=2,
                         mlp_dim=128, max_len=512)


def seconds_per_step(trainer: MultiSeedTrainer, pool: Pool, calls: int) -> float:
    """Fastest call of `calls` (after one compiling call), per train step."""
    state = trainer.init(jnp.arange(SEEDS))
    n = int(pool["inputs"].shape[0])
    orders = jnp.asarray(np.stack([np.random.default_rng(s).permutation(n)[:BATCH * 64]
                                   for s in range(SEEDS)]), jnp.int32)
    state, losses = trainer.train(state, orders, pool)
    jax.block_until_ready(losses)
    best = float("inf")
    for _ in range(calls):
        start = time.perf_counter()
        state, losses = trainer.train(state, orders, pool)
        jax.block_until_ready(losses)
        best = min(best, time.perf_counter() - start)
    return best / STEPS_PER_CALL


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3, help="timed calls of 5 steps per pool")
    args = parser.parse_args()
    from tasks import registry

    arrays = split_arrays("cogs", "train", ["gen"])
    common = {f: max(a[f].shape[1] for a in arrays.values()) for f in ("inputs", "targets")}
    own = {f: jnp.asarray(arrays["train"][f]) for f in ("inputs", "targets")}
    padded = {f: jnp.pad(own[f], ((0, 0), (0, common[f] - own[f].shape[1]))) for f in own}
    trainer = MultiSeedTrainer(
        dataclasses.replace(TINY, vocab_size=registry.get_vocabulary("cogs").vocab_size),
        make_optimizer(OptimizerConfig(), matrices_only), BATCH, STEPS_PER_CALL)
    rows = [("train split's own (per-split)", own), ("longest of any split (before)", padded)]
    times = {}
    print(f"COGS train pool, tiny model, {SEEDS} seeds x batch {BATCH}")
    for label, pool in rows:
        times[label] = seconds_per_step(trainer, pool, args.calls)
        shape = f"{pool['inputs'].shape[1]} / {pool['targets'].shape[1]}"
        print(f"  padded to {label:32s} inputs / targets {shape:9s} {times[label]:.3f} s/step")
    before, after = times[rows[1][0]], times[rows[0][0]]
    print(f"ratio (before / per-split): {before / after:.1f}x")


if __name__ == "__main__":
    main()
