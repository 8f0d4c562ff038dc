"""COGS (Kim & Linzen 2020), original LF and variable-free formats: loader + adapter (s.1-2).

Both formats are parsed into one small semantic graph (nodes labelled with lemmas, edges labelled
with a role or `nmod.<prep>`), from which atoms, thematic-binding pairs and depths are read, so
the two formats give identical measures wherever they express the same meaning.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from tasks.data_dir import benchmark_file
from tasks.example import Example
from tasks.metrics import (
    Match,
    category_groups,
    difficulty_groups,
    group_means,
    token_exact_match,
    token_match,
)

BENCHMARK = "cogs"
FORMATS = ("lf", "variable_free")
SPLITS = ("train", "dev", "test", "gen")
FORMAT_DIRS = {"lf": "cogs", "variable_free": "cogs_variable_free"}
PAIR_CONSTRUCT = (
    "thematic bindings: (filler, verb.role) per role edge (filler = noun lemma, proper name or "
    "embedded verb for ccomp/xcomp) and (dependent_noun, head_noun.nmod.prep) per PP modifier"
)

# The 21 generalization categories (BENCHMARKS.md s.1.4): 18 lexical ("easy"), 3 structural
# ("hard"), in the order of that table.
LEXICAL_CATEGORIES = (
    "subj_to_obj_common",
    "subj_to_obj_proper",
    "obj_to_subj_common",
    "obj_to_subj_proper",
    "prim_to_subj_common",
    "prim_to_subj_proper",
    "prim_to_obj_common",
    "prim_to_obj_proper",
    "prim_to_inf_arg",
    "active_to_passive",
    "passive_to_active",
    "obj_omitted_transitive_to_transitive",
    "unacc_to_transitive",
    "do_dative_to_pp_dative",
    "pp_dative_to_do_dative",
    "only_seen_as_transitive_subj_as_unacc_subj",
    "only_seen_as_unacc_subj_as_unerg_subj",
    "only_seen_as_unacc_subj_as_obj_omitted_transitive_subj",
)
STRUCTURAL_CATEGORIES = ("obj_pp_to_subj_pp", "cp_recursion", "pp_recursion")
GEN_CATEGORIES = LEXICAL_CATEGORIES + STRUCTURAL_CATEGORIES
CATEGORY_TYPE = {
    **{c: "lexical" for c in LEXICAL_CATEGORIES},
    **{c: "structural" for c in STRUCTURAL_CATEGORIES},
}
CATEGORY_DIFFICULTY = {
    **{c: "easy" for c in LEXICAL_CATEGORIES},
    **{c: "hard" for c in STRUCTURAL_CATEGORIES},
}
GEN_CATEGORY_SIZE = 1_000
SPLIT_SIZES = {"train": 24_155, "dev": 3_000, "test": 3_000, "gen": 21_000}
NON_GEN_CATEGORIES = ("in_distribution", "primitive")
EXPOSURE_PREFIX = "exposure_example_"
LEXICON_CATEGORY = "primitive"


def known_category(category: str) -> bool:
    """Whether `category` is a COGS category (gen, in_distribution, primitive, exposure_*)."""
    return (
        category in CATEGORY_TYPE
        or category in NON_GEN_CATEGORIES
        or (category.startswith(EXPOSURE_PREFIX) and len(category) > len(EXPOSURE_PREFIX))
    )


# ---------------------------------------------------------------------------------------------
# The semantic graph shared by COGS, variable-free COGS and ReCOGS.


class Graph(NamedTuple):
    """Nodes (key -> lemma, None if unlabelled) and edges (head, relation, child).

    A relation is a role name (`agent`, `theme`, `ccomp`, ...) or `nmod.<prep>`.
    """

    labels: dict[object, str | None]
    edges: list[tuple[object, str, object]]


class Measures(NamedTuple):
    """The adapter measures of one LF."""

    atoms: frozenset[str]
    pairs: frozenset[tuple[str, str]]
    cp_depth: int
    pp_depth: int


def _longest_chain(graph: Graph, keep: Callable[[str], bool]) -> int:
    """Number of edges on the longest path using only edges whose relation passes `keep`."""
    children: dict[object, list[object]] = {}
    for head, rel, child in graph.edges:
        if keep(rel):
            children.setdefault(head, []).append(child)
    memo: dict[object, int] = {}

    def longest(node: object, active: frozenset) -> int:
        if node in memo:
            return memo[node]
        if node in active:
            raise ValueError("cyclic modifier/complement structure in LF")
        best = max((1 + longest(c, active | {node}) for c in children.get(node, ())), default=0)
        memo[node] = best
        return best

    return max((longest(n, frozenset()) for n in children), default=0)


def measures(graph: Graph, allow_unlabelled: bool = False) -> Measures:
    """Atoms, pairs and (cp, pp) depths of a semantic graph (see PAIR_CONSTRUCT).

    An edge whose head or child has no label raises ValueError unless `allow_unlabelled`
    (lexicon lambda terms, whose arguments are bound variables); such edges give no pair.
    """
    atoms = {label for label in graph.labels.values() if label is not None}
    pairs = set()
    for head, rel, child in graph.edges:
        if rel.startswith("nmod."):
            atoms.add(rel.removeprefix("nmod."))
        h, c = graph.labels.get(head), graph.labels.get(child)
        if h is None or c is None:
            if allow_unlabelled:
                continue
            raise ValueError(f"edge {rel} has an argument bound to no predicate")
        pairs.add((c, f"{h}.{rel}"))
    return Measures(
        frozenset(atoms),
        frozenset(pairs),
        _longest_chain(graph, lambda rel: rel == "ccomp"),
        _longest_chain(graph, lambda rel: rel.startswith("nmod.")),
    )


def _set_label(labels: dict[object, str | None], key: object, label: str) -> None:
    """Label node `key`; a second, different label for the same node is an error."""
    old = labels.get(key)
    if old is not None and old != label:
        raise ValueError(f"variable {key} is both {old!r} and {label!r}")
    labels[key] = label


# ---------------------------------------------------------------------------------------------
# Original LF: `* noun ( x _ i ) ; ... body` with body conjuncts joined by AND.


def split_conjuncts(lf: str) -> list[tuple[list[str], list[list[str]]]]:
    """Conjuncts of an LF joined by `;` / `AND`, each as (predicate tokens, argument tokens)."""
    out = []
    current: list[str] = []
    tokens = lf.split()
    for tok in [*tokens, "AND"]:
        if tok in (";", "AND"):
            if not current:
                raise ValueError(f"empty conjunct before {tok!r}")
            if "(" not in current or current[-1] != ")" or current.count("(") != 1:
                raise ValueError(f"malformed conjunct {' '.join(current)!r}")
            i = current.index("(")
            pred, inner = current[:i], current[i + 1 : -1]
            args: list[list[str]] = [[]]
            for t in inner:
                if t == ",":
                    args.append([])
                else:
                    args[-1].append(t)
            if not pred or any(not a for a in args):
                raise ValueError(f"malformed conjunct {' '.join(current)!r}")
            out.append((pred, args))
            current = []
        else:
            current.append(tok)
    return out


def parse_lf(lf: str) -> tuple[Graph, bool]:
    """Semantic graph of an original-format LF; second value: it is a lexicon lambda term."""
    tokens = lf.split()
    lambda_vars = set()
    while len(tokens) >= 3 and tokens[0] == "LAMBDA" and tokens[2] == ".":
        lambda_vars.add(tokens[1])
        tokens = tokens[3:]
    if len(tokens) == 1 and not lambda_vars:  # a proper-name lexicon entry: `Emma`
        if tokens[0] in ("(", ")", ",", ";", "AND", "*", "."):
            raise ValueError(f"malformed LF {lf!r}")
        return Graph({("const", tokens[0]): tokens[0]}, []), True
    labels: dict[object, str | None] = {}
    edges: list[tuple[object, str, object]] = []

    def arg_key(arg: list[str]) -> object:
        if len(arg) == 3 and arg[0] == "x" and arg[1] == "_" and arg[2].isdigit():
            key = ("var", int(arg[2]))
        elif len(arg) == 1 and arg[0] in lambda_vars:
            key = ("lambda", arg[0])
        elif len(arg) == 1 and arg[0][:1].isupper():
            key = ("const", arg[0])
            labels[key] = arg[0]
        else:
            raise ValueError(f"bad argument {' '.join(arg)!r}")
        labels.setdefault(key, None)
        return key

    for pred, args in split_conjuncts(" ".join(tokens)):
        body = pred[1:] if pred[0] == "*" else pred
        keys = [arg_key(a) for a in args]
        if len(body) == 1 and len(keys) == 1:  # noun ( x )
            _set_label(labels, keys[0], body[0])
        elif len(body) == 3 and body[1] == "." and len(keys) == 2 and pred[0] != "*":
            _set_label(labels, keys[0], body[0])  # verb . role ( e , a )
            edges.append((keys[0], body[2], keys[1]))
        elif len(body) == 5 and body[1] == body[3] == "." and body[2] == "nmod" and len(keys) == 2:
            _set_label(labels, keys[0], body[0])  # noun . nmod . prep ( i , j )
            edges.append((keys[0], f"nmod.{body[4]}", keys[1]))
        else:
            raise ValueError(f"unknown predicate shape {' '.join(pred)!r} with {len(keys)} args")
    return Graph(labels, edges), bool(lambda_vars)


# ---------------------------------------------------------------------------------------------
# Variable-free: expr := ['*'] HEAD [ '(' key '=' expr (',' key '=' expr)* ')' ]


def parse_variable_free(lf: str) -> tuple[Graph, bool]:
    """Semantic graph of a variable-free LF (lambda lexicon lines parse as in the LF format).

    The controller subject that xcomp structures copy (BENCHMARKS.md s.2 item 3) is merged back
    into one node: a role argument of an xcomp verb that repeats, token for token, a role argument
    of the governing verb is that argument, so its copied PP subtree adds no extra nodes.
    """
    if lf.startswith("LAMBDA "):
        return parse_lf(lf)
    tokens = lf.split()
    labels: dict[object, str | None] = {}
    edges: list[tuple[object, str, object]] = []
    pos = 0

    def expect(tok: str) -> None:
        nonlocal pos
        if pos >= len(tokens) or tokens[pos] != tok:
            got = tokens[pos] if pos < len(tokens) else "end of LF"
            raise ValueError(f"expected {tok!r} at token {pos}, got {got!r}")
        pos += 1

    def word() -> str:
        nonlocal pos
        if pos >= len(tokens) or tokens[pos] in ("(", ")", ",", "=", "*", "."):
            got = tokens[pos] if pos < len(tokens) else "end of LF"
            raise ValueError(f"expected a word at token {pos}, got {got!r}")
        pos += 1
        return tokens[pos - 1]

    def expr(siblings: dict[str, tuple[int, int, int]] | None) -> tuple[int, int, int]:
        """Parse one expr; returns (node key, start, end) token span."""
        nonlocal pos
        start = pos
        if pos < len(tokens) and tokens[pos] == "*":
            pos += 1
        key = len(labels)
        labels[key] = word()
        if pos < len(tokens) and tokens[pos] == "(":
            pos += 1
            args: dict[str, tuple[int, int, int]] = {}
            while True:
                rel = word()
                if rel == "nmod":
                    expect(".")
                    rel = f"nmod.{word()}"
                expect("=")
                child = expr(args if rel == "xcomp" else None)
                args[rel] = child
                edges.append((key, rel, child[0]))
                if pos < len(tokens) and tokens[pos] == ",":
                    pos += 1
                    continue
                expect(")")
                break
            if siblings is not None:  # we are an xcomp verb: merge copies of the controller
                for rel, (child, c0, c1) in args.items():
                    for _, (ctrl, s0, s1) in siblings.items():
                        if not rel.startswith("nmod.") and tokens[c0:c1] == tokens[s0:s1]:
                            _merge(child, ctrl)
        return key, start, pos

    def _merge(copy: int, original: int) -> None:
        """Redirect edges into `copy` to `original` and drop the copy's subtree."""
        doomed = {copy}
        frontier = [copy]
        while frontier:
            node = frontier.pop()
            for head, _, child in edges:
                if head == node and child not in doomed:
                    doomed.add(child)
                    frontier.append(child)
        edges[:] = [(h, r, original if c == copy else c) for h, r, c in edges if h not in doomed]
        for node in doomed:
            del labels[node]

    expr(None)
    if pos != len(tokens):
        raise ValueError(f"trailing tokens after the LF at token {pos}: {tokens[pos]!r}")
    return Graph(labels, edges), False


