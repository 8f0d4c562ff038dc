"""ReCOGS (Wu, Manning & Potts 2023): loader, adapter, derivation from COGS and the ReCOGS metric.

LFs are `[*] noun ( n ) ; ... ; verb ( e ) AND role ( e , x ) AND nmod . prep ( x , y ) ...`
with bare-integer variables (BENCHMARKS.md s.3). Atoms, pairs and depth are those of COGS
(tasks.benchmarks.cogs), with role edges written (label(x), label(e).role). Scoring is exact
match up to a bijective variable renaming and conjunct order.

Only dev/test are distributed locally; a split whose file is absent is *derived* from the COGS
file of the same split: the s.3.2 rewrite (plus the variable renaming of v1/v2), and for train
the s.3.1 augmentation (renamed copies and three-sentence concatenations). A real file, when
present, always takes precedence.
"""

from __future__ import annotations

import functools
import os
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from tasks.benchmarks import cogs
from tasks.data_dir import benchmark_file
from tasks.data_dir import data_dir as resolve_data_dir
from tasks.example import Example
from tasks.metrics import check_aligned

BENCHMARK = "recogs"
VERSIONS = ("recogs_v1", "recogs_v2", "recogs_positional_index")
SPLITS = ("train", "dev", "test", "gen")  # only dev/test are available locally (s.0.2)
LOCAL_SPLITS = ("dev", "test")
PAIR_CONSTRUCT = cogs.PAIR_CONSTRUCT
# ReCOGS train's three-sentence concatenations (s.3.1): v1/v2 label them length_ood, the
# positional-index release (built with the older concatenation cell) concat.
EXTRA_CATEGORIES = ("length_ood", "concat")
# v1/v2 variable values: the numeric tokens of the upstream target vocabulary (57 values, s.3.2).
VARIABLE_POOL = tuple(str(n) for n in (*range(55), 56, 59))
RENAMED = ("recogs_v1", "recogs_v2")  # versions whose variables are random pool values
NMOD_FIRST = ("recogs_v1",)  # v1 writes the nmod conjuncts before the verb conjuncts
TRAIN_COPIES = 5  # renamed copies of COGS train (one for positional_index: copies are equal)
CONCATENATIONS = 3_072  # three-sentence concatenations per copy
CONCAT_STRIDE = 6  # the i-th concatenation starts at the 6i-th longest sentence
DERIVE_SEED = 0  # the derivation's renaming is seeded: the same data on every load

Conjunct = tuple[str, tuple[tuple[str, str], ...]]  # (predicate, (("v"|"c", token), ...))


def known_category(category: str) -> bool:
    """A COGS category, or one ReCOGS adds to train."""
    return cogs.known_category(category) or category in EXTRA_CATEGORIES


def conjuncts(lf: str, variables: frozenset[str] = frozenset()) -> list[Conjunct]:
    """Conjuncts of a ReCOGS LF; integer arguments (and `variables`) are variables ("v"),
    others constants ("c")."""
    out = []
    for pred, args in cogs.split_conjuncts(lf):
        if any(len(a) != 1 for a in args) or len(args) > 2:
            raise ValueError(f"bad arguments in conjunct {' '.join(pred)!r}")
        out.append((" ".join(pred), tuple(
            ("v" if a[0].isdigit() or a[0] in variables else "c", a[0]) for a in args)))
    return out


def _strip_lambdas(lf: str) -> tuple[str, frozenset[str]]:
    """A lexicon entry's body and its lambda variables (`LAMBDA a . LAMBDA e . ...`)."""
    tokens = lf.split()
    bound = set()
    while len(tokens) >= 3 and tokens[0] == "LAMBDA" and tokens[2] == ".":
        bound.add(tokens[1])
        tokens = tokens[3:]
    return " ".join(tokens), frozenset(bound)


