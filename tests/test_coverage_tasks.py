"""Coverage-principle generators: upstream layout and formats, invariants, loader, bad input."""

from __future__ import annotations

import collections
import itertools
import json
import random
import re
from pathlib import Path

import pytest
from scipy import stats

from compgen_jax import cli
from tasks import registry
from tasks.benchmarks import coverage

TOKEN = re.compile(r"<[^<>]+>")


def _facts(path: Path) -> dict[tuple[str, ...], str]:
    """An atomic_facts file as {input tokens: output token}."""
    out = {}
    for item in json.loads(path.read_text()):
        toks = TOKEN.findall(item["target_text"])
        assert toks[-1] == "</a>" and item["target_text"].startswith(item["input_text"])
        out[tuple(toks[:-2])] = toks[-2]
    return out


@pytest.mark.parametrize("parity", [False, True])
def test_twohop_layout_formats_and_invariants(tmp_path: Path, parity: bool) -> None:
    out = coverage.generate("twohop", tmp_path, n=8, max_train=100, mode="cot", test_size=40,
                            parity=parity)  # fmt: skip
    assert out.name == "twohop.8.100.diff-f12.cot"
    assert sorted(p.name for p in out.iterdir()) == [
        "atomic_facts_f1.json", "atomic_facts_f2.json", "test.json", "train.json", "vocab.json"
    ]
    assert json.loads((out / "vocab.json").read_text()) == [f"<t_{i}>" for i in range(8)] + ["</a>"]
    assert (out / "train.json").read_text().startswith('[\n  {\n    "input_text"')  # indent=2
    f1, f2 = _facts(out / "atomic_facts_f1.json"), _facts(out / "atomic_facts_f2.json")
    assert len(f1) == len(f2) == 64
    train = json.loads((out / "train.json").read_text())
    test = json.loads((out / "test.json").read_text())
    keys = [set(item) - {"input_text", "target_text"} for item in train]
    assert len(train) == 100 and sum(k == {"type"} for k in keys) == 40 * parity  # Q11
    assert all(k <= {"type"} for k in keys)
    seen1, seen2, train_inputs = set(), set(), set()
    for item in train:
        x1, x2, x3, b, t, end = TOKEN.findall(item["target_text"])
        assert (b, t, end) == (f1[(x1, x2)], f2[(b, x3)], "</a>")
        seen1.add((x1, x2))
        seen2.add((b, x3))
        train_inputs.add(item["input_text"])
    kinds = {item["type"] for item in test}
    assert kinds <= {"train_inferred", "type_0", "type_1", "type_2", "type_3"}
    for item in test:
        x1, x2, x3, b, t, _ = TOKEN.findall(item["target_text"])
        assert (b, t) == (f1[(x1, x2)], f2[(b, x3)])
        if item["type"] == "train_inferred":
            assert item["input_text"] in train_inputs
            continue
        assert item["input_text"] not in train_inputs  # type_0 disjoint from training
        code = 2 * ((x1, x2) in seen1) + ((b, x3) in seen2)
        assert item["type"] == f"type_{0 if code == 3 else code + 1}"
    assert sum(item["type"] == "train_inferred" for item in test) == (40 if parity else 100)  # Q32
    assert all(sum(i["type"] == k for i in test) <= 40 for k in kinds - {"train_inferred"})


def test_deterministic_and_seeded(tmp_path: Path) -> None:
    a = coverage.generate("threehop", tmp_path / "a", n=6, max_train=80, test_size=20)
    b = coverage.generate("threehop", tmp_path / "b", n=6, max_train=80, test_size=20)
    c = coverage.generate("threehop", tmp_path / "c", n=6, max_train=80, test_size=20, seed=1)
    assert (a / "test.json").read_bytes() == (b / "test.json").read_bytes()
    assert (a / "train.json").read_bytes() != (c / "train.json").read_bytes()


@pytest.mark.parametrize(
    ("task", "mode", "same", "name", "answer_tokens"),
    [
        ("twohop", "fakebridge", False, "twohop.6.60.diff-f12.fakebridge", 3),
        ("threehop", "cot", True, "threehop.6.60.same-f123.cot", 4),
        ("parallel2hop", "inf", False, "parallel2hop.6.60.diff-f123.inf", 2),
        ("nontree", "cot", False, "nontree.6.60.diff-f12.cot", 3),
    ],
)
def test_variants_names_and_targets(
    tmp_path: Path, task: str, mode: str, same: bool, name: str, answer_tokens: int
) -> None:
    out = coverage.generate(task, tmp_path, n=6, max_train=60, same=same, mode=mode, test_size=10)
    assert out.name == name
    train = coverage.load(out, "train")
    assert len(train) == 60 and all(ex.out_len == answer_tokens for ex in train)
    if mode == "fakebridge":
        assert all(ex.target.startswith("</b> ") for ex in train)
        assert json.loads((out / "vocab.json").read_text())[-2:] == ["</b>", "</a>"]


