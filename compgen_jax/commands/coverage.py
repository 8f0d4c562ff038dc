"""`compgen-jax coverage generate|train|scaling|circuits`: the coverage-principle tasks."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

from compgen_jax.commands.train import gin_flags


def _configure(args: argparse.Namespace) -> Path:
    """Parse gin files + bindings (registering the synthetic configurables); return MODEL_DIR."""
    import gin

    from compgen_jax import synthetic  # noqa: F401  (registers the configurables)
    from compgen_jax.gin_utils import parse_gin

    parse_gin(args.gin_file, args.gin_bindings, args.gin_search_paths)
    try:
        return Path(gin.query_parameter("%MODEL_DIR"))
    except ValueError:
        raise ValueError("MODEL_DIR is not set: pass --gin.MODEL_DIR=\\\"/path\\\"") from None


def run_generate(args: argparse.Namespace) -> None:
    from tasks.benchmarks import coverage

    out = coverage.generate(args.task, args.out, args.num_tokens, args.max_train,
                            same=args.same, mode=args.mode, seed=args.seed, parity=args.parity)
    print(out)


def run_train(args: argparse.Namespace) -> None:
    from compgen_jax.gin_utils import write_operative_config
    from compgen_jax.synthetic import train_synthetic

    model_dir = _configure(args)
    result = train_synthetic()
    write_operative_config(model_dir)
    final = result.rows.sort_values("step").groupby(["seed", "type"]).tail(1)
    print(final.pivot(index="type", columns="seed", values="accuracy").round(3).to_string())
    print(result.stops[["seed", "stop_step", "stop_reason"]].to_string(index=False))
    print(f"results: {model_dir / 'results.csv'}, {model_dir / 'per_example.csv'}")


def run_scaling(args: argparse.Namespace) -> None:
    from compgen_jax.gin_utils import write_operative_config
    from compgen_jax.synthetic import scaling_sweep

    model_dir = _configure(args)
    table = scaling_sweep()
    write_operative_config(model_dir)
    print(table.to_string(index=False))
    print(f"table: {model_dir / 'n_required.csv'}")


def run_circuits(args: argparse.Namespace) -> None:
    from compgen_jax.circuits import run_circuits as analyse
    from compgen_jax.synthetic import cell_setup, restore_params

    _configure(args)
    setup = cell_setup()
    seeds = setup.train_config.seeds
    params = restore_params(setup.model_dir, setup.trainer, seeds)
    for path in analyse(setup.model_dir, setup.trainer, params, seeds, setup.data,
                        setup.dataset_dir, args.atomic_idx):
        print(path)


def covered_accuracy(per_example: pd.DataFrame, kcov: pd.DataFrame,
                     ks: Sequence[int]) -> pd.DataFrame:
    """Mean final accuracy per (type, k, covered at k = max_k >= k), seeds pooled and per seed."""
    import pandas as pd

    joined = per_example.merge(kcov[["index", "max_k"]], on="index", validate="many_to_one")
    rows = []
    for k in ks:
        g = joined.assign(k=k, covered=joined["max_k"] >= k).groupby(["type", "k", "covered"])
        table = g["accuracy"].agg(accuracy="mean", n_rows="size")
        table["n_items"] = g["index"].nunique()
        table["seed_accuracies"] = g.apply(
            lambda d: " ".join(f"{a:.3f}" for a in d.groupby("seed")["accuracy"].mean()),
            include_groups=False)
        rows.append(table.reset_index())
    return pd.concat(rows, ignore_index=True)


def run_covered(args: argparse.Namespace) -> None:
    import pandas as pd

    from analysis.coverage import kcoverage_table
    from tasks.atomic import write_text

    model_dir = Path(args.model_dir)
    kcov = kcoverage_table(args.dataset_dir, args.k_max, parity=args.parity)
    table = covered_accuracy(pd.read_csv(model_dir / "per_example.csv"), kcov, args.k or [1])
    write_text(model_dir / "covered_accuracy.csv", table.to_csv(index=False))
    print(table.to_string(index=False))


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "coverage", help="coverage-principle tasks: generate data, train, scaling, circuits")
    sub = parser.add_subparsers(dest="coverage_command", required=True)
    gen = sub.add_parser("generate", help="write an upstream-layout dataset dir")
    gen.add_argument("--task", default="twohop",
                     choices=("twohop", "threehop", "parallel2hop", "nontree"))
    gen.add_argument("--num_tokens", type=int, required=True, help="|X|")
    gen.add_argument("--max_train", type=int, required=True, help="training-set size")
    gen.add_argument("--mode", default="inf", help="inf | cot | fakebridge | include-atomic")
    gen.add_argument("--same", action="store_true", help="same functions at every hop")
    gen.add_argument("--seed", type=int, default=42)
    gen.add_argument("--parity", action="store_true", help="reproduce upstream quirks Q10/Q11")
    gen.add_argument("--out", required=True, help="data root; the dataset dir goes inside")
    gen.set_defaults(run=run_generate)
    flags = gin_flags()
    sub.add_parser("train", parents=[flags],
                   help="train one cell (S seeds) on DATASET_DIR into MODEL_DIR"
                   ).set_defaults(run=run_train)
    sub.add_parser("scaling", parents=[flags],
                   help="data-requirement sweep -> MODEL_DIR/n_required.csv"
                   ).set_defaults(run=run_scaling)
    cov = sub.add_parser("covered", help="final accuracy of covered vs uncovered type_0 items "
                         "(analysis.coverage) -> MODEL_DIR/covered_accuracy.csv")
    cov.add_argument("--model_dir", required=True, help="a trained cell's MODEL_DIR")
    cov.add_argument("--dataset_dir", required=True, help="the cell's 2-hop dataset dir")
    cov.add_argument("--k", type=int, action="append", default=None,
                     help="coverage threshold(s) k (repeatable; default 1)")
    cov.add_argument("--k_max", type=int, default=20)
    cov.add_argument("--parity", action="store_true", help="upstream bucket key (Q1)")
    cov.set_defaults(run=run_covered)
    circ = sub.add_parser("circuits", parents=[flags],
                          help="collapse/IICG, causal tracing, logit lens + plots of a trained "
                          "cell (same gin flags as train) -> MODEL_DIR/circuits/")
    circ.add_argument("--atomic_idx", type=int, default=1, choices=(1, 2, 4),
                      help="collapse grouping: 1 bridge b, 2 target t, 4 (b, x2)")
    circ.set_defaults(run=run_circuits)
