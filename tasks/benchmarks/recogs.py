"""ReCOGS (Wu, Manning & Potts 2023): loader, adapter and the ReCOGS metric (BENCHMARKS.md s.3).

LFs are `[*] noun ( n ) ; ... ; verb ( e ) AND role ( e , x ) AND nmod . prep ( x , y ) ...`
with bare-integer variables. Atoms, pairs and depth are those of COGS (tasks.benchmarks.cogs),
with role edges written (label(x), label(e).role). Scoring is exact match up to a bijective
variable renaming and conjunct order.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from tasks.benchmarks import cogs
from tasks.data_dir import benchmark_file
from tasks.example import Example
from tasks.metrics import check_aligned

BENCHMARK = "recogs"
VERSIONS = ("recogs_v1", "recogs_v2", "recogs_positional_index")
SPLITS = ("train", "dev", "test", "gen")  # only dev/test are available locally (s.0.2)
LOCAL_SPLITS = ("dev", "test")
PAIR_CONSTRUCT = cogs.PAIR_CONSTRUCT
EXTRA_CATEGORIES = ("length_ood",)  # ReCOGS train's three-sentence concatenations (s.3.1)

Conjunct = tuple[str, tuple[tuple[str, str], ...]]  # (predicate, (("v"|"c", token), ...))


def known_category(category: str) -> bool:
    """A COGS category, or one ReCOGS adds to train."""
    return cogs.known_category(category) or category in EXTRA_CATEGORIES


def conjuncts(lf: str) -> list[Conjunct]:
    """Conjuncts of a ReCOGS LF; integer arguments are variables ("v"), others constants ("c")."""
    out = []
    for pred, args in cogs.split_conjuncts(lf):
        if any(len(a) != 1 for a in args) or len(args) > 2:
            raise ValueError(f"bad arguments in conjunct {' '.join(pred)!r}")
        out.append((" ".join(pred), tuple(("v" if a[0].isdigit() else "c", a[0]) for a in args)))
    return out


def parse(lf: str) -> tuple[cogs.Graph, bool]:
    """Semantic graph of a ReCOGS LF (second value: lexicon entry, always False here)."""
    labels: dict[object, str | None] = {}
    edges: list[tuple[object, str, object]] = []
    for pred, args in conjuncts(lf):
        words = pred.split()
        body = words[1:] if words[0] == "*" else words
        for a in args:
            labels.setdefault(a, a[1] if a[0] == "c" else None)
        if len(args) == 1 and len(body) == 1:  # noun / name / verb ( n )
            cogs._set_label(labels, args[0], body[0])
        elif len(args) == 2 and len(body) == 1 and words[0] != "*":  # role ( e , x )
            edges.append((args[0], body[0], args[1]))
        elif len(args) == 2 and len(body) == 3 and body[:2] == ["nmod", "."] and words[0] != "*":
            edges.append((args[0], f"nmod.{body[2]}", args[1]))
        else:
            raise ValueError(f"unknown predicate shape {pred!r} with {len(args)} args")
    return cogs.Graph(labels, edges), False


def lf_measures(lf: str) -> cogs.Measures:
    """Atoms, pairs, cp depth and pp depth of a ReCOGS LF."""
    return cogs.measures(parse(lf)[0])


def atoms(lf: str) -> frozenset[str]:
    """Content lemmas of an LF: nouns, verbs, proper names and prepositions."""
    return lf_measures(lf).atoms


def pairs(lf: str) -> frozenset[tuple[str, str]]:
    """Thematic-binding pairs (label(x), label(e).role) and (dependent, head.nmod.prep)."""
    return lf_measures(lf).pairs


def depth(lf: str) -> int:
    """max(cp_depth, pp_depth) of an LF."""
    m = lf_measures(lf)
    return max(m.cp_depth, m.pp_depth)


out_len = cogs.out_len


def split_path(split: str, data_dir: str | os.PathLike[str] | None, version: str) -> Path:
    """The TSV file of a ReCOGS version/split (FileNotFoundError naming it when absent)."""
    if version not in VERSIONS:
        raise ValueError(f"unknown ReCOGS version {version!r}; expected one of {VERSIONS}")
    if split not in SPLITS:
        raise ValueError(f"unknown ReCOGS split {split!r}; expected one of {SPLITS}")
    return benchmark_file(data_dir, f"recogs/{version}/{split}.tsv",
                          f"ReCOGS {version} {split} split")


def load(
    split: str, data_dir: str | os.PathLike[str] | None = None, version: str = "recogs_v1"
) -> list[Example]:
    """Examples of a ReCOGS split file under `<data_dir>/recogs/<version>/`; ids = line order."""
    path = split_path(split, data_dir, version)
    rows = cogs.read_tsv(path, known_category)
    return cogs.examples_from_rows(BENCHMARK, split, rows, parse, path, {"version": version})


# ---------------------------------------------------------------------------------------------
# The ReCOGS metric: exact match up to a bijective variable renaming and conjunct order.


def _colours(
    a: list[Conjunct], b: list[Conjunct]
) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], int]]:
    """Joint colour refinement of the variables of two LFs (same colour = same local role)."""
    palette: dict[object, int] = {}
    cols = [{x: 0 for _, args in c for x in args if x[0] == "v"} for c in (a, b)]
    n_before = -1
    for _ in range(len(cols[0]) + len(cols[1]) + 1):
        new = []
        for conjs, col in zip((a, b), cols, strict=True):
            sig: dict[tuple[str, str], list] = {x: [] for x in col}
            for pred, args in conjs:
                ctx = tuple(col[x] if x[0] == "v" else x for x in args)
                for i, x in enumerate(args):
                    if x[0] == "v":
                        sig[x].append((pred, i, ctx))
            new.append(
                {
                    x: palette.setdefault((col[x], tuple(sorted(map(repr, s)))), len(palette))
                    for x, s in sig.items()
                }
            )
        cols = new
        n = len(set(cols[0].values()) | set(cols[1].values()))
        if n == n_before:
            break
        n_before = n
    return cols[0], cols[1]


def recogs_match(target: str, prediction: str) -> bool:
    """Whether `prediction` equals `target` up to a bijective renaming of the integer
    variables and the order of conjuncts (`;` and `AND` both separate conjuncts).

    Conjuncts are compared as multisets, so a dropped or duplicated conjunct is wrong. A
    prediction that does not parse is wrong; a target that does not parse raises ValueError.
    """
    gold = conjuncts(target)
    try:
        pred = conjuncts(prediction)
    except ValueError:
        return False
    if len(gold) != len(pred):
        return False
    gold_count = Counter(gold)
    if Counter(p for p, _ in gold) != Counter(p for p, _ in pred):
        return False
    col_g, col_p = _colours(gold, pred)
    if Counter(col_g.values()) != Counter(col_p.values()):
        return False
    by_colour: dict[int, list[tuple[str, str]]] = {}
    for x, c in col_p.items():
        by_colour.setdefault(c, []).append(x)
    order = sorted(col_p, key=lambda x: (len(by_colour[col_p[x]]), x))
    # conjuncts of the prediction that become fully mapped once order[i] is assigned
    position = {x: i for i, x in enumerate(order)}
    due: list[list[Conjunct]] = [[] for _ in order]
    for conj in pred:
        vs = [position[x] for x in conj[1] if x[0] == "v"]
        if vs:
            due[max(vs)].append(conj)
        elif conj not in gold_count:
            return False
    mapping: dict[tuple[str, str], tuple[str, str]] = {}
    used: set[tuple[str, str]] = set()

    def rename(conj: Conjunct) -> Conjunct:
        return conj[0], tuple(mapping.get(x, x) for x in conj[1])

    def assign(i: int) -> bool:
        if i == len(order):
            return Counter(map(rename, pred)) == gold_count
        x = order[i]
        for y in (y for y, c in col_g.items() if c == col_p[x] and y not in used):
            mapping[x] = y
            used.add(y)
            if all(rename(conj) in gold_count for conj in due[i]) and assign(i + 1):
                return True
            used.discard(y)
            del mapping[x]
        return False

    return assign(0)


def metric(targets: Sequence[str], predictions: Sequence[str]) -> dict[str, float]:
    """seqio metric fn: ReCOGS exact match (renaming- and order-invariant) and string match."""
    check_aligned(targets, predictions)
    pairs_ = list(zip(targets, predictions, strict=True))
    return {
        "exact_match": sum(recogs_match(t, p) for t, p in pairs_) / len(pairs_),
        "string_exact_match": sum(t.split() == p.split() for t, p in pairs_) / len(pairs_),
    }


METRIC_NAME = "recogs_exact_match"  # exact match up to variable renaming and conjunct order
match = recogs_match


def per_category_exact_match(
    examples: Sequence[Example], predictions: Sequence[str] | Mapping[int, str]
) -> dict[str, float]:
    """ReCOGS exact match (0-1) per category (see cogs.per_category_exact_match)."""
    return cogs.per_category_exact_match(examples, predictions, recogs_match)