# ---------------------------------------------------------------------------------------------
# Adapter


def _parse(lf: str, fmt: str) -> tuple[Graph, bool]:
    """Graph of an LF in format `fmt`."""
    _check_format(fmt)
    return parse_lf(lf) if fmt == "lf" else parse_variable_free(lf)


def analysed(graph_and_lexicon: tuple[Graph, bool]) -> tuple[Measures, bool]:
    """A parsed LF's measures (unlabelled arguments allowed in lexicon lambda terms) and whether
    it is a lexicon term."""
    graph, is_lexicon = graph_and_lexicon
    return measures(graph, allow_unlabelled=is_lexicon), is_lexicon


def lf_measures(lf: str, fmt: str = "lf") -> Measures:
    """Atoms, pairs, cp depth and pp depth of one LF in format `fmt` ('lf' / 'variable_free')."""
    return analysed(_parse(lf, fmt))[0]


def atoms(lf: str, fmt: str = "lf") -> frozenset[str]:
    """Content lemmas of an LF: nouns, verbs, proper names and prepositions."""
    return lf_measures(lf, fmt).atoms


def pairs(lf: str, fmt: str = "lf") -> frozenset[tuple[str, str]]:
    """Thematic-binding pairs of an LF (see PAIR_CONSTRUCT)."""
    return lf_measures(lf, fmt).pairs


