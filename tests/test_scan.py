"""SCAN grammar, splits, file parsing and adapter measures, checked against the canonical files."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tasks.benchmarks import scan


def _lines(pairs: list[tuple[str, str]]) -> Counter[str]:
    """Pairs rendered as canonical file lines, as a multiset."""
    return Counter(f"IN: {cmd} OUT: {actions}" for cmd, actions in pairs)


def _file_lines(path: Path) -> Counter[str]:
    """Lines of a canonical file, as a multiset."""
    return Counter(path.read_text(encoding="utf-8").splitlines())


def _union_pairs(examples: list) -> set[tuple[str, str]]:
    """All pairs over a list of examples."""
    return set().union(*(ex.pairs for ex in examples))


def test_generate_equals_tasks_txt(shared_data: Path) -> None:
    generated = scan.generate()
    assert len(generated) == 20_910
    assert len(set(generated)) == 20_910
    canonical = _file_lines(shared_data / "scan" / "tasks.txt")
    assert sum(canonical.values()) == 20_910
    assert _lines(generated) == canonical


def test_generate_is_deterministic() -> None:
    assert scan.generate() == scan.generate()


def test_interpret_documented_example() -> None:
    # BENCHMARKS.md section 4.1
    assert scan.interpret("jump opposite left after walk around left") == (
        "I_TURN_LEFT I_WALK I_TURN_LEFT I_WALK I_TURN_LEFT I_WALK I_TURN_LEFT I_WALK "
        "I_TURN_LEFT I_TURN_LEFT I_JUMP"
    )
    assert scan.interpret("turn left") == "I_TURN_LEFT"
    assert scan.interpret("turn around right") == " ".join(["I_TURN_RIGHT"] * 4)
    assert scan.interpret("look twice and run right") == "I_LOOK I_LOOK I_TURN_RIGHT I_RUN"


@pytest.mark.parametrize(
    "command", ["", "turn", "turn twice", "walk and", "jump jump", "walk left left", "fly"]
)
def test_interpret_rejects_non_commands(command: str) -> None:
    with pytest.raises(ValueError, match="not a SCAN command"):
        scan.interpret(command)


@pytest.mark.parametrize("split", ["length", "addprim_jump"])
def test_rule_splits_equal_canonical_files(shared_data: Path, split: str) -> None:
    generated = scan.generate_split(split)
    for subset in scan.SUBSETS:
        path = shared_data / "scan" / scan.FILES[(split, subset)]
        assert _lines(generated[subset]) == _file_lines(path), (split, subset)


def test_addprim_jump_train_repeats_jump() -> None:
    train = scan.generate_split("addprim_jump")["train"]
    assert Counter(train)[("jump", "I_JUMP")] == 1_467
    assert len(train) == 14_670 and len(set(train)) == 13_204


def test_length_rule() -> None:
    split = scan.generate_split("length")
    assert (len(split["train"]), len(split["test"])) == (16_990, 3_920)
    assert max(scan.out_len(a) for _, a in split["train"]) == 22
    assert min(scan.out_len(a) for _, a in split["test"]) == 24


def test_length_rule_on_files(shared_data: Path) -> None:
    train = scan.load("length", "train", shared_data)
    test = scan.load("length", "test", shared_data)
    assert max(ex.out_len for ex in train) == 22
    assert min(ex.out_len for ex in test) == 24


def test_simple_split_sizes_and_seeding() -> None:
    everything = set(scan.generate())
    split = scan.generate_split("simple", seed=0)
    train, test = set(split["train"]), set(split["test"])
    assert (len(split["train"]), len(split["test"])) == (16_728, 4_182)
    assert train | test == everything and not train & test
    assert scan.generate_split("simple", seed=0) == split
    assert set(scan.generate_split("simple", seed=1)["test"]) != test


def test_unknown_split_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown SCAN split 'template'"):
        scan.generate_split("template")
    with pytest.raises(ValueError, match="unknown SCAN subset 'dev'"):
        scan.generated("length", "dev")


def test_read_file_round_trips_every_local_file(shared_data: Path) -> None:
    paths = [shared_data / "scan" / rel for rel in scan.FILES.values()]
    for path in [shared_data / "scan" / "tasks.txt", *paths]:
        pairs = scan.read_file(path)
        lines = path.read_text(encoding="utf-8").splitlines()
        assert [f"IN: {c} OUT: {a}" for c, a in pairs] == lines, path


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [
        ("walk OUT: I_WALK", "expected 'IN: <command> OUT: <actions>'"),
        ("IN: walk I_WALK", "expected 'IN: <command> OUT: <actions>'"),
        ("IN: fly OUT: I_FLY", "not a SCAN command"),
        ("IN: walk twice OUT: I_WALK", "disagree with the SCAN grammar"),
    ],
)
def test_read_file_malformed_line_names_file_and_line(
    tmp_path: Path, bad_line: str, reason: str
) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(f"IN: walk OUT: I_WALK\nIN: run left OUT: I_TURN_LEFT I_RUN\n{bad_line}\n")
    with pytest.raises(ValueError) as info:
        scan.read_file(path)
    message = str(info.value)
    assert f"{path}:3:" in message and reason in message and bad_line in message


def test_load_missing_file_names_file_and_setting(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(FileNotFoundError) as info:
        scan.load("length", "train", tmp_path)
    assert "length_split/tasks_train_length.txt" in str(info.value)
    assert "COMPGEN_DATA_DIR" in str(info.value)
    monkeypatch.delenv("COMPGEN_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)  # no ../shared/data to default to
    with pytest.raises(FileNotFoundError, match="COMPGEN_DATA_DIR is not set"):
        scan.load("length", "train")


def test_load_examples_follow_line_order(shared_data: Path) -> None:
    path = shared_data / "scan" / scan.FILES[("simple", "test")]
    examples = scan.load("simple", "test", shared_data)
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert [ex.id for ex in examples] == list(range(4_182))
    assert f"IN: {examples[0].input} OUT: {examples[0].target}" == first
    assert examples[0].split == "simple:test" and examples[0].meta["line"] == 1


def test_generated_examples() -> None:
    examples = scan.generated("length", "test")
    assert [ex.id for ex in examples] == list(range(3_920))
    ex = examples[0]
    assert (ex.benchmark, ex.split) == ("scan", "length:test")
    assert scan.interpret(ex.input) == ex.target and ex.out_len == len(ex.target.split())


def _check_length_split_measures(train: list, test: list) -> None:
    """The documented pair and depth counts of the length split (BENCHMARKS.md section 4.4)."""
    train_pairs, test_pairs = _union_pairs(train), _union_pairs(test)
    unseen = test_pairs - train_pairs
    assert (len(train_pairs), len(test_pairs), len(unseen)) == (428, 460, 32)
    for pair in unseen:  # all S-level "around ... thrice" + conjunction pairs
        phrase = next(p for p in pair if p not in ("and", "after"))
        assert set(pair) & {"and", "after"} and "around" in phrase and phrase.endswith("thrice")
    assert Counter(ex.depth for ex in train) == {0: 4, 1: 50, 2: 976, 3: 6_752, 4: 9_208}
    assert Counter(ex.depth for ex in test) == {3: 8, 4: 3_912}


def test_length_split_pairs_and_depths_on_files(shared_data: Path) -> None:
    _check_length_split_measures(
        scan.load("length", "train", shared_data), scan.load("length", "test", shared_data)
    )


def test_length_split_pairs_and_depths_generated() -> None:
    _check_length_split_measures(
        scan.generated("length", "train"), scan.generated("length", "test")
    )


def test_adapter_measures_of_one_command() -> None:
    cmd = "jump around right twice after turn left"
    actions = scan.interpret(cmd)
    assert scan.atoms(cmd, actions) == {
        "jump", "around", "right", "twice", "after", "turn", "left", "I_JUMP", "I_TURN_RIGHT",
        "I_TURN_LEFT",
    }  # fmt: skip
    assert scan.pairs(cmd) == {
        ("jump", "around right"),
        ("jump", "twice"),
        ("around right", "twice"),
        ("turn", "left"),
        ("jump around right twice", "after"),
        ("after", "turn left"),
    }
    assert scan.depth(cmd) == 4 and scan.depth("walk") == 0 and scan.depth("turn left") == 1
    assert scan.out_len(actions) == 17
    assert isinstance(scan.PAIR_CONSTRUCT, str) and "\n" not in scan.PAIR_CONSTRUCT


def test_metric() -> None:
    targets = ["I_WALK", "I_RUN I_RUN", "I_LOOK", "I_JUMP"]
    predictions = ["I_WALK", "I_RUN  I_RUN", "I_LOOK I_LOOK", ""]
    assert scan.metric(targets, predictions) == {"exact_match": 0.5}
    with pytest.raises(ValueError, match="4 targets but 3 predictions"):
        scan.metric(targets, predictions[:3])
