"""COGS adapter (original LF + variable-free) and its seqio tasks, against the real files."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tasks import registry
from tasks.benchmarks import cogs
from tasks.example import Example

TASKS = {"lf": "cogs", "variable_free": "cogs_variable_free"}


@pytest.fixture(scope="module")
def cogs_tasks(shared_data: Path) -> list[str]:
    """Register every COGS/ReCOGS task once (loads all files through the adapters)."""
    return registry.register_cogs_tasks(shared_data)


def _examples(fmt: str, split: str) -> list:
    return registry.get_examples(TASKS[fmt], split)


def test_registers_all_tasks(cogs_tasks: list[str]) -> None:
    assert cogs_tasks == ["cogs", "cogs_variable_free", "recogs_v1", "recogs_v2", "recogs_pos"]
    assert registry.register_cogs_tasks("") == []


@pytest.mark.parametrize("fmt", cogs.FORMATS)
def test_line_counts(cogs_tasks: list[str], shared_data: Path, fmt: str) -> None:
    for split, size in cogs.SPLIT_SIZES.items():
        examples = _examples(fmt, split)
        path = shared_data / cogs.FORMAT_DIRS[fmt] / f"{split}.tsv"
        assert len(examples) == size == len(path.read_text(encoding="utf-8").splitlines())
        assert [ex.id for ex in examples] == list(range(size))
        assert examples[0].meta["format"] == fmt and examples[-1].meta["line"] == size


@pytest.mark.parametrize("fmt", cogs.FORMATS)
def test_categories(cogs_tasks: list[str], fmt: str) -> None:
    gen = Counter(ex.category for ex in _examples(fmt, "gen"))
    assert gen == {c: cogs.GEN_CATEGORY_SIZE for c in cogs.GEN_CATEGORIES}
    train = Counter(ex.category for ex in _examples(fmt, "train"))
    exposure = sum(n for c, n in train.items() if c.startswith(cogs.EXPOSURE_PREFIX))
    assert (train["in_distribution"], train["primitive"], exposure) == (24_000, 143, 12)
    for split in ("dev", "test"):
        assert {ex.category for ex in _examples(fmt, split)} == {"in_distribution"}


def test_category_difficulty(shared_data: Path) -> None:
    assert len(cogs.GEN_CATEGORIES) == len(set(cogs.GEN_CATEGORIES)) == 21
    assert Counter(cogs.CATEGORY_DIFFICULTY.values()) == {"easy": 18, "hard": 3}
    hard = {c for c, d in cogs.CATEGORY_DIFFICULTY.items() if d == "hard"}
    assert hard == {"obj_pp_to_subj_pp", "cp_recursion", "pp_recursion"}
    assert all(cogs.CATEGORY_TYPE[c] == "structural" for c in hard)
    sections = json.loads((shared_data / "cogs" / "gen_cases_to_paper_sections.json").read_text())
    assert set(cogs.GEN_CATEGORIES) == {
        k for k in sections if k != "in_distribution" and not k.startswith("exposure_example_")
    }


def test_pairs_equal_across_formats(cogs_tasks: list[str]) -> None:
    for split in ("train", "gen"):  # line i is the same example in both formats (s.0.1)
        lf, vf = _examples("lf", split), _examples("variable_free", split)
        assert [e.input for e in lf] == [e.input for e in vf]
        assert [e.category for e in lf] == [e.category for e in vf]
        assert [e.pairs for e in lf] == [e.pairs for e in vf]
        assert [e.atoms for e in lf] == [e.atoms for e in vf]
        assert [(e.meta["cp_depth"], e.meta["pp_depth"]) for e in lf] == [
            (e.meta["cp_depth"], e.meta["pp_depth"]) for e in vf
        ]


def test_depth_statistics(cogs_tasks: list[str]) -> None:
    train = [e for e in _examples("lf", "train") if not e.meta["lexicon"]]
    assert len(train) == 24_012
    assert Counter(e.meta["cp_depth"] for e in train) == {0: 21_737, 1: 2_115, 2: 160}
    assert Counter(e.meta["pp_depth"] for e in train) == {0: 18_965, 1: 4_599, 2: 448}
    gen = _examples("lf", "gen")
    for cat, key in (("cp_recursion", "cp_depth"), ("pp_recursion", "pp_depth")):
        assert Counter(e.meta[key] for e in gen if e.category == cat) == dict.fromkeys(
            range(3, 13), 100
        )
    assert {e.meta["pp_depth"] for e in gen if e.category == "obj_pp_to_subj_pp"} == {1, 2}
    assert all(e.depth == max(e.meta["cp_depth"], e.meta["pp_depth"]) for e in gen)


def test_output_lengths(cogs_tasks: list[str]) -> None:
    train = [e.out_len for e in _examples("lf", "train") if not e.meta["lexicon"]]
    assert max(train) == 153 and round(float(np.mean(train)), 1) == 43.8
    gen = [e.out_len for e in _examples("lf", "gen")]
    assert max(gen) == 480 and round(float(np.mean(gen)), 1) == 67.6
    assert max(e.out_len for e in _examples("variable_free", "gen")) == 144


def test_pair_novelty(cogs_tasks: list[str]) -> None:
    seen = set().union(*(e.pairs for e in _examples("lf", "train")))
    novel = Counter(e.category for e in _examples("lf", "gen") if e.pairs - seen)
    assert all(novel[c] == 1_000 for c in cogs.LEXICAL_CATEGORIES)
    assert [novel[c] for c in cogs.STRUCTURAL_CATEGORIES] == [643, 943, 990]


def test_lexicon_and_vocabulary(cogs_tasks: list[str]) -> None:
    lexicon = [e for e in _examples("lf", "train") if e.category == "primitive"]
    assert all(e.meta["lexicon"] and e.atoms == {e.input} and not e.pairs for e in lexicon)
    # 21 names, 41 nouns, 41 intransitive and 40 transitive verbs (by number of lambdas)
    assert Counter(e.target.count("LAMBDA") for e in lexicon) == {0: 21, 1: 41, 2: 41, 3: 40}
    verbs, nouns, names, roles, preps = set(), set(), set(), set(), set()
    for split in ("train", "dev", "test"):
        for e in _examples("lf", split):
            if e.meta["lexicon"]:
                continue
            graph, _ = cogs.parse_lf(e.target)
            heads = {h for h, rel, _ in graph.edges if "." not in rel}
            for key, label in graph.labels.items():
                (names if key[0] == "const" else verbs if key in heads else nouns).add(label)
            roles |= {rel for _, rel, _ in graph.edges if "." not in rel}
            preps |= {rel[5:] for _, rel, _ in graph.edges if rel.startswith("nmod.")}
    assert (len(verbs), len(nouns), len(names)) == (133, 406, 102)
    assert roles == {"agent", "theme", "recipient", "ccomp", "xcomp"}
    assert preps == {"in", "on", "beside"}


def test_documented_examples(cogs_tasks: list[str]) -> None:
    moose = "* moose ( x _ 1 ) ; want . agent ( x _ 2 , x _ 1 ) AND want . xcomp ( x _ 2 , x _ 4 ) "
    moose += "AND read . agent ( x _ 4 , x _ 1 )"
    assert cogs.pairs(moose) == {
        ("moose", "want.agent"),
        ("read", "want.xcomp"),
        ("moose", "read.agent"),
    }
    vf = "want ( agent = * moose , xcomp = read ( agent = * moose ) )"
    assert cogs.pairs(vf, "variable_free") == cogs.pairs(moose)
    hits = [e for e in _examples("lf", "gen") if e.input == "The researcher in a room froze ."]
    assert hits and "freeze . theme ( x _ 5 , x _ 1 )" in hits[0].target  # the 2022 fix (s.1.5)
    assert hits[0].pairs == {("researcher", "freeze.theme"), ("room", "researcher.nmod.in")}
    assert hits[0].atoms == {"researcher", "room", "freeze", "in"}
    # the copied controller subject (s.2 item 3) is merged: no duplicated nmod edge
    ctrl = "need ( agent = * girl ( nmod . in = * vehicle ) , xcomp = walk ( agent = * girl "
    ctrl += "( nmod . in = * vehicle ) ) )"
    graph, _ = cogs.parse_variable_free(ctrl)
    assert sorted(rel for _, rel, _ in graph.edges) == ["agent", "agent", "nmod.in", "xcomp"]


@pytest.mark.parametrize(
    ("line", "fmt", "message"),
    [
        ("A cat ran .\tcat ( x _ 1 ) AND run . agent ( x _ 2 , x _ 1 )", "lf", "3 non-empty"),
        ("A cat ran .\tcat ( x _ 1 ) AND run . agent ( x _ 2 , x _ 1 )\tnew_cat", "lf", "category"),
        ("A cat ran .\tcat ( x _ 1 ) AND AND run . agent ( x _ 2 )\tin_distribution", "lf", ""),
        ("A cat ran .\trun . agent ( x _ 2 , x _ 1 )\tin_distribution", "lf", "no predicate"),
        ("A cat ran .\trun ( agent = cat\tin_distribution", "variable_free", "expected"),
        ("A cat ran .\trun ( agent = cat ) )\tin_distribution", "variable_free", "trailing"),
    ],
)
def test_malformed_line_names_file_and_line(
    tmp_path: Path, line: str, fmt: str, message: str
) -> None:
    good = "A cat ran .\tcat ( x _ 1 ) AND run . agent ( x _ 2 , x _ 1 )\tin_distribution"
    if fmt == "variable_free":
        good = "A cat ran .\trun ( agent = cat )\tin_distribution"
    path = tmp_path / cogs.FORMAT_DIRS[fmt] / "dev.tsv"
    path.parent.mkdir()
    path.write_text(f"{good}\n{line}\n{good}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=f"{path}:2: .*{message}"):
        cogs.load("dev", tmp_path, fmt)


def test_missing_file_and_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="gen.tsv"):
        cogs.load("gen", tmp_path)
    with pytest.raises(ValueError, match="unknown COGS format"):
        cogs.load("gen", tmp_path, fmt="funcall")
    with pytest.raises(ValueError, match="unknown COGS split"):
        cogs.load("train_100", tmp_path)


def test_metrics() -> None:
    assert cogs.metric(["a b", "c"], ["a  b", "d"]) == {"exact_match": 0.5}
    with pytest.raises(ValueError):
        cogs.metric(["a"], [])
    exs = [
        Example("cogs", "gen", i, "s", t, frozenset(), frozenset(), 0, 1, category=c)
        for i, (t, c) in enumerate(
            [("a", "cp_recursion"), ("b", "cp_recursion"), ("c", "prim_to_inf_arg")]
        )
    ]
    assert cogs.per_category_exact_match(exs, ["a", "x", "c"]) == {
        "cp_recursion": 0.5,
        "prim_to_inf_arg": 1.0,
    }
    assert cogs.per_category_exact_match(exs, {0: "x", 1: "b", 2: "x"})["cp_recursion"] == 0.5
    assert cogs.difficulty_exact_match(exs, ["a", "x", "c"]) == {
        "all": 2 / 3,
        "hard": 0.5,
        "easy": 1.0,
    }
    with pytest.raises(ValueError, match="no prediction"):
        cogs.per_category_exact_match(exs, {0: "a"})


def test_registered_tasks_tokenize(cogs_tasks: list[str]) -> None:
    for name in ("cogs", "cogs_variable_free"):
        for split, size in (("gen", 21_000), ("dev", 3_000)):
            pool = registry.tokenized_pool(name, split)
            assert pool["inputs"].shape[0] == pool["targets"].shape[0] == size
            assert pool["example_id"].tolist() == list(range(size))
            assert not (pool["targets"] == registry.get_vocabulary(name).unk_id).any()
        vocab = registry.get_vocabulary(name)
        ex = registry.get_examples(name, "dev")[0]
        assert vocab.decode(pool["targets"][0].tolist()) == ex.target
    pool = registry.tokenized_pool("cogs", "gen")
    assert pool["targets"].shape[1] == 481  # longest gen LF (480 tokens) + EOS


@pytest.mark.parametrize("fault", ["unknown category", "empty"])
@pytest.mark.parametrize("split", ["train", "test", "gen"])
def test_bad_split_file_is_one_error_line_for_every_split(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture, split: str, fault: str,
) -> None:
    """`compgen-jax train` on COGS whose train, test or gen file is bad: the same one line
    naming the file (test and gen are read for the joint vocabulary; they used to fail inside
    TensorFlow's tokenizer with a 26-line trace), exit 2, no MODEL_DIR."""
    from compgen_jax.cli import main

    root = tmp_path / "data"
    (root / "cogs").mkdir(parents=True)
    for name in cogs.SPLITS:  # the real files' first lines
        lines = (shared_data / "cogs" / f"{name}.tsv").read_text(encoding="utf-8").splitlines()
        (root / "cogs" / f"{name}.tsv").write_text("\n".join(lines[:200]) + "\n", "utf-8")
    path = root / "cogs" / f"{split}.tsv"
    if fault == "empty":
        path.write_text("")
        expected = f"{path}: no rows; expected tab-separated sentence, LF, category lines"
    else:
        with path.open("a", encoding="utf-8") as handle:
            handle.write("A cat ran .\tcat ( x _ 1 ) AND run . agent ( x _ 2 , x _ 1 )\tmystery\n")
        expected = f"{path}:201: unknown category 'mystery'"
    monkeypatch.setenv("COMPGEN_DATA_DIR", str(root))
    model_dir = tmp_path / "cell"
    capsys.readouterr()
    assert main(["train", "--gin_file=experiments/scan_simple_cell_cpu.gin",
                 f"--gin.MODEL_DIR='{model_dir}'", "--gin.MIXTURE_OR_TASK_NAME='cogs'",
                 "--gin.N_UNIQUE=40", "--gin.NUM_SEEDS=1", "--gin.TRAIN_STEPS=5"]) == 2
    assert capsys.readouterr().err.splitlines() == [f"compgen-jax train: error: {expected}"]
    assert not model_dir.exists()
