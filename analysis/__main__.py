"""Command line: `python -m analysis summary RESULTS ...` and `report RESULTS --out DIR`."""

from __future__ import annotations

import argparse
import sys

from analysis.dose_response import (
    diversity_summary,
    diversity_trend,
    format_summary,
    plot_dose_response,
)
from analysis.report import ReportOptions, load_constructs, write_report
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
    report = sub.add_parser("report", help="markdown report with tables and PNG plots")
    report.add_argument("results", help="results directory (or one results file)")
    report.add_argument("--out", required=True, help="directory for report.md and the PNGs")
    report.add_argument("--split", default="test", help="eval split to report (default test)")
    report.add_argument("--metric", default="exact_match", help="fraction-valued metric column")
    report.add_argument("--measures", help="per-example measures CSV (enables the audit)")
    report.add_argument("--constructs", help="JSON benchmark -> pair construct (for the audit)")
    report.add_argument("--model-dir", help="where <cell>/manifests/ live (default: RESULTS)")
    report.add_argument("--n-perm", type=int, default=10000, help="permutations per test")
    report.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; bad input gives a one-line error and exit status 2."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "report":
            options = ReportOptions(n_boot=args.n_boot, n_perm=args.n_perm)
            constructs = load_constructs(args.constructs) if args.constructs else None
            path = write_report(
                args.results, args.out, args.split, args.metric, args.measures, constructs,
                args.model_dir, options,
            )  # fmt: skip
            print(f"report: {path}")
            return 0
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