def parse(lf: str) -> tuple[cogs.Graph, bool]:
    """Semantic graph of a ReCOGS LF; second value: it is a lexicon lambda term (train only)."""
    body_lf, bound = _strip_lambdas(lf)
    labels: dict[object, str | None] = {}
    edges: list[tuple[object, str, object]] = []
    for pred, args in conjuncts(body_lf, bound):
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
    return cogs.Graph(labels, edges), bool(bound)


def lf_measures(lf: str) -> cogs.Measures:
    """Atoms, pairs, cp depth and pp depth of a ReCOGS LF."""
    return cogs.analysed(parse(lf))[0]


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
    _check(split, version)
    return benchmark_file(data_dir, f"recogs/{version}/{split}.tsv",
                          f"ReCOGS {version} {split} split")


def _check(split: str, version: str) -> None:
    """ValueError for an unknown version or split name."""
    if version not in VERSIONS:
        raise ValueError(f"unknown ReCOGS version {version!r}; expected one of {VERSIONS}")
    if split not in SPLITS:
        raise ValueError(f"unknown ReCOGS split {split!r}; expected one of {SPLITS}")


def source(split: str, data_dir: str | os.PathLike[str] | None, version: str) -> tuple[str, Path]:
    """Where a split comes from: ("real", its file) or ("derived", the COGS file it is made of).

    The real file takes precedence; FileNotFoundError names both files when neither exists.
    """
    _check(split, version)
    root = resolve_data_dir(data_dir)
    real = root / "recogs" / version / f"{split}.tsv" if root is not None else None
    if real is not None and real.is_file():
        return "real", real
    try:
        return "derived", cogs.split_path(split, data_dir)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"ReCOGS {version} {split} split: neither the real file {real} nor the COGS file it "
            f"can be derived from ({root}/cogs/{split}.tsv) exists; run `compgen-jax data fetch "
            "recogs` (or `data fetch cogs`)"
        ) from None


def available(split: str, data_dir: str | os.PathLike[str] | None, version: str) -> bool:
    """Whether `split` can be loaded: its real file exists or its COGS file does."""
    try:
        source(split, data_dir, version)
    except FileNotFoundError:
        return False
    return True


def load(
    split: str, data_dir: str | os.PathLike[str] | None = None, version: str = "recogs_v1"
) -> list[Example]:
    """Examples of a ReCOGS split, ids = line order: the real file under
    `<data_dir>/recogs/<version>/` if present, else derived from COGS (meta["derived"] True)."""
    kind, path = source(split, data_dir, version)
    if kind == "real":
        rows = cogs.read_tsv(path, known_category)
    else:
        rows = derive_rows(split, cogs.read_tsv(path), version)
    # train holds each LF several times under other variable names: analyse each shape once
    analyse_shape = functools.cache(lambda lf: cogs.analysed(parse(lf)))
    return cogs.examples_from_rows(BENCHMARK, split, rows, lambda lf: analyse_shape(canonical(lf)),
                                   path, {"version": version, "derived": kind == "derived"})


def canonical(lf: str) -> str:
    """`lf` with its integer variables renumbered 0, 1, ... in order of first use: one string
    for the LFs that differ only by a bijective renaming (their atoms, pairs and depths agree)."""
    numbers: dict[str, str] = {}
    return " ".join(numbers.setdefault(t, str(len(numbers))) if t.isdigit() else t
                    for t in lf.split())


# ---------------------------------------------------------------------------------------------
# Derivation from COGS (s.3.1, s.3.2).


def _lexicon_entry(lf: str) -> str:
    """A COGS lexicon entry in ReCOGS form: `Emma` -> `LAMBDA a . Emma ( a )`; a verb's
    `v . role ( e , x )` conjuncts become `v ( e ) AND role ( e , x ) ...`; nouns unchanged."""
    body, bound = _strip_lambdas(lf)
    if not bound:
        return f"LAMBDA a . {lf} ( a )"
    prefix = lf[: len(lf) - len(body)].strip()
    out: list[str] = []
    for pred, args in cogs.split_conjuncts(body):
        flat = " , ".join(" ".join(a) for a in args)
        if len(pred) == 3 and pred[1] == ".":
            if not out:
                out.append(f"{pred[0]} ( {args[0][0]} )")
            out.append(f"{pred[2]} ( {flat} )")
        else:
            out.append(f"{' '.join(pred)} ( {flat} )")
    return f"{prefix} {' AND '.join(out)}"


