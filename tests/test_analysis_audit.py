"""analysis.audit: schemes, signatures, robustness sweep and null calibration vs references."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from analysis import audit
from analysis.planted_sweeps import Dataset, synthetic_sweep
from analysis.stats import bootstrap_slope_ci

CONSTRUCTS = {"pos_a": "thematic bindings", "pos_b": "parse-tree composition", "flat": "tokens"}


@pytest.fixture(scope="module")
def sweep() -> object:
    """Two planted positive diversity effects (0.10, 0.05 per log N) and one planted null."""
    datasets = [
        Dataset("pos_a", 0.10, 0.02, pool_size=1500),
        Dataset("pos_b", 0.05, 0.02, pool_size=1500, pairs_per_atom=2.0),
        Dataset("flat", 0.0, 0.106, pool_size=2500, pairs_per_atom=6.0),
    ]
    return synthetic_sweep(datasets, [25, 50, 100, 200, 400], n_seeds=5, steps=(1,), seed=3)


def test_44_schemes_in_the_documented_families(sweep: object) -> None:
    schemes = audit.bucket_schemes(sweep.measures)
    families = pd.Series([s.family for s in schemes]).value_counts().to_dict()
    assert families == {
        "quantile": 4, "linear": 3, "log": 3, "information": 4, "latin-hypercube": 30
    }  # fmt: skip
    assert len({s.name for s in schemes}) == 44
    assert all(len(s.edges) == 4 and all(np.all(np.diff(e) > 0) for e in s.edges) for s in schemes)
    again = audit.bucket_schemes(sweep.measures)
    assert all(
        np.array_equal(a, b) for s, t in zip(schemes, again, strict=True)
        for a, b in zip(s.edges, t.edges, strict=True)
    )  # fmt: skip


def test_signature_codes_and_counts_match_per_example_reference(sweep: object) -> None:
    measures = sweep.measures
    schemes = audit.bucket_schemes(measures)[::7]
    codes = audit.signature_codes(measures, schemes)
    values = measures[list(audit.DIMS)].to_numpy(dtype=float)
    for s, row in zip(schemes, codes, strict=True):
        buckets = np.column_stack(
            [np.searchsorted(e, values[:, d], side="right") for d, e in enumerate(s.edges)]
        )
        tuples = [tuple(b) for b in buckets]
        # Same partition of the examples: equal codes <=> equal bucket tuples.
        assert len(set(tuples)) == len(set(row.tolist()))
        assert len(set(zip(tuples, row.tolist(), strict=True))) == len(set(tuples))
        assert row.max() < s.n_codes
    final = sweep.final()
    owner, rows = audit.manifest_rows(measures, final["benchmark"].tolist(), final["ids"].tolist())
    counts = audit.signature_counts(codes, owner, rows, len(final))
    keys = pd.MultiIndex.from_frame(measures[["benchmark", "example_id"]])
    for i in (0, 17, len(final) - 1):
        idx = keys.get_indexer(
            pd.MultiIndex.from_arrays(
                [[final["benchmark"].iloc[i]] * len(final["ids"].iloc[i]), final["ids"].iloc[i]]
            )
        )
        for s in range(len(schemes)):
            assert counts[s, i] == len(set(codes[s, idx].tolist()))


def test_measure_table_declares_constructs(sweep: object) -> None:
    table = audit.measure_table(sweep.measures, CONSTRUCTS).set_index("benchmark")
    assert table.loc["pos_a", "construct"] == "thematic bindings"
    flat = sweep.measures[sweep.measures["benchmark"] == "flat"]
    assert table.loc["flat", "pair_instances"] == flat["n_pairs"].sum()
    assert table.loc["flat", "n_examples"] == 2500
    spread = audit.cardinality_spread(table.reset_index())
    pairs = table["pair_instances"]
    assert spread["pair_instances"] == pytest.approx(pairs.max() / pairs.min())
    with pytest.raises(ValueError, match="no pair construct declared for flat"):
        audit.measure_table(sweep.measures, {"pos_a": "x", "pos_b": "y"})


def test_bad_measures_and_unknown_ids_are_errors(sweep: object) -> None:
    bad = sweep.measures.copy()
    bad.loc[3, "depth"] = np.nan
    with pytest.raises(ValueError, match="missing or negative values, first depth"):
        audit.check_measures(bad)
    with pytest.raises(ValueError, match="missing required columns: out_len"):
        audit.check_measures(sweep.measures.drop(columns=["out_len"]))
    with pytest.raises(ValueError, match="manifest example ids have no measures, first id 99999"):
        audit.manifest_rows(sweep.measures, ["pos_a"], [np.array([1, 99999])])


def test_robustness_sweep_recovers_planted_effects(sweep: object) -> None:
    res = audit.robustness_sweep(sweep.final(), sweep.measures, n_boot=1000, n_perm=2000)
    ref_lo, ref_hi = res["ci_lo"].loc["log N"], res["ci_hi"].loc["log N"]
    assert ref_lo["pos_a"] > 0 and ref_lo["pos_b"] > 0  # planted effects found
    assert ref_lo["flat"] < 0 < ref_hi["flat"]  # planted null not
    claims = res["claims"].set_index("claim")["share"]
    assert list(claims.index) == [
        "sign pattern: flat flat, pos_a positive, pos_b positive",
        "ranking: pos_a > pos_b",
        "pos_a slope > pos_b slope",
    ]
    assert claims.iloc[0] > 0.8 and claims.iloc[2] > 0.8
    assert res["slopes"].shape == (45, 3) and res["signature_counts"].shape == (75, 48)
    p = res["permutation_p"]
    assert (p.loc["log N", ["flat vs pos_a", "flat vs pos_b"]] < 0.01).all()


def test_between_dataset_permutation_p_matches_scipy() -> None:
    rng = np.random.default_rng(0)
    n = np.repeat([10, 20, 40], 2)
    frame = pd.DataFrame({
        "benchmark": np.repeat(["a", "b"], 6), "cell": [f"c{i // 2}" for i in range(12)],
        "seed": np.tile([0, 1], 6), "n_unique": np.tile(n, 2),
        "exact_match": np.r_[0.05 * np.log(n), 0.02 * np.log(n)] + rng.normal(0, 0.02, 12),
        "ids": [np.arange(k) for k in np.tile(n, 2)],
    })  # fmt: skip
    measures = pd.DataFrame({
        "benchmark": np.repeat(["a", "b"], 40), "example_id": np.tile(np.arange(40), 2),
        "n_atoms": 1, "n_pairs": 1, "depth": 1, "out_len": np.tile(np.arange(40), 2),
    })  # fmt: skip
    schemes = audit.bucket_schemes(measures)[:1]
    res = audit.robustness_sweep(frame, measures, schemes=schemes, n_boot=200, n_perm=40000)
    ours = res["permutation_p"].loc["log N", "a vs b"]
    lx = np.log(frame["n_unique"].to_numpy(float))
    y = frame["exact_match"].to_numpy()
    xc = np.r_[lx[:6] - lx[:6].mean(), lx[6:] - lx[6:].mean()]
    yc = np.r_[y[:6] - y[:6].mean(), y[6:] - y[6:].mean()]

    def slope_diff(ia: np.ndarray, ib: np.ndarray) -> float:
        return sps.linregress(xc[ia], yc[ia]).slope - sps.linregress(xc[ib], yc[ib]).slope

    ref = sps.permutation_test(
        (np.arange(6), np.arange(6, 12)), slope_diff, permutation_type="independent",
        vectorized=False, n_resamples=np.inf,
    )  # fmt: skip
    assert ours == pytest.approx(ref.pvalue, abs=0.01)
    slope_a = sps.linregress(lx[:6], y[:6]).slope
    assert res["slopes"].loc["log N", "a"] == pytest.approx(slope_a, rel=1e-10)


def test_reference_bootstrap_ci_matches_bootstrap_slope_ci(sweep: object) -> None:
    final = sweep.final()
    res = audit.robustness_sweep(final, sweep.measures, n_boot=4000, n_perm=10)
    rows = final[final["benchmark"] == "pos_b"]
    slope, lo, hi = bootstrap_slope_ci(rows["n_unique"], rows["exact_match"], n_boot=4000,
                                       method="percentile")
    width = hi - lo
    assert res["slopes"].loc["log N", "pos_b"] == pytest.approx(slope, rel=1e-10)
    assert abs(res["ci_lo"].loc["log N", "pos_b"] - lo) < 0.1 * width
    assert abs(res["ci_hi"].loc["log N", "pos_b"] - hi) < 0.1 * width


def test_headroom_null_hand_computed() -> None:
    frame = pd.DataFrame({
        "benchmark": ["a"] * 4 + ["b"] * 4 + ["c"] * 4,
        "n_unique": [10, 10, 100, 100] * 3,
        "exact_match": [0.09, 0.11, 0.39, 0.41, 0.5, 0.5, 0.6, 0.6, 0.2, 0.2, 0.19, 0.19],
    })  # fmt: skip
    res = audit.headroom_null(frame, gain=0.03)
    table = res["table"].set_index("benchmark")
    assert table.loc["a", "headroom"] == pytest.approx(0.3 / 0.9)
    assert table.loc["b", "headroom"] == pytest.approx(0.1 / 0.5)
    assert table.loc["b", "null"] == pytest.approx(0.03 / 0.5)
    assert res["datasets"] == ["a", "b"] and res["excluded"] == ["c"]
    assert res["observed_spread"] == pytest.approx((0.3 / 0.9) / 0.2)
    assert res["synthetic_spread"] == pytest.approx((0.03 / 0.5) / (0.03 / 0.9))
    assert res["null_share"] == pytest.approx(1.8 / (5 / 3))
    assert res["differential_share"] == pytest.approx(1 - 1.8 / (5 / 3))
    with pytest.raises(ValueError, match="positive headroom"):
        audit.headroom_null(frame, datasets=["a", "c"])
    with pytest.raises(ValueError, match="unknown datasets zz"):
        audit.headroom_null(frame, datasets=["a", "zz"])


def _headroom_frame(low_a: float, high_a: float, low_b: float, high_b: float,
                    noise: float = 0.0, seeds: int = 5) -> pd.DataFrame:  # fmt: skip
    """Two datasets at N = 10 (TA_low) and N = 100 (TA_high), `seeds` seeds per cell."""
    rng = np.random.default_rng(0)
    rows = []
    for name, low, high in (("a", low_a, high_a), ("b", low_b, high_b)):
        for n, mean in ((10, low), (100, high)):
            jitter = rng.normal(0, noise, seeds)
            rows += [(name, n, mean + j - jitter.mean()) for j in jitter]
    return pd.DataFrame(rows, columns=["benchmark", "n_unique", "exact_match"])


def test_item1_paper_mode_reproduces_the_published_69_percent() -> None:
    """Synthetic spread 1.66x, observed 2.41x: the paper's share is 1.66 / 2.41 = 68.9%. The high
    baseline dataset a has the larger headroom, as baseline arithmetic predicts."""
    low_a = 1 - 1 / 1.66  # null(a) / null(b) = (1 - low_b) / (1 - low_a) = 1.66 with low_b = 0
    frame = _headroom_frame(low_a, low_a + 0.2 * 2.41 * (1 - low_a), 0.0, 0.2)
    res = audit.headroom_null(frame, n_boot=200)
    assert res["synthetic_spread"] == pytest.approx(1.66)
    assert res["observed_spread"] == pytest.approx(2.41)
    assert round(100 * res["null_share"], 1) == 68.9
    assert res["log_share"] == pytest.approx(np.log(1.66) / np.log(2.41))


def test_item1_default_share_is_zero_for_a_null_that_explains_nothing() -> None:
    """TA_low = 0.01 for both, headroom 0.481 vs 0.641: the null spread is 1.00x. The paper's
    share says 75.1%; the log share says 0, and swapping the roles cannot make it 69%."""
    frame = _headroom_frame(0.01, 0.01 + 0.481 * 0.99, 0.01, 0.01 + 0.641 * 0.99, noise=0.01)
    res = audit.headroom_null(frame, n_boot=500)
    assert round(100 * res["null_share"], 1) == 75.0
    assert res["log_share"] == pytest.approx(0.0, abs=1e-12)
    lo, hi = res["log_share_ci"]
    assert lo <= 0.0 <= hi
    # Direction: a null that ranks the datasets the other way round gives a negative share.
    frame = _headroom_frame(0.5, 0.5 + 0.1 * 0.5, 0.0, 0.3)  # headroom b 0.3 > a 0.1; null a > b
    res = audit.headroom_null(frame, n_boot=200)
    assert res["pair"] == ("b", "a") and res["log_share"] < 0 < res["null_share"]


def test_headroom_share_ci_covers_the_truth() -> None:
    """BCa CI of the log share over seeds: coverage in a small simulation."""
    truth_frame = _headroom_frame(0.3, 0.5, 0.05, 0.45)
    truth = audit.headroom_null(truth_frame, n_boot=50)["log_share"]
    hits = 0
    for trial in range(40):
        rng = np.random.default_rng(trial)
        frame = truth_frame.assign(exact_match=truth_frame["exact_match"]
                                   + rng.normal(0, 0.03, len(truth_frame)))  # fmt: skip
        lo, hi = audit.headroom_null(frame, n_boot=400, seed=trial)["log_share_ci"]
        hits += lo <= truth <= hi
    assert hits >= 34


def test_interaction_p_per_scheme_matches_slope_difference_test(sweep: object) -> None:
    from analysis.stats import slope_difference_test

    final = sweep.final()
    res = audit.robustness_sweep(final, sweep.measures, n_boot=50, n_perm=20)
    a, b = final[final["benchmark"] == "flat"], final[final["benchmark"] == "pos_a"]
    ref = slope_difference_test(a["n_unique"], a["exact_match"], b["n_unique"], b["exact_match"],
                                n_flip=1)  # fmt: skip
    assert res["interaction_p"].loc["log N", "flat vs pos_a"] == pytest.approx(ref["p_t"])
    assert res["interaction_p"].shape == (45, 3)
