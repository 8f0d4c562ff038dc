"""`compgen-jax sweep launch|status|collect`: a gin design's cells, in this process, as local
processes, or as Ray tasks."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from analysis.__main__ import subcommand
from compgen_jax.commands.train import gin_flags


def run_launch(args: argparse.Namespace) -> None:
    """Expand the design; run the unfinished cells in this process, as local processes, or as
    Ray tasks."""
    from compgen_jax import runner, sweep

    spec = sweep.expand(args.gin_file, args.gin_bindings, args.gin_search_paths)
    sweep.check_root(spec)
    finished = len(spec.cells) - sum(not sweep.is_finished(spec, c) for c in spec.cells)
    print(f"sweep {spec.root}: {len(spec.cells)} cells, {finished} finished")
    if args.dry_run:
        from compgen_jax.designs import format_table

        print(f"validated (lengths, steps, pool, memory):\n{format_table(list(spec.checks))}")
    if args.backend == "ray" and not args.dry_run:
        from compgen_jax import ray_backend

        ran = ray_backend.launch([spec], ray_config(args))
    else:
        ran = runner.launch_local(spec, parallel=args.parallel, dry_run=args.dry_run,
                                  in_process=args.backend == "in-process")
    if not args.dry_run:
        print(f"ran {len(ran)} cells; collect with: compgen-jax sweep collect {spec.root}")


def ray_config(args: argparse.Namespace) -> Any:
    """The ray_backend.RayConfig of the --address/--ray_* flags (add_backend_flags)."""
    from compgen_jax.ray_backend import RayConfig

    try:
        resources = json.loads(args.ray_resources)
    except json.JSONDecodeError as err:
        raise ValueError(f"--ray_resources={args.ray_resources!r}: not JSON ({err})") from None
    if not (isinstance(resources, dict)
            and all(isinstance(v, int | float) and v > 0 for v in resources.values())):
        raise ValueError(f"--ray_resources={args.ray_resources!r}: expected a JSON object of "
                         "positive amounts, e.g. '{\"TPU\": 4}'")
    if args.ray_cpus < 0 or args.ray_gpus < 0 or args.max_retries < 0:
        raise ValueError("--ray_cpus, --ray_gpus and --max_retries must be >= 0")
    return RayConfig(address=args.address or None, num_cpus=args.ray_cpus,
                     num_gpus=args.ray_gpus, resources=resources, max_retries=args.max_retries)


def add_backend_flags(parser: argparse.ArgumentParser) -> None:
    """--backend, --parallel, --dry_run and the Ray flags (sweep launch, reproduce)."""
    parser.add_argument("--backend", choices=("local", "in-process", "ray"), default="local",
                        help="local: one `compgen-jax train` process per cell; in-process: "
                        "cells one after another in this process (sharing the loaded task and "
                        "compiled step); ray: each cell a Ray task on a cluster (--address) or "
                        "on a Ray instance started on this machine, e.g. `--backend=ray "
                        "--address=10.0.0.2:6379 --ray_resources='{\"TPU\": 4}'`")
    parser.add_argument("--parallel", type=int, default=1, help="local: cells run at a time")
    parser.add_argument("--dry_run", action="store_true", help="print the commands, run nothing")
    parser.add_argument("--address", default="",
                        help="ray: the cluster's HOST:PORT (or 'auto'); none: start Ray here")
    parser.add_argument("--ray_cpus", type=float, default=1.0, help="ray: CPUs per cell")
    parser.add_argument("--ray_gpus", type=float, default=0.0,
                        help="ray: GPUs per cell (a fraction shares one GPU)")
    parser.add_argument("--ray_resources", default="{}",
                        help='ray: other resources per cell as JSON, e.g. \'{"TPU": 4}\'')
    parser.add_argument("--max_retries", type=int, default=3,
                        help="ray: retries of a cell whose node or worker died (each resumes "
                        "from the cell's newest checkpoint)")


def run_status(args: argparse.Namespace) -> None:
    from compgen_jax import designs, sweep

    rows = sweep.status_rows(Path(args.sweep_root))
    print(designs.format_table(rows))
    states = [r["state"] for r in rows]
    print(f"\n{states.count('finished')}/{len(rows)} cells finished")


def run_collect(args: argparse.Namespace) -> None:
    from compgen_jax import sweep

    root = Path(args.sweep_root)
    table = sweep.collect(root, allow_missing=args.allow_missing)
    print(f"{len(table)} rows from {table['cell'].nunique()} cells: {root / sweep.COLLECTED_FILE}")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `sweep launch`, `sweep status` and `sweep collect`."""
    parser = subcommand(subparsers, "sweep", "run a design's cells (local processes, this "
                        "process, or Ray tasks on a cluster), resumably, and collect their "
                        "results", "%(prog)s launch --gin_file=experiments/scan_sweep_cpu.gin")
    sub = parser.add_subparsers(dest="sweep_command", required=True)
    launch = subcommand(sub, "launch", "train every unfinished cell of the design into "
                        "MODEL_DIR/<cell>", "%(prog)s --gin_file=experiments/scan_sweep_cpu.gin "
                        "--parallel 2", parents=[gin_flags()])
    add_backend_flags(launch)
    launch.set_defaults(run=run_launch)
    for name, run, text in (("status", run_status, "finished / partial / pending per cell"),
                            ("collect", run_collect, "check the finished cells and merge them "
                             "into ROOT/sweep_results.csv")):
        command = subcommand(sub, name, text, "%(prog)s runs/scan_sweep_cpu")
        command.add_argument("sweep_root", help="the sweep's MODEL_DIR")
        if name == "collect":
            command.add_argument("--allow_missing", action="store_true",
                                 help="collect the finished cells even if others are not")
        command.set_defaults(run=run)
