"""Coverage-principle tasks (Chang et al. 2025): upstream-format generators and loader.

Generators for twohop, threehop, parallel2hop and nontree (COVERAGE_PRINCIPLE.md s.1) write the
upstream directory layout and JSON files (train.json, test.json, atomic_facts_f*.json,
vocab.json, indent=2), so datasets made by either implementation load in the other. Both modes
draw from CPython `random` seeded like upstream. `parity=True` writes the bytes upstream's
scripts write for the same arguments (checked for every task and variant against
kaistAI/coverage-principle at 49d368b); the default mode keeps cleaner rules, numbered below
(the numbering continues COVERAGE_PRINCIPLE.md s.8). Q12 and Q13 are reproduced in both modes.

Default mode vs upstream (= `parity=True`):
- Q10: threehop/parallel2hop test candidates exclude training chains (upstream does not).
- Q11: no `type` key on the train items in the train_inferred slice (upstream aliases them).
- Q27: all-seen candidates are sampled from a sorted list; upstream samples from the iteration
  order of its set of (inputs..., target) int tuples, built per seen f1 key through a worker
  pool (each partial set pickled, i.e. re-added in iteration order) and unioned (parallel2hop:
  one set updated from lists). Int tuples hash independently of PYTHONHASHSEED, so upstream
  and parity mode are deterministic across processes; the order is CPython's set layout
  (verified on CPython 3.11).
- Q28: a skip draw tests random() < p; upstream tests random() > 1 - p (same probability,
  different draws).
- Q29: train.json keeps the sample order; upstream iterates its set of the sample (this also
  changes which items the train_inferred slice takes).
- Q30: test reservoirs are emitted type_0, type_1, ...; upstream in first-seen type order.
- Q31: nontree (skip p = 0) draws nothing; upstream still draws random() per f1 key and per
  candidate chain.
- Q32: the train_inferred slice is a sample of min(2000, max_train); upstream's is
  test_size_for_type items (3000 for threehop/parallel2hop), and every train item without a
  draw when max_train <= test_size_for_type.
- Q33: include-atomic without same functions is refused before anything is written (both
  modes); upstream asserts after writing vocab.json.
- Q34: include-atomic shuffles the f1 facts into train.json; upstream appends them after the
  shuffle, in key order.
- Q35: nontree same-f12: an f2 key (b, e1, e2) is a seen candidate iff (b, e1) is one for f1;
  upstream shuffles f2's N^3 keys again and takes a fresh 70%.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import random
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from analysis.coverage_dataset import read_items
from tasks.atomic import write_text
from tasks.example import Example
from tasks.metrics import token_exact_match

BENCHMARK = "coverage"
END = "</a>"
FAKE_BRIDGE = "</b>"
RHO = 0.7
SKIP_P = 0.4
TRAIN_INFERRED = 2000
PAIR_CONSTRUCT = "positional pairs of input tokens: (i:<t_a>, j:<t_b>) for input positions i < j"
_TOKEN = re.compile(r"<[^<>]+>")


@dataclasses.dataclass(frozen=True)
class Structure:
    """A task's computation: hops (function index, argument refs); refs 'x<i>' or 'h<j>'."""

    name: str
    n_inputs: int
    hops: tuple[tuple[int, tuple[str, ...]], ...]
    same_tag: str
    test_size: int
    skip_p: float
    modes: tuple[str, ...]


STRUCTURES = {
    "twohop": Structure("twohop", 3, ((0, ("x0", "x1")), (1, ("h0", "x2"))), "f12", 2000,
                        SKIP_P, ("inf", "cot", "fakebridge")),
    "threehop": Structure("threehop", 4,
                          ((0, ("x0", "x1")), (1, ("h0", "x2")), (2, ("h1", "x3"))),
                          "f123", 3000, SKIP_P, ("inf", "cot", "fakebridge")),
    "parallel2hop": Structure("parallel2hop", 4,
                              ((0, ("x0", "x1")), (1, ("x2", "x3")), (2, ("h0", "h1"))),
                              "f123", 3000, SKIP_P, ("inf", "include-atomic")),
    "nontree": Structure("nontree", 3, ((0, ("x0", "x1")), (1, ("h0", "x1", "x2"))), "f12",
                         2000, 0.0, ("inf", "cot")),
}


def token(i: int) -> str:
    """The i-th token of X."""
    return f"<t_{i}>"


def dataset_name(task: str, n: int, max_train: int, same: bool, mode: str) -> str:
    """Upstream directory name, e.g. twohop.50.10000.diff-f12.inf."""
    s = STRUCTURES[task]
    return f"{task}.{n}.{max_train}.{'same' if same else 'diff'}-{s.same_tag}.{mode}"


