"""The analysis subcommands (summary, report, decompose, coverage, compare, scaling).

`compgen-jax analysis ...` hosts them (and `compgen-jax report`); `python -m analysis ...` is the
same command line without the engine. Each subcommand imports its analysis modules when it runs,
so building the parser stays cheap and nothing here imports JAX.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Callable, Sequence

# Hyphenated spellings of underscore flags, accepted silently (older scripts and tests use them).
FLAG_ALIASES = {"--n-perm": "--n_perm", "--n-boot": "--n_boot"}


def subcommand(
    sub: argparse._SubParsersAction, name: str, summary: str, example: str,
    run: Callable[[argparse.Namespace], int | None] | None = None, **kwargs: object,
) -> argparse.ArgumentParser:
    """Add NAME with its one-line summary (listed and shown by --help), an `example:` epilog and
    the function that RUNs it.

    The example may use %(prog)s, which --help expands to the subcommand's own prog.
    """
    parser = sub.add_parser(name, help=summary, description=textwrap.fill(f"{summary}.", 79),
                            epilog=f"example:\n  {example}",
                            formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)
    if run is not None:
        parser.set_defaults(run=run)
    return parser


def _alias(parser: argparse.ArgumentParser, canonical: str, **kwargs: object) -> None:
    """The hidden hyphenated alias of CANONICAL (same dest; help suppressed)."""
    alias = next(a for a, c in FLAG_ALIASES.items() if c == canonical)
    parser.add_argument(alias, dest=canonical[2:], default=argparse.SUPPRESS,
                        help=argparse.SUPPRESS, **kwargs)


def add_commands(sub: argparse._SubParsersAction, names: Sequence[str] | None = None) -> None:
    """Add the analysis subcommands (or only NAMES) to SUB; each sets `run` and `analysis`."""
    adders: dict[str, Callable[[argparse._SubParsersAction], None]] = {
        "summary": _add_summary, "report": _add_report, "decompose": _add_decompose,
        "coverage": _add_coverage, "compare": _add_compare, "scaling": _add_scaling,
    }
    for name in names or adders:
        adders[name](sub)
        sub.choices[name].set_defaults(analysis=True)


def _add_summary(sub: argparse._SubParsersAction) -> None:
    parser = subcommand(sub, "summary", "diversity dose-response table (and plot) of a results "
                        "file or sweep root", "%(prog)s runs/scan_diversity_cpu --split test "
                        "--plot dose.png", run=run_summary)
    parser.add_argument("results", help="results.csv/.parquet file or a directory of them")
    parser.add_argument("--split", default="test", help="eval split to summarise (default test)")
    parser.add_argument("--metric", default="exact_match", help="fraction-valued metric column")
    parser.add_argument("--plot", metavar="OUT.png", help="also write the dose-response plot")


def _add_report(sub: argparse._SubParsersAction) -> None:
    parser = subcommand(sub, "report", "markdown report with tables and PNG plots of a sweep root "
                        "or results file", "%(prog)s runs/scan_sweep_cpu --out "
                        "runs/scan_sweep_cpu/report", run=run_report)
    parser.add_argument("results", help="results directory (or one results file)")
    parser.add_argument("--out", required=True, help="directory for report.md and the PNGs")
    parser.add_argument("--split", default="test", help="eval split to report (default test)")
    parser.add_argument("--metric", default="exact_match", help="fraction-valued metric column")
    parser.add_argument("--measures", help="per-example measures CSV (enables the audit; "
                        "`compgen-jax data measures` writes it)")
    parser.add_argument("--constructs", help="JSON benchmark -> pair construct (for the audit)")
    parser.add_argument("--model_dir", help="where <cell>/manifests/ live (default: RESULTS)")
    parser.add_argument("--n_perm", type=int, default=10000, help="permutations per test")
    parser.add_argument("--n_boot", type=int, default=2000, help="bootstrap resamples")
    _alias(parser, "--n_perm", type=int)
    _alias(parser, "--n_boot", type=int)


def _add_decompose(sub: argparse._SubParsersAction) -> None:
    parser = subcommand(sub, "decompose", "E1 -> E2 -> E3 additive decomposition from three "
                        "sweeps", "%(prog)s E1=runs/cogs_e1 E2=runs/cogs_e2 E3=runs/cogs_e3 "
                        "--split gen --where difficulty=easy", run=run_decompose)
    parser.add_argument("sweeps", nargs="+", metavar="NAME=RESULTS",
                        help="chain in order, e.g. E1=runs/cogs_e1 E2=runs/cogs_e2 "
                        "E3=runs/cogs_e3")
    parser.add_argument("--split", default="test", help="eval split (default test)")
    parser.add_argument("--metric", default="exact_match", help="fraction-valued metric column")
    parser.add_argument("--where", action="append", default=[], metavar="FACTOR=LEVEL",
                        help="keep rows with factor_FACTOR == LEVEL (e.g. difficulty=easy)")
    parser.add_argument("--method", choices=("t", "percentile"), default="t",
                        help="CI: Welch t (default) or the paper's percentile bootstrap")


def _add_coverage(sub: argparse._SubParsersAction) -> None:
    parser = subcommand(sub, "coverage", "k-coverage of a coverage-principle dataset (k sweep, "
                        "upstream's annotation files)",
                        "%(prog)s data/cov/twohop.50.40000.diff-f12.inf --k_max 20",
                        run=run_coverage)
    parser.add_argument("dataset_dir", help="upstream-layout dataset directory (train/test/vocab)")
    parser.add_argument("--k_max", type=int, default=20, help="sweep k = 1..K_MAX (default 20)")
    parser.add_argument("--parity", action="store_true", help="upstream bucket key (quirk Q1)")
    parser.add_argument("--ground_truth", action="store_true",
                        help="only the f1 pair subset {0,1}")
    parser.add_argument("--min_evidence", type=int, default=1,
                        help="k of test_annotated_full.json")
    parser.add_argument("--out", help="output directory (default: DATASET_DIR, as upstream)")


def _add_compare(sub: argparse._SubParsersAction) -> None:
    parser = subcommand(sub, "compare", "item-level differences between two coverage dataset or "
                        "annotation directories (exit 0 identical, 1 different)",
                        "%(prog)s data/cov/twohop.50.10000.diff-f12.inf upstream/twohop.50.10000",
                        run=run_compare)
    parser.add_argument("dirs", nargs=2, metavar="DIR",
                        help="the two directories (e.g. ours and upstream's)")
    parser.add_argument("--examples", type=int, default=3, help="examples shown per kind")


def _add_scaling(sub: argparse._SubParsersAction) -> None:
    parser = subcommand(sub, "scaling", "power-law fit N_req = a*|X|^c with a bootstrap CI",
                        "%(prog)s runs/scaling/n_required.csv", run=run_scaling)
    parser.add_argument("n_required", help="n_required.csv of `compgen-jax coverage scaling`")
    parser.add_argument("--out", help="where power_law.json/.png go (default: beside the CSV)")
    parser.add_argument("--n_boot", type=int, default=2000, help="bootstrap resamples")
    _alias(parser, "--n_boot", type=int)


def run_summary(args: argparse.Namespace) -> None:
    """Print the dose-response table; write the plot if asked."""
    from analysis.dose_response import (
        diversity_summary,
        diversity_trend,
        format_summary,
        plot_dose_response,
    )
    from analysis.results import read_results

    df = read_results(args.results)
    summary = diversity_summary(df, args.split, args.metric)
    print(format_summary(summary, diversity_trend(df, args.split, args.metric)))
    if args.plot:
        print(f"plot: {plot_dose_response(df, args.split, args.plot, args.metric)}")


def run_report(args: argparse.Namespace) -> None:
    """Write report.md and its plots."""
    from analysis.report import ReportOptions, load_constructs, write_report

    options = ReportOptions(n_boot=args.n_boot, n_perm=args.n_perm)
    constructs = load_constructs(args.constructs) if args.constructs else None
    path = write_report(args.results, args.out, args.split, args.metric, args.measures,
                        constructs, args.model_dir, options)
    print(f"report: {path}")


def run_decompose(args: argparse.Namespace) -> None:
    """Print the decomposition table of the chained sweeps."""
    from analysis.decompose import decomposition_from_sweeps

    table = decomposition_from_sweeps(
        _pairs(args.sweeps, "NAME=RESULTS"), args.split, args.metric,
        where=_pairs(args.where, "FACTOR=LEVEL"), method=args.method,
    )  # fmt: skip
    print(table.to_string(index=False, float_format="%.2f"))


def run_coverage(args: argparse.Namespace) -> None:
    """Print the k sweep and write upstream's annotation files."""
    from analysis.coverage import kcoverage_table, sweep_frame, write_upstream_outputs

    table = kcoverage_table(args.dataset_dir, args.k_max, args.parity, args.ground_truth)
    paths = write_upstream_outputs(table, args.dataset_dir, args.out or args.dataset_dir,
                                   args.min_evidence)
    print(sweep_frame(table).to_string(index=False, float_format="%.2f"))
    print("\n".join(f"wrote: {p}" for p in paths))


def run_compare(args: argparse.Namespace) -> int:
    """Print the differences; exit status 0 when identical, 1 when different."""
    from analysis.coverage import compare

    identical, lines = compare(*args.dirs, args.examples)
    print("\n".join(lines))
    return 0 if identical else 1


def run_scaling(args: argparse.Namespace) -> None:
    """Fit and print the power law; write power_law.json/.png."""
    from pathlib import Path

    import pandas as pd

    from analysis.scaling import fit_n_required, format_fit

    fit = fit_n_required(pd.read_csv(args.n_required),
                         args.out or Path(args.n_required).parent, args.n_boot)
    print(format_fit(fit))


def run(args: argparse.Namespace) -> int:
    """Run a parsed analysis subcommand; bad input gives a one-line error and exit status 2."""
    try:
        return args.run(args) or 0
    except (ValueError, OSError) as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2


def build_parser(prog: str = "python -m analysis") -> argparse.ArgumentParser:
    """The argument parser, one subcommand per analysis."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    add_commands(parser.add_subparsers(dest="command", required=True))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m analysis SUB ...`; `coverage compare A B` is accepted for `compare A B`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["coverage", "compare"]:
        argv = argv[1:]
    return run(build_parser().parse_args(argv))


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
