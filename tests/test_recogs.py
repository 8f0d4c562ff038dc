"""ReCOGS adapter, metric and seqio tasks, checked against the real dev/test files and COGS."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tasks import registry
from tasks.benchmarks import cogs, recogs

LOCAL_VERSIONS = ("recogs_v1", "recogs_positional_index")


@pytest.fixture(scope="module")
def loaded(shared_data: Path) -> dict[tuple[str, str], list]:
    """COGS ("cogs") and both local ReCOGS versions, dev and test."""
    out = {("cogs", s): cogs.load(s, shared_data) for s in recogs.LOCAL_SPLITS}
    for version in LOCAL_VERSIONS:
        out.update(
            {(version, s): recogs.load(s, shared_data, version) for s in recogs.LOCAL_SPLITS}
        )
    return out


@pytest.mark.parametrize("version", LOCAL_VERSIONS)
@pytest.mark.parametrize("split", recogs.LOCAL_SPLITS)
def test_lines_align_with_cogs(loaded: dict, shared_data: Path, version: str, split: str) -> None:
    exs, ref = loaded[version, split], loaded["cogs", split]
    path = shared_data / "recogs" / version / f"{split}.tsv"
    assert len(exs) == 3_000 == len(path.read_text(encoding="utf-8").splitlines())
    assert [e.id for e in exs] == list(range(3_000))
    assert [e.input for e in exs] == [e.input for e in ref]
    assert {e.category for e in exs} == {"in_distribution"}
    assert exs[0].benchmark == "recogs" and exs[0].meta["version"] == version
    # s.3.3: pairs (and atoms, depths) agree with COGS on every dev/test line
    assert [e.pairs for e in exs] == [e.pairs for e in ref]
    assert [e.atoms for e in exs] == [e.atoms for e in ref]
    assert [e.depth for e in exs] == [e.depth for e in ref]


def test_lf_length_and_positional_indices(loaded: dict) -> None:
    lengths = [e.out_len for e in loaded["recogs_v1", "dev"]]
    assert max(lengths) == 118 and round(float(np.mean(lengths)), 1) == 35.8
    nodes = inside = 0
    for e in loaded["recogs_positional_index", "dev"]:
        graph, _ = recogs.parse(e.target)
        nodes += len(graph.labels)
        inside += sum(int(key[1]) < len(e.input.split()) for key in graph.labels)
    assert nodes == inside == 10_540


@pytest.mark.parametrize(("split", "reordered"), [("dev", 650), ("test", 656)])
def test_v1_equals_pos_up_to_renaming_and_order(loaded: dict, split: str, reordered: int) -> None:
    v1, pos = loaded["recogs_v1", split], loaded["recogs_positional_index", split]
    assert all(recogs.recogs_match(a.target, b.target) for a, b in zip(v1, pos, strict=True))
    assert all(recogs.recogs_match(b.target, a.target) for a, b in zip(v1, pos, strict=True))
    order = [[p for p, _ in recogs.conjuncts(e.target)] for e in (*v1, *pos)]
    assert sum(a != b for a, b in zip(order[:3000], order[3000:], strict=True)) == reordered
    # neighbouring lines mean different things
    assert not any(
        recogs.recogs_match(a.target, b.target) for a, b in zip(v1[:-1], v1[1:], strict=True)
    )


GOLD = (
    "Liam ( 30 ) ; box ( 25 ) ; girl ( 21 ) ; hope ( 33 ) AND agent ( 33 , 30 ) AND "
    "ccomp ( 33 , 24 ) AND burn ( 24 ) AND theme ( 24 , 25 ) AND agent ( 24 , 21 )"
)


@pytest.mark.parametrize(
    ("prediction", "correct"),
    [
        (GOLD, True),
        # renamed variables + reordered conjuncts
        (
            "girl ( 9 ) ; Liam ( 0 ) ; box ( 4 ) ; burn ( 6 ) AND agent ( 6 , 9 ) AND "
            "theme ( 6 , 4 ) AND hope ( 1 ) AND ccomp ( 1 , 6 ) AND agent ( 1 , 0 )",
            True,
        ),
        # wrong binding: the box burned the girl (agent and theme swapped)
        (
            GOLD.replace(
                "theme ( 24 , 25 ) AND agent ( 24 , 21 )", "theme ( 24 , 21 ) AND agent ( 24 , 25 )"
            ),
            False,
        ),
        # two variables collapsed into one (renaming not bijective)
        (GOLD.replace("30", "21"), False),
        # a conjunct dropped, duplicated, or definiteness changed
        (GOLD.replace(" AND agent ( 24 , 21 )", ""), False),
        (GOLD + " AND agent ( 24 , 21 )", False),
        (GOLD.replace("box", "* box"), False),
        ("Liam ( 30 ) ; box (", False),
        ("", False),
    ],
)
def test_recogs_match_hand_built(prediction: str, correct: bool) -> None:
    assert recogs.recogs_match(GOLD, prediction) is correct


def test_recogs_match_repeated_lemmas() -> None:
    gold = "* cat ( 1 ) ; cat ( 5 ) ; see ( 2 ) AND agent ( 2 , 1 ) AND theme ( 2 , 5 )"
    swapped = "* cat ( 5 ) ; cat ( 1 ) ; see ( 2 ) AND agent ( 2 , 5 ) AND theme ( 2 , 1 )"
    assert recogs.recogs_match(gold, swapped)
    wrong = "* cat ( 1 ) ; cat ( 5 ) ; see ( 2 ) AND agent ( 2 , 5 ) AND theme ( 2 , 1 )"
    assert not recogs.recogs_match(gold, wrong)
    symmetric = (
        "cat ( 1 ) ; cat ( 3 ) ; run ( 2 ) AND agent ( 2 , 1 ) AND run ( 4 ) AND agent ( 4 , 3 )"
    )
    renamed = (
        "cat ( 7 ) ; cat ( 8 ) ; run ( 9 ) AND agent ( 6 , 8 ) AND run ( 6 ) AND agent ( 9 , 7 )"
    )
    assert recogs.recogs_match(symmetric, renamed)


def test_metric() -> None:
    renamed = GOLD.replace("30", "99")
    out = recogs.metric([GOLD, GOLD], [renamed, "nonsense"])
    assert out == {"exact_match": 0.5, "string_exact_match": 0.0}
    with pytest.raises(ValueError):
        recogs.metric([], [])


def test_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "recogs" / "recogs_v1" / "dev.tsv"
    path.parent.mkdir(parents=True)
    good = "A cat ran .\tcat ( 4 ) ; run ( 7 ) AND agent ( 7 , 4 )\tin_distribution"
    bad = "A cat ran .\tcat ( 4 ) ; run ( 7 ) AND agent ( 7 , 4 , 1 )\tin_distribution"
    path.write_text(f"{good}\n{good}\n{bad}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=f"{path}:3: "):
        recogs.load("dev", tmp_path)
    path.write_text(f"{good}\nno tabs here\n", encoding="utf-8")
    with pytest.raises(ValueError, match=f"{path}:2: expected 3"):
        recogs.load("dev", tmp_path)
    with pytest.raises(FileNotFoundError, match="test.tsv"):
        recogs.load("test", tmp_path)
    with pytest.raises(ValueError, match="unknown ReCOGS version"):
        recogs.load("dev", tmp_path, "recogs_v3")


def test_registered_recogs_tasks_tokenize(shared_data: Path, tmp_path: Path) -> None:
    (tmp_path / "recogs").symlink_to(shared_data / "recogs", target_is_directory=True)
    names = registry.register_cogs_tasks(tmp_path)  # no cogs/ here: ReCOGS only
    assert names == ["recogs_v1", "recogs_pos"]
    for name in names:
        assert registry.get_examples(name, "dev")[0].meta["version"] in LOCAL_VERSIONS
        for split in recogs.LOCAL_SPLITS:
            pool = registry.tokenized_pool(name, split)
            assert pool["inputs"].shape[0] == pool["targets"].shape[0] == 3_000
            assert pool["example_id"].tolist() == list(range(3_000))
            assert not (pool["targets"] == registry.get_vocabulary(name).unk_id).any()
    pool = registry.tokenized_pool("recogs_pos", "dev")
    assert pool["targets"].shape[1] == 119  # longest dev LF (118 tokens) + EOS