def depth(lf: str, fmt: str = "lf") -> int:
    """max(cp_depth, pp_depth): the longer of the ccomp chain and the nmod chain."""
    m = lf_measures(lf, fmt)
    return max(m.cp_depth, m.pp_depth)


def out_len(lf: str) -> int:
    """Output length: the number of whitespace tokens in the LF."""
    return len(lf.split())


def _check_format(fmt: str) -> None:
    """Raise ValueError naming the valid formats if `fmt` is unknown."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown COGS format {fmt!r}; expected one of {FORMATS}")


def read_tsv(
    path: str | os.PathLike[str], check_category: Callable[[str], bool] = known_category
) -> list[tuple[str, str, str]]:
    """(sentence, LF, category) rows of a 3-column TSV; bad lines raise ValueError path:line,
    an empty file ValueError path."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, start=1):
            line = raw.rstrip("\r\n")
            fields = line.split("\t")
            if len(fields) != 3 or not all(x.strip() for x in fields):
                raise ValueError(
                    f"{path}:{lineno}: expected 3 non-empty tab-separated fields "
                    f"(sentence, LF, category), got {len(fields)}: {line[:200]!r}"
                )
            sentence, lf, category = (" ".join(x.split()) for x in fields)
            if not check_category(category):
                raise ValueError(f"{path}:{lineno}: unknown category {category!r}")
            rows.append((sentence, lf, category))
    if not rows:
        raise ValueError(f"{path}: no rows; expected tab-separated sentence, LF, category lines")
    return rows


