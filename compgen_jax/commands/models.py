"""`compgen-jax models`: parameter counts of every model gin file (gin_configs/models/*.gin)."""

from __future__ import annotations

import argparse

from analysis.__main__ import subcommand


def run_models(args: argparse.Namespace) -> None:
    """Print the parameter-count table."""
    from compgen_jax.models.__main__ import table

    print(f"parameters per seed at vocab_size={args.vocab_size:,}")
    print(f"{'config':<26}{'family':<20}{'total':>14}{'non-embedding':>16}")
    for name, family, total, non_embedding in table(args.vocab_size):
        print(f"{name:<26}{family:<20}{total:>14,}{non_embedding:>16,}")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `models`."""
    parser = subcommand(subparsers, "models", "parameter counts (total, non-embedding) of every "
                        "models/*.gin config", "%(prog)s --vocab_size 874")
    parser.add_argument("--vocab_size", type=int, default=1000,
                        help="vocabulary size to count embeddings with (the task fills it in)")
    parser.set_defaults(run=run_models)
