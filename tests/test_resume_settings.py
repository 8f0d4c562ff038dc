"""The settings a cell records for the resume check name its optimizer on every path (the gin
entry and the direct API of both cell kinds)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from compgen_jax import coverage_cells, seq2seq
from compgen_jax.checkpoints import run_settings
from compgen_jax.configs import CellConfig, TrainConfig
from compgen_jax.models.decoder_only import DecoderConfig
from compgen_jax.models.transformer import TransformerConfig
from compgen_jax.optim import OptimizerConfig
from compgen_jax.trainers import build_trainer

OPTIMIZER = OptimizerConfig(learning_rate=0.0123)


def _captured(module, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Replace the host loop by one that records the settings it is given."""
    captured: dict[str, str] = {}

    def run_cell(plan, *args, settings):
        captured.update(settings)
        return [], None

    monkeypatch.setattr(module, "run_cell", run_cell)
    return captured


def test_direct_seq2seq_cell_records_its_optimizer(monkeypatch: pytest.MonkeyPatch) -> None:
    captured = _captured(seq2seq, monkeypatch)
    monkeypatch.setattr(seq2seq, "seq2seq_plan", lambda *args: "plan")
    config = TrainConfig(num_seeds=2)
    trainer = build_trainer(TransformerConfig(), OPTIMIZER, config, vocab_size=10)
    seq2seq.train_cell(CellConfig(), Path("unused"), None, trainer, config)
    assert captured["OptimizerConfig.learning_rate"] == "0.0123"
    assert captured["TrainConfig.num_seeds"] == "2" and "CellConfig.task" in captured


def test_direct_coverage_cell_records_its_optimizer(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    captured = _captured(coverage_cells, monkeypatch)
    monkeypatch.setattr(coverage_cells, "coverage_plan",
                        lambda *args: type("Plan", (), {"total_steps": 1})())
    monkeypatch.setattr(coverage_cells.pd, "read_csv", lambda *args, **kwargs: None)
    monkeypatch.setattr(coverage_cells, "results_frame", lambda rows: rows)
    config = TrainConfig()
    trainer = build_trainer(DecoderConfig(), OPTIMIZER, config, vocab_size=10)
    coverage_cells.train_coverage_cell(SimpleNamespace(name="d"), trainer, config, tmp_path)
    assert captured["OptimizerConfig.learning_rate"] == "0.0123"
    assert "DecoderConfig.emb_dim" in captured


def test_an_unknown_optimizer_adds_no_settings() -> None:
    assert run_settings(TrainConfig(), None) == run_settings(TrainConfig())
