"""`compgen-jax reproduce`: the paper's programme (every part a sweep) and one combined report."""

from __future__ import annotations

import argparse
import shlex
import sys

from analysis.__main__ import subcommand
from analysis.storage import as_path
from compgen_jax.commands.sweep import add_backend_flags, ray_config
from compgen_jax.commands.train import gin_flags

DEFAULT_PROGRAMME = "programme/cpu.gin"


def run_reproduce(args: argparse.Namespace) -> None:
    """Validate every part, run the unfinished cells (locally or as Ray tasks), report."""
    from analysis.programme import write_programme_report
    from analysis.report import ReportOptions
    from compgen_jax import programme, runner, sweep

    prog = programme.load(args.gin_file or [DEFAULT_PROGRAMME], args.gin_bindings,
                          args.gin_search_paths)
    specs = programme.expand(prog, args.gin_search_paths)
    cells = sum(len(spec.cells) for _, spec in specs)
    finished = sum(sweep.is_finished(spec, c) for _, spec in specs for c in spec.cells)
    parts = ", ".join(part.name for part, _ in specs)
    print(f"programme {prog.root}: parts {parts}; {cells} cells validated, "
          f"{finished} finished")
    if args.dry_run:
        for part, spec in specs:
            print(f"# part {part.name}: {len(spec.cells)} cells -> {spec.root}")
            runner.launch_local(spec, dry_run=True)
        return
    if args.backend == "ray":
        from compgen_jax import ray_backend

        ran = len(ray_backend.launch([spec for _, spec in specs], ray_config(args)))
        for _, spec in specs:
            sweep.collect(as_path(spec.root))
    else:
        ran = programme.run_local(specs, parallel=args.parallel,
                                  in_process=args.backend == "in-process")
    command = shlex.join(["compgen-jax", "reproduce", *sys.argv[2:]])
    path = write_programme_report(programme.part_records(specs), prog.decomposition,
                                  as_path(prog.root) / "report", command,
                                  ReportOptions(n_perm=args.n_perm, n_boot=args.n_boot),
                                  prog.bindings, prog.not_run)
    print(f"trained {ran} cells; report: {path}")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `reproduce`."""
    parser = subcommand(
        subparsers, "reproduce", f"the paper's programme end to end and one report (default "
        f"{DEFAULT_PROGRAMME}; programme/full.gin on a Ray cluster: --backend=ray "
        "--address=HOST:PORT)", "%(prog)s --dry_run", parents=[gin_flags()])
    add_backend_flags(parser)
    parser.add_argument("--n_perm", type=int, default=10000, help="permutations per test")
    parser.add_argument("--n_boot", type=int, default=2000, help="bootstrap resamples")
    parser.set_defaults(run=run_reproduce)
