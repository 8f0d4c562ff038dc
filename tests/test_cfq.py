"""CFQ: streamed dataset.json, split files, preprocessing, adapter measures (fixture + sample)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tasks import jsonstream, registry
from tasks.benchmarks import cfq

FIXTURES = Path(__file__).parent / "fixtures"
EXAMPLE_QUERY = (  # BENCHMARKS.md s.6.2, google-research cfq/example_data item 0
    "SELECT count(*) WHERE {\n?x0 ns:film.actor.film/ns:film.performance.character M1 .\n"
    "?x0 ns:film.editor.film M0 .\n"
    "?x0 ns:film.producer.film|ns:film.production_company.films M0 .\n"
    "?x0 ns:people.person.gender ns:m.02zsn\n}"
)


def _data_dir(tmp_path: Path, dataset: str | None = None, split: dict | None = None) -> Path:
    """A copy of the fixture data dir with dataset.json / splits/mcd1.json optionally replaced."""
    shutil.copytree(FIXTURES / "cfq", tmp_path / "cfq")
    if dataset is not None:
        (tmp_path / "cfq" / "dataset.json").write_text(dataset, encoding="utf-8")
    if split is not None:
        (tmp_path / "cfq" / "splits" / "mcd1.json").write_text(json.dumps(split))
    return tmp_path


def test_preprocessing_documented_example() -> None:
    assert cfq.tokenize_punctuation("Did M1 's female actor edit M0?") == (
        "Did M1 ' s female actor edit M0 ?"
    )
    query = cfq.preprocess_sparql(EXAMPLE_QUERY)
    assert query == (
        "SELECT count ( * ) WHERE { ?x0 film.actor.film/ns:film.performance.character M1 . "
        "?x0 film.editor.film M0 . ?x0 film.producer.film|ns:film.production_company.films M0 . "
        "?x0 people.person.gender m_02zsn }"
    )
    assert cfq.out_len(query) == 23  # 7 + 4 triples x 3 + 3 dots + 1
    assert len(cfq.pairs(query)) == 6  # four triples sharing ?x0
    assert cfq.atoms(query) == {
        "film.actor.film/ns:film.performance.character", "film.editor.film",
        "film.producer.film|ns:film.production_company.films", "people.person.gender",
        "M0", "M1", "m_02zsn",
    }
    assert cfq.longest_path(query) == 2


def test_hand_worked_fixture_measures() -> None:
    subsets = cfq.load("mcd1", FIXTURES)
    sequel = subsets["test"][0]  # type triple + DISTINCT
    assert sequel.input == "Who directed a sequel of M0 ?"
    assert sequel.target == (
        "SELECT DISTINCT ?x0 WHERE { ?x0 film.director.film ?x1 . ?x1 a film.film . "
        "?x1 film.film.prequel M0 }"
    )
    assert sequel.atoms == {"film.director.film", "a film.film", "film.film.prequel", "M0"}
    assert sequel.pairs == {
        ("a film.film", "film.director.film"), ("a film.film", "film.film.prequel"),
        ("film.director.film", "film.film.prequel"),
    }
    assert sequel.depth == 2 and sequel.out_len == 17
    spouse = subsets["train"][0]  # FILTER clause; same predicate twice
    assert spouse.pairs == {("people.person.spouse_s", "people.person.spouse_s")}
    assert spouse.atoms == {"people.person.spouse_s", "M0", "M1"}
    produced = subsets["dev"][0]  # no complexityMeasures: longest path fallback
    assert produced.depth == 1 and produced.pairs == frozenset()


def test_load_order_ids_and_meta() -> None:
    subsets = cfq.load("mcd1", FIXTURES)
    assert {k: [ex.meta["index"] for ex in v] for k, v in subsets.items()} == {
        "train": [2, 0], "dev": [3], "test": [1]
    }
    assert [ex.id for ex in subsets["train"]] == [0, 1]
    assert subsets["train"][1].split == "mcd1:train"
    assert subsets["train"][1].meta["complexityMeasures"]["sparqlNumConstraints"] == 3
    assert subsets["train"][1].meta["line"] == 2


def test_streaming_is_chunk_independent(monkeypatch: pytest.MonkeyPatch) -> None:
    whole = cfq.load("mcd1", FIXTURES)
    monkeypatch.setattr(jsonstream, "CHUNK_CHARS", 7)
    assert cfq.load("mcd1", FIXTURES) == whole


def test_truncated_dataset_names_file_and_line(tmp_path: Path) -> None:
    text = (FIXTURES / "cfq" / "dataset.json").read_text()
    root = _data_dir(tmp_path, dataset=text[: len(text) * 2 // 3])
    with pytest.raises(ValueError, match=r"dataset\.json:\d+: malformed or truncated JSON in item"):
        cfq.load("mcd1", root)


def test_split_index_beyond_dataset(tmp_path: Path) -> None:
    root = _data_dir(tmp_path, split={"trainIdxs": [0, 1], "devIdxs": [2], "testIdxs": [3, 4]})
    with pytest.raises(ValueError, match=r"mcd1\.json: testIdxs\[1\] = 4 exceeds the dataset"):
        cfq.load("mcd1", root)


def test_bad_split_files(tmp_path: Path) -> None:
    root = _data_dir(tmp_path, split={"trainIdxs": [0], "devIdxs": ["x"], "testIdxs": []})
    with pytest.raises(ValueError, match=r"mcd1\.json: devIdxs\[0\] = 'x' is not a dataset index"):
        cfq.load("mcd1", root)
    (root / "cfq" / "splits" / "mcd1.json").write_text('{"trainIdxs": [0]')
    with pytest.raises(ValueError, match=r"mcd1\.json:1: malformed split file"):
        cfq.load("mcd1", root)


def test_unknown_and_missing_split(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown CFQ split 'mcd4'"):
        cfq.load("mcd4", FIXTURES)
    with pytest.raises(FileNotFoundError, match=r"cfq/splits/mcd2\.json"):
        cfq.load("mcd2", FIXTURES)


def test_missing_field_names_item(tmp_path: Path) -> None:
    items = json.loads((FIXTURES / "cfq" / "dataset.json").read_text())
    del items[1]["sparqlPatternModEntities"]
    root = _data_dir(tmp_path, dataset=json.dumps(items, indent=2))
    with pytest.raises(ValueError, match=r"dataset\.json:\d+: item 1: missing"):
        cfq.load("mcd1", root)


def test_register_fixture_tasks() -> None:
    assert registry.register_cfq_tasks(FIXTURES) == ["cfq_mcd1"]
    pool = registry.tokenized_pool("cfq_mcd1", "train")
    assert pool["example_id"].tolist() == [0, 1]
    vocab = registry.get_vocabulary("cfq_mcd1")
    assert vocab.decode(pool["targets"][0].tolist()).startswith("SELECT count ( * )")


def test_real_example_data(shared_data: Path) -> None:
    if not (shared_data / "cfq" / "example_data").is_dir():
        pytest.skip("CFQ example data not present")
    subsets = cfq.load_example_data(shared_data)
    assert {k: len(v) for k, v in subsets.items()} == {"train": 6, "dev": 2, "test": 2}
    first = subsets["test"][1]  # dataset index 0: the documented example
    assert first.meta["index"] == 0
    assert first.input == "Did M1 ' s female actor edit and produce M0"
    assert first.target == cfq.preprocess_sparql(EXAMPLE_QUERY)
    assert len(first.pairs) == 6 and first.out_len == 23
    for exs in subsets.values():
        for ex in exs:
            assert ex.atoms and ex.depth >= 1 and ex.out_len == len(ex.target.split())
    assert "cfq_example_data" in registry.register_cfq_tasks(shared_data)