def _variable(arg: list[str], where: str) -> int:
    """N of a COGS variable `x _ N`."""
    if len(arg) == 3 and arg[:2] == ["x", "_"] and arg[2].isdigit():
        return int(arg[2])
    raise ValueError(f"{where}: expected a variable x _ N, got {' '.join(arg)!r}")


def rewrite(sentence: str, lf: str, version: str = "recogs_positional_index") -> str:
    """The s.3.2 rewrite of a COGS LF, variables = token positions (ReCOGS_pos form).

    Declarations (nouns, definite `*`, and proper names at their sentence position) come first
    in sentence order, joined by ` ; `; then, in COGS conjunct order, `verb ( e )` before the
    event's first role and `role ( e , a )`, with `nmod . prep ( i , j )` for modifiers (v1:
    all nmod conjuncts first). Lexicon entries use `_lexicon_entry`.
    """
    if lf.split()[0] == "LAMBDA" or len(lf.split()) == 1:
        return _lexicon_entry(lf)
    words = sentence.split()
    decls: dict[int, str] = {}
    terms: list[tuple[bool, str]] = []  # (is nmod, conjunct) in COGS order
    seen_events: set[tuple[str, int]] = set()

    def argument(arg: list[str]) -> int:
        if len(arg) == 1 and arg[0][:1].isupper():  # a proper name: declared at its position
            if words.count(arg[0]) != 1:
                raise ValueError(f"proper name {arg[0]!r} occurs {words.count(arg[0])} times "
                                 f"in {sentence!r}")
            decls[words.index(arg[0])] = f"{arg[0]} ( {words.index(arg[0])} )"
            return words.index(arg[0])
        return _variable(arg, f"LF {lf!r}")

    for pred, args in cogs.split_conjuncts(lf):
        body = pred[1:] if pred[0] == "*" else pred
        if len(body) == 1 and len(args) == 1:  # [*] noun ( x _ i )
            i = _variable(args[0], f"LF {lf!r}")
            decls[i] = f"{' '.join(pred)} ( {i} )"
        elif len(pred) == 3 and pred[1] == "." and len(args) == 2:  # verb . role ( e , a )
            e, a = _variable(args[0], f"LF {lf!r}"), argument(args[1])
            if (pred[0], e) not in seen_events:
                seen_events.add((pred[0], e))
                terms.append((False, f"{pred[0]} ( {e} )"))
            terms.append((False, f"{pred[2]} ( {e} , {a} )"))
        elif len(pred) == 5 and pred[1:4] == [".", "nmod", "."] and len(args) == 2:
            i, j = (_variable(a, f"LF {lf!r}") for a in args)
            terms.append((True, f"nmod . {pred[4]} ( {i} , {j} )"))
        else:
            raise ValueError(f"unknown COGS predicate {' '.join(pred)!r} in {lf!r}")
    if version in NMOD_FIRST:
        terms.sort(key=lambda term: not term[0])  # stable: nmod conjuncts first
    parts = [" ; ".join(decls[i] for i in sorted(decls)), " AND ".join(t for _, t in terms)]
    return " ; ".join(p for p in parts if p)


def rename(lf: str, rng: random.Random) -> str:
    """Replace the integer variables of `lf` by distinct random VARIABLE_POOL values (v1/v2)."""
    numbers = sorted({t for t in lf.split() if t.isdigit()}, key=int)
    if len(numbers) > len(VARIABLE_POOL):
        raise ValueError(f"{len(numbers)} variables exceed the {len(VARIABLE_POOL)} ReCOGS "
                         f"variable values: {lf[:200]!r}")
    mapping = dict(zip(numbers, rng.sample(VARIABLE_POOL, len(numbers)), strict=True))
    return " ".join(mapping.get(t, t) for t in lf.split())


