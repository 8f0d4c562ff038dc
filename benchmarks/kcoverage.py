"""Time k-coverage (k = 1..20): |X| = 200 with 600k training triples, and vs pure Python at 50.

Usage: PYTHONPATH=. python benchmarks/kcoverage.py [--n 200] [--n-train 600000] [--small-n 50]
Datasets are synthetic two-hop sets in the upstream layout (uniform random f1, f2; 70% seen
pairs; training = a uniform sample of all-seen triples; type_0 = unseen triples whose two pairs
training uses). The large run is timed in a child process (wall time incl. JSON loading, peak
RSS); the speed-up compares `coverage_matrix` with the pure-Python `reference_coverage` pair loop
on the same |X| = 50 arrays (results asserted equal).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from analysis import coverage as cv


def synth(n: int, n_train: int, n_test: int, seed: int) -> tuple[np.ndarray, ...]:
    """(train_x, train_y, type0_x, type0_y) of a random two-hop task over n tokens."""
    rng = np.random.default_rng(seed)
    f1, f2 = rng.integers(0, n, (2, n, n))
    s1, s2 = rng.random((2, n, n)) < 0.7
    x0, x1 = np.nonzero(s1)
    p, x2 = np.nonzero(s2[f1[x0, x1]])
    cand = np.stack([x0[p], x1[p], x2], axis=1)
    if len(cand) <= n_train:
        raise ValueError(f"only {len(cand)} all-seen triples at n={n}")
    pick = np.zeros(len(cand), dtype=bool)
    pick[rng.choice(len(cand), n_train, replace=False)] = True
    train = cand[pick]
    used1 = np.zeros((n, n), dtype=bool)
    used2 = np.zeros((n, n), dtype=bool)
    used1[train[:, 0], train[:, 1]] = True
    used2[f1[train[:, 0], train[:, 1]], train[:, 2]] = True
    rest = cand[~pick]
    rest = rest[used1[rest[:, 0], rest[:, 1]] & used2[f1[rest[:, 0], rest[:, 1]], rest[:, 2]]]
    test = rest[rng.choice(len(rest), min(n_test, len(rest)), replace=False)]

    def label(x: np.ndarray) -> np.ndarray:
        return f2[f1[x[:, 0], x[:, 1]], x[:, 2]]

    return train, label(train), test, label(test)


def write_dataset(root: Path, n: int, arrays: tuple[np.ndarray, ...]) -> Path:
    """Write train.json, test.json (type_0 + a train_inferred slice) and vocab.json."""
    train_x, train_y, test_x, test_y = arrays

    def items(xs: np.ndarray, ys: np.ndarray, kind: str | None) -> list[dict]:
        out = []
        for (a, b, c), t in zip(xs.tolist(), ys.tolist(), strict=True):
            inp = f"<t_{a}><t_{b}><t_{c}>"
            out.append({"input_text": inp, "target_text": f"{inp}<t_{t}></a>"})
            if kind:
                out[-1]["type"] = kind
        return out

    root.mkdir(parents=True, exist_ok=True)
    (root / "train.json").write_text(json.dumps(items(train_x, train_y, None)))
    test = items(test_x, test_y, "type_0") + items(train_x[:2000], train_y[:2000], "train_inferred")
    (root / "test.json").write_text(json.dumps(test))
    (root / "vocab.json").write_text(json.dumps([f"<t_{i}>" for i in range(n)] + ["</a>"]))
    return root


def run_table(directory: str) -> None:
    """Child: time kcoverage_table on a dataset; print wall seconds, peak RSS MiB, sweep."""
    start = time.perf_counter()
    table = cv.kcoverage_table(directory, k_max=20)
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    sweep = {k: round(v[1], 1) for k, v in table.attrs["k_sweep"].items()}
    print(json.dumps({"wall_s": wall, "peak_rss_mib": peak, "percent_by_k": sweep}))


def main() -> None:
    """Large-scale timing in a child process, then the side-by-side speed-up at small |X|."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--n-train", type=int, default=600000)
    parser.add_argument("--small-n", type=int, default=50)
    parser.add_argument("--small-train", type=int, default=10000)
    parser.add_argument("--run", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        run_table(args.run)
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = write_dataset(Path(tmp) / f"twohop.{args.n}.{args.n_train}.diff-f12.inf", args.n,
                             synth(args.n, args.n_train, 2000, 0))  # fmt: skip
        proc = subprocess.run([sys.executable, __file__, "--run", str(root)], check=True,
                              capture_output=True, text=True)  # fmt: skip
    big = json.loads(proc.stdout)
    print(
        f"|X|={args.n}, {args.n_train} train, 2000 type_0, k=1..20: "
        f"{big['wall_s']:.1f} s (incl. JSON load), peak RSS {big['peak_rss_mib']:.0f} MiB"
    )
    print(f"  percent covered by k: {big['percent_by_k']}")
    train_x, train_y, test_x, test_y = synth(args.small_n, args.small_train, 2000, 1)
    start = time.perf_counter()
    vec = cv.coverage_matrix(train_x, train_y, test_x, test_y, args.small_n, 20)
    t_vec = time.perf_counter() - start
    start = time.perf_counter()
    ref = cv.reference_coverage(
        list(map(tuple, train_x.tolist())),
        train_y.tolist(),
        list(map(tuple, test_x.tolist())),
        test_y.tolist(),
        20,
    )
    t_ref = time.perf_counter() - start  # fmt: skip
    assert (vec == np.array(ref)).all(), "vectorised and pure-Python coverage differ"
    print(
        f"|X|={args.small_n}, {args.small_train} train, k=1..20: vectorised {t_vec:.2f} s, "
        f"pure-Python pair loop {t_ref:.1f} s, speed-up {t_ref / t_vec:.0f}x (results equal)"
    )


if __name__ == "__main__":
    main()
