"""The evaluator: decoded text, each benchmark's own metric, rows per category and group."""

from __future__ import annotations

import random
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from compgen_jax.evaluation import SplitEvaluator, prediction_texts
from tasks.benchmarks import recogs
from tasks.example import Example
from tasks.vocab import WordVocabulary


def _example(i: int, target: str, benchmark: str = "cogs", category: str | None = None,
             split: str = "gen") -> Example:
    return Example(benchmark=benchmark, split=split, id=i, input=f"input {i}", target=target,
                   atoms=frozenset(), pairs=frozenset(), depth=0, out_len=len(target.split()),
                   category=category)


def _tokens(vocab: WordVocabulary, texts: list[list[str]], length: int) -> np.ndarray:
    """Token ids [S, N, length] of texts (+ EOS, 0-padded), as greedy decoding returns them."""
    out = np.zeros((len(texts), len(texts[0]), length), np.int32)
    for s, seed in enumerate(texts):
        for n, text in enumerate(seed):
            ids = [*vocab.encode(text), vocab.eos_id]
            out[s, n, :len(ids)] = ids
    return out


def test_prediction_texts_stop_at_eos_and_show_a_pad_before_it():
    words = WordVocabulary(["a", "b"]).tokens  # <pad>=0 </s>=1 <unk>=2 a=3 b=4
    tokens = np.array([[[3, 4, 1, 0], [3, 0, 4, 1], [4, 4, 4, 4], [1, 0, 0, 0]]])
    assert prediction_texts(tokens, words) == [["a b", "a <pad> b", "b b b b", ""]]


def test_recogs_prediction_with_renamed_variables_and_permuted_conjuncts_is_correct():
    target = "* cake ( 1 ) ; eat ( 2 ) AND agent ( 2 , Emma ) AND theme ( 2 , 1 )"
    renamed = "eat ( 7 ) AND theme ( 7 , 3 ) AND * cake ( 3 ) AND agent ( 7 , Emma )"
    collapsed = "* cake ( 7 ) ; eat ( 7 ) AND agent ( 7 , Emma ) AND theme ( 7 , 7 )"
    examples = [_example(0, target, "recogs")] * 3
    vocab = WordVocabulary.from_texts([target, renamed, collapsed])
    tokens = _tokens(vocab, [[target, renamed, collapsed]], 30)
    result = SplitEvaluator.build("test", examples).evaluate(tokens, vocab.tokens)
    assert result.correct.tolist() == [[True, True, False]]
    assert SplitEvaluator.build("test", examples).metric == "recogs_exact_match"
    # The same texts scored as COGS (token exact match): only the identical one counts.
    cogs_eval = SplitEvaluator.build("test", [_example(0, target)] * 3)
    assert cogs_eval.metric == "exact_match"
    assert cogs_eval.evaluate(tokens, vocab.tokens).correct.tolist() == [[True, False, False]]


@pytest.mark.parametrize("benchmark", ["scan", "cogs", "gscan", "cfq"])
def test_token_benchmarks_need_the_whole_sequence(benchmark: str):
    target = "walk walk look"
    preds = ["walk walk look", "walk walk", "walk walk look look", "walk look walk"]
    vocab = WordVocabulary.from_texts(preds)
    evaluator = SplitEvaluator.build("test", [_example(0, target, benchmark)] * 4)
    result = evaluator.evaluate(_tokens(vocab, [preds], 6), vocab.tokens)
    assert evaluator.metric == "exact_match"
    assert result.correct.tolist() == [[True, False, False, False]]


