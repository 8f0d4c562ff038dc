"""A real COGS cell, trained a few steps: per-category and easy/hard rows, predictions with text."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from analysis.results import read_results, tidy_results
from compgen_jax.cli import main
from tasks.benchmarks import cogs

MICRO_RELATIVE = [  # relative positions: no length limit for COGS' long LFs
    "--gin.TransformerConfig.position='relative'", "--gin.TransformerConfig.emb_dim=32",
    "--gin.TransformerConfig.mlp_dim=64", "--gin.TransformerConfig.num_encoder_layers=1",
    "--gin.TransformerConfig.num_decoder_layers=1", "--gin.TRAIN_STEPS=10",
    "--gin.TrainConfig.steps_per_call=5", "--gin.NUM_SEEDS=2", "--gin.BATCH_SIZE=8",
]


@pytest.mark.slow
def test_cogs_cell_has_rows_per_gen_category_and_group(shared_data: Path, tmp_path: Path):
    rc = main(["train", "--gin_file=experiments/scan_simple_cell_cpu.gin",
               f"--gin.MODEL_DIR='{tmp_path}'", "--gin.MIXTURE_OR_TASK_NAME='cogs'",
               "--gin.N_UNIQUE=200", "--gin.TrainConfig.eval_splits=('gen',)",
               "--gin.TrainConfig.max_eval_examples=210", *MICRO_RELATIVE])
    assert rc == 0
    table = read_results(tmp_path / "results.csv")
    assert set(table["metric"]) == {"exact_match"} and set(table["seed"]) == {0, 1}
    sizes = table[table["seed"] == 0].set_index("split")["n_examples"]
    predictions = pd.read_csv(tmp_path / "predictions" / "gen_step10.csv", keep_default_na=False)
    assert sizes["gen"] == 210 == len(predictions) / 2
    categories = sorted(s.removeprefix("gen:") for s in sizes.index
                        if s.startswith("gen:") and s not in ("gen:easy", "gen:hard"))
    assert categories == sorted(set(predictions["category"]))
    assert set(categories) <= set(cogs.GEN_CATEGORIES) and len(categories) >= 15
    assert sum(sizes[f"gen:{c}"] for c in categories) == sizes["gen"]
    assert sizes["gen:easy"] + sizes["gen:hard"] == sizes["gen"]
    hard = sum(sizes[f"gen:{c}"] for c in categories if c in cogs.STRUCTURAL_CATEGORIES)
    assert sizes["gen:hard"] == hard
    # Each row's score is the fraction of its examples the predictions file marks correct.
    seed0 = predictions[predictions["seed"] == 0]
    for category, rows in seed0.groupby("category"):
        row = table[(table["seed"] == 0) & (table["split"] == f"gen:{category}")]
        assert row["exact_match"].item() == pytest.approx(rows["correct"].mean())
    assert (seed0["target"] == [cogs.load("gen", shared_data)[i].target
                                for i in seed0["example_id"]]).all()
    assert seed0["input"].str.len().gt(0).all() and seed0["prediction"].str.len().gt(0).all()
    assert len(tidy_results(table, "gen:hard").frame) == 2  # analysis reads the group rows
