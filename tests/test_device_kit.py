"""benchmarks/device/run.sh refuses bad arguments in one line, exit 2, writing nothing."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import REPO_ROOT


@pytest.mark.parametrize(("args", "says"), [
    (["suite", "--out"], "--out needs a directory"),
    (["bench", "--out", "{out}"], "unknown mode 'bench'"),
    (["suite", "--smoke", "--fast", "--out", "{out}"], "unknown argument '--fast'"),
    (["suite", "--smoke"], "no output directory"),
])
def test_run_sh_bad_arguments_are_one_line_exit_2(tmp_path: Path, args: list[str],
                                                  says: str) -> None:
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "OUT"}
    proc = subprocess.run(["bash", "benchmarks/device/run.sh",
                           *(a.format(out=out) for a in args)],
                          capture_output=True, text=True, cwd=REPO_ROOT, env=env, check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0] and "usage:" in lines[0], proc.stderr
    assert not out.exists()
