"""benchmarks/accelerator_suite.py --smoke where PyTorch is not installed (as in a venv or image
without it): the JAX measurements run, the torch peer columns say `absent` in one line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from conftest import REPO_ROOT, run_without


def test_smoke_without_torch_measures_jax_and_says_absent(tmp_path: Path) -> None:
    proc = run_without(("torch",), "benchmarks/accelerator_suite.py", "--smoke",
                       "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    said = [line for line in proc.stdout.splitlines()  # progress lines: "[  12.3s] ..."
            if line.startswith("[") and "torch" in line]
    assert len(said) == 1 and "torch: absent (ModuleNotFoundError" in said[0], said
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["complete"] and results["torch_device"] == "absent"
    torch_rows = [r for r in results["training"] if r["framework"] == "torch"]
    assert {(r["model"], r["mode"], r["seeds"]) for r in torch_rows} == {
        (m, mode, s) for m in ("small", "t5_small")
        for mode, s in (("plain loop", 1), ("torch.func ensemble", 2))}
    assert all(r["status"] == "absent" for r in torch_rows)
    jax_rows = [r for r in results["training"] if r["framework"] == "jax"]
    assert len(jax_rows) == 6 and all(r["status"] == "ok" and r["mfu"] > 0 for r in jax_rows)
    assert all(m["params_torch"] is None for m in results["models"].values())
    assert results["decode"][0]["status"] == "ok"
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    import accelerator_suite as suite

    md = (tmp_path / "results.md").read_text()
    assert md == suite.markdown(results)
    small_s2 = next(line for line in md.splitlines() if line.startswith("| small |")
                    and "| 2 |" in line)
    assert small_s2.endswith("| absent | absent | absent | absent |"), small_s2
    assert "Not measured" not in md
