"""Time the full audit: 44 bucket schemes x 4 datasets x 50 seeds per cell, 10,000 permutations.

Usage: PYTHONPATH=. python benchmarks/analysis_audit.py [--seeds 50] [--n-perm 10000]
Prints the wall time of each stage and the total (the synthetic sweep's construction excluded).
"""

from __future__ import annotations

import argparse
import time

from analysis import audit
from analysis.planted_sweeps import Dataset, synthetic_sweep

DATASETS = (
    Dataset("scan", slope=0.05, base=0.02, pool_size=16000),
    Dataset("recogs", slope=0.06, base=0.01, pool_size=24000, pairs_per_atom=1.5),
    Dataset("gscan", slope=0.04, base=0.05, pool_size=20000, pairs_per_atom=2.0),
    Dataset("cfq", slope=0.0, base=0.106, pool_size=40000, pairs_per_atom=8.0),
)
NS = (100, 250, 500, 1000, 2000, 4000)
CONSTRUCTS = {
    "scan": "parse-tree composition",
    "recogs": "thematic bindings",
    "gscan": "grounded Cartesian product",
    "cfq": "surface co-occurrence of output tokens",
}


def main() -> None:
    """Build the synthetic sweep, then time measure table, robustness sweep and null calibration."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--n-perm", type=int, default=10000)
    parser.add_argument("--n-boot", type=int, default=2000)
    args = parser.parse_args()
    sweep = synthetic_sweep(DATASETS, NS, n_seeds=args.seeds, steps=(1,))
    frame = sweep.final()
    n_ids = int(frame["ids"].map(len).sum())
    print(f"{len(frame)} seeds ({len(DATASETS)} datasets x {len(NS)} N x {args.seeds} seeds), "
          f"{n_ids} manifest entries, {len(sweep.measures)} pool examples")  # fmt: skip
    start = time.perf_counter()
    audit.measure_table(sweep.measures, CONSTRUCTS)
    t_measures = time.perf_counter()
    res = audit.robustness_sweep(
        frame, sweep.measures, n_boot=args.n_boot, n_perm=args.n_perm, seed=0
    )
    t_sweep = time.perf_counter()
    audit.headroom_null(frame)
    end = time.perf_counter()
    print(f"measure table        {t_measures - start:7.2f} s")
    pairs = len(res["permutation_p"].columns)
    print(f"robustness sweep     {t_sweep - t_measures:7.2f} s  ({len(res['schemes'])} schemes, "
          f"{args.n_boot} bootstrap, {args.n_perm} permutations x {pairs} pairs)")  # fmt: skip
    print(f"null calibration     {end - t_sweep:7.2f} s")
    print(f"full audit           {end - start:7.2f} s")


if __name__ == "__main__":
    main()
