"""Coverage-principle tasks (Chang et al. 2025): upstream-format generators and loader.

Generators for twohop, threehop, parallel2hop, nontree and fivehop (COVERAGE_PRINCIPLE.md s.1)
write the upstream directory layout and JSON files (train.json, test.json, atomic_facts_f*.json,
vocab.json, indent=2), so datasets made by either implementation load in the other. Both modes
draw from CPython `random` seeded like upstream, in upstream's order; the enumerations and type
computations around the draws are numpy (faster than upstream's pure Python, same draws).
`parity=True` writes the bytes upstream's scripts write for the same arguments (checked for
every task and variant against kaistAI/coverage-principle at 49d368b); the default mode keeps
cleaner rules, numbered below (the numbering continues COVERAGE_PRINCIPLE.md s.8). Q12 and Q13
are reproduced in both modes.

Default mode vs upstream (= `parity=True`):
- Q10: threehop/parallel2hop test candidates exclude training chains (upstream does not).
- Q11: no `type` key on the train items in the train_inferred slice (upstream aliases them;
  fivehop too).
- Q27: all-seen candidates are sampled from a sorted list; upstream samples from the iteration
  order of its set of (inputs..., target) int tuples, built per seen f1 key through a worker
  pool (each partial set pickled, i.e. re-added in iteration order) and unioned (parallel2hop:
  one set updated from lists). Int tuples hash independently of PYTHONHASHSEED, so upstream
  and parity mode are deterministic across processes; the order is CPython's set layout
  (verified on CPython 3.11).
- Q28: a skip draw tests random() < p; upstream tests random() > 1 - p (same probability,
  different draws).
- Q29: train.json keeps the sample order; upstream iterates its set of the sample (this also
  changes which items the train_inferred slice takes). fivehop: train and type_0 chains keep
  the draw order; upstream iterates its sets of them.
- Q30: test reservoirs are emitted type_0, type_1, ...; upstream in first-seen type order.
- Q31: nontree (skip p = 0) draws nothing; upstream still draws random() per f1 key and per
  candidate chain.
- Q32: the train_inferred slice is a sample of min(2000, max_train); upstream's is
  test_size_for_type items (3000 for threehop/parallel2hop), and every train item without a
  draw when max_train <= test_size_for_type (fivehop: random.sample fails there; refused).
- Q33: include-atomic without same functions is refused before anything is written (both
  modes); upstream asserts after writing vocab.json.
- Q34: include-atomic shuffles the f1 facts into train.json; upstream appends them after the
  shuffle, in key order.
- Q35: nontree same-f12: an f2 key (b, e1, e2) is a seen candidate iff (b, e1) is one for f1;
  upstream shuffles f2's N^3 keys again and takes a fresh 70%.
- Q36 (both modes): fivehop gives a bridge value without seen continuations zero completions;
  upstream raises KeyError (only at small N, e.g. N=3 seed 9).
- Q37 (both modes): fivehop with fewer than max_train + test_size all-seen chains is refused;
  upstream loops forever.
fivehop (COVERAGE_PRINCIPLE Q14) writes only the seen subsets as atomic facts, in both modes.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import random
import re
from bisect import bisect_left
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from analysis.atomic import check_output_dir, write_text
from analysis.coverage_dataset import read_items
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
_BLOCK = 1 << 20  # test candidates classified per numpy block (bounds memory at large N)


@dataclasses.dataclass(frozen=True)
class Structure:
    """A task's computation: hops (function index, argument refs); refs 'x<i>' or 'h<j>'.

    `same_tag` names the same-functions variant ('' when there is none); `uniform` tasks draw
    training and type_0 chains uniformly over the all-seen chains instead of enumerating them.
    """

    name: str
    n_inputs: int
    hops: tuple[tuple[int, tuple[str, ...]], ...]
    same_tag: str
    test_size: int
    skip_p: float
    modes: tuple[str, ...]
    uniform: bool = False


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
    "fivehop": Structure("fivehop", 6,
                         ((0, ("x0", "x1")), (1, ("h0", "x2")), (2, ("h1", "x3")),
                          (3, ("h2", "x4")), (4, ("h3", "x5"))),
                         "", 2000, 0.0, ("cot",), uniform=True),
}


def token(i: int) -> str:
    """The i-th token of X."""
    return f"<t_{i}>"


def dataset_name(task: str, n: int, max_train: int, same: bool, mode: str) -> str:
    """Upstream directory name, e.g. twohop.50.10000.diff-f12.inf or fivehop.50.600000.cot."""
    s = STRUCTURES[task]
    if not s.same_tag:
        return f"{task}.{n}.{max_train}.{mode}"
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


def _walk(s: Structure, fns: Sequence[Any], xs: Sequence[Any]) -> tuple[list[tuple], list]:
    """(key, value) of every hop of input xs: ints through dicts, or arrays through tables."""
    keys: list[tuple] = []
    hs: list = []
    for f, args in s.hops:
        keys.append(tuple(xs[int(a[1:])] if a[0] == "x" else hs[int(a[1:])] for a in args))
        hs.append(fns[f][keys[-1]])
    return keys, hs


def _evaluate(s: Structure, fns: Sequence[dict], xs: Sequence[int]) -> list[int]:
    """Bridge and final values [h0, h1, ...] of an input tuple."""
    return _walk(s, fns, xs)[1]


def chain_values(task: str, fns: Sequence[dict], xs: Sequence[int]) -> list[int]:
    """Bridges then target [h0, ..., t] of input tuple xs under a task's functions f1, f2, ..."""
    return _evaluate(STRUCTURES[task], fns, xs)