def _make_function(n: int, arity: int, rng: random.Random) -> tuple[dict, list]:
    """A uniform i.i.d. random function over X^arity and its shuffled key order."""
    keys = list(itertools.product(range(n), repeat=arity))
    fn = dict(zip(keys, rng.choices(range(n), k=len(keys)), strict=True))
    order = list(keys)
    rng.shuffle(order)
    return fn, order


def _functions(
    s: Structure, n: int, same: bool, rng: random.Random, parity: bool
) -> tuple[list[dict], list[list]]:
    """Each function and its candidate seen keys, in upstream's (shuffled) order."""
    fns: list[dict] = []
    seen: list[list] = []
    for f in range(1 + max(f for f, _ in s.hops)):
        if not (same and f > 0):
            fn, order = _make_function(n, _arity(s, f), rng)
            fns.append(fn)
            seen.append(order[: round(RHO * len(order))])
            continue
        fns.append(_same_function(fns[0], _arity(s, f)))
        if _arity(s, f) == 2:
            seen.append(list(seen[0]))
        elif parity:  # nontree: a fresh 70% of f2's N^3 keys (Q35)
            order = list(fns[f])
            rng.shuffle(order)
            seen.append(order[: round(RHO * len(order))])
        else:
            first = set(seen[0])
            seen.append([k for k in fns[f] if k[:2] in first])
    return fns, seen


def _arity(s: Structure, f: int) -> int:
    """Number of arguments of function f."""
    return next(len(args) for fi, args in s.hops if fi == f)


def _evaluate(s: Structure, fns: Sequence[dict], xs: Sequence[int]) -> list[int]:
    """Bridge and final values [h0, h1, ...] of an input tuple."""
    hs: list[int] = []
    for f, args in s.hops:
        key = tuple(xs[int(a[1:])] if a[0] == "x" else hs[int(a[1:])] for a in args)
        hs.append(fns[f][key])
    return hs


def chain_values(task: str, fns: Sequence[dict], xs: Sequence[int]) -> list[int]:
    """Bridges then target [h0, ..., t] of input tuple xs under a task's functions f1, f2, ..."""
    return _evaluate(STRUCTURES[task], fns, xs)


def _skip(rng: random.Random, p: float, parity: bool) -> bool:
    """One skip draw: upstream tests random() > 1 - p, and draws even when p = 0 (Q28, Q31)."""
    if parity:
        return rng.random() > 1 - p
    return bool(p) and rng.random() < p


def _chains(
    s: Structure, n: int, fns: Sequence[dict], allowed: Sequence[set] | None,
    skip: float, rng: random.Random | None, parity: bool = False,
) -> Iterator[tuple[int, ...]]:
    """Input tuples in product order whose hop keys are allowed (None: full domain), skipping."""

    def walk(hop: int, xs: list[int | None], hs: list[int]) -> Iterator[tuple[int, ...]]:
        if hop == len(s.hops):
            yield tuple(x for x in xs if x is not None)
            return
        f, args = s.hops[hop]
        free = sorted({int(a[1:]) for a in args if a[0] == "x" and xs[int(a[1:])] is None})
        for values in itertools.product(range(n), repeat=len(free)):
            bound = list(xs)
            for i, v in zip(free, values, strict=True):
                bound[i] = v
            key = tuple(bound[int(a[1:])] if a[0] == "x" else hs[int(a[1:])] for a in args)
            if allowed is not None and key not in allowed[f]:
                continue
            last = hop == len(s.hops) - 1
            if rng is not None and not last and free and _skip(rng, skip, parity):
                continue
            yield from walk(hop + 1, bound, [*hs, fns[f][key]])

    yield from walk(0, [None] * s.n_inputs, [])


