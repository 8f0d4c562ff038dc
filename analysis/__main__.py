"""Command line: `python -m analysis summary RESULTS [--split S] [--metric M] [--plot OUT.png]`."""

from __future__ import annotations

import argparse
import sys

from analysis.dose_response import (
    diversity_summary,
    diversity_trend,
    format_summary,
    plot_dose_response,
)
from analysis.results import read_results


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, one subcommand per analysis."""
    parser = argparse.ArgumentParser(prog="python -m analysis", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    summary = sub.add_parser("summary", help="diversity dose-response table (and plot)")
    summary.add_argument("results", help="results.csv/.parquet file or a directory of them")
    summary.add_argument("--split", default="test", help="eval split to summarise (default test)")
    summary.add_argument("--metric", default="exact_match", help="fraction-valued metric column")
    summary.add_argument("--plot", metavar="OUT.png", help="also write the dose-response plot")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; bad input gives a one-line error and exit status 2."""
    args = build_parser().parse_args(argv)
    try:
        df = read_results(args.results)
        summary = diversity_summary(df, args.split, args.metric)
        print(format_summary(summary, diversity_trend(df, args.split, args.metric)))
        if args.plot:
            print(f"plot: {plot_dose_response(df, args.split, args.plot, args.metric)}")
    except (ValueError, OSError) as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
