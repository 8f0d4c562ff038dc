"""Validation before anything runs: lengths, schedule, pool, memory; every shipped design file."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

import compgen_jax.train  # noqa: F401  (registers the configurables)
from compgen_jax import designs, validation
from compgen_jax.cli import main
from compgen_jax.configs import CellConfig, TrainConfig
from compgen_jax.gin_utils import parse_gin
from compgen_jax.models.decoder_only import DecoderConfig
from compgen_jax.models.transformer import TransformerConfig, matrices_only
from compgen_jax.multiseed import MultiSeedTrainer
from compgen_jax.optim import OptimizerConfig, make_optimizer
from compgen_jax.validation import DesignError, DeviceBudget, SplitShape, TaskShape
from tasks.selection import ManifestSpec

TINY = TransformerConfig(emb_dim=64, num_heads=4, num_encoder_layers=2, num_decoder_layers=2,
                         mlp_dim=128, max_len=128)
TOY = TaskShape(vocab_size=40, splits={"train": SplitShape(500, {"inputs": 10, "targets": 30}),
                                       "gen": SplitShape(300, {"inputs": 20, "targets": 90})})
DESIGNS = ("cogs_e1", "cogs_e2", "cogs_e3", "cogs_e4", "cogs_e5", "cogs_e6", "cogs_seed_threshold",
           "replication_scan_length", "replication_recogs_gen", "replication_gscan_adverb_1",
           "replication_cfq_mcd1")
DESIGN_FILES = (*DESIGNS, *(f"{d}_cpu" for d in DESIGNS), "scan_sweep_cpu")


def test_length_problems_name_task_split_length_and_setting() -> None:
    lengths = {"train": {"inputs": 23, "targets": 154}, "gen": {"inputs": 62, "targets": 481}}
    short = dataclasses.replace(TINY, max_len=64)
    lines = validation.length_problems("cogs", lengths, short)
    assert len(lines) == 2
    assert "'gen'" in lines[1] and "481" in lines[1] and "TransformerConfig.max_len=64" in lines[1]
    with pytest.raises(ValueError, match=r"'gen'.* 481 .*and 1 more") as err:
        validation.check_lengths("cogs", lengths, short)
    assert "\n" not in str(err.value)
    relative = dataclasses.replace(short, position="relative")
    assert validation.length_problems("cogs", lengths, relative) == []
    decoder = validation.length_problems("twohop", {"train": {"tokens": 9}},
                                         DecoderConfig(max_len=8))
    assert len(decoder) == 1 and "DecoderConfig.max_len=8" in decoder[0]


def test_cogs_target_longer_than_max_len_is_one_clear_error(tmp_path: Path, shared_data: Path,
                                                            capsys: pytest.CaptureFixture,
                                                            monkeypatch: pytest.MonkeyPatch):
    """`compgen-jax train` through cli.main (the module's designs load COGS in this process
    already; tests/test_faults.py sees refusals from a fresh process)."""
    monkeypatch.setenv("COMPGEN_DATA_DIR", str(shared_data))
    model_dir = tmp_path / "cell"
    code = main(["train", f"--gin.MODEL_DIR='{model_dir}'",
                 "--gin_file=experiments/scan_simple_cell_cpu.gin",
                 "--gin.MIXTURE_OR_TASK_NAME='cogs'", "--gin.TrainConfig.eval_splits=('gen',)",
                 "--gin.TransformerConfig.max_len=64", "--gin.TrainConfig.max_eval_examples=0",
                 "--gin.N_UNIQUE=100", "--gin.NUM_SEEDS=2", "--gin.TRAIN_STEPS=5"])
    err = capsys.readouterr().err
    assert code == 2, err[-2000:]
    errors = [line for line in err.splitlines() if "compgen-jax" in line]
    assert len(errors) == 1, err[-2000:]
    assert all(s in errors[0] for s in ("'cogs'", "'gen'", "481", "TransformerConfig.max_len"))
    assert not model_dir.exists()


def _cells(factors: dict, steps: int = 10, seeds: int = 2, **train) -> list[designs.DesignCell]:
    base = CellConfig(task="toy", manifest=ManifestSpec(n_unique=100))
    config = TrainConfig(eval_splits=("gen",), steps_per_call=5, **train)
    return designs.factorial_cells(name="d", base=base, factors=factors, num_seeds=seeds,
                                   train_steps=steps, batch_size=16, train_config=config)


ONE_GB = DeviceBudget(memory_gb=1.0)


def _validate(cells, budget=ONE_GB, model=TINY):
    return validation.validate_design(cells, lambda task, split: TOY, model_config=model,
                                      budget=budget)


def test_a_fitting_design_reports_each_cell() -> None:
    rows = _validate(_cells({"n_unique": (50, 200)}, steps=7))  # 7 steps: a partial final call
    assert [r["cell"] for r in rows] == ["d-n_unique=50", "d-n_unique=200"]
    assert rows[0]["lengths"] == "train:10/30 gen:20/90" and 0 < rows[0]["peak_GB"] < 1


def test_each_failure_is_one_line_naming_cell_and_setting() -> None:
    cells = _cells({"n_unique": (50, 600)})
    with pytest.raises(DesignError) as err:
        _validate(cells, budget=DeviceBudget(memory_gb=1e-4),
                  model=dataclasses.replace(TINY, max_len=32))
    lines = str(err.value).splitlines()
    by_cell = {c.name: [line for line in lines if line.startswith(f"cell {c.name}:")]
               for c in cells}
    assert len(lines) == sum(map(len, by_cell.values()))
    big = by_cell["d-n_unique=600"]
    assert any("ManifestSpec.n_unique=600 exceeds the 500 examples of toy:train" in x for x in big)
    assert any("'gen'" in x and "90 tokens" in x and "TransformerConfig.max_len" in x
               for x in big)
    assert all(any("DeviceBudget.memory_gb" in x for x in v) for v in by_cell.values())


def test_settings_fail_before_any_data_is_read() -> None:
    def no_data(task: str, split: str) -> TaskShape:
        raise AssertionError("data loaded before the settings were checked")

    with pytest.raises(DesignError, match=r"cell d-n_unique=50: TrainConfig.eval_period=7"):
        validation.validate_design(_cells({"n_unique": (50,)}, eval_period=7), no_data,
                                   model_config=TINY)


def test_memory_estimate_bounds_what_xla_allocates() -> None:
    """The estimate of the train step (state + activations) against XLA's own accounting of the
    compiled step (arguments + temporaries), for the tiny model at COGS-like train lengths."""
    model = dataclasses.replace(TINY, vocab_size=TOY.vocab_size, max_len=128)
    shape = TaskShape(vocab_size=40, splits={"train": SplitShape(500, {"inputs": 24,
                                                                       "targets": 100})})
    config = TrainConfig(num_seeds=4, batch_size=32, steps_per_call=2, total_steps=2,
                         eval_splits=())
    estimate = validation.memory_estimate(model, config, shape, "train")
    trainer = MultiSeedTrainer(model, make_optimizer(OptimizerConfig(), matrices_only), 32, 2)
    state = jax.eval_shape(trainer.init, jnp.arange(4))
    orders = jax.ShapeDtypeStruct((4, 64), jnp.int32)
    pool = {"inputs": jax.ShapeDtypeStruct((500, 24), jnp.int32),
            "targets": jax.ShapeDtypeStruct((500, 100), jnp.int32)}
    stats = trainer.train.lower(state, orders, pool).compile().memory_analysis()
    xla = stats.argument_size_in_bytes + stats.temp_size_in_bytes
    ours = estimate["state"] + estimate["activations"]
    assert xla / 2 < ours < 3 * xla, (ours, xla)


@pytest.mark.parametrize("name", DESIGN_FILES)
def test_every_design_file_validates(name: str, shared_data: Path) -> None:
    """CPU variants against this host's RAM, full-scale files against their DeviceBudget (16 GB
    accelerators), on the real data's lengths; nothing trains."""
    parse_gin([f"experiments/{name}.gin"], ["MODEL_DIR = '/tmp/unused'"])
    cells = designs.design()
    try:
        rows = validation.validate_configured_design(cells)
    except DesignError as err:
        lines = str(err).splitlines()
        sample = not name.endswith("_cpu") and all(" examples of " in x for x in lines)
        if not sample:
            raise
        pytest.skip(f"{name}: full-scale N exceeds the local sample's pool ({lines[0]})")
    except FileNotFoundError as err:  # e.g. CFQ's split files (`data fetch cfq`)
        pytest.skip(f"{name}: data not available locally ({err})")
    except ValueError as err:
        if "could not be registered" not in str(err) and "has no split" not in str(err):
            raise
        pytest.skip(f"{name}: data not available locally ({err})")
    assert len(rows) == len(cells)
