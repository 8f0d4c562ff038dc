"""COGS throughput: length-bucketed train steps vs full padding, early-stop vs full-length decode.

Measured side by side in one run on the real COGS pools (COMPGEN_DATA_DIR):
1. Train s/step (and the first, compiling call) of the same trainer, seeds, batch and data order
   with `length_buckets` 1 (every step padded to the train pool's longest target, 154 tokens)
   and each bucket count of --buckets (the first call compiles every bucket); every call draws
   fresh batches, so the mean over calls covers the mix of bucket lengths a run meets.
2. Decode time of a subset of COGS gen (targets pad to the subset's longest): the shipped
   early-stop decode (MultiSeedTrainer.decode: DECODE_CHUNK positions per compiled call, stopping
   once every row of the eval batch has ended) vs the full-length scan (`full_decode`, the decode
   before early stopping), with the predictions of both compared. The model is the last timed
   trainer's, trained on to --train-steps steps (a random model never emits EOS, so nothing
   would stop early).

Run: COMPGEN_DATA_DIR=../shared/data python benchmarks/bucketing_decode.py [--buckets 4 8 16]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from compgen_jax.models.transformer import EOS_ID, TransformerConfig, matrices_only
from compgen_jax.multiseed import MultiSeedTrainer, Pool, State, bucket_lengths
from compgen_jax.optim import OptimizerConfig, make_optimizer
from compgen_jax.task_data import split_arrays

TINY = TransformerConfig(emb_dim=64, num_heads=4, num_encoder_layers=2, num_decoder_layers=2,
                         mlp_dim=256, max_len=512)


def make_trainer(vocab_size: int, batch: int, steps_per_call: int,
                 length_buckets: int) -> MultiSeedTrainer:
    """The tiny model's trainer (AdamW 3e-3 constant) with `length_buckets` step lengths."""
    optimizer = make_optimizer(OptimizerConfig(learning_rate=3e-3, decay="constant",
                                               warmup_steps=0), matrices_only)
    return MultiSeedTrainer(dataclasses.replace(TINY, vocab_size=vocab_size), optimizer, batch,
                            steps_per_call, length_buckets=length_buckets)


def train_timing(trainer: MultiSeedTrainer, pool: Pool, orders: jax.Array,
                 calls: int) -> tuple[float, float, State]:
    """(seconds of the first, compiling call; mean seconds per step of the next `calls`; the
    trained state)."""
    state = trainer.init(jnp.arange(orders.shape[0]))
    start = time.perf_counter()
    state, losses = trainer.train(state, orders, pool)
    jax.block_until_ready(losses)
    first = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(calls):
        state, losses = trainer.train(state, orders, pool)
    jax.block_until_ready(losses)
    return first, (time.perf_counter() - start) / (calls * trainer.steps_per_call), state


def decode_seconds(fn: Callable[..., jax.Array], params, pool: Pool,
                   batch: int) -> tuple[float, np.ndarray]:
    """(seconds to decode the pool in chunks of `batch` after one compiling chunk, tokens)."""
    n, max_len = pool["targets"].shape
    jax.block_until_ready(fn(params, pool["inputs"][:batch], max_len))
    start = time.perf_counter()
    tokens = [np.asarray(fn(params, pool["inputs"][i:i + batch], max_len))
              for i in range(0, n, batch)]
    return time.perf_counter() - start, np.concatenate(tokens, axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buckets", type=int, nargs="+", default=[8],
                        help="bucket counts to time against full padding (1)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps-per-call", type=int, default=10)
    parser.add_argument("--calls", type=int, default=3, help="timed calls per trainer")
    parser.add_argument("--train-steps", type=int, default=300,
                        help="steps the decoded model is trained (the last timed trainer's "
                        "state, trained on to here)")
    parser.add_argument("--gen-examples", type=int, default=1000)
    parser.add_argument("--eval-batch", type=int, default=500)
    args = parser.parse_args()
    from tasks import registry

    vocab = registry.get_vocabulary("cogs").vocab_size
    arrays = split_arrays("cogs", "train", ["gen"], args.gen_examples)
    train = {f: jnp.asarray(arrays["train"][f]) for f in ("inputs", "targets")}
    gen = {f: jnp.asarray(arrays["gen"][f]) for f in ("inputs", "targets")}
    n = train["inputs"].shape[0]
    rng = np.random.default_rng(0)
    orders = jnp.asarray(np.stack([rng.permutation(n) for _ in range(args.seeds)]), jnp.int32)
    print(f"{platform.node()} {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, jax {jax.__version__} "
          f"{jax.devices()[0].platform}")
    print(f"COGS train ({n} examples, inputs / targets pad to {train['inputs'].shape[1]} / "
          f"{train['targets'].shape[1]}), tiny model, {args.seeds} seeds x batch {args.batch}, "
          f"{args.steps_per_call} steps per call, mean of {args.calls} calls")
    times = {}
    for count in [1, *args.buckets]:
        trainer = make_trainer(vocab, args.batch, args.steps_per_call, count)
        first, per_step, state = train_timing(trainer, train, orders, args.calls)
        times[count] = per_step
        lengths = bucket_lengths(train["targets"].shape[1], count)
        print(f"  length_buckets {count:2d} {str(lengths):45s} first call {first:6.1f} s  "
              f"{per_step:.4f} s/step  full/bucketed {times[1] / per_step:.2f}x")

    trained = (1 + args.calls) * args.steps_per_call
    for _ in range(max(0, -(-(args.train_steps - trained) // args.steps_per_call))):
        state, _ = trainer.train(state, orders, train)
    accuracy = trainer.score(state["params"], {f: a[:256] for f, a in train.items()})
    print(f"COGS gen subset ({gen['inputs'].shape[0]} examples, targets pad to "
          f"{gen['targets'].shape[1]}), model trained "
          f"{int(state['step'][0])} steps (teacher-forced train score/seed "
          f"{np.asarray(accuracy).mean(1).round(3).tolist()}), eval batch "
          f"{args.eval_batch}")
    full_s, full = decode_seconds(trainer.full_decode, state["params"], gen,
                                  args.eval_batch)
    early_s, early = decode_seconds(trainer.decode, state["params"], gen, args.eval_batch)
    ends = np.where((early == EOS_ID).any(-1), (early == EOS_ID).argmax(-1) + 1, -1)
    print(f"  full-length scan  {full_s:7.2f} s")
    print(f"  early stop        {early_s:7.2f} s  full/early {full_s / early_s:.2f}x; rows "
          f"that end: {(ends > 0).mean():.1%}, longest ending row {ends.max()} tokens; "
          f"predictions identical: {bool(np.array_equal(full, early))}")


if __name__ == "__main__":
    main()