def _shift(lf: str, offset: int) -> str:
    """`lf` with every integer variable increased by `offset`."""
    return " ".join(str(int(t) + offset) if t.isdigit() else t for t in lf.split())


def _lower_article(sentence: str) -> str:
    """A sentence continuing a concatenation: a leading The/A lower-cased (names kept)."""
    return sentence[0].lower() + sentence[1:] if sentence.split()[0] in ("The", "A") else sentence


def concatenate(rows: Sequence[tuple[str, str, str]], version: str, rng: random.Random,
                category: str) -> tuple[str, str, str]:
    """Three (sentence, ReCOGS LF) rows as one `category` row (s.3.1): the sentences run on
    without their inner periods; declarations of all three come first, then all bodies.

    positional_index shifts each LF by the preceding sentences' token counts (without the
    period); v1/v2 give the variables of all three fresh distinct pool values.
    """
    sentences = [rows[0][0][:-1], *(_lower_article(r[0])[:-1] for r in rows[1:-1]),
                 _lower_article(rows[-1][0])]
    sentence = " ".join(" ".join(sentences).split())
    offsets, total = [], 0
    for row in rows:
        offsets.append(total)
        total += len(row[0].split()) - 1 if version not in RENAMED else 100
    decls: list[str] = []
    bodies: list[str] = []
    for (_, lf, _), offset in zip(rows, offsets, strict=True):
        parts = _shift(lf, offset).split(" ; ")
        decls.extend(parts[:-1])
        bodies.append(parts[-1])
    lf = " ; ".join([*decls, " AND ".join(bodies)])
    return sentence, rename(lf, rng) if version in RENAMED else lf, category


def derive_rows(
    split: str, cogs_rows: Sequence[tuple[str, str, str]], version: str
) -> list[tuple[str, str, str]]:
    """ReCOGS (sentence, LF, category) rows of `split` made from the COGS rows of that split.

    dev/test/gen: one rewritten (v1/v2: renamed) row per COGS row, same order. train (s.3.1):
    TRAIN_COPIES renamed copies of COGS train (one for positional_index, whose copies are
    identical), then per copy CONCATENATIONS three-sentence concatenations of its longest
    sentences (by characters, stable order; the i-th uses the 6i-th to 6i+2-th longest), then
    duplicates dropped (first kept). Seeded by DERIVE_SEED: every load gives the same data.
    """
    rng = random.Random(f"{DERIVE_SEED}:{version}:{split}")
    rewritten = [(sentence, rewrite(sentence, lf, version), category)
                 for sentence, lf, category in cogs_rows]

    def one_copy() -> list[tuple[str, str, str]]:
        if version not in RENAMED:
            return list(rewritten)
        return [(sentence, lf if category == cogs.LEXICON_CATEGORY else rename(lf, rng), category)
                for sentence, lf, category in rewritten]

    if split != "train":
        return one_copy()
    copies = [one_copy() for _ in range(TRAIN_COPIES if version in RENAMED else 1)]
    category = "length_ood" if version in RENAMED else "concat"
    extra = []
    for copy in copies:
        longest = sorted(copy, key=lambda row: len(row[0]), reverse=True)
        for start in range(0, CONCAT_STRIDE * CONCATENATIONS, CONCAT_STRIDE):
            if start + 3 > len(longest):
                break
            extra.append(concatenate(longest[start : start + 3], version, rng, category))
    return list(dict.fromkeys([row for copy in copies for row in copy] + extra))


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


CATEGORY_DIFFICULTY = cogs.CATEGORY_DIFFICULTY  # the gen split keeps COGS's categories
METRIC_NAME = "recogs_exact_match"  # exact match up to variable renaming and conjunct order
match = recogs_match


def per_category_exact_match(
    examples: Sequence[Example], predictions: Sequence[str] | Mapping[int, str]
) -> dict[str, float]:
    """ReCOGS exact match (0-1) per category (see cogs.per_category_exact_match)."""
    return cogs.per_category_exact_match(examples, predictions, recogs_match)