def _tables(s: Structure, n: int, fns: Sequence[dict]) -> list[np.ndarray]:
    """Each function as an array over its domain (dict keys are in product order)."""
    return [np.fromiter(fn.values(), np.int64, len(fn)).reshape((n,) * _arity(s, f))
            for f, fn in enumerate(fns)]


def _inputs_order(s: Structure) -> list[int]:
    """Input indices in the order the hops first use them (each hop's new ones sorted): the
    product order of the test-candidate walk, i.e. the digits of a chain's id."""
    order: list[int] = []
    for _, args in s.hops:
        order += sorted({int(a[1:]) for a in args if a[0] == "x"} - set(order))
    return order


def _seen_chains(
    s: Structure, n: int, tables: Sequence[np.ndarray], seen: Sequence[list]
) -> tuple[np.ndarray, np.ndarray]:
    """All-seen chains [inputs..., target] and their root (index of the seen f1 key), in
    upstream's growth order: from each seen f1 key (seen order) through the seen keys of each
    next hop (seen order) that agree with the values bound so far."""
    cols: dict[str, np.ndarray] = {}
    for hop, (f, args) in enumerate(s.hops):
        keys = np.array(seen[f], dtype=np.int64).reshape(-1, len(args))
        bound = [i for i, a in enumerate(args) if a in cols]
        if hop == 0:
            cols = {"root": np.arange(len(keys))}
            child = np.arange(len(keys))
        else:  # seen keys grouped by their bound values, seen order within a group
            group = _radix(keys[:, bound].T, n, len(keys))
            order = np.argsort(group, kind="stable")
            sizes = np.bincount(group, minlength=n ** len(bound))
            starts = np.cumsum(sizes) - sizes
            row = _radix([cols[args[i]] for i in bound], n, len(cols["root"]))
            per_row = sizes[row]
            parent = np.repeat(np.arange(len(row)), per_row)
            within = np.arange(len(parent)) - np.repeat(np.cumsum(per_row) - per_row, per_row)
            child = order[np.repeat(starts[row], per_row) + within]
            cols = {name: col[parent] for name, col in cols.items()}
        for i, a in enumerate(args):
            cols.setdefault(a, keys[child, i])
        cols[f"h{hop}"] = tables[f][tuple(keys[child].T)]
    chains = np.stack([cols[f"x{i}"] for i in range(s.n_inputs)] + [cols[f"h{hop}"]], axis=1)
    return chains, cols["root"]


def _radix(digits: Sequence[np.ndarray], n: int, size: int) -> np.ndarray:
    """Mixed-radix (base n) code of digit columns, most significant first; zeros if none."""
    code = np.zeros(size, dtype=np.int64)
    for d in digits:
        code = code * n + d
    return code


def _upstream_pool(s: Structure, chains: np.ndarray, roots: np.ndarray) -> list[tuple]:
    """The all-seen chains in the iteration order of upstream's set of int tuples (Q27).

    twohop, threehop and nontree collect one set per seen f1 key in a worker pool, which
    pickles it (re-adding its elements in iteration order), then union them; parallel2hop
    updates one set from per-key lists. Built here with the same set operations, so the layout
    (hence the order) is CPython's for upstream's sequence of insertions.
    """
    rows = list(zip(*(col.tolist() for col in chains.T), strict=True))
    if s.name == "parallel2hop":
        return list(set(rows))
    ends = np.flatnonzero(np.diff(roots)) + 1
    bounds = zip([0, *ends.tolist()], [*ends.tolist(), len(rows)], strict=True)
    return list(set().union(*(set(list(set(rows[a:b]))) for a, b in bounds)))


