"""benchmarks/accelerator_suite.py (--smoke on CPU) and its pieces: the torch peer, FLOP count."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from compgen_jax.models import make_model, param_counts
from compgen_jax.models.__main__ import model_config
from compgen_jax.models.transformer import TransformerConfig, matrices_only
from compgen_jax.optim import OptimizerConfig
from tests.conftest import REPO_ROOT

# the suite measures JAX against PyTorch peers: torch comes with the `hf` extra (CI installs it)
torch = pytest.importorskip("torch", reason="PyTorch not installed (pip install -e '.[dev,hf]')")

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
import accelerator_suite as suite  # noqa: E402
import torch_peer  # noqa: E402
from measure import forward_matmul_flops, train_matmul_flops  # noqa: E402

MODEL_FILES = ["models/small.gin", "models/t5_small.gin"]


def toy_config(gin_file: str, vocab_size: int = 40) -> suite.Any:
    return dataclasses.replace(suite.toy(model_config(gin_file, vocab_size)), dtype="float32")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    """One --smoke run of the suite in a fresh interpreter: (results.json, results.md)."""
    out = tmp_path_factory.mktemp("suite")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run([sys.executable, "benchmarks/accelerator_suite.py", "--smoke",
                           "--out", str(out)], capture_output=True, text=True, env=env,
                          cwd=REPO_ROOT, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "jax small vmapped S=2" in proc.stdout  # progress lines
    return json.loads((out / "results.json").read_text()), (out / "results.md").read_text()


def test_smoke_measures_every_path(smoke: tuple[dict, str]) -> None:
    results, _ = smoke
    rows = {(r["model"], r["framework"], r["mode"], r["seeds"]): r for r in results["training"]}
    expected = {(m, "jax", "vmapped", s) for m in ("small", "t5_small") for s in (1, 2)}
    expected |= {(m, "torch", "plain loop", 1) for m in ("small", "t5_small")}
    expected |= {(m, "torch", "torch.func ensemble", 2) for m in ("small", "t5_small")}
    assert expected <= set(rows)
    w = results["workload"]
    for row in results["training"]:
        assert row["status"] == "ok", row
        assert math.isfinite(row["seconds_per_step"]) and row["seconds_per_step"] > 0
        assert row["seed_steps_per_s"] == pytest.approx(row["seeds"] / row["seconds_per_step"])
        assert 0 < row["mfu"] <= 1
        cfg = TransformerConfig(**results["models"][row["model"]]["config"])
        assert (cfg.vocab_size, cfg.dtype, cfg.emb_dim) == (w["vocab_size"], "bfloat16", 32)
        flops = train_matmul_flops(cfg, w["input_len"], w["target_len"]) * w["batch_size"]
        assert row["flops_per_s"] == pytest.approx(flops * row["seeds"] / row["seconds_per_step"])
        assert row["mfu"] == pytest.approx(row["flops_per_s"] / results["matmul_peak_flops"])
    for model in results["models"].values():
        assert model["params_jax"] == model["params_torch"] > 0
    assert results["decode"][0]["status"] == "ok"
    d = results["decode"][0]
    assert d["sequences_per_s"] == pytest.approx(d["seeds"] * d["batch"] / d["seconds"])


def test_smoke_extrapolates_the_designs_cells(smoke: tuple[dict, str]) -> None:
    results, _ = smoke
    scale = results["workload"]["batch_size"]
    for name, gin_file in suite.DESIGNS.items():
        cells = suite.read_design(gin_file)["cells"]
        summary = next(d for d in results["designs"] if d["design"] == name)
        rows = [c for c in results["cells"] if c["design"] == name]
        assert [c["cell"] for c in rows] == [c.name for c in cells]
        assert [c["train_steps"] for c in rows] == [c.train.total_steps for c in cells]
        measured = next(r for r in results["training"] if r.get("design") == name)
        assert measured["seeds"] == summary["measured_seeds"]
        per_step = measured["seconds_per_step"] * cells[0].train.batch_size / scale
        assert summary["seconds_per_step"] == pytest.approx(per_step)
        assert summary["total_s"] == pytest.approx(
            sum(c.train.total_steps for c in cells) * per_step)
        assert summary["largest_cell_s"] == pytest.approx(
            max(c.train.total_steps for c in cells) * per_step)
        assert summary["seeds"] == cells[0].train.num_seeds


def test_smoke_markdown_tables(smoke: tuple[dict, str]) -> None:
    results, md = smoke
    assert md == suite.markdown(results)
    table = [line for line in md.splitlines() if line.startswith(("| small |", "| t5_small |"))]
    assert len(table) == 4
    assert all(line.count("|") == 12 for line in table)
    assert "| cogs_e5 | 24 | 5 |" in md and "| cogs_seed_threshold | 4 | 50 |" in md
    assert "Goals (issue 18): small vmapped S=2 vs sequential" in md


def test_bad_arguments_exit_2(tmp_path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run([sys.executable, "benchmarks/accelerator_suite.py", "--out",
                           str(tmp_path), "--seeds", "0"], capture_output=True, text=True,
                          env=env, cwd=REPO_ROOT, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "--seeds" in proc.stderr
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("gin_file", MODEL_FILES)
def test_forward_flops_match_xla_cost_analysis(gin_file: str) -> None:
    """The analytic matmul count vs XLA's count of everything (matmuls dominate at this width)."""
    cfg = dataclasses.replace(model_config(gin_file, 64), num_encoder_layers=1,
                              num_decoder_layers=1, dropout_rate=0.0)
    graphdef, params = nnx.split(make_model(cfg, rngs=nnx.Rngs(0)))
    forward = jax.jit(lambda p, a, b: nnx.merge(graphdef, p)(a, b))
    inputs, decoder_inputs = jnp.ones((8, 16), jnp.int32), jnp.ones((8, 24), jnp.int32)
    xla = forward.lower(params, inputs, decoder_inputs).compile().cost_analysis()["flops"]
    assert 1.0 <= xla / (8 * forward_matmul_flops(cfg, 16, 24)) < 1.03


