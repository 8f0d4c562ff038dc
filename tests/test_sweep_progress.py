"""A local sweep's progress bar names the cells running now, not ones already finished."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from compgen_jax import runner
from compgen_jax.sweep import SWEEP_FILE


class _Bar:
    """Records what the sweep bar shows (tqdm's interface as launch_local uses it)."""

    shown: list[str] = []

    def __init__(self, **kwargs) -> None:
        self.done = kwargs["initial"]

    def set_postfix_str(self, text: str) -> None:
        self.shown.append(text)

    def update(self, n: int) -> None:
        self.done += n

    def close(self) -> None:
        self.shown.append(f"closed at {self.done}")


def test_sweep_bar_shows_the_cells_running_now(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # cell 'short' runs 0.5 s, 'long' 2.5 s: in between the bar must name 'long' alone
    cells = [SimpleNamespace(name="short"), SimpleNamespace(name="long")]
    sweep = SimpleNamespace(root=str(tmp_path), cells=cells,
                            cell_dir=lambda cell: tmp_path / cell.name)
    (tmp_path / SWEEP_FILE).write_text("{}")
    finished = []
    monkeypatch.setattr(runner, "check_root", lambda sweep: None)
    monkeypatch.setattr(runner, "unfinished_cells", lambda sweep: (list(cells), []))
    monkeypatch.setattr(runner, "trained_as", lambda sweep: {c.name: c for c in cells})
    monkeypatch.setattr(runner, "local_command", lambda sweep, cell: [
        "sleep", "0.5" if cell.name == "short" else "2.5"])
    monkeypatch.setattr(runner, "mark_finished", lambda sweep, cell, wall_s: finished.append(
        cell.name))
    monkeypatch.setattr(runner, "tqdm", _Bar)
    _Bar.shown = []
    assert runner.launch_local(sweep, parallel=2) == ["short", "long"]
    assert finished == ["short", "long"]
    assert _Bar.shown == ["running short, long", "running long", "", "closed at 2"]
