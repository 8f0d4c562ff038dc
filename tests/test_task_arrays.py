"""Exported task arrays (`compgen-jax data export`, TASK_ARRAYS): the same data as the seqio task,
read without TensorFlow, seqio or clu, and training from them is bitwise the seqio task's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import run_without

from compgen_jax import cli
from tasks import registry
from tasks.arrays import GRID_META, ArraysError, TaskArrays

FIXTURES = Path(__file__).parent / "fixtures"
TASK = "gscan_compositional_k1_seed0"  # the gSCAN fixture with a k-shot: grids, categories
NO_TF = ("tensorflow", "seqio", "clu")
CELL = [
    "train", "--gin_file=experiments/scan_simple_cell_cpu.gin",
    f"--gin.MIXTURE_OR_TASK_NAME='{TASK}'",
    "--gin.N_UNIQUE=3", "--gin.TransformerConfig.emb_dim=32", "--gin.TransformerConfig.mlp_dim=64",
    "--gin.TransformerConfig.num_encoder_layers=1", "--gin.TransformerConfig.num_decoder_layers=1",
    "--gin.TRAIN_STEPS=4", "--gin.TrainConfig.steps_per_call=2", "--gin.NUM_SEEDS=2",
    "--gin.BATCH_SIZE=2", "--gin.TrainConfig.eval_splits=('dev',)",
    "--gin.TrainConfig.tensorboard=False",
]


@pytest.fixture()
def exported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The gSCAN fixture task exported through the CLI, as a user would."""
    monkeypatch.setenv("COMPGEN_DATA_DIR", str(FIXTURES))
    out = tmp_path / "gscan.npz"
    assert cli.main(["data", "export", TASK, "--out", str(out)]) == 0
    return out


def test_export_holds_the_seqio_tasks_examples_pools_grids_and_vocabulary(exported: Path):
    arrays = TaskArrays.load(exported)
    assert arrays.task == TASK and arrays.splits == registry.task_splits(TASK)
    vocabulary = registry.get_vocabulary(TASK)
    assert arrays.words == vocabulary.tokens and arrays.vocab_size == vocabulary.vocab_size
    for split in arrays.splits:
        want = registry.get_examples(TASK, split)
        got = arrays.examples(split)
        assert got == want  # every compared field: text, atoms, pairs, depth, out_len, category
        assert [g.meta for g in got] == [{k: v for k, v in w.meta.items() if k != GRID_META}
                                         for w in want]
        pool = registry.tokenized_pool(TASK, split)
        assert pool.keys() == arrays.pool(split).keys()
        for key, value in arrays.pool(split).items():
            np.testing.assert_array_equal(value, pool[key])
            assert value.dtype == pool[key].dtype
        np.testing.assert_array_equal(arrays.situations(split),
                                      registry.gscan_situation_pool(TASK, split))
        lengths = arrays.arrays[f"{split}.lengths"]  # by hand: words + EOS per example
        assert lengths.tolist() == [[len(ex.input.split()) + 1, len(ex.target.split()) + 1]
                                    for ex in want]


def test_training_from_the_file_without_tensorflow_equals_the_seqio_task(
        exported: Path, tmp_path: Path):
    seqio_dir, file_dir = tmp_path / "seqio", tmp_path / "file"
    assert cli.main([*CELL, f"--gin.MODEL_DIR='{seqio_dir}'"]) == 0
    empty = tmp_path / "no_data"
    empty.mkdir()  # the file is all the run reads: the data dir is empty
    proc = run_without(NO_TF, "compgen_jax.cli", *CELL, f"--gin.MODEL_DIR='{file_dir}'",
                       f"--gin.TASK_ARRAYS='{exported}'", env={"COMPGEN_DATA_DIR": str(empty)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    written = sorted(p.relative_to(seqio_dir).as_posix() for p in seqio_dir.rglob("*.csv"))
    assert "results.csv" in written and "predictions/dev_step4.csv" in written
    for name in [*written, "manifests/seed_0.json", "manifests/seed_1.json"]:
        assert (file_dir / name).read_bytes() == (seqio_dir / name).read_bytes(), name


def test_a_file_of_another_task_or_not_ours_is_one_clear_error(exported: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture):
    argv = [*CELL, f"--gin.MODEL_DIR='{tmp_path / 'm'}'"]
    assert cli.main([*argv, "--gin.MIXTURE_OR_TASK_NAME='gscan_compositional'",
                     f"--gin.TASK_ARRAYS='{exported}'"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{exported}: holds task {TASK!r}" in err[0], err
    other = tmp_path / "other.npz"
    np.savez_compressed(other, words=np.array(["a"]))
    assert cli.main([*argv, f"--gin.TASK_ARRAYS='{other}'"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{other}: not a task-arrays file" in err[0], err
    assert not (tmp_path / "m").exists()


def test_damaged_tokens_are_refused(exported: Path, tmp_path: Path):
    with np.load(exported) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["train.targets"] = arrays["train.targets"][:, :-1]  # EOS of the longest target lost
    damaged = tmp_path / "damaged.npz"
    np.savez_compressed(damaged, **arrays)
    with pytest.raises(ArraysError, match=r"split 'train': token ids disagree"):
        TaskArrays.load(damaged)


@pytest.mark.slow
def test_cogs_export_holds_the_seqio_tasks_examples_and_pools(shared_data: Path, tmp_path: Path):
    """The real COGS data (what the accelerator runs train on): records with their meta, pools."""
    from tasks.arrays import export

    registry.register_cogs_tasks(shared_data)
    out = tmp_path / "cogs.npz"
    assert export("cogs", out, ("train", "gen"), shared_data) == {"train": 24155, "gen": 21000}
    arrays = TaskArrays.load(out)
    assert arrays.words == registry.get_vocabulary("cogs").tokens
    for split in ("train", "gen"):
        want = registry.get_examples("cogs", split)
        assert arrays.examples(split) == want
        assert [g.meta for g in arrays.examples(split)] == [w.meta for w in want]
        pool = registry.tokenized_pool("cogs", split)
        for key, value in arrays.pool(split).items():
            np.testing.assert_array_equal(value, pool[key])
