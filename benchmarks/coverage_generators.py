"""Coverage-principle generators side by side with upstream's scripts: time, and the same bytes.

Usage: PYTHONPATH=. python benchmarks/coverage_generators.py --upstream DIR
           [--n 50] [--max-train 10000] [--tasks threehop parallel2hop] [--repeats 3]
DIR is a checkout of kaistAI/coverage-principle (49d368b: `git clone
https://github.com/kaistAI/coverage-principle && git -C coverage-principle checkout 49d368b`).
Each repeat runs upstream's `dataset_generation/<task>.py`, then `tasks.benchmarks.coverage.
generate(..., parity=True)`, then the same in the default mode, each in a fresh child process
with the same interpreter (so all pay interpreter start and imports). Wall time and child CPU
time (user + sys, upstream's worker pool included) are taken per run; each line gives the
medians and the ratios upstream / ours (> 1: ours faster). Every parity run's JSON files are
compared byte for byte with upstream's (sha256), so a speed-up never comes from different
output; the default mode writes other bytes by design (its sampling rules, Q10-Q37).
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tasks.benchmarks import coverage

SCRIPTS = {"twohop": "twohop.py", "threehop": "threehop.py",
           "parallel2hop": "parallel-twohop.py", "nontree": "nontree.py",
           "fivehop": "fivehop.py"}  # fmt: skip
REPO = Path(__file__).resolve().parents[1]


def digests(directory: Path) -> dict[str, str]:
    """sha256 of each JSON file of a dataset directory."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.glob("*.json"))}  # fmt: skip


def timed(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """(wall s, CPU s of the child and its descendants) of one command; RuntimeError (its last
    stderr line) if it fails."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)  # fmt: skip
    wall = time.perf_counter() - start
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"{Path(cmd[1]).name if cmd[1] != '-c' else 'ours'} failed: {last}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def compare(task: str, upstream: Path, n: int, max_train: int, repeats: int) -> dict:
    """Medians of upstream's and our wall / CPU seconds for one task; asserts equal bytes."""
    name = coverage.dataset_name(task, n, max_train, False, coverage.STRUCTURES[task].modes[0])
    flags = ["--num_tokens", str(n), "--max_train_data_num", str(max_train)]
    times: dict[str, list[tuple[float, float]]] = {"upstream": [], "parity": [], "default": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copytree(upstream / "dataset_generation", root / "dataset_generation")
        ours_code = ("import sys; from tasks.benchmarks import coverage; coverage.generate("
                     f"{task!r}, sys.argv[1], {n}, {max_train}, parity=sys.argv[2] == 'parity')")
        for _ in range(repeats):
            for who in times:
                out = root / who
                shutil.rmtree(out, ignore_errors=True)
                if who == "upstream":  # fivehop writes to ./data, the others to <repo>/data
                    shutil.rmtree(root / "data", ignore_errors=True)
                    cmd = [sys.executable, str(root / "dataset_generation" / SCRIPTS[task]),
                           *flags]  # fmt: skip
                    times[who].append(timed(cmd, root))
                    (root / "data").rename(out)
                else:
                    cmd = [sys.executable, "-c", ours_code, str(out), who]
                    times[who].append(timed(cmd, REPO))
            theirs, ours = digests(root / "upstream" / name), digests(root / "parity" / name)
            assert theirs and theirs == ours, f"{task}: files differ from upstream's: {name}"
    med = {who: [statistics.median(t[i] for t in runs) for i in (0, 1)]
           for who, runs in times.items()}  # fmt: skip
    return {"task": task, "name": name, "files": len(theirs), **{
        f"{who}_{kind}": med[who][i] for who in med for i, kind in enumerate(("wall", "cpu"))}}


def main() -> None:
    """Run the comparison for each task and print one line each, with the ratios."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upstream", type=Path, required=True,
                        help="checkout of kaistAI/coverage-principle (has dataset_generation/)")
    parser.add_argument("--n", type=int, default=50, help="|X| (--num_tokens)")
    parser.add_argument("--max-train", type=int, default=10000)
    parser.add_argument("--tasks", nargs="+", default=["threehop", "parallel2hop"],
                        choices=sorted(SCRIPTS))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not (args.upstream / "dataset_generation").is_dir():
        sys.exit(f"--upstream {args.upstream}: no dataset_generation/ (a coverage-principle "
                 "checkout is needed)")
    print(f"|X| = {args.n}, max_train {args.max_train}, median of {args.repeats} alternating "
          "runs, child processes; CPU = user + sys")
    for task in args.tasks:
        try:
            r = compare(task, args.upstream, args.n, args.max_train, args.repeats)
        except RuntimeError as err:
            print(f"{task}: {err}", flush=True)
            continue
        line = (f"{r['name']}: upstream {r['upstream_wall']:.1f} s wall / "
                f"{r['upstream_cpu']:.1f} s CPU")
        for mode in ("parity", "default"):
            line += (f"; ours {mode} {r[f'{mode}_wall']:.1f} s / {r[f'{mode}_cpu']:.1f} s "
                     f"({r['upstream_wall'] / r[f'{mode}_wall']:.1f}x wall, "
                     f"{r['upstream_cpu'] / r[f'{mode}_cpu']:.1f}x CPU)")
        print(f"{line}; parity: {r['files']} files byte-identical", flush=True)


if __name__ == "__main__":
    main()
