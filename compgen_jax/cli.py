"""`compgen-jax`: the one command line, t5x-style gin flags (--gin_file, --gin.X=Y) for cells and
experiments, and the analysis package's subcommands (`analysis ...`, `report`).

Each subcommand lives in its own module exposing `register(subparsers)`, which adds a parser whose
`run` default takes the parsed args; COMMAND_MODULES lists them in help order. Building the parser
imports no JAX: each command imports the engine when it runs.
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
    "compgen_jax.commands.sweep",
    "compgen_jax.commands.reproduce",
    "compgen_jax.commands.coverage",
    "compgen_jax.commands.analysis",
    "compgen_jax.commands.models",
)


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree: every subcommand module's parsers under `compgen-jax`."""
    parser = argparse.ArgumentParser(
        prog="compgen-jax",
        description="Vectorised multi-seed training and analysis for compositional "
                    "generalization.",
        epilog="Gin bindings: --gin.NAME=VALUE; quote strings: --gin.MODEL_DIR=\\\"/tmp/m\\\".\n"
               "example:\n  compgen-jax demo",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse and run one subcommand; bad input is one line on stderr and exit status 2."""
    from compgen_jax.gin_utils import rewrite_gin_args

    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(rewrite_gin_args(argv))
    if getattr(args, "analysis", False):  # the analysis package's own errors and exit codes
        from analysis.__main__ import run

        return run(args)
    try:
        return args.run(args) or 0
    except (ValueError, FileNotFoundError) as err:
        # gin appends "In call to configurable ..." lines to errors raised inside a configurable
        message = "\n".join(line for line in str(err).splitlines()
                            if not line.strip().startswith("In call to configurable"))
        print(f"compgen-jax {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:  # Ctrl-C: one line (a trainer says where it stopped)
        print(f"compgen-jax {args.command}: {err or 'interrupted'}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
