"""`compgen-jax manifest build` (a design's manifests + per-cell table) and `manifest show`."""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

from analysis.__main__ import subcommand
from compgen_jax.commands.train import configure, gin_flags


def run_build(args: argparse.Namespace) -> None:
    """Write every cell's per-seed manifests under MODEL_DIR and print the per-cell table."""
    from compgen_jax import designs, validation
    from compgen_jax.configs import TrainConfig
    from compgen_jax.task_data import pool_index

    model_dir = configure(args, [])
    cells = designs.configured_design()
    validation.validate_configured_design(cells)
    train_config = TrainConfig()

    @functools.cache
    def index_for(task: str, split: str) -> designs.PoolIndex:
        return pool_index(task, split, train_config.eval_splits)

    built = designs.build_manifests(cells, index_for, model_dir, train_config.random_seed)
    print(designs.format_table(designs.summary_rows(built)))
    print(f"\n{sum(len(m) for _, m in built)} manifests of {len(built)} cells under {model_dir}")


def run_show(args: argparse.Namespace) -> None:
    """Load (hash-checked) manifest files, or every <cell>/manifests/seed_<k>.json under a
    directory (a `manifest build` or train MODEL_DIR, a sweep root), and summarise."""
    from analysis.results import manifest_files
    from tasks import manifest as manifest_lib

    paths = []
    for path in map(Path, args.paths):
        paths += manifest_files(path) if path.is_dir() else [path]
    if not paths:
        raise ValueError(f"manifest show: no manifest files (<cell>/manifests/seed_<k>.json) "
                         f"under {args.paths}")
    for path in paths:
        m = manifest_lib.load(path)
        measured = {k: v for k, v in m.stats.items() if k not in ("n_unique", "total")}
        print(f"{path}: {m.strategy} N={m.n_unique} total={m.total} seed={m.seed} "
              f"pool={m.pool} hash={m.hash[:12]}")
        print(f"  targets={m.targets}\n  stats={measured}")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `manifest build` and `manifest show`."""
    parser = subcommand(subparsers, "manifest", "build or inspect the manifests of a design",
                        "%(prog)s show /tmp/e3")
    sub = parser.add_subparsers(dest="manifest_command", required=True)
    subcommand(
        sub, "build", "write a design's per-seed manifests under MODEL_DIR; print N, E, coverage, "
        "typicality and signature counts per cell",
        "%(prog)s --gin_file=experiments/cogs_e3_cpu.gin --gin.MODEL_DIR=\\\"/tmp/e3\\\"",
        parents=[gin_flags()],
    ).set_defaults(run=run_build)
    show = subcommand(sub, "show", "check (hash) and summarise manifest files or directories",
                      "%(prog)s /tmp/e3")
    show.add_argument("paths", nargs="+", help="manifest JSON files, or directories holding "
                      "<cell>/manifests/seed_<k>.json (a MODEL_DIR, a sweep root)")
    show.set_defaults(run=run_show)
