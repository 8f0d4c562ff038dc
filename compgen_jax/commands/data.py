"""`compgen-jax data fetch|list|check`: canonical downloads, checksums, what a data dir holds."""

from __future__ import annotations

import argparse
from pathlib import Path

from analysis.__main__ import subcommand
from tasks.data_dir import DATA_DIR_ENV, data_dir


def _root(args: argparse.Namespace) -> str:
    """The data dir from --data_dir or $COMPGEN_DATA_DIR; ValueError if neither is set."""
    root = data_dir(args.data_dir)
    if root is None:
        raise ValueError(f"no data dir: pass --data_dir or set {DATA_DIR_ENV}")
    return str(root)


def run_fetch(args: argparse.Namespace) -> None:
    from tasks import fetch

    for archive in fetch.fetch(args.benchmark, _root(args), force=args.force):
        print(f"fetched {archive}")
    states = fetch.verify_files(args.benchmark, _root(args), record=True)  # later checks verify
    print(fetch.describe(fetch.status(args.benchmark, _root(args))))
    unreadable = [f"{rel}: {state}" for rel, state in states.items() if fetch.bad_state(state)]
    if unreadable:
        raise ValueError(f"fetched files that do not parse: {'; '.join(unreadable)}")


def run_list(args: argparse.Namespace) -> None:
    from tasks import fetch

    for benchmark in fetch.SOURCES:
        print(fetch.describe(fetch.status(benchmark, _root(args))))
    print("(presence only: `compgen-jax data check` parses and checksum-verifies the files)")


def run_check(args: argparse.Namespace) -> None:
    """Per benchmark: what is present, and each present file parsed and checksum-verified."""
    import dataclasses

    from tasks import fetch

    incomplete = []
    for benchmark in args.benchmark or list(fetch.SOURCES):
        st = fetch.status(benchmark, _root(args))
        states = fetch.verify_files(benchmark, _root(args), args.record)
        st = dataclasses.replace(st, damaged=tuple(r for r, s in states.items()
                                                   if fetch.bad_state(s)))
        print(fetch.describe(st))
        for rel, state in states.items():
            print(f"  {rel}: {state if rel in st.damaged else f'parsed; sha256 {state}'}")
        incomplete += [] if st.complete else [benchmark]
    if incomplete:
        raise ValueError(f"incomplete in {_root(args)}: {', '.join(incomplete)}")


def run_measures(args: argparse.Namespace) -> None:
    """Per-example measures + pair constructs of tasks' splits: the audit's input (analysis)."""
    import json

    import pandas as pd

    from analysis.atomic import write_text
    from tasks import registry
    from tasks.benchmarks import PAIR_CONSTRUCTS
    from tasks.signature import feature_matrix

    frames, constructs = [], {}
    for task in args.task:
        registry.ensure_registered(task, args.data_dir)
        examples = registry.get_examples(task, args.split)
        benchmark = examples[0].benchmark
        columns = dict(zip(("n_atoms", "n_pairs", "depth", "out_len"), feature_matrix(examples).T,
                           strict=True))
        frames.append(pd.DataFrame({"benchmark": benchmark,
                                    "example_id": [ex.id for ex in examples], **columns}))
        constructs[benchmark] = PAIR_CONSTRUCTS[benchmark]
    out = Path(args.out)
    write_text(out / "measures.csv", pd.concat(frames).to_csv(index=False))
    write_text(out / "constructs.json", json.dumps(constructs, indent=1) + "\n")
    print(f"measures: {out / 'measures.csv'}\nconstructs: {out / 'constructs.json'}")


def run_export(args: argparse.Namespace) -> None:
    """A task's tokenized splits to one .npz: the TASK_ARRAYS file of a run without TensorFlow."""
    from tasks import arrays

    sizes = arrays.export(args.task, args.out, args.split, args.data_dir)
    print(f"{args.out}: task {args.task}, " + ", ".join(f"{s} {n}" for s, n in sizes.items())
          + f" examples ({Path(args.out).stat().st_size / 2**20:.1f} MiB)")


def register(subparsers: argparse._SubParsersAction) -> None:
    from tasks.fetch import SOURCES

    data = subcommand(subparsers, "data", "canonical downloads, checksums, local data dirs",
                      "%(prog)s check --data_dir ../shared/data")
    sub = data.add_subparsers(dest="data_command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data_dir", default=None,
                        help=f"benchmark data directory (default: ${DATA_DIR_ENV})")
    fetch = subcommand(sub, "fetch", "download, verify and unpack a benchmark's canonical "
                       "archives", "%(prog)s cogs --data_dir ~/compgen-data", parents=[common])
    fetch.add_argument("benchmark", choices=sorted(SOURCES), help="which benchmark")
    fetch.add_argument("--force", action="store_true", help="download again even if cached")
    fetch.set_defaults(run=run_fetch)
    subcommand(sub, "list", "what each benchmark has in the data dir (presence only)",
               "%(prog)s --data_dir ../shared/data", parents=[common]).set_defaults(run=run_list)
    check = subcommand(sub, "check", "exit 2 unless the benchmarks are complete, every file "
                       "parses with its reader and none fails its checksum",
                       "%(prog)s scan cogs --data_dir ../shared/data", parents=[common])
    check.add_argument("benchmark", nargs="*", help=f"some of {sorted(SOURCES)} (default: all)")
    check.add_argument("--record", action="store_true",
                       help="record the present files' sha256 in checksums.json (trust them)")
    check.set_defaults(run=run_check)
    measures = subcommand(sub, "measures", "per-example atoms/pairs/depth/out_len of tasks' "
                          "pools, for `compgen-jax report --measures`",
                          "%(prog)s scan_simple cogs --out audit/", parents=[common])
    measures.add_argument("task", nargs="+", help="registered task names, e.g. scan_simple cogs")
    measures.add_argument("--split", default="train", help="which split (default: the pool)")
    measures.add_argument("--out", required=True, help="output dir (measures.csv, constructs.json)")
    measures.set_defaults(run=run_measures)
    export = subcommand(sub, "export", "a task's tokenized splits, examples, vocabulary (and "
                        "gSCAN grids) in one compressed .npz, for runs that bind TASK_ARRAYS "
                        "(no seqio / TensorFlow there)", "%(prog)s cogs --out cogs.npz",
                        parents=[common])
    export.add_argument("task", help="registered task name, e.g. cogs")
    export.add_argument("--out", required=True, help="output file (.npz)")
    export.add_argument("--split", nargs="*", default=[],
                        help="splits to write (default: all the task's splits)")
    export.set_defaults(run=run_export)