def _reservoirs(
    s: Structure, n: int, tables: Sequence[np.ndarray], used: Sequence[np.ndarray],
    excluded: np.ndarray | None, cap: int, rng: random.Random, parity: bool,
) -> dict[int, list[tuple[int, ...]]]:
    """Test reservoirs by type, in first-seen type order: the candidate walk over the full
    domain in product order, a skip draw per node (Q28, Q31), Algorithm R per type.

    Node values and types are computed with numpy per block of f1 keys; the Python loop only
    makes upstream's random draws, in upstream's order. `excluded`: sorted ids of chains that
    never become candidates (training; Q10), or None.
    """
    new_inputs = _split_by_hop(s, _inputs_order(s))
    fan = [n ** len(new) for new in new_inputs]
    depth = len(s.hops)
    # a skip draw: upstream skips when random() > 1 - p and draws even when p = 0 (Q31); the
    # default mode skips when random() < p (Q28) and draws nothing when p = 0
    draw = parity or s.skip_p > 0
    node_draws = [draw and bool(new_inputs[h]) for h in range(depth - 1)]
    keep_lo, keep_hi = (0.0, 1 - s.skip_p) if parity else (s.skip_p, 1.0)
    uniform, getrandbits = rng.random, rng.getrandbits
    counts = [0] * (2 ** depth)
    boxes: list[list[int]] = [[] for _ in counts]
    first_seen: list[int] = []
    leaf_fan = fan[-1]

    def bottom(first: int, count: int, kinds: list[int], base: int) -> None:
        """Nodes of the hop above the leaves, each with its leaves (the hot loop)."""
        node_draw = node_draws[depth - 2]
        for node in range(first, first + count):
            if node_draw and not keep_lo <= uniform() <= keep_hi:
                continue
            for leaf in range(node * leaf_fan, (node + 1) * leaf_fan) if leaf_fan > 1 else (node,):
                kind = kinds[leaf - base]
                if kind < 0 or (draw and not keep_lo <= uniform() <= keep_hi):
                    continue
                c = counts[kind] = counts[kind] + 1
                if c <= cap:
                    if c == 1:
                        first_seen.append(kind)
                    boxes[kind].append(leaf)
                    continue
                # randint(0, c - 1), i.e. Random._randbelow(c) inlined (CPython 3.11: rejection
                # sampling on getrandbits(c.bit_length()); the parity digests pin it)
                k = c.bit_length()
                j = getrandbits(k)
                while j >= c:
                    j = getrandbits(k)
                if j < cap:
                    boxes[kind][j] = leaf

    def descend(hop: int, first: int, count: int, kinds: list[int], base: int) -> None:
        """Nodes first.. of a hop in product order, each with its subtree."""
        if hop == depth - 2:
            bottom(first, count, kinds, base)
            return
        below = fan[hop + 1]
        for node in range(first, first + count):
            if node_draws[hop] and not keep_lo <= uniform() <= keep_hi:
                continue
            descend(hop + 1, node * below, below, kinds, base)

    per_root = int(np.prod(fan[1:]))
    block = max(1, _BLOCK // per_root)
    for r0 in range(0, fan[0], block):
        r1 = min(fan[0], r0 + block)
        ids = np.arange(r0 * per_root, r1 * per_root)
        xs = _decode(s, n, ids)
        keys, _ = _walk(s, tables, xs)
        flags = [used[f][key] for (f, _), key in zip(s.hops, keys, strict=True)]
        code = _radix(flags, 2, len(ids))
        kinds = np.where(code == 2 ** depth - 1, 0, code + 1)
        if excluded is not None:
            lo, hi = np.searchsorted(excluded, [ids[0], ids[-1] + 1])
            kinds[excluded[lo:hi] - ids[0]] = -1
        descend(0, r0, r1 - r0, kinds.tolist(), r0 * per_root)
    chains = {}
    for kind in first_seen:
        xs = _decode(s, n, np.array(boxes[kind], dtype=np.int64))
        chains[kind] = list(zip(*(x.tolist() for x in xs), strict=True))
    return chains


def _split_by_hop(s: Structure, digits: Sequence[int]) -> list[list[int]]:
    """The inputs each hop binds first (in `digits` order)."""
    out, known = [], set()
    for _, args in s.hops:
        new = [i for i in digits if f"x{i}" in args and i not in known]
        known |= set(new)
        out.append(new)
    return out


def _decode(s: Structure, n: int, ids: np.ndarray) -> list[np.ndarray]:
    """Input columns x0.. of chain ids (digits in `_inputs_order`)."""
    xs: list[np.ndarray] = [np.empty(0)] * s.n_inputs
    for i, d in zip(_inputs_order(s), np.unravel_index(ids, (n,) * s.n_inputs), strict=True):
        xs[i] = d
    return xs


def _ids(s: Structure, n: int, chains: Sequence[Sequence[int]]) -> np.ndarray:
    """Sorted ids of input tuples (inverse of `_decode`)."""
    cols = np.array(chains, dtype=np.int64).reshape(-1, s.n_inputs).T
    return np.sort(np.ravel_multi_index(tuple(cols[_inputs_order(s)]), (n,) * s.n_inputs))


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
    mode: str | None = None,
    seed: int = 42,
    test_size: int | None = None,
    parity: bool = False,
) -> Path:
    """Write `<out_root>/<dataset_name>/` in the upstream format; return the directory.

    `mode` defaults to the task's first (inf; fivehop cot). `parity=True` writes the bytes
    upstream's generator writes for the same arguments (`test_size` = its
    --test_size_for_type); the default keeps the rules of Q10, Q11, Q27-Q37.
    """
    if task not in STRUCTURES:
        raise ValueError(f"unknown coverage task {task!r}; expected one of {tuple(STRUCTURES)}")
    s = STRUCTURES[task]
    mode = s.modes[0] if mode is None else mode
    if mode not in s.modes:
        raise ValueError(f"{task}: unknown mode {mode!r}; expected one of {s.modes}")
    if mode == "include-atomic" and not same:
        raise ValueError(f"{task}: include-atomic requires same functions (--same_{s.same_tag})")
    if same and not s.same_tag:
        raise ValueError(f"{task}: has no same-functions variant (--same)")
    out = Path(out_root) / dataset_name(task, n, max_train, same, mode)
    check_output_dir(out, "coverage dataset directory")
    cap = s.test_size if test_size is None else test_size
    rng = random.Random(seed)
    fns, seen = _functions(s, n, same, rng, parity)
    split = _sampled_split if s.uniform else _enumerated_split
    train_items, test_items, facts = split(s, n, fns, seen, max_train, mode, cap, rng, parity)
    vocab = [token(i) for i in range(n)] + ([FAKE_BRIDGE] if mode == "fakebridge" else [])
    files: dict[str, Any] = {"train.json": train_items, "test.json": test_items,
                             "vocab.json": vocab + [END]}
    for f, fn in enumerate(facts):
        files[f"atomic_facts_f{f + 1}.json"] = _atomic_facts(fn)
    for name, content in files.items():
        write_text(out / name, json.dumps(content, indent=2))
    return out