def test_nontree_same_f12_rule(tmp_path: Path) -> None:
    out = coverage.generate("nontree", tmp_path, n=5, max_train=40, same=True, test_size=10)
    f1, f2 = _facts(out / "atomic_facts_f1.json"), _facts(out / "atomic_facts_f2.json")
    assert all(f2[(b, e1, e2)] == f1[(b, e1)] for b, e1, e2 in f2)


def test_include_atomic_appends_f1_facts(tmp_path: Path) -> None:
    out = coverage.generate("parallel2hop", tmp_path, n=4, max_train=30, same=True,
                            mode="include-atomic", test_size=5)
    assert len(coverage.load(out, "train")) == 30 + 16
    with pytest.raises(ValueError, match="include-atomic requires same"):
        coverage.generate("parallel2hop", tmp_path, n=4, max_train=30, mode="include-atomic")


def test_too_few_candidates_raises(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="all-seen compositions at N=3; max_train=1000"):
        coverage.generate("twohop", tmp_path, n=3, max_train=1000)


def test_loader_hand_worked_upstream_files(tmp_path: Path) -> None:
    root = tmp_path / "twohop.50.10000.diff-f12.cot"
    root.mkdir()
    (root / "train.json").write_text(json.dumps(
        [{"input_text": "<t_11><t_12><t_2>", "target_text": "<t_11><t_12><t_2><t_7><t_3></a>"}],
        indent=2))
    (root / "test.json").write_text(json.dumps(
        [{"input_text": "<t_1><t_2><t_3>", "target_text": "<t_1><t_2><t_3><t_4><t_5></a>",
          "type": "type_2"}], indent=2))
    ex = coverage.load(root, "train")[0]
    assert ex.input == "<t_11> <t_12> <t_2>" and ex.target == "<t_7> <t_3> </a>"
    assert ex.atoms == {"<t_11>", "<t_12>", "<t_2>"}
    assert ex.pairs == {("0:<t_11>", "1:<t_12>"), ("0:<t_11>", "2:<t_2>"), ("1:<t_12>", "2:<t_2>")}
    assert ex.depth == 2 and ex.out_len == 3 and ex.category is None
    assert coverage.load(root, "test")[0].category == "type_2"
    names = registry.register_coverage_tasks([root])
    assert names == ["coverage_twohop.50.10000.diff_f12.cot"]
    assert registry.tokenized_pool(names[0], "test")["targets"].shape == (1, 4)


def test_loader_bad_input(tmp_path: Path) -> None:
    root = tmp_path / "twohop.5.10.diff-f12.inf"
    root.mkdir()
    (root / "train.json").write_text('[\n  {"input_text": "<t_1>"')
    with pytest.raises(ValueError, match=r"train\.json:2: malformed JSON"):
        coverage.load(root, "train")
    (root / "train.json").write_text(json.dumps([{"input_text": "<t_1>", "target_text": "<t_2>"}]))
    with pytest.raises(ValueError, match=r"train\.json: item 0 is not"):
        coverage.load(root, "train")
    with pytest.raises(ValueError, match="unknown coverage split 'dev'"):
        coverage.load(root, "dev")
    with pytest.raises(FileNotFoundError, match=r"test\.json"):
        coverage.load(root, "test")
    with pytest.raises(ValueError, match="not a coverage dataset name"):
        coverage.load(tmp_path, "train")
    with pytest.raises(ValueError, match="unknown coverage task"):
        coverage.generate("fourhop", tmp_path, n=5, max_train=10)


