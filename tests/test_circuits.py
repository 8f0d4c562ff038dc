"""Circuit analyses: residual-stream forward, collapse metrics, counterfactuals, CLI end to end."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from flax import nnx

from compgen_jax import cli
from compgen_jax.circuits import collapse_metrics, counterfactuals, load_function, token_indices
from compgen_jax.models.decoder_only import DecoderConfig, DecoderOnly
from tasks.benchmarks import coverage


def test_hidden_states_and_resumed_forward_match_the_model() -> None:
    model = DecoderOnly(DecoderConfig(vocab_size=11, emb_dim=16, num_heads=2, num_layers=3,
                                      mlp_dim=32, max_len=6), rngs=nnx.Rngs(0))
    tokens = jax.random.randint(jax.random.key(1), (4, 5), 1, 11)
    logits, hs = model(tokens), model.hidden_states(tokens)
    assert hs.shape == (4, 4, 5, 16)
    for layer in (1, 2):
        np.testing.assert_allclose(model.logits_from(hs[layer], layer), logits, atol=1e-5)
    np.testing.assert_allclose(model.lens(hs[3], 3), logits, atol=1e-5)
    np.testing.assert_allclose(model.lens(hs[2], 2), model.wte.attend(model.ln_f(hs[2])),
                               atol=1e-6)
    assert not jnp.allclose(model.lens(hs[1], 1), logits)


def test_collapse_metrics() -> None:
    vectors = np.array([[1.0, 0], [2.0, 0], [0, 1.0], [0, 3.0], [1.0, 1.0]])
    m = collapse_metrics(vectors, ["a", "a", "b", "b", "c"])
    assert m["within"] == pytest.approx(1.0)
    assert m["between_all"] == pytest.approx((4 * 0.0 + 4 * np.sqrt(0.5)) / 8)
    assert m["iicg"] == pytest.approx(m["within"] - m["between_all"])
    assert m["between_centroids"] == pytest.approx((0 + 2 * np.sqrt(0.5)) / 3)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    root = tmp_path_factory.mktemp("circ")
    data = coverage.generate("twohop", root / "data", 10, 300, seed=5)
    flags = ["--gin_file", "models/gpt2_tiny.gin", "--gin_file", "runs/coverage_train.gin",
             f"--gin.MODEL_DIR='{root / 'model'}'", f"--gin.coverage_cell.dataset_dir='{data}'",
             "--gin.DecoderConfig.emb_dim=32", "--gin.DecoderConfig.num_layers=3",
             "--gin.NUM_SEEDS=2", "--gin.MAX_STEPS=20", "--gin.BATCH_SIZE=64",
             "--gin.WARMUP_STEPS=2", "--gin.SyntheticTrainConfig.steps_per_call=10",
             "--gin.SyntheticTrainConfig.eval_period=10"]
    assert cli.main(["coverage", "train", *flags]) == 0
    return root / "model", data, flags


def test_counterfactuals_follow_the_selection_rule(trained: tuple[Path, Path, list[str]]) -> None:
    _, data, _ = trained
    test = json.loads((data / "test.json").read_text())
    train = json.loads((data / "train.json").read_text())
    f1, f2 = (load_function(data / f"atomic_facts_f{i}.json") for i in (1, 2))
    triples = [token_indices(it["input_text"]) for it in train]
    seen_f1 = {t[:2] for t in triples}
    seen_f2 = {(f1[t[:2]], t[2]) for t in triples}
    cf = counterfactuals(test, train, f1, f2)
    assert cf and len({token_indices(test[i]["input_text"])[:2] for i, *_ in cf}) == len(cf)
    for i, (x1, x2q, x3), b, t, tq in cf:
        xs = token_indices(test[i]["input_text"])
        bq = f1[(x1, x2q)]
        assert xs[0] == x1 and xs[2] == x3 and x2q != xs[1] and (x1, x2q) in seen_f1
        assert bq != b and (bq, x3) in seen_f2 and f2[(bq, x3)] == tq != t
    assert cf == counterfactuals(test, train, f1, f2)


def test_circuits_cli_writes_tables_and_plots(trained: tuple[Path, Path, list[str]]) -> None:
    model_dir, _, flags = trained
    assert (model_dir / "results.csv").is_file() and (model_dir / "config.gin").is_file()
    assert cli.main(["coverage", "circuits", *flags]) == 0
    out = model_dir / "circuits"
    collapse = pd.read_csv(out / "collapse_f1.csv")
    assert set(collapse["split"]) == {"id_train", "id_test", "ood"}
    assert set(collapse["layer"]) == {0, 1, 2, 3} and set(collapse["seed"]) == {0, 1}
    ranks = pd.read_csv(out / "tracing_rank.csv")
    assert set(ranks["layer"]) == {1, 2} and set(ranks["position"]) == {0, 1, 2}
    assert (ranks["flip"] <= ranks["passed_data_num"]).all()
    assert (ranks["passed_data_num"] <= ranks["sample_num"]).all()
    lens = pd.read_csv(out / "logit_lens.csv")
    assert set(lens["layer"]) == {1, 2, 3} and (lens["mean_rank"] >= 0).all()
    assert (out / "iicg_f1.png").stat().st_size > 0 and (out / "patching_flip.png").is_file()


def test_covered_accuracy_joins_coverage(trained: tuple[Path, Path, list[str]]) -> None:
    model_dir, data, _ = trained
    args = ["coverage", "covered", "--model_dir", str(model_dir), "--dataset_dir", str(data),
            "--k", "1", "--k", "2", "--k_max", "4"]
    assert cli.main(args) == 0
    table = pd.read_csv(model_dir / "covered_accuracy.csv")
    assert set(table["k"]) == {1, 2}
    assert not table.loc[table["type"] != "type_0", "covered"].any()
    per_example = pd.read_csv(model_dir / "per_example.csv")
    k1 = table[table["k"] == 1]
    assert k1["n_rows"].sum() == len(per_example) and (k1["accuracy"].between(0, 1)).all()
