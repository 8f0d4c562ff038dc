"""Model configs read from gin_configs/models/*.gin, and `python -m compgen_jax.models`, an alias
of `compgen-jax models` (their parameter counts)."""

from __future__ import annotations

import dataclasses
import sys

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


if __name__ == "__main__":
    from compgen_jax.cli import main

    sys.exit(main(["models", *sys.argv[1:]]))
