"""Synthetic sweeps with planted effects, for recovery tests, benchmarks and demos.

`synthetic_sweep` draws random manifests and final EM = base + slope x log(N / N_min) +
exposure_slope x log(E / E_min) + noise (clipped to [0, 1]) per seed, with learning curves over
eval steps; `write_sweep` lays them out like the trainer: <root>/<cell>/results.csv and
<root>/<cell>/manifests/seed_<k>.json (content-hashed), plus measures.csv at the root.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.atomic import atomic_path
from analysis.manifest_format import content_hash, manifest_text


@dataclasses.dataclass(frozen=True)
class Dataset:
    """One synthetic benchmark: planted effects, noise, pool size and pair granularity."""

    name: str
    slope: float
    base: float = 0.0
    exposure_slope: float = 0.0
    noise: float = 0.02
    pool_size: int = 5000
    pairs_per_atom: float = 1.0


@dataclasses.dataclass(frozen=True)
class Sweep:
    """Result rows (every eval step), manifests (cell, seed, ids, json), per-example measures."""

    results: pd.DataFrame
    manifests: pd.DataFrame
    measures: pd.DataFrame

    def final(self) -> pd.DataFrame:
        """Final-step rows joined with each seed's manifest ids (the audit's input)."""
        last = self.results[self.results["step"] == self.results["step"].max()]
        return last.merge(self.manifests[["cell", "seed", "ids"]], on=["cell", "seed"])


def synthetic_sweep(
    datasets: Sequence[Dataset],
    ns: Sequence[int],
    es: Sequence[float] = (100.0,),
    n_seeds: int = 5,
    steps: Sequence[int] = (100, 200, 300),
    seed: int = 0,
) -> Sweep:
    """A full factorial datasets x N x E with `n_seeds` seeds per cell and planted effects."""
    rng = np.random.default_rng(seed)
    results, manifests, measures = [], [], []
    steps = np.asarray(sorted(steps))
    for d in datasets:
        atoms = rng.poisson(4, d.pool_size) + 1
        measures.append(
            pd.DataFrame(
                {
                    "benchmark": d.name,
                    "example_id": np.arange(d.pool_size),
                    "n_atoms": atoms,
                    "n_pairs": rng.poisson(d.pairs_per_atom * atoms),
                    "depth": rng.integers(1, 6, d.pool_size),
                    "out_len": rng.poisson(3 * atoms) + 1,
                }
            )
        )
        for n, e in ((n, e) for n in ns for e in es):
            cell = f"{d.name}_n{n}_e{e:g}"
            mean = d.base + d.slope * np.log(n / min(ns)) + d.exposure_slope * np.log(e / min(es))
            final = np.clip(mean + rng.normal(0, d.noise, n_seeds), 0, 1)
            for s in range(n_seeds):
                ids = np.sort(rng.choice(d.pool_size, n, replace=False))
                body = _manifest(d, ids, s)
                manifests.append((cell, s, ids, body))
                # Learning curve: the seed reaches its final value at a random eval step.
                reach = steps[rng.integers(0, steps.size)]
                em = final[s] * np.minimum(1.0, steps / reach)
                for step, value in zip(steps, em, strict=True):
                    results.append(
                        (cell, d.name, f"{d.name}_task", "test", "random", n, e, body["hash"],
                         s, int(step), float(value), 1000, 0.1, False)
                    )  # fmt: skip
    cols = [
        "cell", "benchmark", "task", "split", "strategy", "n_unique", "exposure",
        "manifest_hash", "seed", "step", "exact_match", "n_examples", "train_loss", "diverged",
    ]  # fmt: skip
    return Sweep(
        results=pd.DataFrame(results, columns=cols),
        manifests=pd.DataFrame(manifests, columns=["cell", "seed", "ids", "json"]),
        measures=pd.concat(measures, ignore_index=True),
    )


def _manifest(d: Dataset, ids: np.ndarray, seed: int) -> dict:
    """A manifest JSON object in the tasks layer's schema, hash included."""
    body = {
        "pool": d.name,
        "pool_size": d.pool_size,
        "ids": ids.tolist(),
        "counts": [1] * ids.size,
        "strategy": "random",
        "seed": seed,
        "targets": {},
        "stats": {
            "n_unique": int(ids.size),
            "total": int(ids.size),
            "multiplicity": {"1": int(ids.size)},
        },
    }
    body["hash"] = content_hash(body)
    return body


def write_sweep(sweep: Sweep, root: str | os.PathLike) -> Path:
    """Write results.csv and manifests per cell, and measures.csv, under `root`; return root."""
    root = Path(root)
    for cell, rows in sweep.results.groupby("cell"):
        with atomic_path(root / str(cell) / "results.csv") as tmp:
            rows.to_csv(tmp, index=False)
    for row in sweep.manifests.itertuples(index=False):
        with atomic_path(root / row.cell / "manifests" / f"seed_{row.seed}.json") as tmp:
            tmp.write_text(manifest_text(row.json), encoding="utf-8")
    with atomic_path(root / "measures.csv") as tmp:
        sweep.measures.to_csv(tmp, index=False)
    return root


E5_NS = (100, 250, 500, 1000, 2000, 4000)
E5_ES = (100, 400, 1600, 6400)


def e5_like_results(
    n_seeds: int = 5,
    seed: int = 0,
    benchmark: str = "cogs",
    ns: Sequence[int] = E5_NS,
    es: Sequence[float] = E5_ES,
    coef: tuple[float, float, float] = (-30.0, 3.7, 1.1),
    diverged: int = 0,
) -> pd.DataFrame:
    """An E5-like N x E results table (every eval step): bimodal seeds, floor vs escaped.

    A seed escapes with P = logistic(b0 + b_N log N + b_E log E) (SCIENCE.md E5: +3.73, +1.06);
    an escaped seed's final EM is 0.1 + 0.05 log(N / 100) + N(0, 0.04), a floor seed's is
    |N(0, 0.004)|; escaped seeds converge later in their runs. `diverged` seeds (the first ones
    of the smallest cell) are flagged diverged with a NaN-free EM, as the trainer writes them.
    Columns: the results schema plus seed_steps.
    """
    rng = np.random.default_rng(seed)
    b0, bn, be = coef
    rows = []
    for n in ns:
        for e in es:
            cell = f"{benchmark}_n{n}_e{e:g}"
            last = int(max(100, n * e / 400))
            steps = np.linspace(last / 10, last, 10).astype(int)
            p = 1 / (1 + np.exp(-(b0 + bn * np.log(n) + be * np.log(e))))
            for s in range(n_seeds):
                escaped = rng.random() < p
                final = (float(np.clip(0.1 + 0.05 * np.log(n / 100) + rng.normal(0, 0.04), 0, 1))
                         if escaped else abs(rng.normal(0, 0.004)))  # fmt: skip
                reach = steps[rng.integers(5, 10) if escaped else rng.integers(0, 5)]
                bad = n == min(ns) and e == min(es) and s < diverged
                for step in steps:
                    rows.append((cell, benchmark, f"{benchmark}_gen", "test", "random", n, e,
                                 "0" * 64, s, int(step), final * min(1.0, step / reach), 1000,
                                 0.1, bad, int(step)))  # fmt: skip
    cols = ["cell", "benchmark", "task", "split", "strategy", "n_unique", "exposure",
            "manifest_hash", "seed", "step", "exact_match", "n_examples", "train_loss",
            "diverged", "seed_steps"]  # fmt: skip
    return pd.DataFrame(rows, columns=cols)
