"""Manifest selection speed on the real COGS pool: quantile pre-screening and greedy coverage.

Usage: COMPGEN_DATA_DIR=../shared/data python benchmarks/manifest_selection.py [--candidates K]
Prints wall-clock seconds for: indexing the pool, pre-screening K random candidates of N = 2000
(draw + coverage of gen, gen:easy, gen:hard + typicality), and greedy max coverage at N = 4000.
"""

from __future__ import annotations

import argparse
import time

from tasks.benchmarks import cogs
from tasks.data_dir import data_dir
from tasks.selection import (
    ManifestSpec,
    build_index,
    eval_sets,
    greedy_coverage_ids,
    prescreen_seeds,
)


def main() -> None:
    """Time each stage once on this machine and print the numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=10_000)
    parser.add_argument("--n_unique", type=int, default=2000)
    parser.add_argument("--greedy_n", type=int, default=4000)
    args = parser.parse_args()
    root = data_dir()
    if root is None:
        raise SystemExit("set COMPGEN_DATA_DIR to the benchmark data directory")
    pool, gen = cogs.load("train", root), cogs.load("gen", root)
    start = time.perf_counter()
    index = build_index("cogs:train", pool, eval_sets({"gen": gen}, ["gen"]))
    print(f"index {index.size} examples x {index.incidence.shape[1]} pairs: "
          f"{time.perf_counter() - start:.2f} s")
    spec = ManifestSpec(strategy="prescreen", n_unique=args.n_unique, n_candidates=args.candidates,
                        quantile=0.99, coverage_split="gen:easy")
    start = time.perf_counter()
    seeds = prescreen_seeds(index, spec, 5)
    print(f"pre-screen {args.candidates} candidates x N={args.n_unique} (3 eval sets): "
          f"{time.perf_counter() - start:.2f} s -> seeds {seeds}")
    start = time.perf_counter()
    greedy_coverage_ids(index, args.greedy_n, "gen:easy", seed=0)
    print(f"greedy max coverage N={args.greedy_n}: {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
