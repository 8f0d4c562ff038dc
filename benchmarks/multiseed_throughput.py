"""Multi-seed training and decoding throughput, measured side by side in one run (real SCAN pool).

1. One vmapped step over S seeds vs S single-seed steps run back to back (same compiled function),
   with achieved FLOP/s (analytic matmul FLOPs, benchmarks/measure.py) against a float32 matmul
   peak measured in the same process.
2. Per-seed throughput of the vmapped JAX trainer vs its PyTorch peers (benchmarks/torch_peer.py:
   same model, batch and AdamW): a torch.func vmapped ensemble of the same S seeds and a plain
   one-seed loop (skipped when torch is not installed).
3. Greedy decoding with the KV cache vs re-running the decoder over the prefix at every position.

Run: python benchmarks/multiseed_throughput.py [--models tiny small] [--seeds 8 32]
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable

import gin
import jax
import jax.numpy as jnp
import numpy as np
from measure import best_seconds, matmul_peak_flops, seconds_per_step, train_matmul_flops

from compgen_jax.models.__main__ import model_config as gin_model_config
from compgen_jax.models.transformer import TransformerConfig, matrices_only
from compgen_jax.multiseed import MultiSeedTrainer
from compgen_jax.optim import OptimizerConfig, make_optimizer
from tasks import registry

BATCH = {"tiny": 32, "small": 8}
STEPS_PER_CALL = {"tiny": 10, "small": 2}


def model_config(name: str, vocab_size: int) -> TransformerConfig:
    """TransformerConfig as gin_configs/models/<name>.gin sets it (dropout off for timing)."""
    cfg = gin_model_config(f"models/{name}.gin", vocab_size)
    gin.clear_config()
    return dataclasses.replace(cfg, dropout_rate=0.0)


def torch_seconds_per_seed_step(cfg: TransformerConfig, pool: dict[str, np.ndarray], batch: int,
                                seeds: int, steps: int) -> tuple[float, float] | None:
    """Seconds per seed-step of the torch peer: (plain one-seed loop, torch.func S-seed ensemble).

    float32 like the JAX runs here; each step draws a fresh batch per seed from the pool; best
    of 3 rounds, as the JAX side keeps its best call.
    """
    try:
        import torch
        import torch_peer
    except ImportError:
        return None
    cpu = torch.device("cpu")
    inputs = torch.as_tensor(pool["inputs"], dtype=torch.long)
    targets = torch.as_tensor(pool["targets"], dtype=torch.long)
    gen = torch.Generator().manual_seed(0)

    def draw(*lead: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, len(inputs), (*lead, batch), generator=gen)
        return inputs[idx], targets[idx]

    loop = torch_peer.PlainLoop(torch_peer.make_models(cfg, [0], cpu)[0], OptimizerConfig(),
                                bf16=False)
    plain = torch_peer.seconds_per_step(lambda: loop.step(*draw()), cpu, 1, steps, rounds=3)
    ensemble = torch_peer.Ensemble(torch_peer.make_models(cfg, list(range(seeds)), cpu),
                                   OptimizerConfig(), bf16=False)
    vmapped = torch_peer.seconds_per_step(lambda: ensemble.step(*draw(seeds)), cpu, 1, steps,
                                          rounds=3)
    return plain, vmapped / seeds


def uncached_decode(trainer: MultiSeedTrainer) -> Callable:
    """Greedy decoding that re-runs the decoder over the whole prefix at every position."""

    def one(params, inputs, max_len):
        model = trainer.model(params)
        encoded = model.encode(inputs)

        def step(tokens, t):
            logits = model.decode(encoded, inputs, tokens)[:, t]
            nxt = jnp.argmax(logits, axis=-1).astype(jnp.int32)
            return jax.lax.dynamic_update_slice_in_dim(tokens, nxt[:, None], t + 1, axis=1), nxt

        start = jnp.zeros((inputs.shape[0], max_len), jnp.int32)
        return jax.lax.scan(step, start, jnp.arange(max_len))[1].T

    return jax.jit(jax.vmap(one, in_axes=(0, None, None)), static_argnums=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny", "small"], choices=sorted(BATCH))
    parser.add_argument("--seeds", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--decode_examples", type=int, default=256)
    args = parser.parse_args()

    registry.ensure_registered("scan_simple")
    host_pool = registry.tokenized_pool("scan_simple", "train")
    pool = {k: jnp.asarray(host_pool[k]) for k in ("inputs", "targets")}
    vocab_size = registry.get_vocabulary("scan_simple").vocab_size
    peak = matmul_peak_flops()
    n, (input_len, target_len) = pool["inputs"].shape[0], (pool[k].shape[1] for k in pool)
    print(f"device: {jax.devices()[0].device_kind} x{jax.device_count()}; float32 matmul peak "
          f"{peak / 1e9:.1f} GFLOP/s; SCAN simple pool {n} examples, {input_len} + {target_len} "
          "tokens each (inputs + targets)\n")
    print("| model | params | batch | seeds | vmapped s/step | sequential s/step | speed-up | "
          "seed-steps/s | GFLOP/s | % of peak |\n|---|---|---|---|---|---|---|---|---|---|")
    per_seed = {}
    for name in args.models:
        cfg = model_config(name, vocab_size)
        batch, spc = BATCH[name], STEPS_PER_CALL[name]
        optimizer = make_optimizer(OptimizerConfig(), matrices_only)
        trainer = MultiSeedTrainer(cfg, optimizer, batch, spc)
        n_params = trainer.num_params
        for s in args.seeds:
            length = (args.repeats + 1) * spc * batch
            orders = jnp.asarray(np.random.default_rng(s).integers(0, n, (s, length)), jnp.int32)
            t_vmap = seconds_per_step(trainer, [(trainer.init(jnp.arange(s)), orders)], pool,
                                      args.repeats)
            singles = [(trainer.init(jnp.asarray([k])), orders[k:k + 1]) for k in range(s)]
            t_seq = seconds_per_step(trainer, singles, pool, args.repeats)
            flops = train_matmul_flops(cfg, input_len, target_len) * batch * s / t_vmap
            per_seed[name] = min(per_seed.get(name, (np.inf, 0)), (t_vmap / s, s))
            print(f"| {name} | {n_params / 1e6:.2f}M | {batch} | {s} | {t_vmap:.4f} | "
                  f"{t_seq:.4f} | {t_seq / t_vmap:.2f}x | {s / t_vmap:.1f} | {flops / 1e9:.1f} | "
                  f"{100 * flops / peak:.0f}% |", flush=True)

    print("\n| model | JAX vmapped s per seed-step (best S) | torch.func ensemble s per "
          "seed-step (same S) | plain PyTorch loop s/step (one seed) | JAX vs torch.func | "
          "JAX vs plain PyTorch |\n|---|---|---|---|---|---|")
    for name in args.models:
        jax_seconds, best_s = per_seed[name]
        torch_seconds = torch_seconds_per_seed_step(
            model_config(name, vocab_size), host_pool, BATCH[name], best_s,
            STEPS_PER_CALL[name] * 2)
        if torch_seconds is None:
            print(f"| {name} | {jax_seconds:.4f} (S={best_s}) | torch not installed | - | - | - |")
        else:
            plain, ensemble = torch_seconds
            print(f"| {name} | {jax_seconds:.4f} (S={best_s}) | {ensemble:.4f} | {plain:.4f} | "
                  f"{ensemble / jax_seconds:.2f}x | {plain / jax_seconds:.2f}x |", flush=True)

    cfg = model_config("tiny", vocab_size)
    trainer = MultiSeedTrainer(cfg, make_optimizer(OptimizerConfig(), matrices_only), 32, 1)
    params = trainer.init(jnp.arange(8))["params"]
    inputs, max_len = pool["inputs"][:args.decode_examples], pool["targets"].shape[1]
    cached = best_seconds(lambda: trainer.decode(params, inputs, max_len), args.repeats)
    slow = uncached_decode(trainer)
    uncached = best_seconds(lambda: slow(params, inputs, max_len), args.repeats)
    sequences = 8 * inputs.shape[0]
    print(f"\n| decoding (tiny, 8 seeds x {inputs.shape[0]} inputs, {max_len} positions) | "
          "sequences/s |\n|---|---|")
    print(f"| KV cache | {sequences / cached:.0f} |\n| no cache (prefix re-run) | "
          f"{sequences / uncached:.0f} |\n| speed-up | {uncached / cached:.2f}x |")


if __name__ == "__main__":
    main()
