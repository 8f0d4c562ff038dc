"""`compgen-jax report`: the analysis package's markdown report (python -m analysis report).

`cli.main` hands `report ...` straight to the analysis command line, which parses its own flags
(`--help` included); this module only lists the subcommand in `compgen-jax --help`.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    subparsers.add_parser(
        "report", add_help=False,
        help="markdown report + PNG plots from a results directory "
             "(arguments as `python -m analysis report --help`)")
