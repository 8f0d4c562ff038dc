"""`compgen-jax report`: the analysis package's markdown report (python -m analysis report)."""

from __future__ import annotations

import argparse


def run_report(args: argparse.Namespace) -> None:
    from analysis.__main__ import main as analysis_main

    if analysis_main(["report", *args.report_args]) != 0:
        raise ValueError("the report was not written (see the error above)")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report", add_help=False,
        help="markdown report + PNG plots from a results directory "
             "(arguments as `python -m analysis report --help`)")
    parser.add_argument("report_args", nargs=argparse.REMAINDER)
    parser.set_defaults(run=run_report)
