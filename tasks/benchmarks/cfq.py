"""CFQ (Keysers et al. 2020): streamed dataset.json + split files, preprocessing, adapter (s.6)."""

from __future__ import annotations

import dataclasses
import os
import string
from pathlib import Path
from typing import Any

from tasks.data_dir import benchmark_file
from tasks.example import Example
from tasks.jsonstream import iter_array, read_json_file
from tasks.metrics import token_exact_match, token_match

BENCHMARK = "cfq"
SPLITS = (
    "mcd1", "mcd2", "mcd3", "question_pattern_split", "question_complexity_split",
    "query_pattern_split", "query_complexity_split", "random_split",
)
DIVERGENCE_PREFIX = "all_divergence_splits/"  # + e.g. divergence_split_s0.4_d0.5_r0
SUBSETS = {"train": "trainIdxs", "dev": "devIdxs", "test": "testIdxs"}
INPUT_FIELD = "questionPatternModEntities"
TARGET_FIELD = "sparqlPatternModEntities"
PAIR_CONSTRUCT = (
    "unordered pairs of predicate paths (type triples as `a <class>`) whose triples share a node "
    "(variable or entity) in the SPARQL WHERE body"
)


def tokenize_punctuation(text: str) -> str:
    """Question preprocessing (cfq/preprocess.py): spaces around every punctuation character."""
    spaced = "".join(f" {c} " if c in string.punctuation else c for c in text)
    return " ".join(spaced.split())


def preprocess_sparql(query: str) -> str:
    """SPARQL preprocessing (cfq/preprocess.py): count ( * ), strip leading ns:, m. -> m_."""
    tokens = []
    for token in query.replace("count(*)", "count ( * )").split():
        token = token.removeprefix("ns:")
        if token.startswith("m."):
            token = "m_" + token[2:]
        tokens.append(token)
    return " ".join(tokens).replace("\\n", " ")


def clauses(query: str) -> tuple[list[tuple[str, str, str]], list[list[str]]]:
    """(triples, FILTER clauses) of a preprocessed query's WHERE body; ValueError if unparsable."""
    tokens = query.split()
    if "{" not in tokens or tokens[-1] != "}":
        raise ValueError(f"not a CFQ SPARQL query (no WHERE {{ ... }}): {query!r}")
    body = tokens[tokens.index("{") + 1 : -1]
    triples, filters, current = [], [], []
    for tok in [*body, "."]:
        if tok != "." or (current and current[0] == "FILTER" and current.count("(")
                          > current.count(")")):
            current.append(tok)
            continue
        if not current:
            continue
        if current[0] == "FILTER":
            filters.append(current)
        elif len(current) == 3:
            triples.append((current[0], current[1], current[2]))
        else:
            raise ValueError(f"not a CFQ triple {' '.join(current)!r} in {query!r}")
        current = []
    return triples, filters


def _predicate(triple: tuple[str, str, str]) -> str:
    """A triple's predicate token: the whole path, or `a <class>` for a type triple."""
    return f"a {triple[2]}" if triple[1] == "a" else triple[1]


def _is_entity(node: str) -> bool:
    """An entity placeholder (M0..) or a grounded mid (m_...)."""
    return (node[:1] == "M" and node[1:].isdigit()) or node.startswith("m_")


def atoms(query: str) -> frozenset[str]:
    """Predicate paths, entity placeholders, grounded mids and `a <class>` type atoms."""
    triples, _ = clauses(query)
    out = {_predicate(t) for t in triples}
    nodes = [n for s, p, o in triples for n in ((s,) if p == "a" else (s, o))]
    out |= {n for n in nodes if _is_entity(n)}
    return frozenset(out)


def pairs(query: str) -> frozenset[tuple[str, str]]:
    """Sorted predicate pairs of distinct triples sharing a subject or object node."""
    triples, _ = clauses(query)
    nodes = [{s, o} if p != "a" else {s} for s, p, o in triples]
    out = set()
    for i, a in enumerate(triples):
        for j in range(i + 1, len(triples)):
            if nodes[i] & nodes[j]:
                out.add(tuple(sorted((_predicate(a), _predicate(triples[j])))))
    return frozenset(out)


def longest_path(query: str) -> int:
    """Longest simple path (in triples) through the graph whose edges are non-type triples."""
    triples, _ = clauses(query)
    adjacency: dict[str, list[str]] = {}
    for s, p, o in triples:
        if p != "a":
            adjacency.setdefault(s, []).append(o)
            adjacency.setdefault(o, []).append(s)

    def walk(node: str, visited: frozenset[str]) -> int:
        return max((1 + walk(n, visited | {n}) for n in adjacency[node] if n not in visited),
                   default=0)

    return max((walk(n, frozenset({n})) for n in adjacency), default=0)


def depth(query: str, measures: dict[str, Any] | None = None) -> int:
    """sparqlMaximumChainLength, else recursionDepth, else the longest path of the query graph."""
    for key in ("sparqlMaximumChainLength", "recursionDepth"):
        if measures and isinstance(measures.get(key), int):
            return measures[key]
    return longest_path(query)


def out_len(query: str) -> int:
    """Output length: tokens in the preprocessed query."""
    return len(query.split())


def read_split_file(path: str | os.PathLike[str]) -> dict[str, list[int]]:
    """A split file {trainIdxs, devIdxs, testIdxs}: lists of non-negative ints (checked)."""
    data = read_json_file(path, "split file")
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object with {tuple(SUBSETS.values())}")
    out = {}
    for subset, key in SUBSETS.items():
        if key not in data:
            raise ValueError(f"{path}: missing key {key!r}")
        for i, idx in enumerate(data[key]):
            if not isinstance(idx, int) or isinstance(idx, bool) or idx < 0:
                raise ValueError(f"{path}: {key}[{i}] = {idx!r} is not a dataset index")
        out[subset] = list(data[key])
    return out