@pytest.mark.parametrize("parity", [False, True])
def test_fivehop_layout_formats_and_invariants(tmp_path: Path, parity: bool) -> None:
    out = coverage.generate("fivehop", tmp_path, n=6, max_train=200, test_size=30, parity=parity)
    assert out.name == "fivehop.6.200.cot"
    assert coverage.parse_name(out.name) == ("fivehop", 6, 200, False, "cot")
    assert sorted(p.name for p in out.iterdir()) == [
        *(f"atomic_facts_f{f}.json" for f in range(1, 6)), "test.json", "train.json", "vocab.json"]
    assert json.loads((out / "vocab.json").read_text()) == [f"<t_{i}>" for i in range(6)] + ["</a>"]
    facts = [_facts(out / f"atomic_facts_f{f}.json") for f in range(1, 6)]
    assert [len(f) for f in facts] == [25] * 5  # the seen 70% of 36 keys only (Q14)
    train = json.loads((out / "train.json").read_text())
    test = json.loads((out / "test.json").read_text())

    def chain(item: dict) -> tuple[str, ...]:
        """Inputs + target of an item whose every hop is a seen key, CoT bridges checked."""
        *xs_bs, end = TOKEN.findall(item["target_text"])
        xs, bs = xs_bs[:6], xs_bs[6:]
        assert end == "</a>" and item["input_text"] == "".join(xs) and len(bs) == 5
        b = xs[0]
        for f, (x, value) in enumerate(zip(xs[1:], bs, strict=True)):
            b = facts[f][(b, x)]  # KeyError: a hop key outside the seen subset
            assert value == b
        return tuple(xs)

    train_chains = [chain(item) for item in train]
    assert len(set(train_chains)) == 200
    assert sum("type" in item for item in train) == 30 * parity  # Q11
    kinds = [item["type"] for item in test]
    assert kinds.count("type_0") == 30 and set(kinds) == {"type_0", "train_inferred"}
    assert kinds.count("train_inferred") == (30 if parity else 200)  # Q32
    type0 = [chain(item) for item in test if item["type"] == "type_0"]
    assert len(set(type0)) == 30 and not set(type0) & set(train_chains)
    assert {chain(i) for i in test if i["type"] == "train_inferred"} <= set(train_chains)
    loaded = coverage.load(out, "train")
    assert len(loaded) == 200 and {(ex.depth, ex.out_len) for ex in loaded} == {(5, 6)}


@pytest.mark.parametrize(("n", "seed"), [(4, 0), (3, 9)])
def test_fivehop_sampler_is_uniform_over_all_seen_chains(n: int, seed: int) -> None:
    """The chains drawn are exactly the all-seen chains (brute force over X^6), each as likely
    (chi-square). N=3 seed 9 has a bridge value without seen continuations: upstream raises
    KeyError there (Q36); it counts zero completions here."""
    s = coverage.STRUCTURES["fivehop"]
    rng = random.Random(seed)
    fns, seen = coverage._functions(s, n, False, rng, parity=False)
    seen_sets = [set(keys) for keys in seen]
    truth = set()
    for xs in itertools.product(range(n), repeat=6):
        key = (xs[0], xs[1])
        ok, b = key in seen_sets[0], fns[0][key]
        for f in range(1, 5):
            key = (b, xs[f + 1])
            ok, b = ok and key in seen_sets[f], fns[f][key]
        if ok:
            truth.add((*xs, b))
    draw, total = coverage._uniform_chains(s, fns, seen, rng)
    assert total == len(truth) > 0
    counts = collections.Counter(draw() for _ in range(60 * total))
    assert set(counts) == truth
    assert stats.chisquare(list(counts.values())).pvalue > 0.001


def test_fivehop_bad_arguments_refused_before_writing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"cannot give max_train=100000 plus 2000 type_0 .*Q37"):
        coverage.generate("fivehop", tmp_path, n=4, max_train=100000)
    with pytest.raises(ValueError, match=r"slice of --test_size 50 needs max_train >= 50"):
        coverage.generate("fivehop", tmp_path, n=4, max_train=40, test_size=50, parity=True)
    with pytest.raises(ValueError, match="fivehop: has no same-functions variant"):
        coverage.generate("fivehop", tmp_path, n=4, max_train=40, same=True)
    with pytest.raises(ValueError, match=r"fivehop: unknown mode 'inf'"):
        coverage.generate("fivehop", tmp_path, n=4, max_train=40, mode="inf")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("under", [False, True])
def test_generate_out_that_is_a_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], under: bool
) -> None:
    """--out FILE (or FILE/sub): one line naming FILE, exit 2, nothing written."""
    path = tmp_path / "taken"
    path.write_text("a file\n")
    out = path / "sub" if under else path
    code = cli.main(["coverage", "generate", "--num_tokens", "6", "--max_train", "40", "--out",
                     str(out)])  # fmt: skip
    assert code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"compgen-jax coverage: error: coverage dataset directory "
        f"{out / 'twohop.6.40.diff-f12.inf'}: {path} is a file, not a directory"]
    assert path.read_text() == "a file\n" and list(tmp_path.iterdir()) == [path]


def test_fivehop_circuits_refused_in_one_line(tmp_path: Path) -> None:
    """Upstream has no fivehop circuit analyses; asking for them is a ValueError, not KeyError."""
    from compgen_jax import circuits

    out = coverage.generate("fivehop", tmp_path, n=4, max_train=30, test_size=5)
    task = circuits.load_task(out)
    assert task.bridges == ("b1", "b2", "b3", "b4")
    with pytest.raises(ValueError, match="no circuit analyses for fivehop; tasks with them: tw"):
        circuits.resolve_grouping(task, "b1")
