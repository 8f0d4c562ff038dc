"""`compgen-jax coverage generate|train|scaling|circuits`: the coverage-principle tasks."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from analysis.__main__ import subcommand
from compgen_jax.commands.train import configure, gin_flags

if TYPE_CHECKING:
    from compgen_jax.train import CellSetup

COVERAGE_FLAGS = ("--gin_file=experiments/coverage_twohop_cpu.gin "
                  "--gin.DATASET_DIR=\\\"data/cov/twohop.50.40000.diff-f12.inf\\\" "
                  "--gin.MODEL_DIR=\\\"runs/cov50\\\"")


def run_generate(args: argparse.Namespace) -> None:
    from tasks.benchmarks import coverage

    out = coverage.generate(args.task, args.out, args.num_tokens, args.max_train,
                            same=args.same, mode=args.mode, seed=args.seed,
                            test_size=args.test_size, parity=args.parity)
    print(out)


def run_train(args: argparse.Namespace) -> None:
    from compgen_jax.train import train

    model_dir = configure(args, [])
    rows, stops = train()
    final = rows.sort_values("step").groupby(["seed", "split"]).tail(1)
    print(final.pivot(index="split", columns="seed", values="exact_match").round(3).to_string())
    print(stops[["seed", "stop_step", "stop_reason"]].to_string(index=False))
    print(f"results: {model_dir / 'results.csv'}, {model_dir / 'per_example.csv'}")
    print(f"operative config: {model_dir / 'config.gin'}")


def run_scaling(args: argparse.Namespace) -> None:
    from compgen_jax.scaling import run_scaling as run_design

    model_dir = configure(args, [])
    table = run_design(args.gin_file, args.gin_bindings, args.gin_search_paths)
    print(table.to_string(index=False))
    print(f"table: {model_dir / 'n_required.csv'}")
    reached = table["n_required"].notna().sum()
    if reached < 3:
        print(f"no power-law fit: N_req reached at {reached} of {len(table)} sizes (needs 3)")
        return
    from analysis.scaling import fit_n_required, format_fit

    print(format_fit(fit_n_required(table, model_dir)))
    print(f"fit: {model_dir / 'power_law.json'}, {model_dir / 'power_law.png'}")


def _coverage_setup(args: argparse.Namespace) -> CellSetup:
    """The configured coverage cell of `covered` and `circuits` (same gin flags as train)."""
    from compgen_jax.train import cell_setup

    configure(args, [])
    setup = cell_setup()
    if setup.dataset_dir is None:
        raise ValueError("coverage: the gin files configure a benchmark cell (cell_setup.cell); "
                         "bind cell_setup.dataset_dir (runs/coverage_train.gin)")
    return setup


def run_circuits(args: argparse.Namespace) -> None:
    from compgen_jax.circuits import run_circuits as analyse
    from compgen_jax.coverage_cells import restore_params

    setup = _coverage_setup(args)
    seeds = setup.train_config.seeds
    params = restore_params(setup.model_dir, setup.trainer, seeds, args.step,
                            setup.data.name)
    for path in analyse(setup.model_dir, setup.trainer, params, seeds, setup.data,
                        setup.dataset_dir, grouping=args.grouping,
                        coverage_groups=args.coverage_groups, parity=args.parity,
                        step=args.step):
        print(path)


def run_covered(args: argparse.Namespace) -> None:
    import pandas as pd

    from analysis.atomic import write_text
    from analysis.coverage import (
        covered_accuracy,
        kcoverage_table,
        load_dataset,
        plot_coverage_accuracy,
        prior_baseline,
    )
    from compgen_jax.coverage_cells import checkpoint_per_example

    setup = _coverage_setup(args)
    dataset = load_dataset(setup.dataset_dir)
    kcov = kcoverage_table(dataset, args.k_max, parity=args.parity)
    if args.step:
        per_example = pd.concat([checkpoint_per_example(
            setup.model_dir, setup.data, setup.trainer, setup.train_config, s)
            for s in args.step])
    else:
        per_example = pd.read_csv(setup.model_dir / "per_example.csv").assign(step="final")
    prior = prior_baseline(dataset)
    table = covered_accuracy(per_example, kcov, args.k or [1]).merge(
        prior, left_on="type", right_index=True, how="left")
    stem = "covered_accuracy" + "".join(f"_{s}" for s in args.step or [])
    write_text(setup.model_dir / f"{stem}.csv", table.to_csv(index=False))
    print(table.to_string(index=False))
    curves = {f"step {s}": g.groupby("index")["accuracy"].mean()
              for s, g in per_example.groupby("step", sort=False)}
    plot = setup.model_dir / f"{stem.replace('covered_accuracy', 'coverage_accuracy')}.png"
    print(plot_coverage_accuracy(kcov, curves, plot))


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subcommand(subparsers, "coverage", "coverage-principle tasks: generate data, "
                        "train, covered accuracy, scaling, circuits",
                        "%(prog)s generate --task twohop --num_tokens 50 --max_train 40000 "
                        "--out data/cov/")
    sub = parser.add_subparsers(dest="coverage_command", required=True)
    gen = subcommand(sub, "generate", "write an upstream-layout dataset directory",
                     "%(prog)s --task twohop --num_tokens 50 --max_train 40000 --out data/cov/")
    gen.add_argument("--task", default="twohop",
                     choices=("twohop", "threehop", "parallel2hop", "nontree", "fivehop"),
                     help="which task (default twohop)")
    gen.add_argument("--num_tokens", type=int, required=True, help="|X|")
    gen.add_argument("--max_train", type=int, required=True, help="training-set size")
    gen.add_argument("--mode", default=None,
                     help="inf | cot | fakebridge | include-atomic (default: inf; fivehop: cot, "
                     "its only mode)")
    gen.add_argument("--same", action="store_true",
                     help="same functions at every hop (not fivehop)")
    gen.add_argument("--seed", type=int, default=42, help="sampling seed (default 42)")
    gen.add_argument("--test_size", type=int, default=None,
                     help="per-type test cap (upstream --test_size_for_type; default 2000, "
                     "threehop/parallel2hop 3000; fivehop: the type_0 count and, in --parity, "
                     "the train_inferred slice)")
    gen.add_argument("--parity", action="store_true",
                     help="write upstream's bytes for the same arguments (quirks Q10, Q11, "
                     "Q27-Q37)")
    gen.add_argument("--out", required=True, help="data root; the dataset dir goes inside")
    gen.set_defaults(run=run_generate)
    flags = gin_flags()
    subcommand(sub, "train", "train one cell (S seeds) on DATASET_DIR into MODEL_DIR",
               f"%(prog)s {COVERAGE_FLAGS}", parents=[flags]).set_defaults(run=run_train)
    subcommand(sub, "scaling", "data-requirement sweep -> MODEL_DIR/n_required.csv and the "
               "power-law fit", "%(prog)s --gin_file=experiments/coverage_scaling_cpu.gin "
               "--gin.DATA_ROOT=\\\"data/cov\\\" --gin.MODEL_DIR=\\\"runs/scaling\\\"",
               parents=[flags]).set_defaults(run=run_scaling)
    cov = subcommand(sub, "covered", "accuracy of covered vs uncovered type_0 items by k, with "
                     "the x3-prior baseline (same gin flags as train) -> MODEL_DIR/"
                     "covered_accuracy[_<steps>].csv, coverage_accuracy[_<steps>].png",
                     f"%(prog)s {COVERAGE_FLAGS} --step 3000 --k 15 --k 20", parents=[flags])
    cov.add_argument("--step", type=int, action="append", default=None,
                     help="evaluate checkpoint_<step> (repeatable; default: the final "
                     "per_example.csv)")
    cov.add_argument("--k", type=int, action="append", default=None,
                     help="coverage threshold(s) k (repeatable; default 1)")
    cov.add_argument("--k_max", type=int, default=20, help="sweep k = 1..K_MAX (default 20)")
    cov.add_argument("--parity", action="store_true", help="upstream bucket key (Q1)")
    cov.set_defaults(run=run_covered)
    circ = subcommand(sub, "circuits", "collapse/IICG, causal tracing, logit lens and plots of "
                      "a trained cell (same gin flags as train) -> MODEL_DIR/circuits/",
                      f"%(prog)s {COVERAGE_FLAGS} --coverage_groups per_k", parents=[flags])
    circ.add_argument("--grouping", default=None,
                      help="collapse grouping: twohop b | t | b,x2 (upstream atomic_idx 1 | 2 "
                      "| 4); threehop b1 | b2 | t | b2,x4 | b2,x3 | b1,b2; parallel2hop b1 | "
                      "b2 | t | b1,b2; nontree b | t | x2 | b,x2 | b,x1 (default: b, or b1)")
    circ.add_argument("--coverage_groups", default=None,
                      help="split type_0 by coverage threshold (test_annotated.json, else "
                      "analysis.coverage): low_mid_high | split3 | per_k (twohop, nontree)")
    circ.add_argument("--parity", action="store_true",
                      help="upstream quirks Q24 (double ln_f in the logit lens) and Q25 (CoT "
                      "tracing ranks t/t' where b is predicted)")
    circ.add_argument("--step", type=int, default=None,
                      help="analyse checkpoint_<step> (default: the newest, each seed's stop)")
    circ.set_defaults(run=run_circuits)
