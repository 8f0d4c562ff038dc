"""Multi-seed training and decoding throughput, measured side by side in one run (real SCAN pool).

1. One vmapped step over S seeds vs S single-seed steps run back to back (same compiled function),
   with achieved FLOP/s against a float32 matmul peak measured in the same process.
2. Per-seed throughput of the vmapped JAX trainer vs an equivalent PyTorch training loop (same model
   sizes, batch and optimizer; skipped when torch is not installed).
3. Greedy decoding with the KV cache vs re-running the decoder over the prefix at every position.

Run: python benchmarks/multiseed_throughput.py [--models tiny small] [--seeds 8 32]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable

import gin
import jax
import jax.numpy as jnp
import numpy as np

from compgen_jax.gin_utils import GIN_CONFIGS_DIR
from compgen_jax.models.transformer import TransformerConfig
from compgen_jax.multiseed import MultiSeedTrainer, Pool
from compgen_jax.optim import OptimizerConfig, make_optimizer
from tasks import registry

BATCH = {"tiny": 32, "small": 8}
STEPS_PER_CALL = {"tiny": 10, "small": 2}


def model_config(name: str, vocab_size: int) -> TransformerConfig:
    """TransformerConfig as gin_configs/models/<name>.gin sets it (dropout off for timing)."""
    gin.clear_config()
    gin.parse_config_file(str(GIN_CONFIGS_DIR / "models" / f"{name}.gin"))
    cfg = TransformerConfig()
    gin.clear_config()
    return dataclasses.replace(cfg, vocab_size=vocab_size, dropout_rate=0.0)


def best_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Fastest of `repeats` timed calls after one untimed (compiling) call."""
    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return min(times)


def matmul_peak_flops(n: int = 2048) -> float:
    """Float32 FLOP/s of a large square matmul: the machine's practical peak for this dtype."""
    a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n)), jnp.float32)
    mm = jax.jit(lambda x: x @ x)
    return 2 * n**3 / best_seconds(lambda: mm(a), 5)


def seconds_per_step(trainer: MultiSeedTrainer, groups: list, pool: Pool, repeats: int) -> float:
    """Best per-step time of running every (state, orders) group once per call.

    Call 1 compiles; states are donated and replaced, so no copies enter the timing.
    """
    best = float("inf")
    for call in range(repeats + 1):
        start = time.perf_counter()
        results = [trainer.train(state, orders, pool) for state, orders in groups]
        jax.block_until_ready([loss for _, loss in results])
        groups = [(state, orders) for (state, _), (_, orders) in zip(results, groups, strict=True)]
        if call:
            best = min(best, time.perf_counter() - start)
    return best / trainer.steps_per_call


def torch_seconds_per_step(cfg: TransformerConfig, pool: dict[str, np.ndarray], batch: int,
                           steps: int) -> float | None:
    """Per-step time of the same encoder-decoder trained by a plain PyTorch loop (one seed)."""
    try:
        import torch
    except ImportError:
        return None
    torch.manual_seed(0)

    class Seq2Seq(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            d = cfg.emb_dim
            self.embed = torch.nn.Embedding(cfg.vocab_size, d)
            self.enc_pos = torch.nn.Embedding(cfg.max_len, d)
            self.dec_pos = torch.nn.Embedding(cfg.max_len, d)
            self.core = torch.nn.Transformer(
                d, cfg.num_heads, cfg.num_encoder_layers, cfg.num_decoder_layers, cfg.mlp_dim,
                dropout=0.0, activation="gelu", batch_first=True, norm_first=True)
            self.logits = torch.nn.Linear(d, cfg.vocab_size)

        def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
            s = self.embed(src) + self.enc_pos(torch.arange(src.shape[1]))
            t = self.embed(tgt_in) + self.dec_pos(torch.arange(tgt_in.shape[1]))
            causal = self.core.generate_square_subsequent_mask(tgt_in.shape[1])
            out = self.core(s, t, tgt_mask=causal, src_key_padding_mask=src == 0,
                            memory_key_padding_mask=src == 0)
            return self.logits(out)

    model = Seq2Seq()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    inputs = torch.as_tensor(pool["inputs"], dtype=torch.long)
    targets = torch.as_tensor(pool["targets"], dtype=torch.long)
    rng = np.random.default_rng(0)

    def run() -> None:
        for _ in range(steps):
            idx = torch.as_tensor(rng.integers(0, len(inputs), batch))
            src, tgt = inputs[idx], targets[idx]
            tgt_in = torch.nn.functional.pad(tgt, (1, 0))[:, :-1]
            logits = model(src, tgt_in)
            loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), tgt, ignore_index=0)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()

    run()
    times = []
    for _ in range(3):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times) / steps


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
    n, tokens_per_example = pool["inputs"].shape[0], sum(pool[k].shape[1] for k in pool)
    print(f"device: {jax.devices()[0].device_kind} x{jax.device_count()}; float32 matmul peak "
          f"{peak / 1e9:.1f} GFLOP/s; SCAN simple pool {n} examples, {tokens_per_example} tokens "
          "each (inputs + targets)\n")
    print("| model | params | batch | seeds | vmapped s/step | sequential s/step | speed-up | "
          "seed-steps/s | GFLOP/s | % of peak |\n|---|---|---|---|---|---|---|---|---|---|")
    per_seed = {}
    for name in args.models:
        cfg = model_config(name, vocab_size)
        batch, spc = BATCH[name], STEPS_PER_CALL[name]
        trainer = MultiSeedTrainer(cfg, make_optimizer(OptimizerConfig()), batch, spc)
        n_params = trainer.num_params
        for s in args.seeds:
            length = (args.repeats + 1) * spc * batch
            orders = jnp.asarray(np.random.default_rng(s).integers(0, n, (s, length)), jnp.int32)
            t_vmap = seconds_per_step(trainer, [(trainer.init(jnp.arange(s)), orders)], pool,
                                      args.repeats)
            singles = [(trainer.init(jnp.asarray([k])), orders[k:k + 1]) for k in range(s)]
            t_seq = seconds_per_step(trainer, singles, pool, args.repeats)
            flops = 6.0 * n_params * batch * tokens_per_example * s / t_vmap
            per_seed[name] = min(per_seed.get(name, (np.inf, 0)), (t_vmap / s, s))
            print(f"| {name} | {n_params / 1e6:.2f}M | {batch} | {s} | {t_vmap:.4f} | "
                  f"{t_seq:.4f} | {t_seq / t_vmap:.2f}x | {s / t_vmap:.1f} | {flops / 1e9:.1f} | "
                  f"{100 * flops / peak:.0f}% |", flush=True)

    print("\n| model | JAX vmapped s per seed-step (best S) | PyTorch s/step (one seed) | "
          "JAX per-seed speed-up |\n|---|---|---|---|")
    for name in args.models:
        t_torch = torch_seconds_per_step(model_config(name, vocab_size), host_pool, BATCH[name],
                                         STEPS_PER_CALL[name] * 2)
        jax_seconds, best_s = per_seed[name]
        if t_torch is None:
            print(f"| {name} | {jax_seconds:.4f} (S={best_s}) | torch not installed | - |")
        else:
            print(f"| {name} | {jax_seconds:.4f} (S={best_s}) | {t_torch:.4f} | "
                  f"{t_torch / jax_seconds:.2f}x |", flush=True)

    cfg = model_config("tiny", vocab_size)
    trainer = MultiSeedTrainer(cfg, make_optimizer(OptimizerConfig()), 32, 1)
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
