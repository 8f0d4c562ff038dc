"""`python -m compgen_jax.models [--vocab_size V]`: parameter counts of gin_configs/models/*.gin."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence

import gin

from compgen_jax.gin_utils import GIN_CONFIGS_DIR, parse_gin
from compgen_jax.models import ModelConfig, param_counts


def model_config(gin_file: str, vocab_size: int) -> ModelConfig:
    """The MODEL_CONFIG a models/*.gin file defines, with vocab_size filled in."""
    parse_gin([gin_file], [])
    config = gin.query_parameter("%MODEL_CONFIG").scoped_configurable_fn()
    return dataclasses.replace(config, vocab_size=vocab_size)


def table(vocab_size: int) -> list[tuple[str, str, int, int]]:
    """(config file, family, total params, non-embedding params) for every model gin file."""
    rows = []
    for path in sorted((GIN_CONFIGS_DIR / "models").glob("*.gin")):
        config = model_config(str(path), vocab_size)
        rows.append((f"models/{path.name}", type(config).__name__, *param_counts(config)))
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    """Print the parameter-count table."""
    parser = argparse.ArgumentParser(prog="python -m compgen_jax.models", description=__doc__)
    parser.add_argument("--vocab_size", type=int, default=1000,
                        help="vocabulary size to count embeddings with (the task fills it in)")
    args = parser.parse_args(argv)
    print(f"parameters per seed at vocab_size={args.vocab_size:,}")
    print(f"{'config':<26}{'family':<20}{'total':>14}{'non-embedding':>16}")
    for name, family, total, non_embedding in table(args.vocab_size):
        print(f"{name:<26}{family:<20}{total:>14,}{non_embedding:>16,}")


if __name__ == "__main__":
    main()
