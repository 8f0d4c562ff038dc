"""`compgen-jax train` (one cell) and `compgen-jax demo` (the main job: a SCAN diversity sweep,
run in this process by the one sweep runner)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from analysis.__main__ import subcommand

DEMO_GIN_FILE = "experiments/scan_diversity_cpu.gin"


def gin_flags() -> argparse.ArgumentParser:
    """The t5x gin flags, as a parent parser for every gin-configured subcommand."""
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument("--gin_file", action="append", default=[],
                       help="gin file (repeatable), resolved against gin_configs/")
    flags.add_argument("--gin_bindings", action="append", default=[],
                       help="one gin binding (repeatable); --gin.X=Y is the short form")
    flags.add_argument("--gin_search_paths", action="append", default=[],
                       help="extra directory to resolve gin files and includes against")
    return flags


def configure(args: argparse.Namespace, default_files: Sequence[str]) -> Path:
    """Register the configurables, parse the gin files + bindings, return MODEL_DIR."""
    from compgen_jax import designs, train  # noqa: F401  (registers configurables)
    from compgen_jax.gin_utils import configured_model_dir, parse_gin

    parse_gin(args.gin_file or default_files, args.gin_bindings, args.gin_search_paths)
    return configured_model_dir()


def refuse_design(args: argparse.Namespace) -> None:
    """`train` runs one cell: a design file (design.cells bound) is a clear error rather than a
    silent run of its base cell, unless the bindings name one of its cells (CellConfig.label and
    its settings), as `sweep launch` does for each cell."""
    import gin

    try:
        gin.query_parameter("design.cells")
    except ValueError:
        return
    if any(b.replace(" ", "").startswith("CellConfig.label=") for b in args.gin_bindings):
        return
    flags = " ".join(f"--gin_file={f}" for f in args.gin_file)
    raise ValueError(f"{flags} is a design (design.cells is bound): `compgen-jax train` runs one "
                     f"cell; run its cells with `compgen-jax sweep launch {flags}`")


def run_train(args: argparse.Namespace) -> None:
    from compgen_jax.train import train

    model_dir = configure(args, [])
    refuse_design(args)
    train()
    print(f"operative config: {model_dir / 'config.gin'}")
    print(f"results: {model_dir / 'results.csv'}")


def run_demo(args: argparse.Namespace) -> None:
    from analysis.dose_response import (
        diversity_summary,
        diversity_trend,
        format_summary,
        plot_dose_response,
    )
    from compgen_jax import runner, sweep

    spec = sweep.expand(args.gin_file or [DEMO_GIN_FILE], args.gin_bindings,
                        args.gin_search_paths)
    model_dir = Path(spec.root)
    runner.launch_local(spec, in_process=True)
    table = sweep.collect(model_dir)
    split = table["split"].iloc[0]
    print()
    print(format_summary(diversity_summary(table, split), diversity_trend(table, split)))
    plot = plot_dose_response(table, split, model_dir / "dose_response.png")
    print(f"\nresults: {model_dir}/{sweep.COLLECTED_FILE} (per cell: {model_dir}/<cell>/"
          f"results.csv)\nplot: {plot}")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `train` and `demo`."""
    flags = gin_flags()
    subcommand(subparsers, "train", "train one cell (S seeds, one compiled step) into MODEL_DIR",
               "%(prog)s --gin_file=experiments/scan_simple_cell_cpu.gin "
               "--gin.MODEL_DIR=\\\"/tmp/scan_n1000\\\" --gin.N_UNIQUE=1000",
               parents=[flags]).set_defaults(run=run_train)
    subcommand(subparsers, "demo", f"the main job: a SCAN diversity sweep ({DEMO_GIN_FILE}) "
               "in this process, its summary table and plot",
               "%(prog)s --gin.MODEL_DIR=\\\"/tmp/demo\\\"",
               parents=[flags]).set_defaults(run=run_demo)
