"""Subcommands of the `compgen-jax` CLI, one module each (see compgen_jax.cli)."""
