"""`compgen-jax`: t5x-style command line (--gin_file, --gin.X=Y) for cells and experiments."""

from __future__ import annotations

import argparse
import importlib.util  # noqa: F401  (gin 0.5.0 needs it imported before parsing files)
import sys
from collections.abc import Sequence
from pathlib import Path

DEMO_GIN_FILE = "experiments/scan_diversity_cpu.gin"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="compgen-jax",
        description="Vectorised multi-seed training for compositional generalization.",
        epilog="Gin bindings: --gin.NAME=VALUE; quote strings: --gin.MODEL_DIR=\\\"/tmp/m\\\".",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    gin_flags = argparse.ArgumentParser(add_help=False)
    gin_flags.add_argument("--gin_file", action="append", default=[],
                           help="gin file (repeatable), resolved against gin_configs/")
    gin_flags.add_argument("--gin_bindings", action="append", default=[],
                           help="one gin binding (repeatable); --gin.X=Y is the short form")
    gin_flags.add_argument("--gin_search_paths", action="append", default=[],
                           help="extra directory to resolve gin files and includes against")
    sub.add_parser("train", parents=[gin_flags],
                   help="train one cell (S seeds in one compiled step) into MODEL_DIR")
    sub.add_parser("demo", parents=[gin_flags],
                   help=f"the main job: a SCAN diversity sweep ({DEMO_GIN_FILE}), summary + plot")
    return parser


def _configure(args: argparse.Namespace, default_files: Sequence[str]) -> Path:
    import gin

    from compgen_jax import experiment, train  # noqa: F401  (registers the configurables)
    from compgen_jax.gin_utils import parse_gin

    parse_gin(args.gin_file or default_files, args.gin_bindings, args.gin_search_paths)
    try:
        return Path(gin.query_parameter("%MODEL_DIR"))
    except ValueError:
        raise ValueError("MODEL_DIR is not set: pass --gin.MODEL_DIR=\\\"/path\\\"") from None


def _train(args: argparse.Namespace) -> None:
    from compgen_jax.gin_utils import write_operative_config
    from compgen_jax.train import train

    model_dir = _configure(args, [])
    train()
    print(f"operative config: {write_operative_config(model_dir)}")
    print(f"results: {model_dir / 'results.csv'}")


def _demo(args: argparse.Namespace) -> None:
    from analysis.dose_response import (
        diversity_summary,
        diversity_trend,
        format_summary,
        plot_dose_response,
    )
    from compgen_jax.experiment import run_experiment
    from compgen_jax.gin_utils import write_operative_config

    model_dir = _configure(args, [DEMO_GIN_FILE])
    table = run_experiment()
    write_operative_config(model_dir)
    split = table["split"].iloc[0]
    print()
    print(format_summary(diversity_summary(table, split), diversity_trend(table, split)))
    plot = plot_dose_response(table, split, model_dir / "dose_response.png")
    print(f"\nresults: {model_dir / 'results.csv'}\nplot: {plot}")


def main(argv: Sequence[str] | None = None) -> int:
    from compgen_jax.gin_utils import rewrite_gin_args

    args = _parser().parse_args(rewrite_gin_args(sys.argv[1:] if argv is None else argv))
    try:
        {"train": _train, "demo": _demo}[args.command](args)
    except (ValueError, FileNotFoundError) as err:
        print(f"compgen-jax {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
