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


# ---------------------------------------------------------------------------------------------
# ReCOGS derived from COGS (s.3.1, s.3.2): dev/test against the real files, train augmentation.


@pytest.fixture(scope="module")
def cogs_only(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir holding COGS but no ReCOGS: every ReCOGS split is derived."""
    root = tmp_path_factory.mktemp("cogs_only")
    (root / "cogs").symlink_to(shared_data / "cogs", target_is_directory=True)
    return root


@pytest.mark.parametrize("version", LOCAL_VERSIONS)
@pytest.mark.parametrize("split", recogs.LOCAL_SPLITS)
def test_derived_dev_test_equal_real(loaded: dict, cogs_only: Path, version: str,
                                     split: str) -> None:
    derived = recogs.load(split, cogs_only, version)
    real = loaded[version, split]
    assert len(derived) == len(real) == 3_000
    assert all(e.meta["derived"] for e in derived) and not any(e.meta["derived"] for e in real)
    assert [e.input for e in derived] == [e.input for e in real]
    assert [e.category for e in derived] == [e.category for e in real]
    # every line equal under the ReCOGS metric (renaming- and conjunct-order-invariant) ...
    assert all(recogs.recogs_match(r.target, d.target) for d, r in zip(derived, real, strict=True))
    # ... and in the same conjunct order; positional_index is even byte-identical, while v1's
    # variables are random draws from the pool, so its strings differ
    order = [[p for p, _ in recogs.conjuncts(e.target)] for e in (*derived, *real)]
    assert order[:3_000] == order[3_000:]
    same = sum(d.target == r.target for d, r in zip(derived, real, strict=True))
    assert same == 3_000 if version == "recogs_positional_index" else same < 30
    # the renaming is consistent: shifting the derived v1 variables breaks the match
    if version == "recogs_v1":
        wrong = derived[0].target.replace(" AND agent ( ", " AND agent ( 1", 1)
        assert not recogs.recogs_match(real[0].target, wrong)


def test_real_file_takes_precedence(shared_data: Path, tmp_path: Path) -> None:
    (tmp_path / "cogs").symlink_to(shared_data / "cogs", target_is_directory=True)
    real = tmp_path / "recogs" / "recogs_v1" / "dev.tsv"
    real.parent.mkdir(parents=True)
    line = "A cat ran .\tcat ( 4 ) ; run ( 7 ) AND agent ( 7 , 4 )\tin_distribution\n"
    real.write_text(line * 2, encoding="utf-8")
    dev = recogs.load("dev", tmp_path, "recogs_v1")
    assert len(dev) == 2 and not dev[0].meta["derived"] and dev[0].meta["source"] == str(real)
    test = recogs.load("test", tmp_path, "recogs_v1")
    assert len(test) == 3_000 and test[0].meta["derived"]
    assert test[0].meta["source"] == str(tmp_path / "cogs" / "test.tsv")
    assert recogs.source("gen", tmp_path, "recogs_v2") == ("derived", tmp_path / "cogs" / "gen.tsv")
    with pytest.raises(FileNotFoundError, match=r"recogs_v1/train\.tsv.*cogs/train\.tsv"):
        recogs.load("train", tmp_path / "nowhere", "recogs_v1")


def test_derived_pos_train_indices_and_concatenations(cogs_only: Path, shared_data: Path) -> None:
    train = recogs.load("train", cogs_only, "recogs_positional_index")
    cogs_train = cogs.load("train", shared_data)
    by_category: dict[str, int] = {}
    for e in train:
        by_category[e.category] = by_category.get(e.category, 0) + 1
    # one copy of COGS train (24,155) + 3,072 concatenations, none duplicated
    assert len(train) == 24_155 + recogs.CONCATENATIONS
    assert by_category["concat"] == 3_072 and by_category["primitive"] == 143
    assert [e.input for e in train[:24_155]] == [e.input for e in cogs_train]
    # independent truth: a declared noun/name index points at that very word of the sentence
    for e in train:
        if e.meta["lexicon"]:
            continue
        words = e.input.lower().split()
        for decl in e.target.split(" ; ")[:-1]:  # `[*] noun ( i )` / `Name ( i )`
            tokens = decl.split()
            assert words[int(tokens[-2])] == tokens[-4].lower(), (e.input, decl)
    # a concatenation means its three sentences: its pairs/atoms are the union of theirs
    by_sentence = {e.input: e for e in cogs_train}
    longest = sorted(cogs_train, key=lambda e: len(e.input), reverse=True)
    first = train[24_155]
    parts = longest[:3]
    assert first.input.split()[0] == parts[0].input.split()[0]
    assert first.pairs == frozenset().union(*(by_sentence[p.input].pairs for p in parts))
    assert first.atoms == frozenset().union(*(p.atoms for p in parts))
    assert len(first.input.split()) == sum(len(p.input.split()) for p in parts) - 2


def test_derived_v1_train_renamed_copies(cogs_only: Path) -> None:
    train = recogs.load("train", cogs_only, "recogs_v1")
    pos = {(e.input, e.category): e.target
           for e in recogs.load("train", cogs_only, "recogs_positional_index")}
    length_ood = [e for e in train if e.category == "length_ood"]
    assert len(length_ood) == recogs.TRAIN_COPIES * recogs.CONCATENATIONS
    copies: dict[str, list[str]] = {}
    for e in train:
        if e.category not in ("length_ood", "primitive"):
            copies.setdefault(e.input, []).append(e.target)
    # five renamings of each sentence (fewer only where two draws coincide and were deduplicated)
    assert max(map(len, copies.values())) == recogs.TRAIN_COPIES
    assert sum(map(len, copies.values())) > 0.99 * recogs.TRAIN_COPIES * 24_012
    for sentence, targets in list(copies.items())[::40]:
        reference = pos[sentence, "in_distribution"] if (sentence, "in_distribution") in pos \
            else next(t for (s, _), t in pos.items() if s == sentence)
        assert all(recogs.recogs_match(reference, t) for t in targets)
    numbers = {t for e in length_ood for t in e.target.split() if t.isdigit()}
    assert numbers <= set(recogs.VARIABLE_POOL)
    # load analyses each LF shape once: every copy's measures are those of its own LF
    for e in train[::97]:
        m = recogs.lf_measures(e.target)
        assert (e.atoms, e.pairs, e.depth) == (m.atoms, m.pairs, max(m.cp_depth, m.pp_depth))
        assert (e.meta["cp_depth"], e.meta["pp_depth"]) == (m.cp_depth, m.pp_depth)


def test_canonical_is_one_string_per_renaming() -> None:
    lf = "* cat ( 7 ) ; dog ( 3 ) ; see ( 12 ) AND agent ( 12 , 7 ) AND theme ( 12 , 3 )"
    renamed = "* cat ( 40 ) ; dog ( 0 ) ; see ( 5 ) AND agent ( 5 , 40 ) AND theme ( 5 , 0 )"
    want = "* cat ( 0 ) ; dog ( 1 ) ; see ( 2 ) AND agent ( 2 , 0 ) AND theme ( 2 , 1 )"
    assert recogs.canonical(lf) == recogs.canonical(renamed) == want
    swapped = "* cat ( 3 ) ; dog ( 7 ) ; see ( 12 ) AND agent ( 12 , 7 ) AND theme ( 12 , 3 )"
    assert recogs.canonical(swapped) != want  # the cat is the theme now: another graph
    assert recogs.canonical("LAMBDA a . Emma ( a )") == "LAMBDA a . Emma ( a )"


def test_lexicon_entries() -> None:
    touch = "LAMBDA a . LAMBDA b . LAMBDA e . touch . agent ( e , b ) AND touch . theme ( e , a )"
    assert recogs.rewrite("touch", touch) == (
        "LAMBDA a . LAMBDA b . LAMBDA e . touch ( e ) AND agent ( e , b ) AND theme ( e , a )"
    )
    assert recogs.rewrite("ball", "LAMBDA a . ball ( a )") == "LAMBDA a . ball ( a )"
    assert recogs.rewrite("Emma", "Emma") == "LAMBDA a . Emma ( a )"
    graph, lexicon = recogs.parse(recogs.rewrite("touch", touch))
    assert lexicon and recogs.atoms(recogs.rewrite("touch", touch)) == {"touch"}


def test_rewrite_hand_built() -> None:
    sentence = "The girl offered the weapon beside a machine to a chicken ."
    lf = ("* girl ( x _ 1 ) ; * weapon ( x _ 4 ) ; offer . agent ( x _ 2 , x _ 1 ) AND "
          "offer . theme ( x _ 2 , x _ 4 ) AND offer . recipient ( x _ 2 , x _ 10 ) AND "
          "weapon . nmod . beside ( x _ 4 , x _ 7 ) AND machine ( x _ 7 ) AND chicken ( x _ 10 )")
    decls = "* girl ( 1 ) ; * weapon ( 4 ) ; machine ( 7 ) ; chicken ( 10 ) ; "
    verb = "offer ( 2 ) AND agent ( 2 , 1 ) AND theme ( 2 , 4 ) AND recipient ( 2 , 10 )"
    nmod = "nmod . beside ( 4 , 7 )"
    assert recogs.rewrite(sentence, lf) == decls + verb + " AND " + nmod
    assert recogs.rewrite(sentence, lf, "recogs_v1") == decls + nmod + " AND " + verb
    with pytest.raises(ValueError, match="'Emma' occurs 2 times"):
        recogs.rewrite("Emma saw Emma .", "see . agent ( x _ 1 , Emma ) AND see . theme "
                       "( x _ 1 , Emma )")
