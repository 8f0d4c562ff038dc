"""Decoder-only coverage training: data types, tokenization, order streams, early stopping."""

from __future__ import annotations

import ast
import dataclasses
import json
import shutil
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pytest

from analysis.results import read_results, tidy_results
from analysis.schema import RESULT_COLUMNS
from compgen_jax import cli, loop, runner
from compgen_jax.checkpoints import ALL_CHECKPOINTS, CheckpointConfig
from compgen_jax.circuits import load_function, token_indices
from compgen_jax.configs import TrainConfig
from compgen_jax.coverage_cells import restore_params, train_coverage_cell, upstream_stop_rules
from compgen_jax.coverage_data import load_coverage_data, type_accuracy
from compgen_jax.models.decoder_only import DecoderConfig
from compgen_jax.optim import OptimizerConfig
from compgen_jax.orders import order_window
from compgen_jax.scaling import n_required_table, run_scaling
from compgen_jax.trainers import build_trainer
from tasks.benchmarks import coverage

TINY = DecoderConfig(emb_dim=32, num_heads=2, num_layers=2, mlp_dim=64, max_len=8)
OPT = OptimizerConfig(learning_rate=3e-3, warmup_steps=2, decay="constant", b2=0.999)


@pytest.fixture(scope="module")
def twohop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return coverage.generate("twohop", tmp_path_factory.mktemp("cov"), 10, 250, seed=3)


def test_generator_types_match_definitions(twohop: Path) -> None:
    """type_0 disjoint from train; types recomputed from the seen sets of the sampled train."""
    train = json.loads((twohop / "train.json").read_text())
    test = json.loads((twohop / "test.json").read_text())
    f1 = load_function(twohop / "atomic_facts_f1.json")
    triples = {token_indices(it["input_text"]) for it in train}
    seen_f1 = {t[:2] for t in triples}
    seen_f2 = {(f1[t[:2]], t[2]) for t in triples}
    counts: dict[str, int] = {}
    for item in test:
        xs = token_indices(item["input_text"])
        counts[item["type"]] = counts.get(item["type"], 0) + 1
        if item["type"] == "train_inferred":
            assert xs in triples
            continue
        assert xs not in triples
        code = 2 * ((xs[0], xs[1]) in seen_f1) + ((f1[xs[:2]], xs[2]) in seen_f2)
        assert item["type"] == ("type_0" if code == 3 else f"type_{code + 1}")
    assert {"train_inferred", "type_0", "type_1", "type_2", "type_3"} <= set(counts)


def test_tokenize_masks_answer_tokens_only(tmp_path: Path, twohop: Path) -> None:
    data = load_coverage_data(twohop)
    tokens, mask = data.train["tokens"], data.train["loss_mask"]
    assert tokens.shape[1] == 5 and (mask.sum(axis=1) == 1).all() and (mask[:, 3] == 1).all()
    assert (tokens[:, 4] == data.token_id(coverage.END)).all()
    cot = load_coverage_data(coverage.generate("twohop", tmp_path, 10, 250, mode="cot", seed=3))
    assert (cot.train["loss_mask"][:, 3:5] == 1).all() and cot.train["loss_mask"].sum() == 500


def test_order_window_is_a_stream_of_epoch_permutations() -> None:
    stream = np.concatenate([order_window(7, 10, s, 4) for s in range(0, 28, 4)])
    np.testing.assert_array_equal(stream, order_window(7, 10, 0, 28))
    assert sorted(stream[:10]) == list(range(10)) and sorted(stream[10:20]) == list(range(10))
    assert not np.array_equal(order_window(8, 10, 0, 10), stream[:10])


def test_type_accuracy_is_token_level() -> None:
    per_example = np.array([[1.0, 0.5, 0.0]])
    mask = np.array([[0, 1, 0], [0, 1, 1], [0, 1, 0]])
    acc = type_accuracy(per_example, mask, np.array(["a", "a", "b"]))
    assert acc["a"][0] == pytest.approx(2 / 3) and acc["b"][0] == 0.0


