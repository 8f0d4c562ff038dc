"""E4 on one accelerator: the diversity dose-response of experiments/cogs_e4.gin, one prepared run.

The run is a one-part programme (gin_configs/programme/gpu_run.gin: the scale, the recipe and the
reasoning behind them): `compgen_jax.programme` expands and validates its cells and trains them
with the one runner in this process (cells share the loaded task and the compiled step), then
`analysis.programme` writes the programme's report (Spearman, logistic fit, plot, verdict beside
SCIENCE.md). A wall-clock guard stops training at `--budget_s` (SIGALRM, acting as soon as the
running compiled call returns): finished cells are kept and reported, the interrupted one is
dropped, and the report says the run is partial. Writes at most 6 files to --out: report.md,
results.csv (every seed, split, category and group), e4_dose.png, the gin file(s) and log.txt.

Run:  python benchmarks/device/e4.py --out DIR [--smoke] [--arrays cogs.npz] [--set 'NAME = V']
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import platform
import re
import shlex
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script from a checkout that is not installed
    sys.path.insert(0, str(REPO))
GIN = REPO / "gin_configs" / "programme"
FULL, SMOKE = GIN / "gpu_run.gin", GIN / "gpu_run_smoke.gin"
SPLITS = ("dev", "gen:easy", "gen:hard")  # the E4 table's columns (mean +/- sd per N)
WRITES = ("report.md", "results.csv", "e4_dose.png", "log.txt")  # besides the gin file(s)
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # cursor moves of nested progress bars
USAGE_ERROR = 2
NOTHING_FINISHED = 3


class BudgetReached(Exception):
    """The wall-clock guard fired: training stops, finished cells are reported."""


class Log(io.TextIOBase):
    """A stream that writes to the console and to a log file (held in memory until the file is
    opened, so a run refused at validation leaves no file); progress-bar redraws ('\\r') keep
    only a line's last state in the file."""

    def __init__(self, console: TextIO) -> None:
        self.console, self.file, self.held, self.line = console, None, io.StringIO(), ""

    def open(self, path: Path) -> None:
        self.file = path.open("w", encoding="utf-8")
        self.file.write(self.held.getvalue())
        self.file.flush()

    def write(self, text: str) -> int:
        self.console.write(text)
        self.line += text
        *done, self.line = self.line.split("\n")
        for line in done:
            (self.file or self.held).write(ANSI.sub("", line.rsplit("\r", 1)[-1]) + "\n")
        if self.file is not None:
            self.file.flush()
        return len(text)

    def flush(self) -> None:
        self.console.flush()

    def isatty(self) -> bool:
        return False


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for the <= 6 result files")
    parser.add_argument("--smoke", action="store_true",
                        help="toy scale on any CPU (programme/gpu_run_smoke.gin)")
    parser.add_argument("--arrays", default="",
                        help="exported COGS task arrays (`compgen-jax data export cogs`): no "
                        "seqio / TensorFlow needed")
    parser.add_argument("--work", default="",
                        help="sweep root for the cells (default: the gin file's PROGRAMME_DIR)")
    parser.add_argument("--budget_s", type=float, default=450.0,
                        help="wall-clock seconds from start after which training stops "
                        "(finished cells are reported)")
    parser.add_argument("--set", action="append", default=[], metavar="'NAME = VALUE'",
                        help="extra gin binding for every cell, after the gin file's "
                        "(e.g. 'TRAIN_STEPS = 2000' for a rerun); repeatable")
    argv = sys.argv[1:] if argv is None else list(argv)
    return parser.parse_args(argv, argparse.Namespace(argv=argv))


def device_line() -> str:
    """The JAX backend and device(s) this run trains on, with versions."""
    import jax

    devices = jax.devices()
    kinds = sorted({d.device_kind for d in devices})
    return (f"{len(devices)} x {', '.join(kinds)} ({jax.default_backend()}); jax "
            f"{jax.__version__}; Python {platform.python_version()}")


