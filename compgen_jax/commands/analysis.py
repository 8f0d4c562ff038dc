"""`compgen-jax analysis summary|report|decompose|coverage|compare|scaling`, and `compgen-jax
report` (the analysis report, the step after `sweep collect`): the analysis package's own
subcommands, which import no JAX."""

from __future__ import annotations

import argparse

from analysis.__main__ import add_commands, subcommand


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `analysis` group and the `report` shortcut."""
    group = subcommand(subparsers, "analysis", "statistics, reports and coverage analyses of "
                       "results (NumPy/SciPy only, no JAX)",
                       "%(prog)s summary runs/scan_diversity_cpu --split test --plot dose.png")
    add_commands(group.add_subparsers(dest="analysis_command", required=True))
    add_commands(subparsers, ["report"])