def examples_from_rows(
    benchmark: str,
    split: str,
    rows: Sequence[tuple[str, str, str]],
    analyse: Callable[[str], tuple[Measures, bool]],
    path: str | os.PathLike[str],
    meta: Mapping[str, object],
) -> list[Example]:
    """Example records (ids = 0-based line order) from rows, `analyse` giving an LF's measures
    and whether it is a lexicon term; LF errors name path:line."""
    out = []
    for i, (sentence, lf, category) in enumerate(rows):
        try:
            m, is_lexicon = analyse(lf)
        except (ValueError, RecursionError) as err:
            raise ValueError(f"{path}:{i + 1}: {err}; LF {lf[:200]!r}") from None
        out.append(
            Example(
                benchmark=benchmark,
                split=split,
                id=i,
                input=sentence,
                target=lf,
                atoms=m.atoms,
                pairs=m.pairs,
                depth=max(m.cp_depth, m.pp_depth),
                out_len=out_len(lf),
                category=category,
                meta={
                    **meta,
                    "source": str(path),
                    "line": i + 1,
                    "cp_depth": m.cp_depth,
                    "pp_depth": m.pp_depth,
                    "lexicon": is_lexicon,
                },
            )
        )
    return out


def split_path(split: str, data_dir: str | os.PathLike[str] | None, fmt: str = "lf") -> Path:
    """The TSV file of a COGS split (FileNotFoundError naming it when absent)."""
    _check_format(fmt)
    if split not in SPLITS:
        raise ValueError(f"unknown COGS split {split!r}; expected one of {SPLITS}")
    return benchmark_file(data_dir, f"{FORMAT_DIRS[fmt]}/{split}.tsv",
                          f"COGS ({fmt}) {split} split")