def run(args: argparse.Namespace, log: Log, start: float) -> int:
    """Validate, train under the guard, write the programme report and the result files."""
    from analysis.programme import write_programme_report
    from analysis.report import ReportOptions
    from compgen_jax import programme, sweep

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a directory")
    taken = sorted(name for name in (*WRITES, FULL.name, SMOKE.name) if (out / name).exists())
    if taken:
        raise ValueError(f"--out {out} already holds {', '.join(taken)}: give a fresh folder")
    if args.budget_s <= 0:
        raise ValueError(f"--budget_s={args.budget_s} must be > 0")
    gin_file = SMOKE if args.smoke else FULL
    bindings = [f"PROGRAMME_DIR = {args.work!r}"] if args.work else []
    prog = programme.load([str(gin_file)], bindings)
    extra = ([f"TASK_ARRAYS = {str(Path(args.arrays).resolve())!r}"] if args.arrays else [])
    prog = dataclasses.replace(prog, bindings=(*prog.bindings, *extra, *args.set))
    if [p.analysis for p in prog.parts] != ["dose_response"]:
        raise ValueError(f"{gin_file}: expected one dose_response part, got "
                         f"{[(p.name, p.analysis) for p in prog.parts]}")
    print(f"device: {device_line()}")
    print(f"programme {gin_file.relative_to(REPO)} -> {prog.root}; bindings: "
          f"{'; '.join(prog.bindings)}")
    specs = programme.expand(prog)
    (part, spec), = specs
    print(f"{len(spec.cells)} cells validated and their manifests built in "
          f"{time.monotonic() - start:.1f} s")
    out.mkdir(parents=True, exist_ok=True)
    log.open(out / "log.txt")

    def _guard(signum: int, frame: Any) -> None:
        raise BudgetReached

    left = args.budget_s - (time.monotonic() - start)
    previous = signal.signal(signal.SIGALRM, _guard)
    signal.setitimer(signal.ITIMER_REAL, max(left, 0.001))
    partial = ""
    try:
        programme.run_local(specs, in_process=True)
    except BudgetReached:
        partial = (f"wall-clock guard: training stopped at {time.monotonic() - start:.0f} s "
                   f"(--budget_s {args.budget_s:g})")
        print(f"\n{partial}; reporting the finished cells", file=sys.stderr)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    done = tuple(c for c in spec.cells if sweep.is_finished(spec, c))
    if not done:
        print(f"e4: no cell finished within --budget_s {args.budget_s:g}: nothing to report "
              f"({out / 'log.txt'} has the progress)", file=sys.stderr)
        return NOTHING_FINISHED
    sweep.collect(Path(spec.root), allow_missing=True)
    finished = dataclasses.replace(spec, cells=done)
    records = programme.part_records([(part, finished)])
    command = shlex.join(["python", "benchmarks/device/e4.py", *args.argv])
    report = write_programme_report(records, prog.decomposition, Path(prog.root) / "report",
                                    command, ReportOptions(), prog.bindings)
    shutil.copy2(Path(spec.root) / sweep.COLLECTED_FILE, out / "results.csv")
    shutil.copy2(report.parent / f"{part.name}_dose.png", out / "e4_dose.png")
    for path in dict.fromkeys([gin_file, FULL]):
        shutil.copy2(path, out / path.name)
    text = summary(spec, done, part, report, gin_file, partial, time.monotonic() - start)
    (out / "report.md").write_text(text, encoding="utf-8")
    print(f"report: {out / 'report.md'} ({len(done)}/{len(spec.cells)} cells, "
          f"{time.monotonic() - start:.0f} s)")
    return 0


