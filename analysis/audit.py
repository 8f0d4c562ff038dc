"""The audit framework (SCIENCE.md section 4): measures, signatures, robustness, null calibration.

- `measure_table`: what each adapter's pairs measure, next to pair and signature counts.
- `bucket_schemes`: the 44 bucketizations of (atoms, pairs, depth, out_len): 4 quantile,
  3 linear, 3 logarithmic, 4 information-theoretic, 30 Latin-hypercube.
- `signature_codes` / `signature_counts`: each example's unified signature per scheme, and the
  number of distinct signatures in each manifest (a dataset-independent diversity measure).
- `robustness_sweep`: per-dataset slopes of the metric on log(signature count) under every
  scheme, bootstrap CIs, between-dataset permutation tests, and the share of schemes that
  preserve each qualitative claim of the reference (log N) analysis.
- `headroom_null`: baseline-arithmetic null calibration of closed headroom.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import qmc

from analysis.results import require_columns
from analysis.stats import SlopeDesign

DIMS = ("n_atoms", "n_pairs", "depth", "out_len")
MEASURE_COLUMNS = ("benchmark", "example_id", *DIMS)
QUANTILE_BINS = (3, 4, 5, 8)
LINEAR_BINS = (3, 5, 8)
LOG_BINS = (3, 5, 8)
INFO_BITS = (1.0, 1.5, 2.0, 2.5)
MAX_INFO_BINS = 32
N_LATIN = 30
LATIN_BINS = (2, 10)
DEFAULT_SCHEME = "quantile-4"
_PRESENCE_CELLS = 1 << 24  # booleans per chunk of the (manifest x signature) presence matrix


@dataclasses.dataclass(frozen=True)
class Scheme:
    """A bucketization: interior cut points per dimension (bucket = number of cuts <= value)."""

    name: str
    family: str
    edges: tuple[np.ndarray, ...]

    @property
    def n_codes(self) -> int:
        """Number of possible signatures (product of bucket counts)."""
        return int(np.prod([e.size + 1 for e in self.edges]))


# --------------------------------------------------------------------------- measures


def check_measures(measures: pd.DataFrame) -> pd.DataFrame:
    """Validate the per-example measure table: required columns, finite values, unique ids."""
    require_columns(measures, list(MEASURE_COLUMNS), "measure table")
    values = measures[list(DIMS)].apply(pd.to_numeric, errors="coerce")
    bad = ~np.isfinite(values.to_numpy(dtype=float)) | (values.to_numpy(dtype=float) < 0)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(
            f"measure table: {int(bad.sum())} missing or negative values, first "
            f"{DIMS[col]} of example {measures['example_id'].iloc[row]!r}"
        )
    out = measures[["benchmark", "example_id"]].assign(**values).copy()
    out["benchmark"] = out["benchmark"].astype(str)
    dup = out.duplicated(["benchmark", "example_id"])
    if dup.any():
        first = out[dup].iloc[0]
        raise ValueError(
            f"measure table: example {first['example_id']!r} of {first['benchmark']!r} occurs twice"
        )
    return out.reset_index(drop=True)


def measure_table(
    measures: pd.DataFrame, constructs: Mapping[str, str], scheme: Scheme | None = None
) -> pd.DataFrame:
    """Per benchmark: the pair construct, example and pair counts, means, distinct signatures.

    Every benchmark needs a construct string, so cross-dataset "diversity" never silently merges
    different constructs. pair_instances = total pairs over the pool; n_signatures = distinct
    unified signatures over the pool (`scheme`, default quantile-4 on the pooled measures).
    """
    measures = check_measures(measures)
    missing = sorted(set(measures["benchmark"]) - set(constructs))
    if missing:
        raise ValueError(f"measure table: no pair construct declared for {', '.join(missing)}")
    if scheme is None:
        scheme = next(s for s in bucket_schemes(measures) if s.name == DEFAULT_SCHEME)
    codes = signature_codes(measures, [scheme])[0]
    table = measures.groupby("benchmark").agg(
        n_examples=("example_id", "size"),
        pair_instances=("n_pairs", "sum"),
        pairs_mean=("n_pairs", "mean"),
        pairs_max=("n_pairs", "max"),
        atoms_mean=("n_atoms", "mean"),
        depth_mean=("depth", "mean"),
        out_len_mean=("out_len", "mean"),
    )
    table["n_signatures"] = pd.Series(codes).groupby(measures["benchmark"].to_numpy()).nunique()
    table.insert(0, "construct", [constructs[b] for b in table.index])
    return table.reset_index()


def cardinality_spread(table: pd.DataFrame) -> dict:
    """Max/min ratio across benchmarks of pair instances and of distinct signatures."""
    spread = {}
    for col in ("pair_instances", "n_signatures"):
        values = table[col].to_numpy(dtype=float)
        spread[col] = float(values.max() / values.min()) if values.min() > 0 else math.inf
    return spread


# --------------------------------------------------------------------------- schemes


def bucket_schemes(measures: pd.DataFrame, seed: int = 0) -> list[Scheme]:
    """The 44 schemes, cut points computed on the measures pooled over all benchmarks.

    quantile-k: cuts at the pooled k-quantiles (k = 3, 4, 5, 8; duplicate cuts merged).
    linear-k / log-k: k equal-width bins on the value / log(1 + value) range (k = 3, 5, 8).
    info-<b>bit: per dimension, the fewest equal-width bins (up to 32) whose histogram carries
    b bits of entropy (b = 1, 1.5, 2, 2.5; the most informative k when b is out of reach).
    lhs-i: 30 Latin-hypercube draws over 8 parameters: per dimension a bin count in 2..10 and a
    mix t in [0, 1]; cuts = t x quantile cuts + (1 - t) x linear cuts.
    """
    values = check_measures(measures)[list(DIMS)].to_numpy(dtype=float)
    schemes = []
    for k in QUANTILE_BINS:
        schemes.append(Scheme(f"quantile-{k}", "quantile", _per_dim(values, _quantile_cuts, k)))
    for k in LINEAR_BINS:
        schemes.append(Scheme(f"linear-{k}", "linear", _per_dim(values, _linear_cuts, k)))
    for k in LOG_BINS:
        cuts = _per_dim(np.log1p(values), _linear_cuts, k)
        schemes.append(Scheme(f"log-{k}", "log", tuple(np.expm1(c) for c in cuts)))
    for bits in INFO_BITS:
        cuts = tuple(_linear_cuts(v, _info_bins(v, bits)) for v in values.T)
        schemes.append(Scheme(f"info-{bits:g}bit", "information", cuts))
    draws = qmc.LatinHypercube(d=2 * len(DIMS), seed=seed).random(N_LATIN)
    lo, hi = LATIN_BINS
    for i, row in enumerate(draws):
        cuts = []
        for d, v in enumerate(values.T):
            k = lo + int(row[d] * (hi - lo + 1))
            t = row[len(DIMS) + d]
            q, lin = _quantile_cuts(v, k, unique=False), _linear_cuts(v, k)
            cuts.append(np.unique(t * q + (1 - t) * lin) if lin.size else lin)
        schemes.append(Scheme(f"lhs-{i:02d}", "latin-hypercube", tuple(cuts)))
    return schemes


def _per_dim(values: np.ndarray, cut: Any, k: int) -> tuple[np.ndarray, ...]:
    """Apply a cut-point rule with k bins to every column."""
    return tuple(cut(v, k) for v in values.T)


def _quantile_cuts(v: np.ndarray, k: int, unique: bool = True) -> np.ndarray:
    """Interior k-quantiles of v (the k - 1 cut points), optionally de-duplicated."""
    cuts = np.quantile(v, np.linspace(0, 1, k + 1)[1:-1])
    return np.unique(cuts) if unique else cuts


def _linear_cuts(v: np.ndarray, k: int) -> np.ndarray:
    """k - 1 equally spaced interior cut points over [min, max]; none for a constant column."""
    lo, hi = float(v.min()), float(v.max())
    return np.linspace(lo, hi, k + 1)[1:-1] if hi > lo else np.empty(0)


def _info_bins(v: np.ndarray, bits: float) -> int:
    """Fewest equal-width bins (up to MAX_INFO_BINS) whose histogram entropy reaches `bits`."""
    lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        return 1
    ks = np.arange(1, MAX_INFO_BINS + 1)
    scaled = (v - lo) / (hi - lo)
    # counts[k - 1, j]: examples in bin j of the k-bin histogram (bins beyond k stay empty).
    bins = np.minimum((scaled[None, :] * ks[:, None]).astype(np.int64), ks[:, None] - 1)
    flat = (np.arange(ks.size)[:, None] * MAX_INFO_BINS + bins).ravel()
    counts = np.bincount(flat, minlength=ks.size * MAX_INFO_BINS).reshape(ks.size, -1)
    p = counts / v.size
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(p > 0, p * np.log2(p), 0.0).sum(axis=1)
    reached = np.flatnonzero(entropy >= bits - 1e-12)
    return int(ks[reached[0]] if reached.size else ks[np.argmax(entropy)])


# --------------------------------------------------------------------------- signatures


def signature_codes(measures: pd.DataFrame, schemes: Sequence[Scheme]) -> np.ndarray:
    """[schemes, examples] integer signature of every measure row under every scheme.

    Buckets are computed on each dimension's distinct values against all schemes' cuts at once
    (cuts padded with +inf), then gathered back to the examples and mixed-radix encoded.
    """
    values = check_measures(measures)[list(DIMS)].to_numpy(dtype=float)
    codes = np.zeros((len(schemes), values.shape[0]), dtype=np.int64)
    radix = np.ones(len(schemes), dtype=np.int64)
    for d in range(len(DIMS)):
        uniq, inverse = np.unique(values[:, d], return_inverse=True)
        width = max(1, max(s.edges[d].size for s in schemes))
        cuts = np.full((len(schemes), width), np.inf)
        for i, s in enumerate(schemes):
            cuts[i, : s.edges[d].size] = s.edges[d]
        buckets = (uniq[None, :, None] >= cuts[:, None, :]).sum(axis=2)  # [S, U]
        codes += buckets[:, inverse] * radix[:, None]
        radix *= np.array([s.edges[d].size + 1 for s in schemes], dtype=np.int64)
    return codes


def manifest_rows(
    measures: pd.DataFrame, benchmarks: Sequence[str], ids: Sequence[Any]
) -> tuple[np.ndarray, np.ndarray]:
    """Flatten manifests to (manifest index, measure row) pairs; unknown example ids are errors."""
    measures = check_measures(measures)
    key = pd.MultiIndex.from_arrays(
        [measures["benchmark"], measures["example_id"].astype(np.int64)]
    )
    lengths = np.array([len(i) for i in ids])
    owner = np.repeat(np.arange(len(ids)), lengths)
    flat_ids = np.concatenate([np.asarray(i, dtype=np.int64) for i in ids]) if len(ids) else []
    flat_bench = np.repeat(np.asarray(benchmarks, dtype=object), lengths)
    rows = key.get_indexer(pd.MultiIndex.from_arrays([flat_bench, flat_ids]))
    if (rows < 0).any():
        i = int(np.flatnonzero(rows < 0)[0])
        raise ValueError(
            f"measure table: {int((rows < 0).sum())} manifest example ids have no measures, "
            f"first id {flat_ids[i]} of {flat_bench[i]!r}"
        )
    return owner, rows


def signature_counts(
    codes: np.ndarray, owner: np.ndarray, rows: np.ndarray, n_manifests: int
) -> np.ndarray:
    """[schemes, manifests] number of distinct signatures per manifest.

    Per scheme a boolean presence matrix (manifest x signature) is filled in one scatter and
    summed, in chunks of manifests so it stays within 2^24 cells.
    """
    out = np.zeros((codes.shape[0], n_manifests), dtype=np.int64)
    order = np.argsort(owner, kind="stable")
    owner, rows = owner[order], rows[order]
    bounds = np.searchsorted(owner, np.arange(n_manifests + 1))
    for s in range(codes.shape[0]):
        n_codes = int(codes[s].max()) + 1
        step = max(1, _PRESENCE_CELLS // n_codes)
        for start in range(0, n_manifests, step):
            stop = min(start + step, n_manifests)
            sl = slice(bounds[start], bounds[stop])
            presence = np.zeros((stop - start) * n_codes, dtype=bool)
            presence[(owner[sl] - start) * n_codes + codes[s, rows[sl]]] = True
            out[s, start:stop] = presence.reshape(stop - start, n_codes).sum(axis=1)
    return out


# --------------------------------------------------------------------------- robustness


def robustness_sweep(
    frame: pd.DataFrame,
    measures: pd.DataFrame,
    metric: str = "exact_match",
    schemes: Sequence[Scheme] | None = None,
    n_boot: int = 2000,
    n_perm: int = 10000,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """Slopes of `metric` on log(signature count) per scheme and dataset, and claim shares.

    `frame` has one row per (cell, seed) with benchmark, cell, n_unique, `metric` and `ids` (the
    manifest's example ids; `results.attach_manifests` adds them). The reference analysis is the
    slope on log N. A dataset is "positive" when its bootstrap CI lies above 0, "negative" below,
    else "flat". Claims taken from the reference: the sign pattern, the magnitude ranking of the
    positive datasets, and each pairwise order among them; each claim's share is the fraction of
    schemes under which it still holds. Between-dataset tests per scheme and pair: the paper's
    permutation (dataset labels of (log count, metric) pairs centred per dataset exchanged:
    `permutation_p`) and the valid default, the HC3 t test of the OLS interaction
    (`stats.SlopeDesign`: `interaction_p`), whose x differs between datasets too.

    Bootstrap: seeds resampled within cells, as [n_boot, n] count weights; permutations: one
    [n_perm, n] membership matrix per pair; both applied to all schemes by matrix products.
    """
    require_columns(frame, ["benchmark", "cell", "n_unique", metric, "ids"], "audit input")
    frame = frame.sort_values(["benchmark", "cell", "seed"], ignore_index=True)
    y = frame[metric].to_numpy(dtype=float)
    if not np.isfinite(y).all():
        raise ValueError(f"audit input: {metric} has NaN values; exclude those seeds first")
    measures = check_measures(measures)
    schemes = list(schemes) if schemes is not None else bucket_schemes(measures, seed)
    owner, rows = manifest_rows(measures, frame["benchmark"].tolist(), frame["ids"].tolist())
    codes = signature_codes(measures, schemes)
    counts = signature_counts(codes, owner, rows, len(frame))
    names = sorted(frame["benchmark"].unique())
    group = pd.Categorical(frame["benchmark"], categories=names).codes
    # Row 0: the reference x = log N; rows 1..S: log(signature count) per scheme.
    lx = np.log(np.vstack([frame["n_unique"].to_numpy(dtype=float), counts]))
    weights = _bootstrap_weights(
        (frame["benchmark"] + "/" + frame["cell"]).to_numpy(), n_boot, seed
    )
    slopes, lo, hi = _group_slopes(lx, y, group, len(names), weights, level)
    reference = _claims(slopes[0], lo[0], hi[0], names)
    holds = {claim: [] for claim in reference}
    for s in range(1, lx.shape[0]):
        current = _claims(slopes[s], lo[s], hi[s], names)
        for claim in reference:
            holds[claim].append(current.get(claim, False))
    shares = pd.DataFrame(
        {"claim": list(holds), "share": [float(np.mean(v)) for v in holds.values()]}
    )
    perm = _pairwise_permutations(lx, y, group, names, n_perm, seed)
    index = ["log N", *(s.name for s in schemes)]
    interaction = _pairwise_interactions(lx, y, group, names)
    return {
        "datasets": names,
        "schemes": schemes,
        "slopes": pd.DataFrame(slopes, index=index, columns=names),
        "ci_lo": pd.DataFrame(lo, index=index, columns=names),
        "ci_hi": pd.DataFrame(hi, index=index, columns=names),
        "signature_counts": pd.concat(
            [
                frame[["benchmark", "cell", "seed", "n_unique"]],
                pd.DataFrame(counts.T, columns=[s.name for s in schemes]),
            ],
            axis=1,
        ),
        "claims": shares,
        "permutation_p": pd.DataFrame(perm, index=index),
        "interaction_p": pd.DataFrame(interaction, index=index),
        "n_boot": n_boot,
        "n_perm": n_perm,
    }


def _bootstrap_weights(cells: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """[n_boot, n] resampling counts: each cell's rows drawn with replacement, sizes kept."""
    _, starts, sizes = np.unique(cells, return_index=True, return_counts=True)
    n = cells.size
    first, size = np.repeat(starts, sizes), np.repeat(sizes, sizes)
    rng = np.random.default_rng(seed)
    idx = first + (rng.random((n_boot, n)) * size).astype(np.int64)
    flat = (np.arange(n_boot)[:, None] * n + idx).ravel()
    return np.bincount(flat, minlength=n_boot * n).reshape(n_boot, n).astype(float)


def _weighted_slopes(lx: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """[S, B] weighted OLS slopes of y on each row of lx under each weight row of w."""
    sw = w.sum(axis=1)
    swx, swy = lx @ w.T, w @ y
    sxy = (lx * y) @ w.T - swx * swy / sw
    sxx = (lx * lx) @ w.T - swx**2 / sw
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sxx > 1e-12, sxy / np.where(sxx > 1e-12, sxx, 1.0), np.nan)


def _group_slopes(
    lx: np.ndarray, y: np.ndarray, group: np.ndarray, k: int, weights: np.ndarray, level: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Point slopes and percentile bootstrap CIs, [S, k] each."""
    tail = (1 - level) / 2 * 100
    slopes, lo, hi = (np.empty((lx.shape[0], k)) for _ in range(3))
    for g in range(k):
        m = group == g
        slopes[:, g] = _weighted_slopes(lx[:, m], y[m], np.ones((1, m.sum())))[:, 0]
        boot = _weighted_slopes(lx[:, m], y[m], weights[:, m])
        lo[:, g], hi[:, g] = np.nanpercentile(boot, [tail, 100 - tail], axis=1)
    return slopes, lo, hi


def _claims(slopes: np.ndarray, lo: np.ndarray, hi: np.ndarray, names: list[str]) -> dict:
    """Qualitative claims of one analysis: sign pattern, ranking and pairwise order of positives."""
    signs = np.where(lo > 0, "positive", np.where(hi < 0, "negative", "flat"))
    claims = {
        "sign pattern: " + ", ".join(f"{n} {s}" for n, s in zip(names, signs, strict=True)): True
    }
    positive = [i for i in np.argsort(-slopes) if signs[i] == "positive"]
    if len(positive) >= 2:
        claims["ranking: " + " > ".join(names[i] for i in positive)] = True
        for a, b in itertools.combinations(positive, 2):
            claims[f"{names[a]} slope > {names[b]} slope"] = True
    return claims


def _pairwise_permutations(
    lx: np.ndarray, y: np.ndarray, group: np.ndarray, names: list[str], n_perm: int, seed: int
) -> dict:
    """Two-sided permutation p of slope differences per dataset pair, for every row of lx."""
    rng = np.random.default_rng(seed)
    out = {}
    for a, b in itertools.combinations(range(len(names)), 2):
        ia, ib = np.flatnonzero(group == a), np.flatnonzero(group == b)
        idx = np.concatenate([ia, ib])
        x = lx[:, idx] - np.concatenate(
            [lx[:, ia].mean(axis=1, keepdims=True).repeat(ia.size, 1),
             lx[:, ib].mean(axis=1, keepdims=True).repeat(ib.size, 1)], axis=1,
        )  # fmt: skip
        yy = y[idx] - np.concatenate(
            [np.full(ia.size, y[ia].mean()), np.full(ib.size, y[ib].mean())]
        )
        member = np.zeros((n_perm, idx.size))
        first = np.argsort(rng.random((n_perm, idx.size)), axis=1)[:, : ia.size]
        np.put_along_axis(member, first, 1.0, axis=1)
        observed = np.zeros((1, idx.size))
        observed[0, : ia.size] = 1.0
        stat_obs = _split_slope_diff(x, yy, observed)[:, 0]
        stat = _split_slope_diff(x, yy, member)
        eps = 1e-12 * np.maximum(1.0, np.abs(stat_obs))
        extreme = np.abs(stat) >= (np.abs(stat_obs) - eps)[:, None]
        out[f"{names[a]} vs {names[b]}"] = (1 + extreme.sum(axis=1)) / (n_perm + 1)
    return out


def _pairwise_interactions(
    lx: np.ndarray, y: np.ndarray, group: np.ndarray, names: list[str]
) -> dict:
    """HC3 t-test p of the slope difference per dataset pair, for every row of lx."""
    out = {}
    for a, b in itertools.combinations(range(len(names)), 2):
        idx = np.concatenate([np.flatnonzero(group == a), np.flatnonzero(group == b)])
        side = (group[idx] == b).astype(float)
        p = np.full(lx.shape[0], np.nan)
        for s in range(lx.shape[0]):
            try:
                p[s] = SlopeDesign(lx[s, idx], side, None).t_test(y[idx][None, :])[3][0]
            except ValueError:  # a scheme that leaves one dataset a single signature count
                continue
        out[f"{names[a]} vs {names[b]}"] = p
    return out


def _split_slope_diff(x: np.ndarray, y: np.ndarray, member: np.ndarray) -> np.ndarray:
    """[S, P] slope(members) - slope(non-members) for 0/1 membership rows over the pooled data."""
    return _weighted_slopes(x, y, member) - _weighted_slopes(x, y, 1.0 - member)


# --------------------------------------------------------------------------- null calibration


def headroom_null(
    frame: pd.DataFrame,
    metric: str = "exact_match",
    gain: float = 0.03,
    datasets: Sequence[str] | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """Closed headroom (TA_high - TA_low) / (1 - TA_low) per dataset, against a constant-gain null.

    TA_low / TA_high are the mean metric at each dataset's smallest / largest N. The observed
    spread is max/min headroom over `datasets` (default: those with positive headroom; the others
    are listed as excluded); the synthetic spread recomputes headroom with TA_high = TA_low +
    `gain` for every dataset.

    Two shares of the spread explained by baseline arithmetic:
    - paper: null_share = synthetic / observed spread (the published 1.66x / 2.41x -> 68.9%).
      It is a ratio of ratios: never below 1 / observed even when the null spread is 1x
      (explains nothing), and blind to direction (the null's max and min may be other datasets).
    - default: log_share = log(null_a / null_b) / log(headroom_a / headroom_b) for the datasets
      a, b with the largest and smallest observed headroom: 0 when the null spreads nothing,
      1 when it spreads as much as observed, negative when it predicts the opposite order.
      Its CI is BCa over seeds resampled within the four (dataset, TA_low / TA_high) cells.
    """
    from scipy import stats as sps

    require_columns(frame, ["benchmark", "n_unique", metric], "headroom input")
    if not 0 < gain < 1:
        raise ValueError(f"headroom_null: gain must be in (0, 1), got {gain!r}")
    rows, samples = [], {}
    for name, g in frame.groupby("benchmark"):
        levels = np.sort(g["n_unique"].unique())
        if levels.size < 2:
            raise ValueError(f"headroom input: {name!r} needs at least two N levels")
        low_v = g.loc[g["n_unique"] == levels[0], metric].to_numpy(dtype=float)
        high_v = g.loc[g["n_unique"] == levels[-1], metric].to_numpy(dtype=float)
        low, high = float(low_v.mean()), float(high_v.mean())
        if low >= 1:
            raise ValueError(f"headroom input: {name!r} has TA_low = 1; no headroom to close")
        samples[name] = (low_v, high_v)
        rows.append((name, low, high, (high - low) / (1 - low), gain / (1 - low)))
    table = pd.DataFrame(rows, columns=["benchmark", "ta_low", "ta_high", "headroom", "null"])
    chosen = list(datasets) if datasets is not None else list(
        table.loc[table["headroom"] > 0, "benchmark"]
    )  # fmt: skip
    unknown = sorted(set(chosen) - set(table["benchmark"]))
    if unknown:
        raise ValueError(f"headroom input: unknown datasets {', '.join(unknown)}")
    used = table[table["benchmark"].isin(chosen)].set_index("benchmark")
    if len(used) < 2 or (used["headroom"] <= 0).any():
        raise ValueError("headroom_null: needs at least two datasets with positive headroom")
    observed = float(used["headroom"].max() / used["headroom"].min())
    synthetic = float(used["null"].max() / used["null"].min())
    top, bottom = str(used["headroom"].idxmax()), str(used["headroom"].idxmin())

    def log_share(la: np.ndarray, ha: np.ndarray, lb: np.ndarray, hb: np.ndarray,
                  axis: int = -1) -> np.ndarray:  # fmt: skip
        mla, mha, mlb, mhb = (v.mean(axis=axis) for v in (la, ha, lb, hb))
        with np.errstate(divide="ignore", invalid="ignore"):
            spread = np.log((mha - mla) / (1 - mla)) - np.log((mhb - mlb) / (1 - mlb))
            return np.log((1 - mlb) / (1 - mla)) / spread

    data = (*samples[top], *samples[bottom])
    share = float(log_share(*data))
    ci = (math.nan, math.nan)
    if min(v.size for v in data) >= 2:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # degenerate BCa (constant samples) -> NaN bounds
            res = sps.bootstrap(data, log_share, n_resamples=n_boot, confidence_level=level,
                                method="BCa", random_state=np.random.default_rng(seed))  # fmt: skip
        ci = (float(res.confidence_interval.low), float(res.confidence_interval.high))
    return {
        "table": table,
        "datasets": chosen,
        "excluded": sorted(set(table["benchmark"]) - set(chosen)),
        "gain": gain,
        "observed_spread": observed,
        "synthetic_spread": synthetic,
        "null_share": synthetic / observed,
        "differential_share": 1 - synthetic / observed,
        "pair": (top, bottom),
        "log_share": share,
        "log_share_ci": ci,
        "level": level,
    }
