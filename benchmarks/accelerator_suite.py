"""Accelerator evidence for the vmapped multi-seed step, measured side by side in one process.

On the COGS workload shapes (longest input / target + EOS, joint vocabulary; batch and designs from
gin_configs/experiments/cogs_e5.gin and cogs_seed_threshold.gin), bf16 compute:
1. seed-steps/s of one vmapped S-seed step vs S single-seed steps (S x the measured S=1 step, the
   same compiled function run back to back), S in --seeds, for models/small.gin (~12M) and
   models/t5_small.gin (~58M);
2. achieved FLOP/s vs a bf16 matmul peak measured in this process (MFU); FLOPs are counted
   analytically (matmuls only, benchmarks/measure.py), which matches XLA's cost analysis to ~1%;
3. the same models as a torch.func vmapped ensemble of S seeds and as a plain one-seed PyTorch
   loop (benchmarks/torch_peer.py: same parameter count, matmuls, batch, AdamW, clipping);
4. wall time of the COGS E5 cells (5 seeds) and seed-threshold cells (50 seeds) and of both whole
   designs, extrapolated from the measured step time of the designs' own model (training only);
5. greedy decode throughput with the KV cache (the trainer's decode path, E5's eval batch).
Order: torch (its cached memory is then handed back), the bf16 peak, JAX for S <= 32, the
designs, decode, and last JAX for S > 32 (likeliest to run out of memory or time). A measurement
that runs out of device memory is recorded as `oom` (larger S of that model then skipped); one that
would start after the time budget is recorded as skipped. DIR/results.json is rewritten after
every measurement ("complete": false until the end), DIR/results.md at the end. `--smoke`: every
path at toy size on CPU (the test suite runs it).

Run: python benchmarks/accelerator_suite.py --out DIR [--smoke] [--budget_s 390]
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
LATE_SEEDS = 32  # ensembles larger than this are measured last
MODELS = {"small": "models/small.gin", "t5_small": "models/t5_small.gin"}
DESIGNS = {"cogs_e5": "experiments/cogs_e5.gin",
           "cogs_seed_threshold": "experiments/cogs_seed_threshold.gin"}


@dataclasses.dataclass(frozen=True)
class Shapes:
    """Token shapes of the workload: padded input / target lengths (EOS included), vocabulary."""

    input_len: int
    target_len: int
    vocab_size: int


# COGS (lf): longest input 22 + EOS, longest target 153 + EOS, 871 words + 3 specials over
# train/dev/test/gen, as tasks.registry pads and tokenizes it. Used where the data is absent (an
# accelerator machine); `cogs_shapes` measures them when it is present (tests check they agree).
COGS_SHAPES = Shapes(input_len=23, target_len=154, vocab_size=874)
SMOKE_SHAPES = Shapes(input_len=8, target_len=12, vocab_size=40)


def cogs_shapes(data_dir: Path | None) -> Shapes | None:
    """COGS's padded lengths and joint vocabulary size measured from the data (None if absent)."""
    from tasks.benchmarks import cogs
    from tasks.tokens import SPECIALS

    if data_dir is None or not (data_dir / cogs.FORMAT_DIRS["lf"]).is_dir():
        return None
    examples = [ex for split in cogs.SPLITS for ex in cogs.load(split, data_dir)]
    train = [ex for ex in examples if ex.split == "train"]
    words = {tok for ex in examples for text in (ex.input, ex.target) for tok in text.split()}
    return Shapes(input_len=max(len(ex.input.split()) for ex in train) + 1,
                  target_len=max(len(ex.target.split()) for ex in train) + 1,
                  vocab_size=len(SPECIALS) + len(words))


def toy(cfg: Any) -> Any:
    """A 1+1-layer, 32-wide version of a model config (same architecture options) for --smoke."""
    return dataclasses.replace(cfg, emb_dim=32, num_heads=2, mlp_dim=64, num_encoder_layers=1,
                               num_decoder_layers=1, qkv_dim=0, dropout_rate=0.0)


