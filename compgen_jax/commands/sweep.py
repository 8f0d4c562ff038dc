"""`compgen-jax sweep launch|status|collect`: a gin design's cells, in this process, as local
processes, or on Cloud TPU."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from analysis.__main__ import subcommand
from compgen_jax.commands.train import gin_flags


def run_launch(args: argparse.Namespace) -> None:
    """Expand the design; run the unfinished cells locally, or render the Cloud TPU commands."""
    from compgen_jax import runner, sweep
    from tasks.atomic import write_text

    spec = sweep.expand(args.gin_file, args.gin_bindings, args.gin_search_paths)
    sweep.check_root(spec)
    if args.backend == "tpu-vm":
        script = runner.render_tpu(spec, tpu_config(args))
        if args.dry_run:
            print(script, end="")
            return
        path = Path(spec.root) / "tpu_launch.sh"
        write_text(path, script)
        print(f"Cloud TPU commands for {len(spec.cells)} cells: {path} (run it with bash)")
        return
    finished = len(spec.cells) - sum(not sweep.is_finished(spec, c) for c in spec.cells)
    print(f"sweep {spec.root}: {len(spec.cells)} cells, {finished} finished")
    if args.dry_run:
        from compgen_jax.designs import format_table

        print(f"validated (lengths, steps, pool, memory):\n{format_table(list(spec.checks))}")
    ran = runner.launch_local(spec, parallel=args.parallel, dry_run=args.dry_run,
                             in_process=args.backend == "in-process")
    if not args.dry_run:
        print(f"ran {len(ran)} cells; collect with: compgen-jax sweep collect {spec.root}")


def tpu_config(args: argparse.Namespace) -> Any:
    """The runner.TpuConfig of the --tpu_* flags (add_backend_flags); ValueError if incomplete."""
    from compgen_jax import runner

    if not (args.tpu_project and args.tpu_zone and args.gcs_root):
        raise ValueError("--backend=tpu-vm needs --tpu_project, --tpu_zone and --gcs_root")
    return runner.TpuConfig(
        project=args.tpu_project, zone=args.tpu_zone, accelerator_type=args.tpu_type,
        runtime_version=args.tpu_runtime, gcs_root=args.gcs_root, spot=args.spot,
        source=args.source, ref=args.ref)


def add_backend_flags(parser: argparse.ArgumentParser) -> None:
    """--backend, --parallel, --dry_run and the Cloud TPU flags (sweep launch, reproduce)."""
    parser.add_argument("--backend", choices=("local", "in-process", "tpu-vm"), default="local",
                        help="local: one `compgen-jax train` process per cell; in-process: "
                        "cells one after another in this process (sharing the loaded task and "
                        "compiled step); tpu-vm: render a Cloud TPU script")
    parser.add_argument("--parallel", type=int, default=1, help="local: cells run at a time")
    parser.add_argument("--dry_run", action="store_true", help="print the commands, run nothing")
    for flag, default, text in (
            ("--tpu_project", "", "Google Cloud project"),
            ("--tpu_zone", "", "zone, e.g. us-central2-b"),
            ("--tpu_type", "v5litepod-8", "accelerator type, a slice"),
            ("--tpu_runtime", "v2-alpha-tpuv5-lite", "TPU VM software version"),
            ("--gcs_root", "", "gs:// folder that receives the cells"),
            ("--source", "https://github.com/OWNER/compgen-jax.git",
             "git repository the VMs install compgen-jax from"),
            ("--ref", "main", "git branch or tag to install")):
        parser.add_argument(flag, default=default,
                            help=f"tpu-vm: {text}" + (f" (default {default})" if default else ""))
    parser.add_argument("--spot", action="store_true",
                        help="tpu-vm: queued resources on spot capacity")


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
    parser = subcommand(subparsers, "sweep", "run a design's cells (here, as local processes "
                        "or on Cloud TPU), resumably, and collect their results",
                        "%(prog)s launch --gin_file=experiments/scan_sweep_cpu.gin")
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
