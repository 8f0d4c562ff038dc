"""Benchmark adapters, one module each; PAIR_CONSTRUCTS says what each one's `pairs` measures."""

from tasks.benchmarks import cfq, cogs, coverage, gscan, recogs, scan

PAIR_CONSTRUCTS = {
    m.BENCHMARK: m.PAIR_CONSTRUCT for m in (scan, cogs, recogs, gscan, cfq, coverage)
}