def _enumerated_split(
    s: Structure, n: int, fns: list[dict], seen: list[list], max_train: int, mode: str,
    cap: int, rng: random.Random, parity: bool,
) -> tuple[list[dict], list[dict], list[dict]]:
    """(train items, test items, functions whose facts are written) of an enumerated task:
    training sampled from all all-seen chains, test types from the reservoir walk."""
    tables = _tables(s, n, fns)
    chains, roots = _seen_chains(s, n, tables, seen)
    if len(chains) <= max_train:
        raise ValueError(
            f"{s.name}: only {len(chains)} all-seen compositions at N={n}; max_train={max_train} "
            "must be smaller (upstream raises here too, Q13)"
        )
    if parity:  # upstream keeps the sample as a set and iterates it (Q29)
        sample = rng.sample(_upstream_pool(s, chains, roots), max_train)
        train = [chain[:-1] for chain in set(sample)]
    else:
        xs = chains[np.lexsort(chains[:, s.n_inputs - 1 :: -1].T), : s.n_inputs]
        train = [tuple(row) for row in xs[rng.sample(range(len(xs)), max_train)].tolist()]
    used = [np.zeros(table.shape, dtype=bool) for table in tables]
    keys, _ = _walk(s, tables, list(np.array(train, dtype=np.int64).T))
    for (f, _), key in zip(s.hops, keys, strict=True):
        used[f][key] = True
    exclude = s.name in ("twohop", "nontree") or not parity
    reservoirs = _reservoirs(s, n, tables, used, _ids(s, n, train) if exclude else None, cap,
                             rng, parity)  # fmt: skip
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
    return train_items, test_items, fns