def test_training_and_both_early_stopping_rules(tmp_path: Path, twohop: Path) -> None:
    data = load_coverage_data(twohop)
    config = TrainConfig(num_seeds=2, total_steps=30, batch_size=64, steps_per_call=5,
                         eval_period=10, eval_batch_size=128,
                         stop_rules=upstream_stop_rules(0.0, patience_epochs=0))
    trainer = build_trainer(TINY, OPT, config, data.vocab_size)
    result = train_coverage_cell(data, trainer, config, tmp_path / "m")
    assert (result.stops["stop_reason"] == "type_0").all()
    assert (result.stops["stop_step"] == 10).all() and result.rows["step"].max() == 10
    assert set(result.rows["split"]) == set(data.test_types)
    assert len(result.per_example) == 2 * len(data.test_types)
    saved = pd.read_csv(tmp_path / "m" / "results.csv")
    assert len(saved) == len(result.rows) and (tmp_path / "m" / "per_example.csv").is_file()

    no_type0 = dataclasses.replace(
        data, test_types=np.where(data.test_types == "type_0", "type_9", data.test_types))
    patient = train_coverage_cell(no_type0, trainer, config, tmp_path / "patient")
    assert (patient.stops["stop_reason"] == "patience").all()
    assert (patient.stops["stop_step"] == 20).all()

    full = train_coverage_cell(data, trainer, dataclasses.replace(
        config, stop_rules=upstream_stop_rules(1.01, patience_epochs=0)), tmp_path / "full")
    assert (full.stops["stop_reason"] == "max_steps").all()
    assert full.rows["step"].max() == 35  # whole epochs (Q15): 30 // 4 + 1 = 8 epochs x 4 steps
    assert np.isfinite(full.rows["train_loss"]).all()


def test_n_required_table() -> None:
    stops = pd.DataFrame({"num_tokens": [30, 30, 30, 30, 50, 50], "n_train": [100, 100, 200, 200,
                          300, 300], "stop_reason": ["type_0", "max_steps", "type_0", "type_0",
                                                     "max_steps", "patience"]})
    table = n_required_table(stops, success_fraction=0.75).set_index("num_tokens")
    assert table.loc[30, "n_required"] == 200 and np.isnan(table.loc[50, "n_required"])
    assert table.loc[50, "n_max_tried"] == 300


SCALING_GIN = ["experiments/coverage_scaling_cpu.gin"]
TINY_FLAGS = ["DecoderConfig.emb_dim = 32", "DecoderConfig.num_heads = 2",
              "DecoderConfig.num_layers = 2", "DecoderConfig.mlp_dim = 64", "BATCH_SIZE = 64",
              "LEARNING_RATE = 3e-3", "WARMUP_STEPS = 2", "TrainConfig.steps_per_call = 5",
              "TrainConfig.eval_period = 5", "ScalingSweep.num_tokens = (8,)"]


def _scaling(root: Path, *bindings: str) -> pd.DataFrame:
    """The scaling design (coverage_scaling_cpu.gin, tiny model) into root/m, data in root/d."""
    return run_scaling(SCALING_GIN, [f"MODEL_DIR = '{root / 'm'}'", f"DATA_ROOT = '{root / 'd'}'",
                                     *TINY_FLAGS, *bindings])