@pytest.mark.parametrize("gin_file", MODEL_FILES)
def test_torch_peer_has_the_jax_parameter_count(gin_file: str) -> None:
    cfg = model_config(gin_file, 874)
    with torch.device("meta"):
        assert torch_peer.num_params(torch_peer.Seq2Seq(cfg)) == param_counts(cfg)[0]


def torch_name(path: tuple) -> tuple[str, bool]:
    """The torch parameter name of a JAX parameter path, and whether the value is transposed."""
    keys = [str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path]
    keys = keys[:-1] if keys[-1] == "value" else keys
    if keys[-2:] == ["embed", "embedding"] and keys[0].endswith("_rel"):
        keys = [keys[0], "embedding"]  # T5 relative bias: a module's table in JAX, an Embedding
    leaf = {"embedding": "weight", "kernel": "weight", "scale": "weight"}.get(keys[-1], keys[-1])
    return ".".join([*keys[:-1], leaf]), keys[-1] == "kernel"


@pytest.mark.parametrize("gin_file", MODEL_FILES)
def test_torch_peer_computes_the_jax_model(gin_file: str) -> None:
    """With the JAX model's weights copied in, the torch peer gives the same logits."""
    cfg = toy_config(gin_file)
    model = make_model(cfg, rngs=nnx.Rngs(3))
    peer = torch_peer.Seq2Seq(cfg).eval()
    torch_params = dict(peer.named_parameters())
    copied = set()
    for path, leaf in jax.tree_util.tree_leaves_with_path(nnx.state(model, nnx.Param)):
        name, transpose = torch_name(path)
        value = torch.as_tensor(np.array(leaf))
        with torch.no_grad():
            torch_params[name].copy_(value.T if transpose else value)
        copied.add(name)
    assert copied == set(torch_params)
    rng = np.random.default_rng(0)
    inputs = rng.integers(3, 40, (3, 8))
    inputs[1, 5:] = 0  # padding is masked the same way
    decoder_inputs = rng.integers(3, 40, (3, 12))
    want = np.asarray(model(jnp.asarray(inputs), jnp.asarray(decoder_inputs)))
    got = peer(torch.as_tensor(inputs), torch.as_tensor(decoder_inputs)).detach().numpy()
    np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-4)


def test_torch_func_ensemble_equals_plain_loops() -> None:
    """Seed k of the vmapped ensemble = seed k trained alone (loss, clipping, AdamW), 2 steps."""
    cfg = toy_config("models/t5_small.gin")
    cpu = torch.device("cpu")
    opt = dataclasses.replace(OptimizerConfig(), grad_clip_norm=0.05)  # clipping is active
    ensemble = torch_peer.Ensemble(torch_peer.make_models(cfg, [0, 1, 2], cpu), opt, bf16=False)
    gen = torch.Generator().manual_seed(0)
    inputs = torch.randint(3, 40, (2, 3, 4, 8), generator=gen)
    targets = torch.randint(3, 40, (2, 3, 4, 12), generator=gen)
    losses = [ensemble.step(inputs[t], targets[t]) for t in range(2)]
    for k, model in enumerate(torch_peer.make_models(cfg, [0, 1, 2], cpu)):
        loop = torch_peer.PlainLoop(model, opt, bf16=False)
        for t in range(2):
            assert loop.step(inputs[t, k], targets[t, k]).item() == pytest.approx(
                losses[t][k].item(), rel=1e-5)
        for name, param in model.named_parameters():
            torch.testing.assert_close(ensemble.params[name][k], param, atol=1e-6, rtol=1e-5)


def test_recorded_cogs_shapes_match_the_data(shared_data) -> None:
    """The shapes the suite uses where the data is absent are those of the COGS files."""
    assert suite.cogs_shapes(shared_data) == suite.COGS_SHAPES


@pytest.mark.slow
def test_recorded_cogs_shapes_match_the_seqio_task(shared_data) -> None:
    """... and of the seqio task's tokenized, padded train pool and joint vocabulary."""
    from tasks import registry

    registry.register_cogs_tasks(shared_data)
    pool = registry.tokenized_pool("cogs", "train")
    assert suite.COGS_SHAPES == suite.Shapes(pool["inputs"].shape[1], pool["targets"].shape[1],
                                             registry.get_vocabulary("cogs").vocab_size)


def test_bf16_kv_cache_decode() -> None:
    """bf16 compute: the self-attention cache takes the k/v dtype, so cached decoding runs."""
    from compgen_jax.multiseed import MultiSeedTrainer
    from compgen_jax.optim import make_optimizer

    cfg = dataclasses.replace(toy_config("models/t5_small.gin"), dtype="bfloat16")
    model = make_model(cfg, rngs=nnx.Rngs(0))
    inputs = jnp.asarray(np.random.default_rng(0).integers(3, 40, (2, 8)), jnp.int32)
    caches = model.init_cache(model.encode(inputs), 6)
    assert caches[0].self_k.dtype == jnp.bfloat16
    trainer = MultiSeedTrainer(cfg, make_optimizer(OptimizerConfig(), matrices_only), 2, 1)
    tokens = trainer.decode(trainer.init(jnp.arange(2))["params"], inputs, 6)
    assert tokens.shape == (2, 2, 6) and tokens.dtype == jnp.int32