@dataclasses.dataclass
class Clock:
    """Elapsed time, progress lines and the measurement deadline."""

    budget_s: float
    start: float = dataclasses.field(default_factory=time.monotonic)

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def over(self, share: float = 1.0) -> bool:
        return self.elapsed() > share * self.budget_s

    def log(self, message: str) -> None:
        print(f"[{self.elapsed():7.1f}s] {message}", flush=True)


def is_oom(err: BaseException) -> bool:
    text = str(err)
    return "RESOURCE_EXHAUSTED" in text or "out of memory" in text.lower()


def attempt(clock: Clock, label: str, fn: Callable[[], dict[str, Any]], share: float = 1.0,
            blocked: str = "") -> dict[str, Any]:
    """Run one measurement: its fields + status ok, or status oom / skipped / error (one line)."""
    if blocked:
        clock.log(f"{label}: skipped ({blocked})")
        return {"status": f"skipped: {blocked}"}
    if clock.over(share):
        clock.log(f"{label}: skipped (time budget)")
        return {"status": "skipped: time budget"}
    try:
        result = {**fn(), "status": "ok"}
    except Exception as err:  # recorded and the suite goes on: it runs unattended
        status = "oom" if is_oom(err) else f"error: {type(err).__name__}: " \
            f"{str(err).strip().splitlines()[0][:200] if str(err).strip() else ''}"
        clock.log(f"{label}: {status}")
        return {"status": status}
    finally:
        gc.collect()
    clock.log(f"{label}: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                       for k, v in result.items() if k != "status"))
    return result


def read_design(gin_file: str) -> dict[str, Any]:
    """A COGS design's cells, model, train and optimizer settings, through the design code."""
    import gin

    from compgen_jax import designs, train  # noqa: F401  (registers configurables)
    from compgen_jax.configs import TrainConfig
    from compgen_jax.gin_utils import parse_gin
    from compgen_jax.optim import OptimizerConfig

    parse_gin([gin_file], [])
    out = {"cells": designs.design(),
           "model": gin.query_parameter("%MODEL_CONFIG").scoped_configurable_fn(),
           "train": TrainConfig(), "optimizer": OptimizerConfig()}
    gin.clear_config()
    return out


def model_config(gin_file: str, shapes: Shapes, smoke: bool) -> Any:
    """A models/*.gin config at the workload vocabulary, bf16 compute (toy-sized for --smoke)."""
    from compgen_jax.models.__main__ import model_config as from_gin

    cfg = dataclasses.replace(from_gin(gin_file, shapes.vocab_size), dtype="bfloat16")
    return toy(cfg) if smoke else cfg


class JaxBench:
    """The project's MultiSeedTrainer on a random token pool of the workload shapes."""

    def __init__(self, shapes: Shapes, batch: int, steps_per_call: int, repeats: int):
        import jax.numpy as jnp

        rng = np.random.default_rng(0)
        n = 4 * batch
        self.pool = {"inputs": jnp.asarray(rng.integers(3, shapes.vocab_size,
                                                        (n, shapes.input_len)), jnp.int32),
                     "targets": jnp.asarray(rng.integers(3, shapes.vocab_size,
                                                         (n, shapes.target_len)), jnp.int32)}
        self.shapes, self.batch, self.spc, self.repeats = shapes, batch, steps_per_call, repeats
        self.trainers: dict[Any, Any] = {}

    def trainer(self, cfg: Any, optimizer_config: Any) -> Any:
        """One trainer per (model, optimizer) config, so equal configs share compiled steps."""
        from compgen_jax.models import model_family
        from compgen_jax.multiseed import MultiSeedTrainer
        from compgen_jax.optim import make_optimizer

        key = (cfg, optimizer_config)
        if key not in self.trainers:
            optimizer = make_optimizer(optimizer_config, model_family(cfg).weight_decay_mask)
            self.trainers[key] = MultiSeedTrainer(cfg, optimizer, self.batch, self.spc)
        return self.trainers[key]

    def step_seconds(self, trainer: Any, seeds: int) -> float:
        """Best seconds per vmapped S-seed step (measure.seconds_per_step, one state)."""
        import jax.numpy as jnp
        from measure import seconds_per_step

        length = (self.repeats + 1) * self.spc * self.batch
        n = int(self.pool["inputs"].shape[0])
        orders = jnp.asarray(np.random.default_rng(seeds).integers(0, n, (seeds, length)),
                             jnp.int32)
        state = trainer.init(jnp.arange(seeds))
        return seconds_per_step(trainer, [(state, orders)], self.pool, self.repeats)

    def decode_seconds(self, trainer: Any, seeds: int, batch: int) -> float:
        import jax.numpy as jnp
        from measure import best_seconds

        params = trainer.init(jnp.arange(seeds))["params"]
        inputs = jnp.tile(self.pool["inputs"], (math.ceil(batch / self.pool["inputs"].shape[0]),
                                                1))[:batch]
        return best_seconds(lambda: trainer.decode(params, inputs, self.shapes.target_len),
                            self.repeats)


class TorchBench:
    """benchmarks/torch_peer.py on the same shapes, batch and optimizer (cuda when present)."""

    def __init__(self, shapes: Shapes, batch: int, warmup: int, timed: int):
        import torch

        self.torch = torch
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.shapes, self.batch, self.warmup, self.timed = shapes, batch, warmup, timed

    def _batches(self, seeds: int | None) -> tuple[Any, Any]:
        lead = () if seeds is None else (seeds,)
        gen = self.torch.Generator(device="cpu").manual_seed(0)
        s = self.shapes
        make = lambda length: self.torch.randint(  # noqa: E731
            3, s.vocab_size, (*lead, self.batch, length), generator=gen).to(self.device)
        return make(s.input_len), make(s.target_len)

    def plain_seconds(self, cfg: Any, optimizer_config: Any) -> float:
        import torch_peer

        loop = torch_peer.PlainLoop(torch_peer.make_models(cfg, [0], self.device)[0],
                                    optimizer_config, bf16=True)
        inputs, targets = self._batches(None)
        return torch_peer.seconds_per_step(lambda: loop.step(inputs, targets), self.device,
                                           self.warmup, self.timed)

    def ensemble_seconds(self, cfg: Any, optimizer_config: Any, seeds: int) -> float:
        import torch_peer

        ensemble = torch_peer.Ensemble(
            torch_peer.make_models(cfg, list(range(seeds)), self.device), optimizer_config,
            bf16=True)
        inputs, targets = self._batches(seeds)
        return torch_peer.seconds_per_step(lambda: ensemble.step(inputs, targets), self.device,
                                           self.warmup, self.timed)

    def release(self) -> None:
        gc.collect()
        if self.device.type == "cuda":
            self.torch.cuda.empty_cache()


def torch_absent() -> str:
    """'' when PyTorch imports, else why not: the JAX measurements run, the peer columns say
    `absent` (an accelerator image or venv without torch)."""
    try:
        import torch  # noqa: F401
    except ImportError as err:
        return f"{type(err).__name__}: {err}"
    return ""


def torch_params(cfg: Any) -> int:
    """Parameters of the torch peer (built on the meta device: nothing allocated)."""
    import torch
    import torch_peer

    with torch.device("meta"):
        return torch_peer.num_params(torch_peer.Seq2Seq(cfg))


def torch_peers(args: argparse.Namespace, clock: Clock, shapes: Shapes, batch: int,
                configs: dict[str, Any], optimizer_config: Any, results: dict[str, Any],
                save: Callable[[dict[str, Any]], None]) -> None:
    """The torch rows (plain loop, torch.func ensembles), measured first: torch's cached memory
    is handed back before JAX allocates."""
    torch_bench = TorchBench(shapes, batch, args.torch_warmup, args.torch_timed)
    results["torch_device"] = str(torch_bench.device)
    training = results["training"]

    def torch_row(name: str, mode: str, s: int, measure: Callable[[], float],
                  blocked: str = "") -> str:
        row = attempt(clock, f"torch {name} {mode} S={s}", lambda: {
            "seconds_per_step": (t := measure()), "seed_steps_per_s": s / t},
            share=args.torch_share, blocked=blocked)
        training.append({"model": name, "framework": "torch", "mode": mode, "seeds": s, **row})
        torch_bench.release()
        save(results)
        return row["status"]

    for name, cfg in configs.items():
        torch_row(name, "plain loop", 1,
                  lambda cfg=cfg: torch_bench.plain_seconds(cfg, optimizer_config))
        blocked = ""
        for s in args.seeds:
            status = torch_row(name, "torch.func ensemble", s, lambda cfg=cfg, s=s:
                               torch_bench.ensemble_seconds(cfg, optimizer_config, s), blocked)
            blocked = blocked or "a smaller S ran out of memory" * (status == "oom")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every measurement, in an order that lets torch and JAX share one device."""
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # before JAX's first use
    if args.smoke:  # toy graphs: compile time dominates, so skip XLA's expensive CPU passes
        os.environ["XLA_FLAGS"] = " ".join([os.environ.get("XLA_FLAGS", ""),
                                            "--xla_backend_optimization_level=0",
                                            "--xla_llvm_disable_expensive_passes=true"])
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    clock = Clock(args.budget_s)
    from analysis.atomic import write_text

    def save(results: dict[str, Any]) -> None:
        """results.json as it stands (complete: false until the end), in case the run is cut."""
        results["elapsed_s"] = clock.elapsed()
        write_text(args.out / "results.json", json.dumps(results, indent=1, default=str) + "\n")
    from compgen_jax.optim import OptimizerConfig
    from tasks.data_dir import data_dir

    designs = {name: read_design(path) for name, path in DESIGNS.items()}
    e5 = designs["cogs_e5"]
    if args.smoke:
        shapes, source = SMOKE_SHAPES, "toy shapes (--smoke)"
    else:
        measured = cogs_shapes(data_dir())
        shapes = measured or COGS_SHAPES
        source = "measured from the COGS data" if measured else "recorded COGS shapes"
    batch = args.batch or e5["cells"][0].train.batch_size
    optimizer_config = OptimizerConfig()
    configs = {name: model_config(path, shapes, args.smoke) for name, path in MODELS.items()}
    design_model = dataclasses.replace(e5["model"], vocab_size=shapes.vocab_size,
                                       dtype="bfloat16")
    design_model = toy(design_model) if args.smoke else design_model
    clock.log(f"workload: {shapes} ({source}), batch {batch}, seeds {args.seeds}")

    results: dict[str, Any] = {
        "complete": False, "smoke": args.smoke, "budget_s": args.budget_s,
        "workload": {**dataclasses.asdict(shapes), "source": source, "batch_size": batch,
                     "steps_per_call": args.steps_per_call, "compute_dtype": "bfloat16"},
        "flop_counting": "analytic matmul FLOPs (benchmarks/measure.py), training = 3 x forward",
        "models": {}, "training": [], "cells": [], "designs": [], "decode": [],
    }
    absent = torch_absent()
    if absent:
        clock.log(f"torch: absent ({absent}); the torch peer columns say absent")
    from compgen_jax.models import param_counts
    for name, cfg in {**configs, "cogs_design": design_model}.items():
        results["models"][name] = {
            "gin": MODELS.get(name, DESIGNS["cogs_e5"]), "params_jax": param_counts(cfg)[0],
            "params_torch": None if absent else torch_params(cfg),
            "config": dataclasses.asdict(cfg)}
    results["torch_device"] = "absent" if absent else None
    training = results["training"]
    if absent:
        training += [{"model": name, "framework": "torch", "mode": mode, "seeds": s,
                      "status": "absent"} for name in configs
                     for mode, s in [("plain loop", 1),
                                     *(("torch.func ensemble", s) for s in args.seeds)]]
    else:
        torch_peers(args, clock, shapes, batch, configs, optimizer_config, results, save)

    import jax
    from measure import matmul_peak_flops, train_matmul_flops
    results["jax_device"] = f"{jax.devices()[0].device_kind} x{jax.device_count()}"
    peak = matmul_peak_flops(args.peak_n, "bfloat16", repeats=args.peak_repeats)
    results["matmul_peak_flops"] = peak
    clock.log(f"jax device {results['jax_device']}; bf16 matmul peak {peak / 1e12:.3f} TFLOP/s")
    bench = JaxBench(shapes, batch, args.steps_per_call, args.repeats)

    def rate_fields(cfg: Any, s: int, seconds: float) -> dict[str, float]:
        flops = train_matmul_flops(cfg, shapes.input_len, shapes.target_len) * batch * s / seconds
        return {"seconds_per_step": seconds, "seed_steps_per_s": s / seconds,
                "flops_per_s": flops, "mfu": flops / peak}

    for row in training:  # the torch rows, now that the peak is known
        if row["status"] == "ok":
            row.update(rate_fields(configs[row["model"]], row["seeds"], row["seconds_per_step"]))

    out_of_memory: set[str] = set()

    def train_rows(name: str, cfg: Any, seeds: list[int]) -> None:
        trainer = bench.trainer(cfg, optimizer_config)
        for s in seeds:
            row = attempt(clock, f"jax {name} vmapped S={s}",
                          lambda s=s: rate_fields(cfg, s, bench.step_seconds(trainer, s)),
                          blocked="a smaller S ran out of memory" * (name in out_of_memory))
            if row["status"] == "oom":
                out_of_memory.add(name)
            training.append({"model": name, "framework": "jax", "mode": "vmapped", "seeds": s,
                             **row})
            save(results)

    # S above LATE_SEEDS is the likeliest to run out of memory or time: it runs last.
    for name, cfg in configs.items():
        train_rows(name, cfg, sorted(s for s in {1, *args.seeds} if s <= LATE_SEEDS))

    trainer = bench.trainer(design_model, optimizer_config)
    for design_name, design in designs.items():
        s = design["cells"][0].train.num_seeds
        if args.smoke:  # reuse a compiled toy step instead of compiling S=5 and S=50
            s = max(args.seeds)
        row = attempt(clock, f"jax cogs_design vmapped S={s} ({design_name})",
                      lambda s=s: rate_fields(design_model, s, bench.step_seconds(trainer, s)))
        training.append({"model": "cogs_design", "framework": "jax", "mode": "vmapped",
                         "seeds": s, "design": design_name, **row})
        if row["status"] != "ok":
            continue
        # step time at the design's batch (the same as the measured one unless --batch is set)
        scale = row["seconds_per_step"] * design["cells"][0].train.batch_size / batch
        walls = []
        for cell in design["cells"]:
            wall = cell.train.total_steps * scale
            walls.append(wall)
            results["cells"].append({"design": design_name, "cell": cell.name,
                                     "seeds": cell.train.num_seeds,
                                     "train_steps": cell.train.total_steps,
                                     "batch_size": cell.train.batch_size, "wall_s": wall})
        save(results)
        results["designs"].append({"design": design_name, "cells": len(walls),
                                   "seeds": design["cells"][0].train.num_seeds, "measured_seeds": s,
                                   "seconds_per_step": scale,
                                   "largest_cell_s": max(walls), "median_cell_s":
                                   float(np.median(walls)), "total_s": sum(walls)})

    decode_batch = args.decode_batch or e5["train"].eval_batch_size
    s = max(args.seeds) if args.smoke else e5["cells"][0].train.num_seeds
    row = attempt(clock, f"jax cogs_design KV-cache decode S={s} x {decode_batch}",
                  lambda: {"seconds": (t := bench.decode_seconds(trainer, s, decode_batch)),
                           "sequences_per_s": s * decode_batch / t,
                           "tokens_per_s": s * decode_batch * shapes.target_len / t})
    results["decode"].append({"model": "cogs_design", "seeds": s, "batch": decode_batch,
                              "max_decode_len": shapes.target_len, **row})
    save(results)
    for name, cfg in configs.items():
        train_rows(name, cfg, sorted(s for s in args.seeds if s > LATE_SEEDS))
    return results


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def duration(seconds: float) -> str:
    """Seconds as s / min / h / days, whichever reads best."""
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} s"


def goals(rows: dict[tuple, dict[str, Any]]) -> list[str]:
    """The issue's three goals, each with the measured value (S=32, or the largest S measured)."""
    def rate(*key: Any) -> float | None:
        return rows.get(key, {}).get("seed_steps_per_s")

    jax_s = sorted(s for (m, f, _, s), r in rows.items()
                   if m == "small" and f == "jax" and r.get("seed_steps_per_s"))
    s = 32 if 32 in jax_s else (jax_s[-1] if jax_s else None)
    out = []
    one, many = rate("small", "jax", "vmapped", 1), rate("small", "jax", "vmapped", s)
    out.append(f"small vmapped S={s} vs sequential {many / one:.2f}x (goal >= 8x)"
               if one and many else "small vmapped speed-up not measured")
    mfus = [r["mfu"] for r in rows.values() if r.get("mfu") and r["framework"] == "jax"]
    out.append(f"best JAX MFU {max(mfus):.1%} (goal >= 40%)" if mfus else "MFU not measured")
    ens = rate("small", "torch", "torch.func ensemble", s)
    out.append(f"small S={s} JAX / torch.func {many / ens:.2f}x (goal >= 1.5x)"
               if many and ens else "JAX vs torch.func not measured")
    return out


def markdown(results: dict[str, Any]) -> str:
    """The results as markdown tables, with the issue's goals checked against them."""
    w = results["workload"]
    models = results["models"]
    lines = [
        f"# Accelerator suite{' (smoke, toy sizes)' if results['smoke'] else ''}", "",
        f"JAX device: {results['jax_device']}; torch device: {results['torch_device']}; bf16 "
        f"matmul peak measured in-process: {results['matmul_peak_flops'] / 1e12:.2f} TFLOP/s; "
        f"{results['flop_counting']}. Workload: {w['source']} (input {w['input_len']}, target "
        f"{w['target_len']}, vocabulary {w['vocab_size']}), batch {w['batch_size']} per seed, "
        f"{w['compute_dtype']} compute. Ran {results['elapsed_s']:.0f} s.", "",
        "| model | params JAX / torch | S | JAX vmapped s/step | JAX seed-steps/s | speed-up vs "
        "S single-seed steps | MFU | torch.func ensemble seed-steps/s | JAX / torch.func | "
        "plain torch loop seed-steps/s | JAX / plain torch |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows = {(r["model"], r["framework"], r["mode"], r["seeds"]): r for r in results["training"]}
    order = list(models)
    for (model, framework, _, s), row in sorted(rows.items(),
                                                key=lambda kv: (order.index(kv[0][0]), kv[0][3])):
        if framework != "jax" or model == "cogs_design":
            continue
        one = rows.get((model, "jax", "vmapped", 1), {})
        ens = rows.get((model, "torch", "torch.func ensemble", s), {})
        plain = rows.get((model, "torch", "plain loop", 1), {})
        rate = row.get("seed_steps_per_s")

        def ratio(other: dict[str, Any], rate: float | None = rate) -> str:
            theirs = other.get("seed_steps_per_s")
            return f"{rate / theirs:.2f}x" if rate and theirs else other.get("status", "-")

        params_torch = models[model]["params_torch"]
        lines.append(
            f"| {model} | {models[model]['params_jax'] / 1e6:.2f}M / "
            f"{'absent' if params_torch is None else f'{params_torch / 1e6:.2f}M'} | {s} | "
            f"{_fmt(row.get('seconds_per_step'), '.4f') if rate else row['status']} | "
            f"{_fmt(rate, '.1f')} | {ratio(one)} | "
            f"{_fmt(row.get('mfu'), '.1%')} | "
            f"{_fmt(ens.get('seed_steps_per_s'), '.1f') if ens.get('seed_steps_per_s') else ens.get('status', '-')} | "  # noqa: E501
            f"{ratio(ens)} | {_fmt(plain.get('seed_steps_per_s'), '.1f') if plain.get('seed_steps_per_s') else plain.get('status', '-')} | "  # noqa: E501
            f"{ratio(plain)} |")
    lines += ["", "COGS designs, training wall time extrapolated from the measured vmapped step "
              f"of the designs' model ({models['cogs_design']['params_jax'] / 1e6:.2f}M):", "",
              "| design | cells | seeds per cell | s/step | largest cell | median cell | "
              "whole design |", "|---|---|---|---|---|---|---|"]
    for d in results["designs"]:
        lines.append(f"| {d['design']} | {d['cells']} | {d['seeds']} | "
                     f"{d['seconds_per_step']:.4f} | {duration(d['largest_cell_s'])} | "
                     f"{duration(d['median_cell_s'])} | {duration(d['total_s'])} |")
    lines += ["", "| decode (KV cache) | seeds | inputs | positions | sequences/s | tokens/s |",
              "|---|---|---|---|---|---|"]
    for d in results["decode"]:
        lines.append(f"| {d['model']} | {d['seeds']} | {d['batch']} | {d['max_decode_len']} | "
                     f"{_fmt(d.get('sequences_per_s'), '.0f')} | "
                     f"{_fmt(d.get('tokens_per_s'), '.0f')} |" if d["status"] == "ok" else
                     f"| {d['model']} | {d['seeds']} | {d['batch']} | {d['max_decode_len']} | "
                     f"{d['status']} | - |")
    lines += ["", "Goals (issue 18): " + "; ".join(goals(rows))]
    if results["torch_device"] == "absent":
        lines += ["", "torch: absent (not installed here); its columns say absent."]
    not_ok = [r for r in results["training"] + results["decode"]
              if r["status"] not in ("ok", "absent")]
    if not_ok:
        lines += ["", "Not measured: " + "; ".join(
            f"{r.get('model')} {r.get('framework', 'decode')} {r.get('mode', '')} "
            f"S={r.get('seeds')}: {r['status']}" for r in not_ok)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="directory for results.json/.md")
    parser.add_argument("--smoke", action="store_true", help="toy sizes on CPU, every path")
    parser.add_argument("--seeds", type=int, nargs="+", default=[8, 32, 50],
                        help="ensemble sizes S besides the single-seed S=1")
    parser.add_argument("--budget_s", type=float, default=390.0,
                        help="no measurement starts after this many seconds")
    parser.add_argument("--torch_share", type=float, default=0.3,
                        help="fraction of the budget after which torch measurements stop")
    parser.add_argument("--batch", type=int, default=0, help="per-seed batch (0: the E5 design's)")
    parser.add_argument("--decode_batch", type=int, default=0,
                        help="decode inputs (0: the E5 design's eval batch)")
    parser.add_argument("--steps_per_call", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2, help="timed JAX calls (best is kept)")
    parser.add_argument("--torch_warmup", type=int, default=2)
    parser.add_argument("--torch_timed", type=int, default=4)
    parser.add_argument("--peak_n", type=int, default=8192)
    parser.add_argument("--peak_repeats", type=int, default=10)
    args = parser.parse_args(argv)
    if args.smoke:
        args.seeds, args.batch, args.decode_batch = [2], args.batch or 4, args.decode_batch or 4
        args.steps_per_call, args.repeats, args.torch_warmup, args.torch_timed = 1, 1, 1, 1
        args.peak_n, args.peak_repeats = 256, 2
    bad = [s for s in args.seeds if s < 1]
    if bad or args.budget_s <= 0 or args.steps_per_call < 1 or args.repeats < 1:
        print(f"accelerator_suite: --seeds {args.seeds}, --budget_s, --steps_per_call and "
              "--repeats must be positive", file=sys.stderr)
        sys.exit(2)
    from analysis.atomic import write_text

    results = run(args)
    results["complete"] = True
    write_text(args.out / "results.json", json.dumps(results, indent=1, default=str) + "\n")
    write_text(args.out / "results.md", markdown(results))
    print(markdown(results), flush=True)


if __name__ == "__main__":
    main()
