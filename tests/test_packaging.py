"""Set-up as a new user meets it: gin resolution from any directory, the wheel, help, clean
console, file permissions."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from compgen_jax.cli import main

REPO = Path(__file__).resolve().parents[1]
PARSE_SCAN_CELL = (
    "from compgen_jax import designs, train\n"
    "from compgen_jax.gin_utils import parse_gin\n"
    "import gin\n"
    "parse_gin(['experiments/scan_simple_cell_cpu.gin'], ['MODEL_DIR = \"/nowhere\"'])\n"
    "print(gin.query_parameter('%LEARNING_RATE'))\n"
)


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def test_gin_files_resolve_from_a_directory_holding_runs_and_models(tmp_path: Path):
    for name in ("runs", "models", "experiments"):
        (tmp_path / name).mkdir()
    (tmp_path / "runs" / "train.gin").write_text("LEARNING_RATE = 0.5\n")
    done = _python(PARSE_SCAN_CELL, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["0.001"]  # the shipped runs/train.gin, not ./runs/train.gin


def test_search_path_overrides_the_installed_configs(tmp_path: Path):
    (tmp_path / "runs").mkdir()
    own = (REPO / "gin_configs" / "runs" / "train.gin").read_text() + "LEARNING_RATE = 0.25\n"
    (tmp_path / "runs" / "train.gin").write_text(own)
    code = PARSE_SCAN_CELL.replace("'MODEL_DIR = \"/nowhere\"'])",
                                   f"'MODEL_DIR = \"/nowhere\"'], ['{tmp_path}'])")
    done = _python(code, REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["0.25"]  # includes resolve against the search path first


def test_packages_listed_in_pyproject_are_the_source_tree():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"])
    on_disk = {".".join(p.parent.relative_to(REPO).parts)
               for top in ("analysis", "compgen_jax", "tasks")
               for p in (REPO / top).rglob("__init__.py")}
    assert listed == on_disk | {"compgen_jax.gin_configs"}


@pytest.mark.parametrize("command", [
    ["--help"], ["train", "--help"], ["demo", "--help"], ["report", "--help"],
    ["manifest", "build", "--help"], ["sweep", "launch", "--help"], ["sweep", "collect", "--help"],
    ["data", "check", "--help"], ["coverage", "generate", "--help"],
])
def test_every_subcommand_has_help(command: list[str], capsys: pytest.CaptureFixture):
    with pytest.raises(SystemExit) as stop:
        main(command)
    assert stop.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_loading_tensorflow_prints_nothing(tmp_path: Path):
    done = _python("import tasks.registry\nprint('loaded')", tmp_path)
    assert done.returncode == 0
    assert done.stdout == "loaded\n"
    assert done.stderr == ""


def test_written_files_honour_the_umask(tmp_path: Path):
    from analysis.atomic import write_text

    old = os.umask(0o022)
    try:
        write_text(tmp_path / "shared.txt", "x")
        os.umask(0o077)
        write_text(tmp_path / "private.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "shared.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "private.txt").stat().st_mode & 0o777 == 0o600


@pytest.mark.slow
def test_wheel_installs_and_trains_a_cpu_config_outside_the_repo(tmp_path: Path):
    """Build the wheel, install it (no deps) into a fresh venv that borrows this venv's
    dependencies but not the project, and train a micro cell from a directory outside the repo."""
    source, dist = tmp_path / "source", tmp_path / "dist"  # build a copy: no build/ in the repo
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "__pycache__", "runs", ".pytest_cache"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(dist), str(source)], check=True, capture_output=True)
    wheel = next(dist.glob("*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "compgen_jax/py.typed" in names
    assert "compgen_jax/gin_configs/runs/train.gin" in names
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    deps = next(p for p in map(Path, sys.path) if p.name == "site-packages" and p.is_dir())
    (site / "borrowed_deps.pth").write_text(f"{deps}\n")
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--no-deps", "--no-index",
                    str(wheel)], check=True, capture_output=True)
    work = tmp_path / "elsewhere"
    (work / "runs").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [str(venv / "bin" / "compgen-jax"), "train",
         "--gin_file=experiments/scan_simple_cell_cpu.gin",
         f"--gin.MODEL_DIR='{work / 'cell'}'", "--gin.TRAIN_STEPS=4",
         "--gin.TrainConfig.steps_per_call=2", "--gin.NUM_SEEDS=2", "--gin.N_UNIQUE=40",
         "--gin.BATCH_SIZE=8", "--gin.TrainConfig.max_eval_examples=16"],
        cwd=work, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (work / "cell" / "results.csv").is_file() and (work / "cell" / "config.gin").is_file()
    check = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "import compgen_jax; print(compgen_jax.__file__)"],
                           cwd=work, env=env, capture_output=True, text=True, check=True)
    assert check.stdout.startswith(str(site))