def _upstream_candidates(
    s: Structure, fns: Sequence[dict], seen: Sequence[list]
) -> set[tuple[int, ...]]:
    """All-seen chains as upstream's set of (inputs..., target) int tuples, built as upstream
    builds it, so that its iteration order is upstream's (Q27).

    Chains grow from each seen f1 key in seen order, through the seen keys of the next hops
    (in their seen order) that agree with the values bound so far. twohop, threehop and nontree
    collect one set per f1 key in a worker pool, which pickles it (re-adding its elements in
    iteration order), then union them; parallel2hop updates one set from per-key lists.
    """
    index: list[dict[tuple, list]] = []
    bound_at: list[list[int]] = []
    known: set[str] = set()
    for f, args in s.hops:
        bound = [i for i, a in enumerate(args) if a in known or a[0] == "h"]
        known |= set(args) | {f"h{len(bound_at)}"}
        groups: dict[tuple, list] = {}
        for key in seen[f]:
            groups.setdefault(tuple(key[i] for i in bound), []).append(key)
        index.append(groups)
        bound_at.append(bound)

    def grow(hop: int, xs: dict[str, int]) -> Iterator[tuple[int, ...]]:
        if hop == len(s.hops):
            yield (*(xs[f"x{i}"] for i in range(s.n_inputs)), xs[f"h{hop - 1}"])
            return
        f, args = s.hops[hop]
        for key in index[hop].get(tuple(xs[args[i]] for i in bound_at[hop]), ()):
            yield from grow(hop + 1, {**xs, **dict(zip(args, key, strict=True)),
                                      f"h{hop}": fns[f][key]})  # fmt: skip

    f0, args0 = s.hops[0]
    roots = [{**dict(zip(args0, key, strict=True)), "h0": fns[f0][key]} for key in seen[f0]]
    if s.name == "parallel2hop":
        pool: set[tuple[int, ...]] = set()
        for xs in roots:
            pool.update(list(grow(1, xs)))
        return pool
    parts = []
    for xs in roots:
        part = set()
        for chain in grow(1, xs):
            part.add(chain)
        parts.append(set(list(part)))
    return set().union(*parts)


def _keys(s: Structure, fns: Sequence[dict], xs: Sequence[int]) -> list[tuple[int, ...]]:
    """The key each hop's function is applied to."""
    hs = _evaluate(s, fns, xs)
    return [tuple(xs[int(a[1:])] if a[0] == "x" else hs[int(a[1:])] for a in args)
            for _, args in s.hops]


def _texts(s: Structure, xs: Sequence[int], hs: Sequence[int], mode: str) -> dict[str, str]:
    """input_text / target_text of one item in the upstream string format."""
    inp = "".join(token(x) for x in xs)
    bridges = hs[:-1]
    if mode == "cot":
        middle = "".join(token(b) for b in bridges)
    elif mode == "fakebridge":
        middle = FAKE_BRIDGE * len(bridges)
    else:
        middle = ""
    return {"input_text": inp, "target_text": inp + middle + token(hs[-1]) + END}


def generate(
    task: str,
    out_root: str | os.PathLike[str],
    n: int,
    max_train: int,
    same: bool = False,
    mode: str = "inf",
    seed: int = 42,
    test_size: int | None = None,
    parity: bool = False,
) -> Path:
    """Write `<out_root>/<dataset_name>/` in the upstream format; return the directory.

    `parity=True` writes the bytes upstream's generator writes for the same arguments
    (`test_size` = its --test_size_for_type); the default keeps the rules of Q10, Q11, Q27-Q35.
    """
    if task not in STRUCTURES:
        raise ValueError(f"unknown coverage task {task!r}; expected one of {tuple(STRUCTURES)}")
    s = STRUCTURES[task]
    if mode not in s.modes:
        raise ValueError(f"{task}: unknown mode {mode!r}; expected one of {s.modes}")
    if mode == "include-atomic" and not same:
        raise ValueError(f"{task}: include-atomic requires same functions (--same_{s.same_tag})")
    cap = s.test_size if test_size is None else test_size
    rng = random.Random(seed)
    fns, seen = _functions(s, n, same, rng, parity)
    if parity:
        pool = list(_upstream_candidates(s, fns, seen))
    else:
        pool = sorted(_chains(s, n, fns, [set(keys) for keys in seen], 0.0, None))
    if len(pool) <= max_train:
        raise ValueError(
            f"{task}: only {len(pool)} all-seen compositions at N={n}; max_train={max_train} "
            "must be smaller (upstream raises here too, Q13)"
        )
    if parity:  # upstream keeps the sample as a set and iterates it (Q29)
        train = [chain[:-1] for chain in set(rng.sample(pool, max_train))]
    else:
        train = rng.sample(pool, max_train)
    train_set = set(train)
    used: list[set] = [set() for _ in fns]
    for xs in train:
        for (f, _), key in zip(s.hops, _keys(s, fns, xs), strict=True):
            used[f].add(key)
    exclude = task in ("twohop", "nontree") or not parity
    reservoirs: dict[int, list] = {}
    counts: dict[int, int] = {}
    for xs in _chains(s, n, fns, None, s.skip_p, rng, parity):
        if exclude and xs in train_set:
            continue
        if _skip(rng, s.skip_p, parity):
            continue
        flags = [key in used[f] for (f, _), key in zip(s.hops, _keys(s, fns, xs), strict=True)]
        code = sum(int(b) << (len(flags) - 1 - i) for i, b in enumerate(flags))
        kind = 0 if all(flags) else code + 1
        counts[kind] = counts.get(kind, 0) + 1
        box = reservoirs.setdefault(kind, [])
        if len(box) < cap:
            box.append(xs)
        else:
            j = rng.randint(0, counts[kind] - 1)
            if j < cap:
                box[j] = xs
    train_items = [_texts(s, xs, _evaluate(s, fns, xs), mode) for xs in train]
    if not parity:
        inferred = rng.sample(range(len(train)), min(TRAIN_INFERRED, len(train)))
    elif cap >= len(train):  # upstream's choose(): everything, no draw (Q32)
        inferred = range(len(train))
    else:
        inferred = rng.sample(range(len(train)), cap)
    test_items = [{**train_items[i], "type": "train_inferred"} for i in inferred]
    if parity:
        for i in inferred:
            train_items[i]["type"] = "train_inferred"
    for kind in reservoirs if parity else sorted(reservoirs):  # first-seen order (Q30)
        test_items += [{**_texts(s, xs, _evaluate(s, fns, xs), mode), "type": f"type_{kind}"}
                       for xs in reservoirs[kind]]
    if mode == "include-atomic" and not parity:
        train_items += _atomic_facts(fns[0])
    rng.shuffle(train_items)
    rng.shuffle(test_items)
    if mode == "include-atomic" and parity:  # appended after the shuffle (Q34)
        train_items += _atomic_facts(fns[0])
    out = Path(out_root) / dataset_name(task, n, max_train, same, mode)
    vocab = [token(i) for i in range(n)] + ([FAKE_BRIDGE] if mode == "fakebridge" else [])
    files: dict[str, Any] = {"train.json": train_items, "test.json": test_items,
                             "vocab.json": vocab + [END]}
    for f, fn in enumerate(fns):
        files[f"atomic_facts_f{f + 1}.json"] = _atomic_facts(fn)
    for name, content in files.items():
        write_text(out / name, json.dumps(content, indent=2))
    return out


