"""Circuit analyses: residual-stream forward, collapse metrics, counterfactuals, CLI end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from flax import nnx

from analysis.coverage import kcoverage_table, write_upstream_outputs
from compgen_jax import cli
from compgen_jax.circuits import (
    GROUPINGS,
    Task,
    add_coverage_groups,
    causal_tracing,
    collapse_items,
    collapse_metrics,
    counterfactuals,
    coverage_labels,
    coverage_thresholds,
    dedup_positions,
    load_function,
    load_task,
    ood_types,
    rank_summary,
    resolve_grouping,
    thresholds_from_annotated,
    token_indices,
)
from compgen_jax.configs import TrainConfig
from compgen_jax.coverage_data import load_coverage_data
from compgen_jax.models.decoder_only import DecoderConfig, DecoderOnly
from compgen_jax.optim import OptimizerConfig
from compgen_jax.trainers import build_trainer
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


def _train_cli(root: Path, data: Path, num_layers: int,
               max_steps: int) -> tuple[Path, Path, list[str]]:
    """Train a tiny 2-seed cell through the CLI; (model dir, dataset dir, gin flags)."""
    flags = ["--gin_file", "models/gpt2_tiny.gin", "--gin_file", "runs/coverage_train.gin",
             f"--gin.MODEL_DIR='{root / 'model'}'", f"--gin.cell_setup.dataset_dir='{data}'",
             "--gin.DecoderConfig.emb_dim=32", f"--gin.DecoderConfig.num_layers={num_layers}",
             "--gin.NUM_SEEDS=2", f"--gin.MAX_STEPS={max_steps}", "--gin.BATCH_SIZE=64",
             "--gin.WARMUP_STEPS=2", "--gin.TrainConfig.steps_per_call=10",
             "--gin.TrainConfig.eval_period=10"]
    assert cli.main(["coverage", "train", *flags]) == 0
    return root / "model", data, flags


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    root = tmp_path_factory.mktemp("circ")
    return _train_cli(root, coverage.generate("twohop", root / "data", 10, 300, seed=5), 3, 20)


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
    collapse = pd.read_csv(out / "collapse_b.csv")
    assert set(collapse["split"]) == {"id_train", "id_test", "ood"}
    assert set(collapse["layer"]) == {0, 1, 2, 3} and set(collapse["seed"]) == {0, 1}
    ranks = pd.read_csv(out / "tracing_rank.csv")
    assert set(ranks["layer"]) == {1, 2} and set(ranks["position"]) == {0, 1, 2}
    assert (ranks["flip"] <= ranks["passed_data_num"]).all()
    assert (ranks["passed_data_num"] <= ranks["sample_num"]).all()
    lens = pd.read_csv(out / "logit_lens.csv")
    assert set(lens["layer"]) == {1, 2, 3} and (lens["mean_rank"] >= 0).all()
    assert (out / "iicg_b.png").stat().st_size > 0 and (out / "patching_flip.png").is_file()


def test_covered_accuracy_joins_coverage(trained: tuple[Path, Path, list[str]]) -> None:
    model_dir, data, flags = trained
    args = ["coverage", "covered", *flags, "--k", "1", "--k", "2", "--k_max", "4"]
    assert cli.main(args) == 0
    table = pd.read_csv(model_dir / "covered_accuracy.csv")
    final = max(int(p.name.split("_")[1]) for p in model_dir.glob("checkpoint_*"))
    assert cli.main([*args, "--step", str(final)]) == 0
    again = pd.read_csv(model_dir / f"covered_accuracy_{final}.csv")
    assert (again["step"] == final).all() and (table["step"] == "final").all()
    np.testing.assert_allclose(again["accuracy"], table["accuracy"], atol=1e-6)
    assert (model_dir / f"coverage_accuracy_{final}.png").stat().st_size > 0
    assert set(table["k"]) == {1, 2}
    assert not table.loc[table["type"] != "type_0", "covered"].any()
    per_example = pd.read_csv(model_dir / "per_example.csv")
    k1 = table[table["k"] == 1]
    assert k1["n_rows"].sum() == len(per_example) and (k1["accuracy"].between(0, 1)).all()
    assert table["prior_pos2"].between(0, 1).all()
    assert (model_dir / "coverage_accuracy.png").stat().st_size > 0


def _items(rows: list[tuple[tuple[int, ...], str]]) -> list[dict]:
    return [{"input_text": "".join(f"<t_{x}>" for x in xs), "type": t} for xs, t in rows]


def _splits(out: dict) -> dict:
    return {split: (rows.tolist(), keys) for split, (rows, keys) in out.items()}


# Upstream collapse scripts: OOD types and dedup positions (0-based) per (task, grouping).
UPSTREAM = {
    ("twohop", "b"): ({1, 2}, (0, 1)), ("twohop", "t"): ({1, 3}, (0, 1, 2)),
    ("twohop", "b,x2"): ({1, 2}, (0, 1)),
    ("threehop", "b1"): ({1, 2, 3, 4}, (0, 1)), ("threehop", "b2"): ({1, 2, 5, 6}, (0, 1, 2)),
    ("threehop", "t"): ({1, 3, 5, 7}, (0, 1, 2, 3)),
    ("threehop", "b2,x3"): ({1, 2, 5, 6}, (0, 1, 2)), ("threehop", "b1,b2"): ({1, 2}, (0, 1, 2)),
    ("parallel2hop", "b1"): ({1, 2, 3, 4}, (0, 1)), ("parallel2hop", "b2"): ({1, 2, 5, 6}, (2, 3)),
    ("parallel2hop", "t"): ({1, 3, 5, 7}, (0, 1, 2, 3)),
    ("nontree", "b"): ({1, 2}, (0, 1)), ("nontree", "t"): ({1, 3}, (0, 1, 2)),
    ("nontree", "x2"): ({1, 2, 3}, (0, 1, 2)), ("nontree", "b,x2"): ({1, 2}, (0, 1)),
    ("nontree", "b,x1"): ({1, 2}, (0, 1)),
}


def _task(name: str, fns: tuple[dict, ...] = ()) -> Task:
    s = coverage.STRUCTURES[name]
    return Task(f"{name}.3.10.diff-{s.same_tag}.inf", s, "inf", fns)


def test_ood_and_dedup_rules_reproduce_the_upstream_scripts() -> None:
    for (name, grouping), (types, positions) in UPSTREAM.items():
        task = _task(name)
        assert set(ood_types(task, grouping)) == {f"type_{k}" for k in types}, (name, grouping)
        assert dedup_positions(task, grouping) == positions, (name, grouping)
        idx = GROUPINGS[name][grouping]
        assert resolve_grouping(task, idx) == resolve_grouping(task, f"({grouping})") == grouping
    assert ood_types(_task("threehop"), "b2,x4") == ("type_1", "type_2", "type_5", "type_6")
    assert dedup_positions(_task("threehop"), "b2,x4") == (0, 1, 2, 3)
    assert ood_types(_task("parallel2hop"), "b1,b2") == ("type_1", "type_2")


def test_unknown_grouping_names_dataset_and_allowed() -> None:
    with pytest.raises(ValueError, match=r"threehop\.3\.10.*'b'.*allowed: 'b1' \(alias 1\)"):
        resolve_grouping(_task("threehop"), "b")
    with pytest.raises(ValueError, match=r"twohop\.3\.10.*'b,x1'.*'b,x2' \(alias 4\)"):
        resolve_grouping(_task("twohop"), "b,x1")
    with pytest.raises(ValueError, match="allowed"):
        resolve_grouping(_task("twohop"), 3)


def test_threehop_groups_dedup_and_ood_by_hand() -> None:
    f1 = {(0, 0): 1, (0, 1): 1, (1, 0): 2, (1, 1): 0, (2, 0): 2, (2, 2): 1, (0, 2): 0}
    f2 = {(1, 0): 0, (2, 0): 0, (2, 1): 1, (0, 1): 2, (1, 2): 2, (0, 0): 1}
    f3 = {(0, 0): 1, (0, 1): 2, (1, 0): 0, (2, 1): 0, (2, 0): 2, (2, 2): 1, (1, 1): 2}
    task = _task("threehop", (f1, f2, f3))
    items = _items([((0, 0, 0, 0), "train_inferred"), ((0, 1, 0, 0), "train_inferred"),
                    ((0, 0, 0, 1), "train_inferred"), ((1, 0, 0, 0), "type_0"),
                    ((1, 0, 1, 0), "type_0"), ((1, 1, 1, 1), "type_1"), ((1, 1, 1, 0), "type_2"),
                    ((2, 0, 0, 0), "type_3"), ((2, 2, 2, 2), "type_5"), ((2, 2, 2, 1), "type_7"),
                    ((0, 2, 0, 0), "type_4"), ((0, 2, 0, 1), "type_6")])
    # (b1, b2, t) per row: (1,0,1) (1,0,1) (1,0,2) (2,0,1) (2,1,0) (0,2,0) (0,2,2) (2,0,1)
    # (1,2,1) (1,2,0) (0,1,0) (0,1,2)
    assert _splits(collapse_items(task, items, "b1")) == {
        "id_train": ([0, 1], [1, 1]), "id_test": ([3], [2]), "ood": ([5, 7, 10], [0, 2, 0])}
    assert _splits(collapse_items(task, items, "b2")) == _splits(collapse_items(task, items, 2))
    assert _splits(collapse_items(task, items, "b2")) == {
        "id_train": ([0, 1], [0, 0]), "id_test": ([3, 4], [0, 1]),
        "ood": ([5, 8, 11], [2, 2, 1])}
    assert _splits(collapse_items(task, items, "t")) == {
        "id_train": ([0, 1, 2], [1, 1, 2]), "id_test": ([3, 4], [1, 0]),
        "ood": ([5, 7, 8, 9], [0, 1, 1, 0])}
    assert _splits(collapse_items(task, items, "b2,x4")) == {
        "id_train": ([0, 1, 2], [(0, 0), (0, 0), (0, 1)]), "id_test": ([3, 4], [(0, 0), (1, 0)]),
        "ood": ([5, 6, 8, 11], [(2, 1), (2, 0), (2, 2), (1, 1)])}


def test_nontree_groups_dedup_and_ood_by_hand() -> None:
    f1 = {(0, 0): 1, (1, 0): 1, (1, 1): 2, (0, 1): 1, (2, 2): 0, (2, 1): 2}
    f2 = {(1, 0, 0): 2, (1, 0, 1): 0, (2, 1, 0): 1, (1, 1, 0): 1, (0, 2, 2): 2, (0, 2, 0): 1,
          (2, 1, 1): 0}
    task = _task("nontree", (f1, f2))
    items = _items([((0, 0, 0), "train_inferred"), ((1, 0, 0), "train_inferred"),
                    ((0, 0, 1), "train_inferred"), ((1, 1, 0), "type_0"), ((0, 1, 0), "type_0"),
                    ((2, 2, 2), "type_1"), ((2, 2, 0), "type_2"), ((2, 1, 1), "type_3")])
    # (b, t) per row: (1,2) (1,2) (1,0) (2,1) (1,1) (0,2) (0,1) (2,0)
    assert _splits(collapse_items(task, items, "x2")) == {
        "id_train": ([0, 1, 2], [0, 0, 0]), "id_test": ([3, 4], [1, 1]),
        "ood": ([5, 6, 7], [2, 2, 1])}
    assert _splits(collapse_items(task, items, "b,x1")) == {
        "id_train": ([0, 1], [(1, 0), (1, 1)]), "id_test": ([3, 4], [(2, 1), (1, 0)]),
        "ood": ([5], [(0, 2)])}
    assert _splits(collapse_items(task, items, "b,x2")) == {
        "id_train": ([0, 1], [(1, 0), (1, 0)]), "id_test": ([3, 4], [(2, 1), (1, 1)]),
        "ood": ([5], [(0, 2)])}
    assert _splits(collapse_items(task, items, "t")) == {
        "id_train": ([0, 1, 2], [2, 2, 0]), "id_test": ([3, 4], [1, 1]), "ood": ([5, 7], [2, 0])}
    labels = {3: "low_cutoff", 4: "high_cutoff"}
    split = _splits(collapse_items(task, items, "b", labels))
    assert split["id_test_low_cutoff"] == ([3], [2]) and split["id_test_high_cutoff"] == ([4], [1])


def test_coverage_labels_and_grouped_rank_summary() -> None:
    thresholds = {10: 0, 11: 2, 12: 3, 13: 4, 14: 7}
    assert list(coverage_labels(thresholds, "low_mid_high").values()) == [
        "low_cutoff", "low_cutoff", "mid_cutoff", "high_cutoff", "high_cutoff"]
    assert list(coverage_labels(thresholds, "split3").values()) == [
        "low_cutoff", "low_cutoff", "high_cutoff", "high_cutoff", "high_cutoff"]
    assert coverage_labels(thresholds, "per_k")[14] == "covered_7"
    with pytest.raises(ValueError, match="low_mid_high"):
        coverage_labels(thresholds, "thirds")
    test = _items([((0, 0, 0), "type_0"), ((1, 0, 0), "train_inferred"), ((0, 1, 0), "type_0")])
    annotated = [*test, {**test[2], "type": "covered_5"}, {**test[0], "type": "covered_2"}]
    assert thresholds_from_annotated(test, annotated) == {0: 2, 2: 5}
    with pytest.raises(ValueError, match="type_0 item 0"):
        thresholds_from_annotated(test, annotated[:4])
    # rank_t_before, rank_tq_before, rank_t_after, rank_tq_after per row
    ranks = {10: (0, 3, 4, 0), 11: (5, 2, 9, 0), 12: (0, 1, 0, 7), 13: (1, 9, 8, 6),
             14: (0, 2, 3, 2), 20: (0, 4, 9, 0)}
    trace = pd.DataFrame([{"seed": 0, "row": r, "type": "train_inferred" if r == 20 else "type_0",
                           "layer": 1, "position": 1, "rank_t_before": a, "rank_tq_before": b,
                           "rank_t_after": c, "rank_tq_after": d}
                          for r, (a, b, c, d) in ranks.items()])
    cols = ["sample_num", "passed_data_num", "top5", "flip", "both"]
    for scheme, expected in {
        "low_mid_high": {"low_cutoff": [2, 1, 1, 1, 1], "mid_cutoff": [1, 1, 0, 0, 0],
                         "high_cutoff": [2, 2, 1, 2, 1]},
        "split3": {"low_cutoff": [2, 1, 1, 1, 1], "high_cutoff": [3, 3, 1, 2, 1]},
    }.items():
        grouped = add_coverage_groups(trace, coverage_labels(thresholds, scheme))
        summary = rank_summary(grouped, ("coverage_group",)).set_index("coverage_group")
        assert {g: summary.loc[g, cols].tolist() for g in summary.index} == expected


def test_cot_tracing_patches_x2_and_ranks_the_bridge(tmp_path: Path) -> None:
    directory = coverage.generate("twohop", tmp_path, 10, 300, mode="cot", seed=5)
    data = load_coverage_data(directory)
    trainer = build_trainer(DecoderConfig(emb_dim=32, num_heads=2, num_layers=3, mlp_dim=64,
                                          max_len=8), OptimizerConfig(),
                            TrainConfig(batch_size=8, steps_per_call=1), data.vocab_size)
    params = trainer.init(jnp.arange(2))["params"]
    test = json.loads((directory / "test.json").read_text())
    train = json.loads((directory / "train.json").read_text())
    f1, f2 = load_task(directory).fns
    cf = counterfactuals(test, train, f1, f2)
    rows = [c[0] for c in cf]
    orig = data.test["tokens"][rows]
    query = orig.copy()
    query[:, 1] = [data.token_id(f"<t_{c[1][1]}>") for c in cf]

    def rank(logits: np.ndarray, values: list[int]) -> np.ndarray:
        ids = np.array([data.token_id(f"<t_{v}>") for v in values])
        return (logits > logits[np.arange(len(ids)), ids][:, None]).sum(-1)

    b, bq = [c[2] for c in cf], [f1[c[1][:2]] for c in cf]
    t, tq = [c[3] for c in cf], [c[4] for c in cf]
    fixed = causal_tracing(trainer, params, [0, 1], data, test, f1, f2, train, cot=True)
    parity = causal_tracing(trainer, params, [0, 1], data, test, f1, f2, train, cot=True,
                            parity=True)
    assert set(fixed["position"]) == {1} and set(fixed["layer"]) == {1, 2}
    assert set(fixed["measured"]) == {"b"} and set(parity["measured"]) == {"t"}
    for s in (0, 1):
        model = trainer.model(jax.tree.map(lambda a, s=s: a[s], params))
        before = np.asarray(model(jnp.asarray(orig)))[:, 2]
        on_query = np.asarray(model(jnp.asarray(query)))[:, 2]
        h, hq = model.hidden_states(jnp.asarray(orig)), model.hidden_states(jnp.asarray(query))
        for layer in (1, 2):
            got = fixed[(fixed["seed"] == s) & (fixed["layer"] == layer)]
            got_parity = parity[(parity["seed"] == s) & (parity["layer"] == layer)]
            assert got["row"].tolist() == rows
            np.testing.assert_array_equal(got["rank_t_before"], rank(before, b))
            np.testing.assert_array_equal(got["rank_tq_before"], rank(before, bq))
            np.testing.assert_array_equal(got_parity["rank_t_before"], rank(before, t))
            probs = np.asarray(jax.nn.softmax(on_query))
            ids = [data.token_id(f"<t_{v}>") for v in bq]
            np.testing.assert_allclose(got["p_tq_query"], probs[np.arange(len(ids)), ids],
                                       rtol=1e-4)
            patched = np.asarray(model.logits_from(h[layer].at[:, 1].set(hq[layer][:, 1]),
                                                   layer))[:, 2]
            np.testing.assert_array_equal(got["rank_tq_after"], rank(patched, bq))
            np.testing.assert_array_equal(got_parity["rank_t_after"], rank(patched, t))
            np.testing.assert_array_equal(got_parity["rank_tq_after"], rank(patched, tq))


def test_circuits_cli_coverage_groups(trained: tuple[Path, Path, list[str]]) -> None:
    model_dir, data, flags = trained
    assert cli.main(["coverage", "circuits", *flags, "--coverage_groups", "split3"]) == 0
    out = model_dir / "circuits"
    max_k = kcoverage_table(data, 20).set_index("index")["max_k"]
    test = json.loads((data / "test.json").read_text())
    collapse = pd.read_csv(out / "collapse_b.csv")
    labels = {"low_cutoff" if max_k[i] < 3 else "high_cutoff"
              for i, it in enumerate(test) if it["type"] == "type_0"}
    assert set(collapse["split"]) == {"id_train", "id_test", "ood",
                                      *(f"id_test_{g}" for g in labels)}
    ranks = pd.read_csv(out / "tracing_rank.csv")
    grouped = pd.read_csv(out / "tracing_rank_split3.csv")
    assert set(grouped["coverage_group"]) <= {"low_cutoff", "high_cutoff"}
    key = ["seed", "position", "layer"]
    t0 = ranks[ranks["type"] == "type_0"].set_index(key)[["sample_num", "passed_data_num", "flip"]]
    pooled = grouped.groupby(key)[["sample_num", "passed_data_num", "flip"]].sum()
    pd.testing.assert_frame_equal(pooled.sort_index(), t0.sort_index(), check_dtype=False)
    assert (out / "tracing_prob_split3.csv").is_file()


def test_coverage_thresholds_read_test_annotated(trained: tuple[Path, Path, list[str]],
                                                 tmp_path: Path) -> None:
    _, data, _ = trained
    copy = tmp_path / data.name
    shutil.copytree(data, copy)
    test = json.loads((data / "test.json").read_text())
    table = kcoverage_table(data, 6)
    computed = coverage_thresholds(copy, test, k_max=6)
    write_upstream_outputs(table, data, copy)
    assert (copy / "test_annotated.json").is_file()
    assert coverage_thresholds(copy, test) == computed == {
        int(i): int(k) for i, k, t in table[["index", "max_k", "type"]].itertuples(index=False)
        if t == "type_0"}


@pytest.fixture(scope="module")
def trained_threehop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    root = tmp_path_factory.mktemp("circ3")
    return _train_cli(root, coverage.generate("threehop", root / "data", 7, 400, seed=5), 2, 10)


def test_circuits_cli_threehop(trained_threehop: tuple[Path, Path, list[str]],
                               capsys: pytest.CaptureFixture) -> None:
    model_dir, data, flags = trained_threehop
    assert cli.main(["coverage", "circuits", *flags, "--grouping", "b2"]) == 0
    out = model_dir / "circuits"
    collapse = pd.read_csv(out / "collapse_b2.csv")
    assert set(collapse["split"]) == {"id_train", "id_test", "ood"}
    assert set(collapse["position"]) == {0, 1, 2, 3} and set(collapse["layer"]) == {0, 1, 2}
    # Independent truth: OOD = non-ID items whose f2 key (b1, x3) never occurs in training,
    # one per (x1, x2, x3).
    f1, f2, _ = (load_function(data / f"atomic_facts_f{i}.json") for i in (1, 2, 3))
    seen_f2 = {(f1[xs[:2]], xs[2]) for xs in
               (token_indices(it["input_text"]) for it in json.loads((data / "train.json")
                                                                     .read_text()))}
    test = json.loads((data / "test.json").read_text())
    ood = {xs[:3] for xs, it in ((token_indices(it["input_text"]), it) for it in test)
           if it["type"] not in ("type_0", "train_inferred") and (f1[xs[:2]], xs[2]) not in seen_f2}
    assert ood and set(collapse.loc[collapse["split"] == "ood", "n_vectors"]) == {len(ood)}
    lens = pd.read_csv(out / "logit_lens.csv")
    assert set(lens["bridge"]) == {"b1", "b2"} and set(lens["position"]) == {0, 1, 2, 3}
    assert not (out / "tracing_rank.csv").exists()
    assert cli.main(["coverage", "circuits", *flags, "--grouping", "b"]) == 2
    assert "allowed: 'b1' (alias 1)" in capsys.readouterr().err
    assert cli.main(["coverage", "circuits", *flags, "--coverage_groups", "split3"]) == 2
    assert "3-token inputs" in capsys.readouterr().err