def _sampled_split(
    s: Structure, n: int, fns: list[dict], seen: list[list], max_train: int, mode: str,
    cap: int, rng: random.Random, parity: bool,
) -> tuple[list[dict], list[dict], list[dict]]:
    """(train items, test items, seen functions) of fivehop: `max_train` distinct chains drawn
    uniformly from the all-seen chains, then `cap` distinct type_0 chains outside training,
    and a train_inferred slice; atomic facts are the seen subsets (Q14)."""
    draw, total = _uniform_chains(s, fns, seen, rng)
    if total - max_train < cap:
        raise ValueError(
            f"{s.name}: {total} all-seen chains at N={n} cannot give max_train={max_train} plus "
            f"{cap} type_0 chains outside training (upstream loops forever here, Q37)"
        )
    if parity and cap > max_train:
        raise ValueError(f"{s.name}: the train_inferred slice of --test_size {cap} needs "
                         f"max_train >= {cap} (upstream's random.sample fails here)")
    train_draws: dict[tuple[int, ...], None] = {}
    while len(train_draws) < max_train:
        train_draws[draw()] = None
    type0_draws: dict[tuple[int, ...], None] = {}
    while len(type0_draws) < cap:
        chain = draw()
        if chain not in train_draws:
            type0_draws[chain] = None
    # upstream iterates sets of the draws (Q29); default mode keeps the draw order
    train, type0 = (list(set(list(d))) if parity else list(d) for d in (train_draws, type0_draws))
    train_items = [_texts(s, c[:-1], _evaluate(s, fns, c[:-1]), mode) for c in train]
    inferred = rng.sample(range(len(train)), cap if parity else min(TRAIN_INFERRED, len(train)))
    test_items = [{**train_items[i], "type": "train_inferred"} for i in inferred]
    if parity:  # the slice aliases the train items (Q11)
        for i in inferred:
            train_items[i]["type"] = "train_inferred"
    test_items += [{**_texts(s, c[:-1], _evaluate(s, fns, c[:-1]), mode), "type": "type_0"}
                   for c in type0]
    rng.shuffle(test_items)
    seen_fns = [{k: fn[k] for k in keys} for fn, keys in zip(fns, seen, strict=True)]
    return train_items, test_items, seen_fns


def _uniform_chains(
    s: Structure, fns: Sequence[dict], seen: Sequence[list], rng: random.Random
) -> tuple[Any, int]:
    """(draw, count): a sampler of all-seen chains (inputs..., target) of a linear chain task,
    uniform without enumerating them, as upstream's fivehop sampler draws, and their number.

    Completion counts are computed bottom-up over the seen keys (seen order); each hop is
    chosen with probability proportional to its count (randint + bisect), the last uniformly.
    A bridge value without seen continuations counts zero (upstream raises KeyError, Q36).
    """
    depth = len(s.hops)
    index: list[dict[int, list[tuple[int, int]]]] = []
    for f, _ in s.hops[1:]:
        groups: dict[int, list[tuple[int, int]]] = {}
        for key in seen[f]:
            groups.setdefault(key[0], []).append((key[1], fns[f][key]))
        index.append(groups)
    counts = {b: len(children) for b, children in index[-1].items()}
    cumulative: list[dict[int, list[int]]] = [{} for _ in index]
    for hop in range(depth - 3, -1, -1):
        for b, children in index[hop].items():
            cumulative[hop][b] = list(itertools.accumulate(counts.get(v, 0) for _, v in children))
        counts = {b: cum[-1] for b, cum in cumulative[hop].items()}
    f0 = s.hops[0][0]
    roots = list(seen[f0])
    root_cum = list(itertools.accumulate(counts.get(fns[f0][key], 0) for key in roots))
    randbelow = rng._randbelow  # randint(1, m) is 1 + _randbelow(m); choice is seq[_randbelow]
    last = index[-1]

    def draw() -> tuple[int, ...]:
        key = roots[bisect_left(root_cum, 1 + randbelow(root_cum[-1]))]
        xs, b = list(key), fns[f0][key]
        for hop in range(depth - 2):
            children, cum = index[hop][b], cumulative[hop][b]
            x, b = children[bisect_left(cum, 1 + randbelow(cum[-1]))]
            xs.append(x)
        children = last[b]
        x, t = children[randbelow(len(children))]
        return (*xs, x, t)

    return draw, root_cum[-1] if root_cum else 0


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
    s = STRUCTURES.get(parts[0])
    if s is None or len(parts) != 4 + bool(s.same_tag) or not (parts[1] + parts[2]).isdigit():
        raise ValueError(f"not a coverage dataset name (task.N.max.same|diff-f..mode, "
                         f"fivehop.N.max.cot): {name!r}")
    same = bool(s.same_tag) and parts[3].startswith("same")
    return parts[0], int(parts[1]), int(parts[2]), same, parts[-1]


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