def load(
    split: str, data_dir: str | os.PathLike[str] | None = None, fmt: str = "lf"
) -> list[Example]:
    """Examples of a COGS split file (`fmt` 'lf' or 'variable_free'); ids follow line order."""
    path = split_path(split, data_dir, fmt)
    return examples_from_rows(
        BENCHMARK,
        split,
        read_tsv(path),
        lambda lf: analysed(_parse(lf, fmt)),
        path,
        {"format": fmt},
    )


# ---------------------------------------------------------------------------------------------
# Metrics


METRIC_NAME = "exact_match"
match = token_match  # a prediction is correct when its tokens equal the target's
metric = token_exact_match  # seqio metric fn


def _aligned(
    examples: Sequence[Example], predictions: Sequence[str] | Mapping[int, str]
) -> list[str]:
    """Predictions in example order: a sequence aligned with `examples`, or a map id -> text."""
    if isinstance(predictions, Mapping):
        missing = [ex.id for ex in examples if ex.id not in predictions]
        if missing:
            raise ValueError(f"no prediction for example ids {missing[:5]} ({len(missing)} in all)")
        return [predictions[ex.id] for ex in examples]
    if len(predictions) != len(examples):
        raise ValueError(f"{len(examples)} examples but {len(predictions)} predictions")
    return list(predictions)


def _correct(
    examples: Sequence[Example],
    predictions: Sequence[str] | Mapping[int, str],
    match: Match | None,
) -> np.ndarray:
    """Per-example correctness under `match` (default: this benchmark's `match`)."""
    same = match or token_match
    return np.array([bool(same(ex.target, pred))
                     for ex, pred in zip(examples, _aligned(examples, predictions), strict=True)])


def per_category_exact_match(
    examples: Sequence[Example],
    predictions: Sequence[str] | Mapping[int, str],
    match: Match | None = None,
) -> dict[str, float]:
    """Exact match (0-1) per category, in first-seen order.

    `predictions` is aligned with `examples` or maps example id -> prediction. `match(target,
    prediction) -> bool` defaults to token-level equality (ReCOGS passes its own).
    """
    if not examples:
        raise ValueError("per_category_exact_match: no examples to score")
    correct = _correct(examples, predictions, match)
    groups = category_groups([ex.category for ex in examples])
    return {cat: float(v) for cat, v in group_means(correct, groups).items()}


def difficulty_exact_match(
    examples: Sequence[Example],
    predictions: Sequence[str] | Mapping[int, str],
    match: Match | None = None,
) -> dict[str, float]:
    """Exact match (0-1) over all examples and over the easy/hard gen categories present."""
    if not examples:
        raise ValueError("difficulty_exact_match: no examples to score")
    correct = _correct(examples, predictions, match)
    groups = difficulty_groups([ex.category for ex in examples], CATEGORY_DIFFICULTY)
    return {"all": float(correct.mean()),
            **{k: float(v) for k, v in group_means(correct, groups).items()}}