def split_path(split: str, data_dir: str | os.PathLike[str] | None) -> Path:
    """`<data_dir>/cfq/splits/<split>.json`; ValueError for an unknown split name."""
    if split not in SPLITS and not split.startswith(DIVERGENCE_PREFIX):
        raise ValueError(
            f"unknown CFQ split {split!r}; expected one of {SPLITS} or {DIVERGENCE_PREFIX}<name>"
        )
    return _require(data_dir, f"cfq/splits/{split}.json", f"CFQ split {split}")


def _require(data_dir: str | os.PathLike[str] | None, relpath: str, what: str) -> Path:
    """`<data_dir>/<relpath>`; FileNotFoundError naming it and `compgen-jax data fetch cfq`."""
    try:
        return benchmark_file(data_dir, relpath, what)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{err}; run `compgen-jax data fetch cfq` to download CFQ "
                                "(cfq1.1.tar.gz)") from None


def _example(item: Any, index: int, line: int, dataset_path: str | os.PathLike[str],
             name: str) -> Example:
    """One dataset.json item as an Example (id -1: set per split); ValueError naming the item."""
    where = f"{dataset_path}:{line}: item {index}"
    if not isinstance(item, dict) or not all(
        isinstance(item.get(f), str) for f in (INPUT_FIELD, TARGET_FIELD)
    ):
        raise ValueError(f"{where}: missing {INPUT_FIELD!r} or {TARGET_FIELD!r}")
    query = preprocess_sparql(item[TARGET_FIELD])
    measures = item.get("complexityMeasures")
    try:
        return Example(
            benchmark=BENCHMARK, split=name, id=-1,
            input=tokenize_punctuation(item[INPUT_FIELD]), target=query,
            atoms=atoms(query), pairs=pairs(query), depth=depth(query, measures),
            out_len=out_len(query),
            meta={"source": str(dataset_path), "index": index, "line": line,
                  "complexityMeasures": measures},
        )
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None


def _check_indices(wanted: dict[str, list[int]], count: int,
                   split_file: str | os.PathLike[str], dataset_path: str | os.PathLike[str]
                   ) -> None:
    """ValueError naming the split file if an index is beyond the dataset's `count` items."""
    for subset, ids in wanted.items():
        for i, idx in enumerate(ids):
            if idx >= count:
                raise ValueError(
                    f"{split_file}: {SUBSETS[subset]}[{i}] = {idx} exceeds the dataset "
                    f"({dataset_path} has {count} examples)"
                )


def load_files(
    dataset_path: str | os.PathLike[str],
    split_file: str | os.PathLike[str],
    split_name: str | None = None,
) -> dict[str, list[Example]]:
    """train/dev/test Examples of one split, streaming dataset.json once.

    Ids are positions in the split file's index list; meta["index"] is the dataset index (the
    per-example key across splits) and meta["line"] its line. Only the examples the split uses
    are kept, and of each only the two model fields and `complexityMeasures`.
    """
    wanted = read_split_file(split_file)
    needed = {idx for ids in wanted.values() for idx in ids}
    kept: dict[int, Example] = {}
    count = 0
    name = split_name or Path(split_file).stem
    for index, line, item in iter_array(dataset_path):
        count = index + 1
        if index in needed:
            kept[index] = _example(item, index, line, dataset_path, name)
    _check_indices(wanted, count, split_file, dataset_path)
    return {
        subset: [dataclasses.replace(kept[idx], split=f"{name}:{subset}", id=i)
                 for i, idx in enumerate(ids)]
        for subset, ids in wanted.items()
    }


def check_dataset(dataset_path: str | os.PathLike[str]) -> int:
    """Parse every item of dataset.json as load_files reads the ones it needs (streamed, none
    kept); the number of items, or ValueError naming the file and line."""
    count = 0
    for index, line, item in iter_array(dataset_path):
        _example(item, index, line, dataset_path, "check")
        count = index + 1
    return count


def check_split_file(split_file: str | os.PathLike[str], dataset_path: str | os.PathLike[str],
                     count: int) -> int:
    """Read a split file as load_files does, its indices within the dataset's `count` items;
    the number of indices, or ValueError naming the file."""
    wanted = read_split_file(split_file)
    _check_indices(wanted, count, split_file, dataset_path)
    return sum(map(len, wanted.values()))


def load_paths(split: str, data_dir: str | os.PathLike[str] | None) -> tuple[Path, Path]:
    """(dataset.json, split file) of a canonical split; FileNotFoundError naming a missing one
    and `compgen-jax data fetch cfq`."""
    path = split_path(split, data_dir)
    return _require(data_dir, "cfq/dataset.json", "CFQ dataset"), path


def load(split: str, data_dir: str | os.PathLike[str] | None = None) -> dict[str, list[Example]]:
    """train/dev/test of a canonical split under `<data_dir>/cfq` (dataset.json + splits/)."""
    dataset, path = load_paths(split, data_dir)
    return load_files(dataset, path, split)


def load_example_data(data_dir: str | os.PathLike[str] | None = None) -> dict[str, list[Example]]:
    """The 10-example files shipped with the CFQ code (`cfq/example_data/`)."""
    dataset = benchmark_file(data_dir, "cfq/example_data/dataset.json", "CFQ example data")
    split = benchmark_file(data_dir, "cfq/example_data/split.json", "CFQ example split")
    return load_files(dataset, split, "example")


METRIC_NAME = "exact_match"
match = token_match  # a prediction is correct when its tokens equal the target's
metric = token_exact_match  # seqio metric fn: exact match of the preprocessed query
