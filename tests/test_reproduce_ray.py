"""`compgen-jax reproduce --backend=ray` (a local Ray instance) equals `--backend=in-process` on
one programme part: the same sweep results byte for byte and the same report apart from the
root's path, the command line and wall times; a relaunch trains nothing (slow: Ray's start and
four SCAN cells take minutes on a 2-core CPU)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from compgen_jax.cli import main

pytest.importorskip("ray")

# The toy programme's SCAN replication part alone: 4 cells of 2 seeds, 7 steps each.
PROGRAMME = """include 'programme/toy.gin'
programme.parts = [@scan/Part()]
programme.decomposition = ()
"""


def _reproduce(tmp_path: Path, name: str, backend: str) -> Path:
    gin_file = tmp_path / "scan_only.gin"
    gin_file.write_text(PROGRAMME)
    root = tmp_path / name
    assert main(["reproduce", f"--gin_file={gin_file}", f"--gin.PROGRAMME_DIR='{root}'",
                 f"--backend={backend}", "--n_perm=100", "--n_boot=100"]) == 0
    return root


def _report(root: Path) -> str:
    """The part's report with what legitimately differs between backends masked."""
    text = (root / "report" / "scan_length" / "report.md").read_text()
    return re.sub(r"\d+(\.\d+)? min", "<wall>", text.replace(str(root), "<root>"))


@pytest.mark.slow
def test_reproduce_on_ray_equals_in_process(tmp_path: Path, shared_data: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    local = _reproduce(tmp_path, "in_process", "in-process")
    on_ray = _reproduce(tmp_path, "ray", "ray")
    out = capsys.readouterr().out
    assert "pending 0  running 0  retried 0  done 4  failed 0" in out
    results = "scan_length/sweep_results.csv"
    assert (on_ray / results).read_bytes() == (local / results).read_bytes()
    assert _report(on_ray) == _report(local)
    _reproduce(tmp_path, "ray", "ray")
    assert "trained 0 cells" in capsys.readouterr().out