def counting_config_writes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every MODEL_DIR the one config.gin writer (in the host loop) writes to, in order."""
    written: list[Path] = []
    original = loop.write_operative_config

    def count(model_dir: Path) -> Path:
        written.append(Path(model_dir))
        return original(model_dir)

    monkeypatch.setattr(loop, "write_operative_config", count)
    return written


def test_scaling_design_stops_at_the_first_sufficient_size_and_relaunches_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    written = counting_config_writes(monkeypatch)
    table = _scaling(tmp_path, "NUM_SEEDS = 2", "MAX_STEPS = 10", "STOP_THRESHOLD = 0.0",
                     "ScalingSweep.size_factors = (3.0, 4.0)", "ScalingSweep.min_type0_items = 1")
    assert table.to_dict("records") == [{"num_tokens": 8, "n_required": 192.0,
                                         "n_max_tried": 192}]
    assert not (tmp_path / "d" / "twohop.8.256.diff-f12.inf").exists()
    assert pd.read_csv(tmp_path / "m" / "n_required.csv")["n_required"].tolist() == [192.0]
    cell = tmp_path / "m" / "twohop.8.192.diff-f12.inf"
    assert written == [cell]  # the one cell trained writes its config.gin once
    config = (cell / "config.gin").read_text()
    assert "cell_setup.dataset_dir = " in config and str(tmp_path / "d" / cell.name) in config
    assert (cell / "cell.json").is_file() and not (tmp_path / "m" / "config.gin").exists()

    def no_training(*args: object) -> None:
        raise AssertionError("a relaunch trained a finished cell")

    monkeypatch.setattr(runner, "train_in_process", no_training)
    pd.testing.assert_frame_equal(_scaling(
        tmp_path, "NUM_SEEDS = 2", "MAX_STEPS = 10", "STOP_THRESHOLD = 0.0",
        "ScalingSweep.size_factors = (3.0, 4.0)", "ScalingSweep.min_type0_items = 1"), table)
    assert not (tmp_path / "d" / "twohop.8.256.diff-f12.inf").exists()


def test_scaling_design_ends_a_size_series_when_type0_runs_out(tmp_path: Path) -> None:
    """|X| = 8, seed 42: 160 training chains leave 32 type_0 items, 192 leave 22."""
    flags = ["NUM_SEEDS = 1", "MAX_STEPS = 5", "STOP_THRESHOLD = 1.01",
             "ScalingSweep.min_type0_items = 30"]
    table = _scaling(tmp_path, *flags, "ScalingSweep.size_factors = (2.5, 3.0, 4.0)")
    assert table["n_required"].isna().all() and table["n_max_tried"].tolist() == [160]
    assert not (tmp_path / "m" / "twohop.8.192.diff-f12.inf").exists()
    assert not (tmp_path / "d" / "twohop.8.256.diff-f12.inf").exists()
    with pytest.raises(ValueError, match="trained no cell"):
        _scaling(tmp_path / "other", *flags, "ScalingSweep.size_factors = (3.0,)")


def test_config_gin_has_one_writer() -> None:
    """write_operative_config is called in one place of the package: the host loop."""
    package = Path(loop.__file__).parent
    calls = [path.relative_to(package).as_posix() for path in sorted(package.rglob("*.py"))
             for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(
                 node.func, "attr", None)) == "write_operative_config"]
    assert calls == ["loop.py"]


def test_checkpoint_cadence_follows_upstream() -> None:
    config = CheckpointConfig(period=((5000, 250), (0, 2500)))
    due = [s for s in range(25, 12_501, 25) if config.due(s)]
    assert due[:3] == [250, 500, 750] and 5000 in due and 5250 not in due
    assert due[-3:] == [7500, 10_000, 12_500]
    with pytest.raises(ValueError, match="period 30 must be 0"):
        CheckpointConfig(period=((5000, 250), (0, 30))).validate(steps_per_call=25)


def test_periodic_checkpoints_and_resume_equal_an_uninterrupted_run(
        tmp_path: Path, twohop: Path) -> None:
    """Stopping after a checkpoint and rerunning continues bit-for-bit (state and bookkeeping)."""
    data = load_coverage_data(twohop)
    config = TrainConfig(num_seeds=2, total_steps=30, batch_size=64, steps_per_call=5,
                         eval_period=5, eval_batch_size=128,
                         stop_rules=upstream_stop_rules(1.01))
    checkpoints = dataclasses.replace(ALL_CHECKPOINTS, period=((20, 10), (0, 15)))
    trainer = build_trainer(TINY, OPT, config, data.vocab_size)
    whole = train_coverage_cell(data, trainer, config, tmp_path / "whole", checkpoints)
    assert sorted(int(p.name.split("_")[1]) for p in (tmp_path / "whole").glob("checkpoint_*")) \
        == [10, 20, 30, 35]
    short = train_coverage_cell(data, trainer, dataclasses.replace(config, total_steps=12),
                                tmp_path / "short", checkpoints)
    assert short.rows["step"].max() == 20  # 12 // 4 + 1 = 4 epochs x 4 steps, rounded up to 5s
    # A run killed after checkpoint_20: the later checkpoints and the end-of-run files are gone.
    shutil.copytree(tmp_path / "whole", tmp_path / "killed")
    for name in ("checkpoint_30", "checkpoint_35"):
        shutil.rmtree(tmp_path / "killed" / name)
    for name in ("results.csv", "stops.csv", "per_example.csv"):
        (tmp_path / "killed" / name).unlink()
    resumed = train_coverage_cell(data, trainer, config, tmp_path / "killed", checkpoints)
    pd.testing.assert_frame_equal(resumed.rows, whole.rows)
    pd.testing.assert_frame_equal(resumed.stops, whole.stops)
    np.testing.assert_allclose(resumed.per_example["accuracy"], whole.per_example["accuracy"])
    at_20 = restore_params(tmp_path / "whole", trainer, config.seeds, step=20)
    again = restore_params(tmp_path / "short", trainer, config.seeds, step=20)
    for a, b in zip(jax.tree.leaves(at_20), jax.tree.leaves(again), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(FileNotFoundError, match="no checkpoint_25"):
        restore_params(tmp_path / "whole", trainer, config.seeds, step=25)


def test_coverage_train_writes_the_results_schema_and_one_operative_config(
        tmp_path: Path, twohop: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`coverage train` (the one cell setup, `cell_setup.dataset_dir`) writes the benchmark
    cells' long format (tests/test_cli.py checks the same columns for a SCAN cell), which
    analysis reads and tidies like any other results, and config.gin once, from the host loop."""
    written = counting_config_writes(monkeypatch)
    flags = ["--gin_file=models/gpt2_tiny.gin", "--gin_file=runs/coverage_train.gin",
             f"--gin.MODEL_DIR='{tmp_path / 'm'}'", f"--gin.cell_setup.dataset_dir='{twohop}'",
             *(f"--gin.{b.replace(' ', '')}" for b in TINY_FLAGS[:-1]), "--gin.NUM_SEEDS=2",
             "--gin.MAX_STEPS=8", "--gin.TrainConfig.steps_per_call=4",
             "--gin.TrainConfig.eval_period=4", "--gin.TrainConfig.eval_batch_size=128",
             "--gin.TrainConfig.stop_rules=()", "--gin.CheckpointConfig.period=0"]
    assert cli.main(["coverage", "train", *flags]) == 0
    assert written == [tmp_path / "m"]
    config = (tmp_path / "m" / "config.gin").read_text()
    assert "cell_setup.dataset_dir = " in config and str(twohop) in config
    assert "DecoderConfig.emb_dim = 32" in config
    data = load_coverage_data(twohop)
    written_rows = pd.read_csv(tmp_path / "m" / "results.csv", keep_default_na=False)
    assert list(written_rows.columns) == list(RESULT_COLUMNS)
    table = read_results(tmp_path / "m")
    assert set(table["split"]) == set(data.test_types)
    assert set(table["metric"]) == {"answer_token_accuracy"}
    assert (table["n_unique"] == data.n_train).all() and set(table["step"]) == {4, 8, 12}
    tidy = tidy_results(table, "type_0")
    assert len(tidy.frame) == 2 and tidy.excluded.empty
    assert tidy.frame["exact_match"].between(0, 1).all()


def test_decoder_sequence_longer_than_max_len_is_one_clear_error(
        tmp_path: Path, twohop: Path) -> None:
    data = load_coverage_data(twohop)  # sequences of 5 tokens
    config = TrainConfig(num_seeds=1, total_steps=4, batch_size=64, steps_per_call=4)
    trainer = build_trainer(dataclasses.replace(TINY, max_len=4), OPT, config, data.vocab_size)
    with pytest.raises(ValueError, match=r"split 'train': longest tokens example is 5 tokens "
                       r".*DecoderConfig.max_len=4; set DecoderConfig.max_len >= 5"):
        train_coverage_cell(data, trainer, config, tmp_path / "m")
    assert not (tmp_path / "m").exists()
