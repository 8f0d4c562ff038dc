"""Evaluators are named in gin and resolved through evaluation.EVALUATORS; a benchmark's own
difficulty table (not COGS's, imported by the generic evaluator) makes its group rows."""

from __future__ import annotations

import gin
import pytest

from compgen_jax import evaluation
from compgen_jax.configs import TrainConfig
from compgen_jax.evaluation import SplitEvaluator, build_evaluators, evaluator_names
from tasks.example import Example


def test_default_names_are_todays_evaluators() -> None:
    assert evaluator_names("seq2seq") == ("decode",)
    assert evaluator_names("coverage") == ("type_accuracy",)
    assert {name: kind for name, (kind, _) in evaluation.EVALUATORS.items()} == {
        "decode": "seq2seq", "type_accuracy": "coverage"}


def test_gin_names_the_evaluators_and_a_wrong_name_is_one_clear_error() -> None:
    gin.parse_config("evaluator_names.coverage = ('type_accuracy', 'decode')")
    assert evaluator_names("coverage") == ("type_accuracy", "decode")
    with pytest.raises(ValueError, match=r"evaluator_names.coverage=.*\['decode'\] are not "
                                         r"coverage evaluators; choose from \['type_accuracy'\]"):
        build_evaluators("coverage", None, TrainConfig())
    gin.parse_config("evaluator_names.seq2seq = ('beam',)")
    with pytest.raises(ValueError, match=r"\['beam'\] are not seq2seq evaluators"):
        build_evaluators("seq2seq", None, TrainConfig())


def test_gin_bound_factory_builds_the_named_evaluator(monkeypatch: pytest.MonkeyPatch) -> None:
    made = []
    monkeypatch.setitem(evaluation.EVALUATORS, "probe",
                        ("coverage", lambda data, config: made.append((data, config)) or "e"))
    gin.parse_config("evaluator_names.coverage = ('probe', 'probe')")
    config = TrainConfig(eval_batch_size=7)
    assert build_evaluators("coverage", "data", config) == ["e", "e"]
    assert made == [("data", config)] * 2


def _examples(benchmark: str, categories: list[str]) -> list[Example]:
    return [Example(benchmark=benchmark, split="gen", id=i, input="a", target="b",
                    atoms=frozenset(), pairs=frozenset(), depth=1, out_len=1, category=c)
            for i, c in enumerate(categories)]


def test_difficulty_groups_come_from_the_examples_benchmark() -> None:
    """COGS and ReCOGS gen: the categories plus easy / hard rows (subj_to_obj_common is lexical,
    hence easy; pp_recursion structural, hence hard); SCAN rows with the same category names
    get no difficulty rows (SCAN declares no difficulty)."""
    categories = ["subj_to_obj_common", "pp_recursion", "subj_to_obj_common"]
    for benchmark in ("cogs", "recogs"):
        groups = SplitEvaluator.build("gen", _examples(benchmark, categories)).groups
        assert {k: v.tolist() for k, v in groups.items()} == {
            "gen": [0, 1, 2], "gen:pp_recursion": [1], "gen:subj_to_obj_common": [0, 2],
            "gen:easy": [0, 2], "gen:hard": [1]}
    scan = SplitEvaluator.build("gen", _examples("scan", categories)).groups
    assert sorted(scan) == ["gen", "gen:pp_recursion", "gen:subj_to_obj_common"]