def test_rows_per_category_and_difficulty_group_hand_computed():
    # Two easy categories and one hard; seed 0 gets 3 of 5 right, seed 1 gets 1.
    cats = ["subj_to_obj_common", "subj_to_obj_common", "cp_recursion", "prim_to_inf_arg",
            "cp_recursion"]
    examples = [_example(i, f"t{i}", category=c) for i, c in enumerate(cats)]
    preds = [["t0", "x", "t2", "t3", "x"], ["x", "t1", "x", "x", "x"]]
    vocab = WordVocabulary.from_texts([f"t{i}" for i in range(5)] + ["x"])
    evaluator = SplitEvaluator.build("gen", examples)
    result = evaluator.evaluate(_tokens(vocab, preds, 3), vocab.tokens)
    expected = {
        "gen": ([3 / 5, 1 / 5], 5),
        "gen:subj_to_obj_common": ([1 / 2, 1 / 2], 2),
        "gen:cp_recursion": ([1 / 2, 0.0], 2),
        "gen:prim_to_inf_arg": ([1.0, 0.0], 1),
        "gen:easy": ([2 / 3, 1 / 3], 3),
        "gen:hard": ([1 / 2, 0.0], 2),
    }
    assert list(result.scores) == list(expected)
    for name, (scores, size) in expected.items():
        np.testing.assert_allclose(result.scores[name], scores, err_msg=name)
        assert result.sizes[name] == size


def test_a_single_category_split_gets_no_category_rows():
    examples = [_example(i, "a", category="in_distribution", split="test") for i in range(3)]
    assert list(SplitEvaluator.build("test", examples).groups) == ["test"]


def test_predictions_file_carries_texts_per_seed(tmp_path: Path):
    examples = [_example(i, f"t{i}", category="cp_recursion") for i in range(2)]
    vocab = WordVocabulary.from_texts(["t0", "t1", "x"])
    evaluator = SplitEvaluator.build("gen", examples)
    result = evaluator.evaluate(_tokens(vocab, [["t0", "x"], ["x", "t1"]], 3), vocab.tokens)
    evaluator.write_predictions(tmp_path / "p.csv", [4, 9], result)
    table = pd.read_csv(tmp_path / "p.csv", keep_default_na=False)
    assert table.to_dict("records") == [
        {"seed": 4, "example_id": 0, "category": "cp_recursion", "input": "input 0",
         "target": "t0", "prediction": "t0", "correct": True},
        {"seed": 4, "example_id": 1, "category": "cp_recursion", "input": "input 1",
         "target": "t1", "prediction": "x", "correct": False},
        {"seed": 9, "example_id": 0, "category": "cp_recursion", "input": "input 0",
         "target": "t0", "prediction": "x", "correct": False},
        {"seed": 9, "example_id": 1, "category": "cp_recursion", "input": "input 1",
         "target": "t1", "prediction": "t1", "correct": True},
    ]


def _rename_and_shuffle(lf: str, rng: random.Random) -> str:
    """A ReCOGS LF with its integer variables renamed bijectively and its conjuncts shuffled."""
    numbers = sorted(set(re.findall(r"\b\d+\b", lf)), key=int)
    fresh = rng.sample(range(100, 1000), len(numbers))
    mapping = dict(zip(numbers, map(str, fresh), strict=True))
    parts = [p.strip() for p in re.split(r" ; | AND ", lf)]
    rng.shuffle(parts)
    return " AND ".join(" ".join(mapping.get(t, t) for t in p.split()) for p in parts)


def test_recogs_metric_on_real_test_lines(shared_data: Path):
    examples = recogs.load("test", shared_data, "recogs_v1")[:200]
    rng = random.Random(0)
    renamed = [_rename_and_shuffle(ex.target, rng) for ex in examples]
    same = sum(r.split() == ex.target.split() for r, ex in zip(renamed, examples, strict=True))
    assert same < 10
    # Seed 1 swaps the predictions of neighbouring examples: wrong wherever the LFs differ.
    swapped = [renamed[i ^ 1] for i in range(len(renamed))]
    vocab = WordVocabulary.from_texts(renamed)
    tokens = _tokens(vocab, [renamed, swapped], max(len(r.split()) for r in renamed) + 1)
    result = SplitEvaluator.build("test", examples).evaluate(tokens, vocab.tokens)
    assert result.correct[0].all()
    differ = [not recogs.recogs_match(examples[i].target, examples[i ^ 1].target)
              for i in range(len(examples))]
    assert result.correct[1].tolist() == [not d for d in differ] and sum(differ) > 190
