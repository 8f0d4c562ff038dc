"""`compgen-jax reproduce`: the programme gin files parse and validate; the toy programme runs end
to end through the command, and a rerun trains nothing and rewrites the same report (slow)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from compgen_jax import programme

REPO = Path(__file__).resolve().parents[1]
PARTS = ["e4", "e1", "e2", "e3", "e5", "e6", "scan_length", "recogs_gen", "gscan_adverb_1"]


def _reproduce(shared_data: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "compgen_jax.cli", "reproduce", *args], capture_output=True,
        text=True, cwd=REPO, timeout=3 * 3600,
        env={**os.environ, "PYTHONPATH": str(REPO), "COMPGEN_DATA_DIR": str(shared_data)})


def test_full_and_cpu_programmes_differ_only_in_scale() -> None:
    full = programme.load(["programme/full.gin"], [])
    cpu = programme.load(["programme/cpu.gin"], [])
    assert [p.name for p in full.parts][:-1] == PARTS
    by_name = {p.name: p for p in full.parts}
    # the CPU programme runs a subset, each part the *_cpu variant of the same design and analysis
    assert [p.name for p in cpu.parts] == ["e4"]
    assert all(by_name[c.name].gin_files[0].replace(".gin", "_cpu.gin") == c.gin_files[0]
               and by_name[c.name].analysis == c.analysis for c in cpu.parts)
    # every other part is named as not run, with its reason
    left_out = {name for name, _ in cpu.not_run}
    assert left_out == {*PARTS, "cfq_example"} - {"e4"}
    assert full.decomposition == ("e1", "e2", "e3") and full.not_run == ()


def test_a_part_cannot_be_run_and_not_run() -> None:
    with pytest.raises(ValueError, match=r"cannot be both run and not run \(\['e4'\]\)"):
        programme.load(["programme/cpu.gin"], ["programme.not_run = {'e4': 'floor'}"])


def test_cpu_programme_validates_every_cell(tmp_path: Path, shared_data: Path) -> None:
    proc = _reproduce(shared_data, "--gin_file=programme/cpu.gin",
                      f"--gin.PROGRAMME_DIR='{tmp_path / 'cpu'}'", "--dry_run")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "parts e4; 5 cells validated, 0 finished" in proc.stdout
    assert "# part e4: 5 cells" in proc.stdout
    assert not (tmp_path / "cpu").exists()  # a dry run writes nothing


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_toy_programme_end_to_end(tmp_path: Path, shared_data: Path) -> None:
    args = ["--gin_file=programme/toy.gin", f"--gin.PROGRAMME_DIR='{tmp_path / 'toy'}'",
            "--n_perm=100", "--n_boot=100"]
    first = _reproduce(shared_data, *args)
    assert first.returncode == 0, first.stderr[-3000:]
    report = tmp_path / "toy" / "report" / "report.md"
    text = report.read_text()
    for name in [*PARTS, "cfq_example"]:
        assert f"| {name}" in text and (tmp_path / "toy" / name / "sweep_results.csv").is_file()
    assert "E1 -> E2 -> E3: decomposition" in text
    before = _tree(tmp_path / "toy" / "report")
    second = _reproduce(shared_data, *args)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "trained 0 cells" in second.stdout
    assert _tree(tmp_path / "toy" / "report") == before
