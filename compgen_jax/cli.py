"""`compgen-jax`: t5x-style command line (--gin_file, --gin.X=Y) for cells and experiments.

Each subcommand lives in its own module exposing `register(subparsers)`, which adds a parser whose
`run` default takes the parsed args; COMMAND_MODULES lists them in help order.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util  # noqa: F401  (gin 0.5.0 needs it imported before parsing files)
import sys
from collections.abc import Sequence

COMMAND_MODULES = (
    "compgen_jax.commands.train",
    "compgen_jax.commands.manifest",
    "compgen_jax.commands.data",
    "compgen_jax.commands.report",
    "compgen_jax.commands.sweep",
    "compgen_jax.commands.reproduce",
    "compgen_jax.commands.coverage",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="compgen-jax",
        description="Vectorised multi-seed training for compositional generalization.",
        epilog="Gin bindings: --gin.NAME=VALUE; quote strings: --gin.MODEL_DIR=\\\"/tmp/m\\\".",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from compgen_jax.gin_utils import rewrite_gin_args

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["report"]:  # the analysis package parses its own flags, --help included
        from analysis.__main__ import main as analysis_main

        return analysis_main(argv)
    args = build_parser().parse_args(rewrite_gin_args(argv))
    try:
        args.run(args)
    except (ValueError, FileNotFoundError) as err:
        # gin appends "In call to configurable ..." lines to errors raised inside a configurable
        message = "\n".join(line for line in str(err).splitlines()
                            if not line.strip().startswith("In call to configurable"))
        print(f"compgen-jax {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:  # Ctrl-C: one line (a trainer says where it stopped)
        print(f"compgen-jax {args.command}: {err or 'interrupted'}", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