def summary(spec: Any, done: Sequence[Any], part: Any, report: Path, gin_file: Path,
            partial: str, elapsed: float) -> str:
    """report.md: device, scale and recipe, wall time per cell, the E4 table with per-category
    rows, then the programme's report (findings beside the paper, verdict)."""
    import json

    import pandas as pd

    from analysis.dose_response import diversity_summary
    from analysis.programme import markdown_table  # the programme report's table format
    from analysis.results import read_results
    from compgen_jax import sweep

    raw = read_results(Path(spec.root) / sweep.COLLECTED_FILE)
    walls = []
    for cell in done:
        marker = json.loads((spec.cell_dir(cell) / sweep.CELL_FILE).read_text())
        rows = raw[(raw["cell"] == cell.name) & (raw["split"] == part.split)]
        walls.append({"cell": cell.name, "N": int(rows["n_unique"].iloc[0]),
                      "steps": int(rows["step"].max()), "wall s": marker["wall_s"],
                      "diverged seeds": int(rows.loc[rows["step"] == rows["step"].max(),
                                                     "diverged"].sum())})
    lines = ["# E4 dose-response on one accelerator", "",
             f"Device: {device_line()}.", "",
             f"Status: {'PARTIAL - ' + partial if partial else 'complete'}: {len(done)} of "
             f"{len(spec.cells)} cells finished; {elapsed:.0f} s from start to this report "
             "(interpreter start-up and data load included).", "",
             "## Wall time per cell", "",
             "Training and evaluation of one cell (its seeds in one vmapped step); the first "
             "cell also pays the compilation of the step and of the decoders.", "",
             markdown_table(pd.DataFrame(walls)), "",
             f"Sum of cell walls: {sum(w['wall s'] for w in walls):.1f} s.", "",
             "## E4 table: exact match %, mean +/- sd over seeds at the final step", ""]
    table = {}
    for split in [s for s in SPLITS if s in set(raw["split"])]:
        s = diversity_summary(raw, split).set_index("N")
        table[split] = [f"{100 * m:.2f} +/- {100 * d:.2f}" for m, d in zip(s["mean"], s["sd"],
                                                                           strict=True)]
        table["N"] = list(s.index)
    lines += [markdown_table(pd.DataFrame(table).set_index("N").reset_index()), ""]
    categories = sorted(s for s in set(raw["split"]) if s.startswith("gen:")
                        and s not in ("gen:easy", "gen:hard"))
    if categories:
        per = {c.removeprefix("gen:"): 100 * diversity_summary(raw, c).set_index("N")["mean"]
               for c in categories}
        sizes = raw[raw["step"] == raw.groupby("cell")["step"].transform("max")]
        size = sizes.groupby("split")["n_examples"].first()
        frame = pd.DataFrame(per).T
        frame.insert(0, "examples", [int(size[c]) for c in categories])
        lines += ["## gen per category: mean exact match % per N", "",
                  markdown_table(frame.rename_axis("category").reset_index()), ""]
    lines += ["## Scale and recipe", "", f"`{gin_file.relative_to(REPO)}`"
              + ("" if gin_file == FULL else f" (including `{FULL.relative_to(REPO)}`)")
              + "; every cell's gin bindings after the design file's:", "",
              *(f"- `{b}`" for b in spec.gin_bindings), "", "```"]
    for path in dict.fromkeys([gin_file, FULL]):
        lines += [f"# ---- {path.relative_to(REPO)}", path.read_text().rstrip()]
    lines += ["```", "", "## The programme's report", "",
              f"(`analysis.programme.write_programme_report`; written with its part report under "
              f"`{report.parent}`, not shipped here.)", ""]
    lines += [("#" + line) if line.startswith("#") else line
              for line in report.read_text().splitlines()]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Run; bad input is one line on stderr and exit 2, with nothing written to --out."""
    start = time.monotonic()
    args = parse_args(argv)
    log = Log(sys.stdout)
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = log
    try:
        return run(args, log, start)
    except (ValueError, OSError) as err:
        print(f"e4: error: {' '.join(str(err).split())}", file=stderr)
        return USAGE_ERROR
    finally:
        sys.stdout, sys.stderr = stdout, stderr
        if log.file is not None:
            log.file.close()


if __name__ == "__main__":
    sys.exit(main())
