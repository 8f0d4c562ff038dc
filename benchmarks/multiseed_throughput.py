"""Vectorised vs sequential seeds, measured side by side in one run on the real SCAN pool.

For each S: the time of one compiled vmapped step over S seeds vs S single-seed steps run one after
another (same compiled single-seed function), plus achieved FLOP/s against a matmul peak measured
on the same machine. Run: python benchmarks/multiseed_throughput.py [--seeds 1 5 10]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from compgen_jax.models.transformer import TransformerConfig, count_params
from compgen_jax.multiseed import MultiSeedTrainer
from compgen_jax.optim import OptimizerConfig, make_optimizer
from tasks import registry

TINY = TransformerConfig(emb_dim=64, num_heads=4, num_encoder_layers=2, num_decoder_layers=2,
                         mlp_dim=128, max_len=64)


def _best_of(fn, repeats: int) -> float:
    """Fastest of `repeats` timed calls (after the caller has compiled fn)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return min(times)


def matmul_peak_flops(n: int = 2048, repeats: int = 5) -> float:
    """Float32 FLOP/s of a large square matmul: the machine's practical peak for this dtype."""
    a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n)), jnp.float32)
    mm = jax.jit(lambda x: x @ x)
    jax.block_until_ready(mm(a))
    return 2 * n**3 / _best_of(lambda: mm(a), repeats)


def step_flops(n_params: int, tokens_per_step: int) -> float:
    """Training FLOPs per seed-step by the 6 x params x tokens rule (attention ignored)."""
    return 6.0 * n_params * tokens_per_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 5, 10])
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--steps_per_call", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    registry.register_scan_tasks("")
    pool_np = registry.tokenized_pool("scan_simple", "train")
    pool = {k: jnp.asarray(pool_np[k]) for k in ("inputs", "targets")}
    cfg = TransformerConfig(**{**TINY.__dict__,
                               "vocab_size": registry.get_vocabulary("scan_simple").vocab_size})
    trainer = MultiSeedTrainer(cfg, make_optimizer(OptimizerConfig()), args.batch_size,
                               args.steps_per_call)
    n_params = count_params(trainer.init_one(0)["params"])
    tokens = args.batch_size * (pool["inputs"].shape[1] + pool["targets"].shape[1])
    peak = matmul_peak_flops()
    steps = args.steps_per_call
    n = pool["inputs"].shape[0]
    print(f"device: {jax.devices()[0].device_kind} x{jax.device_count()}; "
          f"model {n_params:,} params; batch {args.batch_size}; {steps} steps per dispatch; "
          "matmul peak "
          f"{peak / 1e9:.1f} GFLOP/s")
    header = ("seeds", "vmapped s/step", "sequential s/step", "speed-up", "seed-steps/s",
              "GFLOP/s", "% of peak")
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for s in args.seeds:
        calls = args.repeats + 1
        orders = jnp.asarray(np.random.default_rng(s).integers(
            0, n, (s, calls * steps * args.batch_size)), jnp.int32)
        t_vmap = _seconds_per_step(trainer, [trainer.init(jnp.arange(s))], [orders], pool, calls)
        singles = [trainer.init(jnp.asarray([k])) for k in range(s)]
        t_seq = _seconds_per_step(trainer, singles, [orders[k:k + 1] for k in range(s)], pool,
                                  calls)
        flops = step_flops(n_params, tokens) * s / t_vmap
        print(f"| {s} | {t_vmap:.4f} | {t_seq:.4f} | {t_seq / t_vmap:.2f}x | {s / t_vmap:.1f} | "
              f"{flops / 1e9:.1f} | {100 * flops / peak:.0f}% |")


def _seconds_per_step(trainer: MultiSeedTrainer, states: list, orders: list, pool: dict,
                      calls: int) -> float:
    """Best per-step time over calls 2..n of running every (state, order) group once per call.

    Call 1 compiles; states are donated and replaced, so no copies enter the timing.
    """
    best = float("inf")
    for call in range(calls):
        start = time.perf_counter()
        results = [trainer.train(st, od, pool) for st, od in zip(states, orders, strict=True)]
        jax.block_until_ready([loss for _, loss in results])
        states = [st for st, _ in results]
        if call:
            best = min(best, time.perf_counter() - start)
    return best / trainer.steps_per_call


if __name__ == "__main__":
    main()
