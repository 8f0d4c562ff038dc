"""k-equivalence / k-coverage: a hand-worked case, the pure-Python definition, outputs, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import coverage as cv
from analysis.__main__ import main

N = 6
VOCAB = [f"<t_{i}>" for i in range(N)] + ["</a>"]

# Subset {0,1}: u = (x0, x1), context x2.  Training behaviours {x2: t}:
#   A=(0,0): {0:1, 1:2, 2:3}   B=(0,1): {0:1, 1:2}   C=(1,1): {1:2, 3:4}
#   D=(2,2): {0:1, 2:0}        E=(3,3): {3:5}
# Evidence: A-B 2, A-C 1, B-C 1, B-D 1; A-D contradict (x2=2: 3 vs 0); C-E contradict (x2=3).
# k=1: {A,B,C,D} is one class (D joins A only through B: transitive closure), E alone.
# k=2: {A,B}; C, D, E singletons.  k>=3: all singletons.
TRAIN = [
    ((0, 0, 0), 1), ((0, 0, 1), 2), ((0, 0, 2), 3),
    ((0, 1, 0), 1), ((0, 1, 1), 2),
    ((1, 1, 1), 2), ((1, 1, 3), 4),
    ((2, 2, 0), 1), ((2, 2, 2), 0),
    ((3, 3, 3), 5),
]  # fmt: skip
# type_0 queries and their hand-worked max_k:
#   (0,1,2)->3: bucket (cls B, 2, 3) holds A's (0,0,2); A~B up to k=2            -> 2
#   (1,1,0)->1: (cls C, 0, 1) holds A/B/D's x2=0 items at k=1 only               -> 1
#   (2,2,1)->2: (cls D, 1, 2) holds A/B's x2=1 items at k=1 only                 -> 1
#   (2,2,3)->4: (cls D, 3, 4) holds only C's (1,1,3); D~C only via the chain D-B-C -> 1
#   (3,3,0)->1: E is a singleton class, alone in its bucket                      -> 0
#   (4,4,0)->1: (4,4) never seen in training: singleton                          -> 0
QUERIES = [
    ((0, 1, 2), 3, 2), ((1, 1, 0), 1, 1), ((2, 2, 1), 2, 1), ((2, 2, 3), 4, 1),
    ((3, 3, 0), 1, 0), ((4, 4, 0), 1, 0),
]  # fmt: skip


def _item(x: tuple[int, ...], t: int, kind: str | None = None) -> dict:
    """One upstream-format item."""
    inp = "".join(VOCAB[i] for i in x)
    out = {"input_text": inp, "target_text": inp + VOCAB[t] + "</a>"}
    return out if kind is None else {**out, "type": kind}


def _write(root: Path, train: list, test: list, vocab: list | None = None) -> Path:
    """Write a dataset directory by hand."""
    root.mkdir(parents=True, exist_ok=True)
    for name, content in (("train.json", train), ("test.json", test),
                          ("vocab.json", VOCAB if vocab is None else vocab)):  # fmt: skip
        (root / name).write_text(json.dumps(content, indent=2))
    return root


@pytest.fixture
def hand_dir(tmp_path: Path) -> Path:
    """The hand-worked dataset plus train_inferred and type_1 items (never nodes)."""
    test = [_item(x, t, "type_0") for x, t, _ in QUERIES]
    test.insert(2, _item(*TRAIN[0], "train_inferred"))
    test.append(_item((5, 5, 5), 0, "type_1"))
    return _write(tmp_path / "twohop.6.10.diff-f12.inf", [_item(*r) for r in TRAIN], test)


def _reference(train: list, queries: list, k_max: int, parity: bool, subsets=cv.SUBSETS):
    """The pure-Python definition on (triple, target) lists, as an array."""
    return np.array(cv.reference_coverage(
        [x for x, _ in train], [t for _, t in train], [x for x, _ in queries],
        [t for _, t in queries], k_max, parity, subsets,
    ))  # fmt: skip


def _vectorised(train: list, queries: list, k_max: int, parity: bool, n: int, subsets=cv.SUBSETS):
    """coverage_matrix on (triple, target) lists."""
    return cv.coverage_matrix(
        np.array([x for x, _ in train]), np.array([t for _, t in train]),
        np.array([x for x, _ in queries]).reshape(-1, 3), np.array([t for _, t in queries]),
        n, k_max, parity, subsets,
    )  # fmt: skip


def test_hand_worked_evidence_contradiction_and_chain(hand_dir: Path) -> None:
    data = cv.load_dataset(hand_dir)
    ev = cv.subset_evidence(data.train_x, data.train_y, (0, 1), N)
    names = {tuple(divmod(int(c), N)): k for c, k in zip(ev.codes, "ABCDE", strict=True)}
    pairs = {
        names[divmod(int(ev.codes[i]), N)] + names[divmod(int(ev.codes[j]), N)]: int(e)
        for i, j, e in zip(ev.i, ev.j, ev.evidence, strict=True)
    }
    assert pairs == {"AB": 2, "AC": 1, "BC": 1, "BD": 1}
    table = cv.kcoverage_table(hand_dir, k_max=4, ground_truth=True)
    t0 = table[table["type"] == "type_0"]
    assert t0["max_k"].tolist() == [q[2] for q in QUERIES]
    assert (table.loc[table["type"] != "type_0", "max_k"] == 0).all()
    # upstream's arithmetic (determine_coverage.py l. 362): c / n * 100, not 100 * c / n
    assert table.attrs["k_sweep"] == {1: [4, 4 / 6 * 100], 2: [1, 1 / 6 * 100], 3: [0, 0.0],
                                      4: [0, 0.0]}  # fmt: skip
    queries = [(x, t) for x, t, _ in QUERIES]
    ref = _reference(TRAIN, queries, 4, False, cv.GROUND_TRUTH_SUBSETS)
    assert (ref * np.arange(1, 5)).max(1).tolist() == [q[2] for q in QUERIES]


def test_contradiction_blocks_a_link_without_the_chain() -> None:
    train = [
        r for r in TRAIN if r[0][:2] != (0, 1)
    ]  # drop B: D now only meets A, which contradicts
    queries = [((2, 2, 1), 2), ((2, 2, 3), 4), ((1, 1, 0), 1)]
    got = _vectorised(train, queries, 2, False, N, cv.GROUND_TRUTH_SUBSETS)
    assert got.tolist() == [[False, False], [False, False], [True, False]]


@pytest.mark.parametrize("parity", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_vectorised_equals_pure_python_definition(seed: int, parity: bool) -> None:
    rng = np.random.default_rng(seed)
    n = 5
    triples = [
        tuple(int(v) for v in t) for t in rng.permutation(np.indices((n,) * 3).reshape(3, -1).T)
    ]
    f1 = rng.integers(0, 3, size=(n, n))
    f2 = rng.integers(0, 3, size=(3, n))
    noisy = rng.random(len(triples)) < 0.15
    targets = [int(rng.integers(0, n)) if z else int(f2[f1[a, b], c])
               for (a, b, c), z in zip(triples, noisy, strict=True)]  # fmt: skip
    labelled = list(zip(triples, targets, strict=True))
    train, queries = labelled[:60], labelled[60:90]
    got = _vectorised(train, queries, 6, parity, n)
    assert got.any() and not got.all()
    assert (got == _reference(train, queries, 6, parity)).all()


def test_vectorised_equals_definition_on_generated_twohop(tmp_path: Path) -> None:
    from tasks.benchmarks.coverage import generate

    data = cv.load_dataset(generate("twohop", tmp_path, 10, 250, test_size=40, seed=3))
    t0 = np.array([it["type"] == "type_0" for it in data.test_items])
    train = list(zip(map(tuple, data.train_x.tolist()), data.train_y.tolist(), strict=True))
    queries = list(zip(map(tuple, data.test_x[t0].tolist()), data.test_y[t0].tolist(), strict=True))
    for parity in (False, True):
        got = _vectorised(train, queries, 8, parity, data.n_tokens)
        assert (got == _reference(train, queries, 8, parity)).all()
    assert got[:, 0].all() and not got[:, -1].all()


def test_table_outputs_and_cli(hand_dir: Path, tmp_path: Path) -> None:
    table = cv.kcoverage_table(hand_dir, k_max=3)
    assert list(table.columns) == ["index", "type", "input", "target", "max_k"]
    assert table["index"].tolist() == list(range(8))
    assert table["input"].iat[0] == "<t_0><t_1><t_2>"
    for k, (n_cov, _) in table.attrs["k_sweep"].items():  # default mode: monotone in k
        assert n_cov == int((table["max_k"] >= k).sum())
    out = tmp_path / "out"
    paths = cv.write_upstream_outputs(table, hand_dir, out, min_evidence=2)
    test = json.loads((hand_dir / "test.json").read_text())
    sweep = json.loads((out / "test_annotated.json").read_text())
    assert sweep[: len(test)] == test and len(sweep) == len(test) + 6
    assert [it["type"] for it in sweep[len(test) :]] == [
        f"covered_{k}" for k in table.loc[table["type"] == "type_0", "max_k"]
    ]
    full = json.loads((out / "test_annotated_full.json").read_text())
    in_train = table["type"] == "train_inferred"  # a training input is a covered node
    assert [it["coverage"] for it in full] == ((table["max_k"] >= 2) | in_train).tolist()
    ksweep = json.loads((out / "k_sweep_results" / f"{hand_dir.name}.json").read_text())
    assert list(ksweep) == ["1", "2", "3"] and ksweep["1"][0] == table.attrs["k_sweep"][1][0]
    assert pd.read_csv(out / "coverage.csv")["max_k"].tolist() == table["max_k"].tolist()
    assert len(paths) == 4
    correct = pd.Series(np.linspace(0, 1, len(table)), index=table["index"])
    assert cv.plot_coverage_accuracy(table, correct, out / "acc.png").stat().st_size > 0
    assert main(["coverage", str(hand_dir), "--k_max", "2", "--ground_truth",
                 "--out", str(tmp_path / "cli")]) == 0  # fmt: skip
    gt = json.loads((tmp_path / "cli" / "test_annotated_ground-truth.json").read_text())
    assert {it["type"] for it in gt} >= {"covered_0", "covered_1", "covered_2"}
    assert (tmp_path / "cli" / "k_sweep_results" / f"{hand_dir.name}_ground-truth.json").is_file()


def test_parity_keeps_the_bucket_key_quirk(tmp_path: Path) -> None:
    # (0,1,2) and (1,0,2) with equal targets collide in the S-free key ((0,), (1, 2), t) of
    # S={0} and S={1}; S in the key (default) keeps them apart.
    train = [((0, 1, 2), 3), ((4, 4, 4), 0)]
    queries = [((1, 0, 2), 3)]
    assert _vectorised(train, queries, 2, True, N).tolist() == [[True, True]]
    assert _vectorised(train, queries, 2, False, N).tolist() == [[False, False]]


def test_bad_inputs_give_clear_errors(tmp_path: Path) -> None:
    good = [_item(*r) for r in TRAIN]
    test = [_item((0, 1, 2), 3, "type_0")]
    root = _write(tmp_path / "missing", good, test)
    (root / "vocab.json").unlink()
    with pytest.raises(FileNotFoundError, match="vocab.json is missing"):
        cv.kcoverage_table(root)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        cv.kcoverage_table(tmp_path / "nowhere")
    arity = [*good, {"input_text": "<t_0><t_1>", "target_text": "<t_0><t_1><t_2></a>"}]
    with pytest.raises(ValueError, match=r"train.json: item 10 .* has 2 tokens; .* 3-token"):
        cv.kcoverage_table(_write(tmp_path / "arity", arity, test))
    with pytest.raises(ValueError, match=r"test.json: item 0 .* has 4 tokens"):
        cv.kcoverage_table(_write(tmp_path / "arity4", good, [_item((0, 1, 2, 3), 1, "type_0")]))
    conflict = [*good, _item((0, 0, 1), 4)]
    with pytest.raises(ValueError, match=r"duplicate training input <t_0><t_0><t_1> at items "
                                         r"\[1, 10\] \(conflicting targets\)"):  # fmt: skip
        cv.kcoverage_table(_write(tmp_path / "conflict", conflict, test))
    with pytest.raises(ValueError, match=r"\(duplicates\)"):
        cv.kcoverage_table(_write(tmp_path / "dup", [*good, good[3]], test))
    with pytest.raises(ValueError, match=r"train.json: item 9 has token <t_5> not in vocab"):
        cv.kcoverage_table(_write(tmp_path / "unk", good, test, vocab=VOCAB[:5] + ["</a>"]))
    with pytest.raises(ValueError, match="duplicate type_0"):
        cv.kcoverage_table(_write(tmp_path / "dup0", good, test + test))
    with pytest.raises(ValueError, match="target different from the training item"):
        cv.kcoverage_table(_write(tmp_path / "clash", good, [_item(TRAIN[0][0], 4, "type_0")]))
    _write(tmp_path / "bad", good, test)
    (tmp_path / "bad" / "test.json").write_text("[{")
    with pytest.raises(ValueError, match=r"test.json:1: malformed JSON"):
        cv.kcoverage_table(tmp_path / "bad")
    assert main(["coverage", str(tmp_path / "missing")]) == 2


def test_prior_baseline_hand_worked(hand_dir: Path) -> None:
    """Targets by x2 in TRAIN: 0 -> {1: 3}, 1 -> {2: 3}, 2 -> {3: 1, 0: 1}, 3 -> {4: 1, 5: 1};
    x2 = 5 never seen, so all 7 vocabulary ids tie. Ties split the hit."""
    prior = cv.prior_baseline(cv.load_dataset(hand_dir), position=2)
    assert prior["type_0"] == pytest.approx((0.5 + 1 + 1 + 0.5 + 1 + 1) / 6)
    assert prior["train_inferred"] == 1.0 and prior["type_1"] == pytest.approx(1 / 7)


def test_covered_accuracy_splits_type0_by_threshold() -> None:
    kcov = pd.DataFrame({"index": [0, 1, 2, 3], "max_k": [0, 2, 5, 0],
                         "type": ["type_0", "type_0", "type_0", "type_1"]})
    per_example = pd.DataFrame({"index": [0, 1, 2, 3] * 2, "seed": [0] * 4 + [1] * 4,
                                "type": ["type_0", "type_0", "type_0", "type_1"] * 2,
                                "accuracy": [0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0]})
    table = cv.covered_accuracy(per_example, kcov, [3]).set_index(["type", "covered"])
    assert table.loc[("type_0", True), "accuracy"] == 1.0  # item 2, both seeds
    assert table.loc[("type_0", False), "accuracy"] == pytest.approx(1 / 4)  # items 0, 1
    assert table.loc[("type_0", False), "seed_accuracies"] == "0.500 0.000"
    assert table.loc[("type_1", False), "n_items"] == 1


def test_upstream_output_bytes_hand_derived(hand_dir: Path, tmp_path: Path) -> None:
    """Bytes upstream's determine_coverage.py writes, derived from its code: the k-sweep JSON is
    json.dump({k: (covered, covered / total * 100)}, indent=2) (l. 362-371), so 1 of 6 is
    16.666666666666664 (100 * 1 / 6 would be ...68); the single-k file marks every test item
    whose input is a covered node, so train_inferred is true (l. 420), types 1-3 false."""
    table = cv.kcoverage_table(hand_dir, k_max=4, ground_truth=True, parity=True)
    cv.write_upstream_outputs(table, hand_dir, tmp_path, min_evidence=1)
    sweep = (tmp_path / "k_sweep_results" / f"{hand_dir.name}_ground-truth.json").read_text()
    assert sweep == (
        '{\n  "1": [\n    4,\n    66.66666666666666\n  ],\n  "2": [\n    1,\n'
        '    16.666666666666664\n  ],\n  "3": [\n    0,\n    0.0\n  ],\n  "4": [\n    0,\n'
        '    0.0\n  ]\n}'
    )
    full = (tmp_path / "test_annotated_ground-truth_full.json").read_text()
    test = json.loads((hand_dir / "test.json").read_text())
    flags = [True, True, True, True, True, False, False, False]  # max_k >= 1; train_inferred
    assert full == json.dumps([{**it, "coverage": f} for it, f in zip(test, flags, strict=True)],
                              indent=2)  # fmt: skip
    no_type0 = _write(tmp_path / "none", [_item(*r) for r in TRAIN],
                      [_item((5, 5, 5), 0, "type_1")])  # fmt: skip
    table = cv.kcoverage_table(no_type0, k_max=1)
    cv.write_upstream_outputs(table, no_type0, tmp_path / "none_out")
    assert (tmp_path / "none_out" / "k_sweep_results" / "none.json").read_text() == (
        '{\n  "1": [\n    0,\n    0\n  ]\n}')  # upstream's `else 0`: an int


def test_compare_reports_item_differences_and_exit_codes(
    hand_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(hand_dir, copy)
    assert cv.compare(hand_dir, copy) == (
        True, [f"A: {hand_dir}", f"B: {copy}", "3 of 3 files byte-identical"])
    assert main(["coverage", "compare", str(hand_dir), str(copy)]) == 0
    test = json.loads((copy / "test.json").read_text())
    test[0]["target_text"] = test[0]["target_text"].replace("<t_3></a>", "<t_4></a>")
    del test[1]
    test.append(_item((5, 4, 3), 2, "type_2"))
    (copy / "test.json").write_text(json.dumps(test, indent=2))
    (copy / "vocab.json").write_text(json.dumps(VOCAB))  # same content, other formatting
    (copy / "train.json").write_text(json.dumps([_item(*r) for r in reversed(TRAIN)], indent=2))
    (copy / "extra").mkdir()
    (copy / "extra" / "k.json").write_text("{}")
    identical, lines = cv.compare(hand_dir, copy, examples=2)
    assert not identical
    assert lines[2:] == [
        "test.json: 8 vs 8 items: 1 keys only in A, 1 only in B, 1 changed (items keyed by "
        "input_text)",
        '  only in A: {"input_text":"<t_1><t_1><t_0>","target_text":"<t_1><t_1><t_0><t_1></a>",'
        '"type":"type_0"}',
        '  only in B: {"input_text":"<t_5><t_4><t_3>","target_text":"<t_5><t_4><t_3><t_2></a>",'
        '"type":"type_2"}',
        '  changed <t_0><t_1><t_2>: A {"input_text":"<t_0><t_1><t_2>","target_text":'
        '"<t_0><t_1><t_2><t_3></a>","type":"type_0"} | B {"input_text":"<t_0><t_1><t_2>",'
        '"target_text":"<t_0><t_1><t_2><t_4></a>","type":"type_0"}',
        "train.json: 10 items, the same ones in a different order (first at item 0)",
        "vocab.json: same JSON content, different bytes (formatting)",
        "extra/k.json: only in B",
        "0 of 4 files byte-identical; directories differ",
    ]
    assert main(["coverage", "compare", str(hand_dir), str(copy)]) == 1
    assert "extra/k.json: only in B" in capsys.readouterr().out
    sweep_a, sweep_b = tmp_path / "sa", tmp_path / "sb"
    for root, pct in ((sweep_a, 2.95), (sweep_b, 59 / 2000 * 100)):  # 100 * c / n vs c / n * 100
        (root / "k_sweep_results").mkdir(parents=True)
        (root / "k_sweep_results" / "d.json").write_text(json.dumps({"1": [59, pct]}, indent=2))
    assert cv.compare(sweep_a, sweep_b)[1][2:] == [
        "k_sweep_results/d.json: 1 of 1 keys differ",
        "  1: A [59,2.95] | B [59,2.9499999999999997]",
        "0 of 1 files byte-identical; directories differ",
    ]
    assert main(["coverage", "compare", str(hand_dir), str(tmp_path / "nowhere")]) == 2
    (copy / "test.json").write_text("[{")
    assert main(["coverage", "compare", str(hand_dir), str(copy)]) == 2
    assert "test.json:1: malformed JSON" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["coverage", "compare", str(tmp_path / "empty"), str(copy)]) == 2