def _same_function(f1: dict, arity: int) -> dict:
    """f2 as a copy of f1 (nontree: f2(b, e1, e2) = f1(b, e1))."""
    if arity == 2:
        return dict(f1)
    n = round(len(f1) ** 0.5)
    return {(b, e1, e2): f1[(b, e1)] for b, e1, e2 in itertools.product(range(n), repeat=3)}


def _atomic_facts(fn: dict) -> list[dict[str, str]]:
    """Every key of a function in single-token format."""
    out = []
    for key, value in fn.items():
        inp = "".join(token(k) for k in key)
        out.append({"input_text": inp, "target_text": inp + token(value) + END})
    return out


def parse_name(name: str) -> tuple[str, int, int, bool, str]:
    """(task, N, max_train, same, mode) from an upstream directory name."""
    parts = name.split(".")
    if len(parts) != 5 or parts[0] not in STRUCTURES or not (parts[1] + parts[2]).isdigit():
        raise ValueError(f"not a coverage dataset name (task.N.max.same|diff-f..mode): {name!r}")
    return parts[0], int(parts[1]), int(parts[2]), parts[3].startswith("same"), parts[4]


def load(directory: str | os.PathLike[str], split: str) -> list[Example]:
    """Examples of train.json or test.json of a dataset directory (ids: order in the file).

    input = the input tokens, target = the answer tokens after the input (bridge/CoT tokens and
    the `</a>` marker included), category = the item's `type` (test) or None.
    """
    root = Path(directory)
    task, *_ = parse_name(root.name)
    hops = len(STRUCTURES[task].hops)
    path = root / f"{split}.json"
    out = []
    for i, item in enumerate(read_items(root, split)):
        inp = _TOKEN.findall(item["input_text"])
        tgt = _TOKEN.findall(item["target_text"][len(item["input_text"]) :])
        out.append(Example(
            benchmark=BENCHMARK, split=f"{root.name}:{split}", id=i, input=" ".join(inp),
            target=" ".join(tgt), atoms=frozenset(inp),
            pairs=frozenset((f"{a}:{inp[a]}", f"{b}:{inp[b]}")
                            for a in range(len(inp)) for b in range(a + 1, len(inp))),
            depth=hops, out_len=len(tgt), category=item.get("type") if split == "test" else None,
            meta={"source": str(path), "index": i},
        ))
    return out


metric = token_exact_match  # seqio metric fn: exact match of the answer tokens
