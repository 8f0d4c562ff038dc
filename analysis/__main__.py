"""Command line: `python -m analysis summary|report|decompose|coverage|scaling ...` (`--help`);
`python -m analysis coverage compare DIR_A DIR_B` compares two dataset/annotation directories."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from analysis.coverage import compare, kcoverage_table, sweep_frame, write_upstream_outputs
from analysis.decompose import decomposition_from_sweeps
from analysis.dose_response import (
    diversity_summary,
    diversity_trend,
    format_summary,
    plot_dose_response,
)
from analysis.report import ReportOptions, load_constructs, write_report
from analysis.results import read_results
from analysis.scaling import fit_n_required, format_fit


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
    dec = sub.add_parser("decompose", help="E1 -> E2 -> E3 additive decomposition from 3 sweeps")
    dec.add_argument("sweeps", nargs="+", metavar="NAME=RESULTS",
                     help="chain in order, e.g. E1=runs/cogs_e1 E2=runs/cogs_e2 E3=runs/cogs_e3")
    dec.add_argument("--split", default="test", help="eval split (default test)")
    dec.add_argument("--metric", default="exact_match", help="fraction-valued metric column")
    dec.add_argument("--where", action="append", default=[], metavar="FACTOR=LEVEL",
                     help="keep rows with factor_FACTOR == LEVEL (e.g. difficulty=easy)")
    dec.add_argument("--method", choices=("t", "percentile"), default="t",
                     help="CI: Welch t (default) or the paper's percentile bootstrap")
    cov = sub.add_parser("coverage", help="k-coverage of a coverage-principle dataset (k sweep); "
                         "`coverage compare DIR_A DIR_B` diffs two dataset/annotation dirs")
    cov.add_argument("dataset_dir", help="upstream-layout dataset directory (train/test/vocab)")
    cov.add_argument("--k_max", type=int, default=20, help="sweep k = 1..K_MAX (default 20)")
    cov.add_argument("--parity", action="store_true", help="upstream bucket key (quirk Q1)")
    cov.add_argument("--ground_truth", action="store_true", help="only the f1 pair subset {0,1}")
    cov.add_argument("--min_evidence", type=int, default=1, help="k of test_annotated_full.json")
    cov.add_argument("--out", help="output directory (default: DATASET_DIR, as upstream)")
    scaling = sub.add_parser("scaling", help="power-law fit N_req = a*|X|^c with bootstrap CI")
    scaling.add_argument("n_required", help="n_required.csv of `compgen-jax coverage scaling`")
    scaling.add_argument("--out", help="where power_law.json/.png go (default: beside the CSV)")
    scaling.add_argument("--n_boot", type=int, default=2000, help="bootstrap resamples")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; bad input gives a one-line error and exit status 2."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:2] == ["coverage", "compare"]:
        return compare_main(argv[2:])
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
        if args.command == "decompose":
            table = decomposition_from_sweeps(
                _pairs(args.sweeps, "NAME=RESULTS"), args.split, args.metric,
                where=_pairs(args.where, "FACTOR=LEVEL"), method=args.method,
            )  # fmt: skip
            print(table.to_string(index=False, float_format="%.2f"))
            return 0
        if args.command == "coverage":
            table = kcoverage_table(args.dataset_dir, args.k_max, args.parity, args.ground_truth)
            paths = write_upstream_outputs(table, args.dataset_dir, args.out or args.dataset_dir,
                                           args.min_evidence)  # fmt: skip
            print(sweep_frame(table).to_string(index=False, float_format="%.2f"))
            print("\n".join(f"wrote: {p}" for p in paths))
            return 0
        if args.command == "scaling":
            fit = fit_n_required(pd.read_csv(args.n_required),
                                 args.out or Path(args.n_required).parent, args.n_boot)
            print(format_fit(fit))
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


def compare_main(argv: list[str]) -> int:
    """`coverage compare DIR_A DIR_B`: exit 0 when identical, 1 when different, 2 on bad input."""
    parser = argparse.ArgumentParser(
        prog="python -m analysis coverage compare",
        description="item-level differences between the JSON files of two coverage dataset or "
        "annotation directories (e.g. ours vs upstream's)")
    parser.add_argument("dir_a")
    parser.add_argument("dir_b")
    parser.add_argument("--examples", type=int, default=3, help="examples shown per kind")
    args = parser.parse_args(argv)
    try:
        identical, lines = compare(args.dir_a, args.dir_b, args.examples)
    except (ValueError, OSError) as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0 if identical else 1


def _pairs(items: list[str], form: str) -> dict[str, str]:
    """['a=b', ...] -> {'a': 'b', ...}, in order; a malformed item is a ValueError."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise ValueError(f"expected {form}, got {item!r}")
        out[key] = value
    return out


if __name__ == "__main__":
    sys.exit(main())
