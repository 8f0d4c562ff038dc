"""Functional k-equivalence and k-coverage of coverage-principle datasets (COVERAGE_PRINCIPLE s.2).

Definition (upstream `determine_coverage.py`): for each fragment subset S of input positions
{0,1,2} (the six non-empty proper subsets; only {0,1} with `ground_truth`), two S-subsequences
seen in training are k-equivalent when they share >= k complements with equal targets and no
shared complement with different targets; classes are the transitive closure (Q5). Nodes are the
training triples and the type_0 test triples; every (class, complement, target) bucket is a
clique; a node is covered when its component holds a training triple.

Vectorised: per S, B = one-hot (subsequence x (complement, target)) and A = one-hot
(subsequence x complement); matching = B.B^T (sparse) lists the candidate pairs, shared = rows of
A ANDed (bit-packed popcount) on those pairs only; contradiction <=> shared > matching. Evidence
is computed once and thresholded for every k of the sweep (Q9 fixed, identical results); bucket
cliques become stars and components come from `scipy.sparse.csgraph`.

Quirks: Q1 default fix puts S in the bucket key; `parity=True` omits it and reproduces the
union-find root choice (union by size, ties to the earlier subsequence, pairs in first-seen
order), which is a sequential Python loop and slower. Q2 fixed (any threshold), Q3 fixed
(directory basename), Q4/Q6/Q8 reproduced (types other than type_0 are never nodes; ground-truth
test labels are used; type_0 items are duplicated as `covered_{k}` in test_annotated*.json),
Q36 the single-k ground-truth file is test_annotated_ground-truth_full.json (upstream writes it
under the k-sweep file's name). In both modes, as upstream: k-sweep percent = c / n * 100 (0 when
there is no type_0 item), and the single-k `coverage` flag is true for every item whose input is
a covered node, training inputs (train_inferred) included. With `parity=True` the k-sweep JSON,
test_annotated.json and test_annotated_full.json are upstream's bytes. `compare` diffs two
dataset or annotation directories item by item (`compgen-jax analysis compare A B`).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import re
from collections import defaultdict, deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from analysis.atomic import atomic_path
from analysis.coverage_dataset import read_items, read_json, read_vocab

SUBSETS: tuple[tuple[int, ...], ...] = ((0,), (1,), (2,), (0, 1), (0, 2), (1, 2))
GROUND_TRUTH_SUBSETS: tuple[tuple[int, ...], ...] = ((0, 1),)
ARITY = 3
END = "</a>"
DEVIATIONS = {
    "Q1": "bucket key includes the fragment subset S (parity=True omits it, as upstream)",
    "Q2": "any coverage threshold is accepted (upstream crashes at >= 9)",
    "Q3": "k-sweep file named from the directory basename (no trailing slash needed)",
    "Q4": "types other than type_0 are not evaluated (max_k = 0)",
    "Q9": "evidence computed once for all k (identical results)",
    "Q36": "single-k ground-truth file named test_annotated_ground-truth_full.json",
}
_TOKEN = re.compile(r"<[^<>]+>")
_CHUNK_BYTES = 1 << 25


@dataclasses.dataclass(frozen=True)
class CoverageData:
    """Token ids of a dataset: training triples and targets, test items parsed."""

    name: str
    n_tokens: int
    train_x: np.ndarray
    train_y: np.ndarray
    test_items: list[dict[str, Any]]
    test_x: np.ndarray
    test_y: np.ndarray


def _parse_items(path: Path, items: Any, ids: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """(inputs [n, 3], target ids [n]) of a JSON item list; errors name the file and item."""
    if not isinstance(items, list):
        raise ValueError(f"{path}: expected a JSON list of items")
    xs = np.empty((len(items), ARITY), dtype=np.int64)
    ys = np.empty(len(items), dtype=np.int64)
    for i, item in enumerate(items):
        if not (
            isinstance(item, dict)
            and isinstance(item.get("input_text"), str)
            and isinstance(item.get("target_text"), str)
        ):
            raise ValueError(f"{path}: item {i} is not {{input_text, target_text}}")
        inp = _TOKEN.findall(item["input_text"])
        if len(inp) != ARITY:
            raise ValueError(
                f"{path}: item {i} input {item['input_text']!r} has {len(inp)} "
                f"tokens; coverage needs {ARITY}-token inputs (2-hop/nontree)"
            )
        answer = [t for t in _TOKEN.findall(item["target_text"])[ARITY:] if t != END]
        if not answer:
            raise ValueError(f"{path}: item {i} target {item['target_text']!r} has no answer")
        try:
            xs[i] = [ids[t] for t in inp]
            ys[i] = ids[answer[-1]]
        except KeyError as err:
            raise ValueError(f"{path}: item {i} has token {err.args[0]} not in vocab") from None
    return xs, ys


def load_dataset(dataset_dir: str | os.PathLike[str]) -> CoverageData:
    """Read train.json, test.json and vocab.json of an upstream-layout dataset directory."""
    root = Path(dataset_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"coverage dataset directory {root} does not exist")
    vocab = read_vocab(root)
    ids = {t: i for i, t in enumerate(vocab)}
    train_x, train_y = _parse_items(root / "train.json", read_items(root, "train"), ids)
    test_items = read_items(root, "test")
    test_x, test_y = _parse_items(root / "test.json", test_items, ids)
    n = len(vocab)
    if not len(train_x):
        raise ValueError(f"{root / 'train.json'}: no training items")
    if 6 * n**5 >= 2**63:
        raise ValueError(f"{root}: vocabulary of {n} tokens is too large for int64 bucket keys")
    code = _encode(train_x, (0, 1, 2), n)
    uniq, inverse, counts = np.unique(code, return_inverse=True, return_counts=True)
    if (counts > 1).any():
        dup = np.flatnonzero(counts[inverse] > 1)
        rows = dup[code[dup] == code[dup[0]]]
        what = "conflicting targets" if len(set(train_y[rows].tolist())) > 1 else "duplicates"
        raise ValueError(f"{root / 'train.json'}: duplicate training input "
                         f"{_input_text(train_x[rows[0]], vocab)} at items "
                         f"{rows.tolist()} ({what})")  # fmt: skip
    pos = np.clip(np.searchsorted(uniq, _encode(test_x, (0, 1, 2), n)), 0, len(uniq) - 1)
    in_train = uniq[pos] == _encode(test_x, (0, 1, 2), n)
    clash = np.flatnonzero(in_train & (train_y[np.argsort(code)][pos] != test_y))
    if len(clash):
        raise ValueError(
            f"{root / 'test.json'}: item {int(clash[0])} has a target different "
            "from the training item with the same input"
        )
    types = [item.get("type") for item in test_items]
    t0 = np.flatnonzero(np.array([t == "type_0" for t in types], dtype=bool))
    t0_codes = _encode(test_x[t0], (0, 1, 2), n)
    if len(np.unique(t0_codes)) != len(t0_codes):
        raise ValueError(f"{root / 'test.json'}: duplicate type_0 inputs")
    return CoverageData(root.name, n, train_x, train_y, test_items, test_x, test_y)


def _input_text(x: np.ndarray, vocab: Sequence[str]) -> str:
    """The input string of a token-id triple."""
    return "".join(vocab[int(i)] for i in x)


def _encode(x: np.ndarray, cols: Sequence[int], n: int) -> np.ndarray:
    """Base-n integer code of the columns `cols` of x (empty cols: zeros)."""
    code = np.zeros(len(x), dtype=np.int64)
    for c in cols:
        code = code * n + x[:, c]
    return code


@dataclasses.dataclass(frozen=True)
class SubsetEvidence:
    """Distinct S-subsequences (first-seen order) and their contradiction-free evidence pairs."""

    subset: tuple[int, ...]
    sorted_codes: np.ndarray
    rank_of_sorted: np.ndarray
    codes: np.ndarray
    i: np.ndarray
    j: np.ndarray
    evidence: np.ndarray


def subset_evidence(
    x: np.ndarray, y: np.ndarray, subset: tuple[int, ...], n: int
) -> SubsetEvidence:
    """Evidence (matching shared complements) of every contradiction-free pair, from products."""
    comp = tuple(c for c in range(ARITY) if c not in subset)
    sorted_codes, first, inv = np.unique(
        _encode(x, subset, n), return_index=True, return_inverse=True
    )
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    sub = rank[inv]
    m = len(sorted_codes)
    ctx_codes, ctx = np.unique(_encode(x, comp, n), return_inverse=True)
    ones = np.ones(len(x), dtype=np.int32)
    b = sparse.csr_matrix((ones, (sub, ctx * n + y)), shape=(m, len(ctx_codes) * n))
    matching = sparse.triu(b @ b.T, k=1).tocoo()
    i, j, match = matching.row, matching.col, matching.data
    a = np.zeros((m, len(ctx_codes)), dtype=bool)
    a[sub, ctx] = True
    packed = np.packbits(a, axis=1)
    step = max(1, _CHUNK_BYTES // packed.shape[1])
    shared = np.zeros(len(i), dtype=np.int64)
    for s in range(0, len(i), step):
        both = packed[i[s : s + step]] & packed[j[s : s + step]]
        shared[s : s + step] = np.bitwise_count(both).sum(axis=1, dtype=np.int64)
    keep = shared == match
    order_ij = np.lexsort((j[keep], i[keep]))
    return SubsetEvidence(subset, sorted_codes, rank, sorted_codes[order],
                          i[keep][order_ij].astype(np.int64), j[keep][order_ij].astype(np.int64),
                          match[keep][order_ij].astype(np.int64))  # fmt: skip


def _roots(ev: SubsetEvidence, k: int, parity: bool) -> np.ndarray:
    """Index (first-seen order) of each subsequence's class representative at threshold k."""
    m = len(ev.codes)
    sel = ev.evidence >= k
    if not parity:
        graph = sparse.csr_matrix((np.ones(int(sel.sum()), dtype=np.int8),
                                   (ev.i[sel], ev.j[sel])), shape=(m, m))  # fmt: skip
        _, labels = connected_components(graph, directed=False)
        _, first = np.unique(labels, return_index=True)
        return first[labels]
    parent = list(range(m))
    size = [1] * m

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in zip(ev.i[sel].tolist(), ev.j[sel].tolist(), strict=True):
        ra, rb = find(a), find(b)
        if ra == rb:
            continue
        if size[ra] < size[rb]:
            ra, rb = rb, ra
        parent[rb] = ra
        size[ra] += size[rb]
    return np.array([find(a) for a in range(m)], dtype=np.int64)


def _bucket_keys(
    ev: SubsetEvidence,
    s: int,
    roots: np.ndarray,
    nodes: np.ndarray,
    targets: np.ndarray,
    n: int,
    parity: bool,
) -> np.ndarray:
    """(S or |S|, class representative code, complement code, target) keys of the nodes."""
    comp = tuple(c for c in range(ARITY) if c not in ev.subset)
    code = _encode(nodes, ev.subset, n)
    pos = np.clip(np.searchsorted(ev.sorted_codes, code), 0, len(ev.sorted_codes) - 1)
    seen = ev.sorted_codes[pos] == code
    cls = np.where(seen, ev.codes[roots[ev.rank_of_sorted[pos]]], code)
    prefix = len(ev.subset) if parity else s
    return ((prefix * n**2 + cls) * n**2 + _encode(nodes, comp, n)) * n + targets


def _covered(keys: list[np.ndarray], n_nodes: int, n_train: int) -> np.ndarray:
    """Nodes whose substitution-graph component contains a training node (first n_train)."""
    _, bucket = np.unique(np.concatenate(keys), return_inverse=True)
    n_buckets = int(bucket.max()) + 1 if len(bucket) else 0
    node = np.tile(np.arange(n_nodes), len(keys))
    graph = sparse.csr_matrix((np.ones(len(node), dtype=np.int8), (node, n_nodes + bucket)),
                              shape=(n_nodes + n_buckets,) * 2)  # fmt: skip
    _, labels = connected_components(graph, directed=False)
    return np.isin(labels[:n_nodes], labels[:n_train])


def coverage_matrix(
    train_x: np.ndarray,
    train_y: np.ndarray,
    query_x: np.ndarray,
    query_y: np.ndarray,
    n: int,
    k_max: int = 20,
    parity: bool = False,
    subsets: Sequence[tuple[int, ...]] = SUBSETS,
) -> np.ndarray:
    """covered[q, k-1]: query triple q is k-covered, for k = 1..k_max (one evidence pass)."""
    if k_max < 1:
        raise ValueError(f"k_max must be >= 1, got {k_max}")
    tr = _encode(train_x, (0, 1, 2), n)
    extra = ~np.isin(_encode(query_x, (0, 1, 2), n), tr)
    nodes = np.concatenate([train_x, query_x[extra]])
    targets = np.concatenate([train_y, query_y[extra]])
    evidence = [subset_evidence(train_x, train_y, s, n) for s in subsets]
    node_of_query = np.empty(len(query_x), dtype=np.int64)
    order = np.argsort(tr)
    q = _encode(query_x, (0, 1, 2), n)
    pos = np.clip(np.searchsorted(tr, q, sorter=order), 0, max(len(tr) - 1, 0))
    node_of_query[~extra] = order[pos[~extra]]
    node_of_query[extra] = len(train_x) + np.arange(int(extra.sum()))
    out = np.zeros((len(query_x), k_max), dtype=bool)
    for k in range(1, k_max + 1):
        keys = [
            _bucket_keys(ev, s, _roots(ev, k, parity), nodes, targets, n, parity)
            for s, ev in enumerate(evidence)
        ]
        out[:, k - 1] = _covered(keys, len(nodes), len(train_x))[node_of_query]
    return out


def kcoverage_table(
    dataset: str | os.PathLike[str] | CoverageData,
    k_max: int = 20,
    parity: bool = False,
    ground_truth: bool = False,
) -> pd.DataFrame:
    """One row per test.json item: index, type, input, target, max_k (largest covered k; 0 never).

    `dataset` is a dataset directory or its load_dataset result. `input`/`target` are the item's
    input_text/target_text. attrs hold the dataset name, the options, `k_sweep`
    {k: [n_covered_type0, percent]} (percent = n / n_type0 * 100, upstream's arithmetic),
    `covered_at` {k: covered type_0 indices} and `covered_items` {k: indices of the items whose
    input is a covered node, training inputs included (upstream's single-k `coverage` flag)}.
    """
    data = dataset if isinstance(dataset, CoverageData) else load_dataset(dataset)
    types = [str(item.get("type")) for item in data.test_items]
    t0 = np.flatnonzero(np.array([t == "type_0" for t in types], dtype=bool))
    covered = coverage_matrix(data.train_x, data.train_y, data.test_x[t0], data.test_y[t0],
                              data.n_tokens, k_max, parity,
                              GROUND_TRUTH_SUBSETS if ground_truth else SUBSETS)  # fmt: skip
    ks = np.arange(1, k_max + 1)
    codes = _encode(data.test_x, (0, 1, 2), data.n_tokens)
    in_train = np.isin(codes, _encode(data.train_x, (0, 1, 2), data.n_tokens))
    max_k = np.zeros(len(types), dtype=np.int64)
    max_k[t0] = (covered * ks).max(axis=1, initial=0)
    table = pd.DataFrame({
        "index": np.arange(len(types)),
        "type": types,
        "input": [item["input_text"] for item in data.test_items],
        "target": [item["target_text"] for item in data.test_items],
        "max_k": max_k,
    })  # fmt: skip
    counts = covered.sum(axis=0)
    table.attrs.update({
        "dataset": data.name, "k_max": k_max, "parity": parity, "ground_truth": ground_truth,
        "n_type0": len(t0),
        "deviations": {q: v for q, v in DEVIATIONS.items() if not (parity and q == "Q1")},
        "k_sweep": {int(k): [int(c), int(c) / len(t0) * 100 if len(t0) else 0]
                    for k, c in zip(ks, counts, strict=True)},
        "covered_at": {int(k): t0[covered[:, k - 1]].tolist() for k in ks},
        "covered_items": {
            int(k): np.flatnonzero(in_train | np.isin(codes, codes[t0[covered[:, k - 1]]])).tolist()
            for k in ks
        },
    })  # fmt: skip
    return table


def _write_json(path: Path, content: Any) -> Path:
    """Write JSON (indent=2) atomically; return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(content, indent=2), encoding="utf-8")
    return path


def write_upstream_outputs(
    table: pd.DataFrame,
    dataset_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    min_evidence: int = 1,
) -> list[Path]:
    """Write the k-sweep test_annotated, single-k (min_evidence) test_annotated, k-sweep JSON, CSV.

    Layout as upstream with `out_dir` in place of both the data directory and the working
    directory: test_annotated[_ground-truth].json (type_0 duplicated as covered_{max_k}),
    `k_sweep_results/<dataset>[_ground-truth].json` (str(k) -> [n, percent]) and the single-k
    file with a `coverage` flag (true for train_inferred items too, as upstream: a training input
    is a node of a component holding a training input): test_annotated_full.json, or
    test_annotated_ground-truth_full.json (Q36). Upstream-byte-identical in both modes, up to Q1.
    """
    test = read_items(dataset_dir, "test")
    if len(test) != len(table):
        raise ValueError(f"{dataset_dir}: test.json has {len(test)} items, table {len(table)}")
    attrs = table.attrs
    if not 1 <= min_evidence <= attrs["k_max"]:
        raise ValueError(f"min_evidence {min_evidence} outside 1..{attrs['k_max']}")
    suffix = "_ground-truth" if attrs["ground_truth"] else ""
    out = Path(out_dir)
    type0 = table.loc[table["type"] == "type_0", ["index", "max_k"]].itertuples(index=False)
    sweep = test + [{**test[i], "type": f"covered_{k}"} for i, k in type0]
    covered = set(attrs["covered_items"][min_evidence])
    single = [{**item, "coverage": i in covered} for i, item in enumerate(test)]
    table_path = out / f"coverage{suffix}.csv"
    with atomic_path(table_path) as tmp:
        table.to_csv(tmp, index=False)
    return [
        _write_json(out / f"test_annotated{suffix}.json", sweep),
        _write_json(out / f"test_annotated{suffix}_full.json", single),
        _write_json(
            out / "k_sweep_results" / f"{attrs['dataset']}{suffix}.json",
            {str(k): v for k, v in attrs["k_sweep"].items()},
        ),
        table_path,
    ]


def sweep_frame(table: pd.DataFrame) -> pd.DataFrame:
    """Tidy k-sweep: one row per k with n_covered, n_type0 and percent."""
    rows = [(k, n, table.attrs["n_type0"], pct) for k, (n, pct) in table.attrs["k_sweep"].items()]
    return pd.DataFrame(rows, columns=["k", "n_covered", "n_type0", "percent"])


def covered_accuracy(per_example: pd.DataFrame, kcov: pd.DataFrame,
                     ks: Sequence[int]) -> pd.DataFrame:
    """Mean accuracy per ([step,] type, k, covered at k = max_k >= k), seeds pooled and per seed.

    per_example: (index, seed, type, accuracy[, step]) rows; kcov: kcoverage_table.
    """
    joined = per_example.merge(kcov[["index", "max_k"]], on="index", validate="many_to_one")
    keys = ["step"] * ("step" in joined) + ["type", "k", "covered"]
    rows = []
    for k in ks:
        g = joined.assign(k=k, covered=joined["max_k"] >= k).groupby(keys, sort=False)
        table = g["accuracy"].agg(accuracy="mean", n_rows="size")
        table["n_items"] = g["index"].nunique()
        table["seed_accuracies"] = g.apply(
            lambda d: " ".join(f"{a:.3f}" for a in d.groupby("seed")["accuracy"].mean()),
            include_groups=False)
        rows.append(table.reset_index())
    return pd.concat(rows, ignore_index=True)


def prior_baseline(data: CoverageData, position: int = 2) -> pd.Series:
    """Per-type accuracy of guessing the target most frequent in training among items sharing
    the test item's token at `position` (ties split): "chance" for a model that ignores the rest.
    """
    n = data.n_tokens
    counts = np.zeros((n, n))
    np.add.at(counts, (data.train_x[:, position], data.train_y), 1)
    best = counts == counts.max(axis=1, keepdims=True)
    hit = best[data.test_x[:, position], data.test_y] / best[data.test_x[:, position]].sum(axis=1)
    types = pd.Series([item.get("type") for item in data.test_items], name="type")
    return pd.Series(hit).groupby(types).mean().rename(f"prior_pos{position}")


def plot_coverage_accuracy(
    table: pd.DataFrame, correct: pd.Series | dict[str, pd.Series], path: str | os.PathLike[str]
) -> Path:
    """PNG: type_0 accuracy by coverage threshold max_k (one line per labelled series, e.g. per
    checkpoint), over the covered fraction per k.

    Each series is indexed by test.json position (table `index`) with 0/1 or fractional scores.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    t0 = table[table["type"] == "type_0"]
    series = correct if isinstance(correct, dict) else {"": correct}
    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot(1, 1, 1)
    for label, scores in series.items():
        score = scores.reindex(t0["index"]).to_numpy(dtype=float)
        if np.isnan(score).any():
            raise ValueError(f"`correct` {label} lacks a score for some type_0 items")
        by_k = pd.DataFrame({"max_k": t0["max_k"].to_numpy(), "score": score}).groupby("max_k")
        acc = by_k["score"].agg(["mean", "size"])
        ax.plot(acc.index, acc["mean"], "o-", label=f"type_0 accuracy at max_k = k {label}")
    for k, row in acc.iterrows():
        ax.annotate(str(int(row["size"])), (k, row["mean"]), fontsize=7,
                    textcoords="offset points", xytext=(0, 5), ha="center")  # fmt: skip
    sweep = sweep_frame(table)
    ax.plot(sweep["k"], sweep["percent"] / 100, "s--", label="fraction k-covered")
    ax.set_xlabel("k (min evidence)")
    ax.set_ylabel("accuracy / fraction")
    ax.set_ylim(-0.02, 1.05)
    ax.set_title(f"{table.attrs['dataset']}: coverage vs accuracy by k (n per point annotated)")
    ax.legend(loc="best", fontsize=8)
    target = Path(path)
    with atomic_path(target) as tmp:
        FigureCanvasAgg(fig).print_png(str(tmp))
    return target


def reference_coverage(
    train: Sequence[tuple[int, ...]],
    train_y: Sequence[int],
    queries: Sequence[tuple[int, ...]],
    query_y: Sequence[int],
    k_max: int,
    parity: bool = False,
    subsets: Sequence[tuple[int, ...]] = SUBSETS,
) -> list[list[bool]]:
    """Pure-Python pair loop straight from the definition (tests and the speed benchmark)."""
    label = dict(zip(train, train_y, strict=True)) | dict(zip(queries, query_y, strict=True))
    behaviour = []
    for s in subsets:
        comp = tuple(c for c in range(ARITY) if c not in s)
        beh: dict[tuple, dict[tuple, int]] = defaultdict(dict)
        for tr in train:
            beh[tuple(tr[c] for c in s)][tuple(tr[c] for c in comp)] = label[tr]
        pairs = {}
        for (u, bu), (v, bv) in itertools.combinations(beh.items(), 2):
            shared = set(bu) & set(bv)
            if shared and all(bu[c] == bv[c] for c in shared):
                pairs[(u, v)] = len(shared)
        behaviour.append((s, comp, beh, pairs))
    nodes = list(dict.fromkeys([*train, *queries]))
    result = [[False] * k_max for _ in queries]
    for k in range(1, k_max + 1):
        buckets: dict[tuple, list] = defaultdict(list)
        for si, (s, comp, beh, pairs) in enumerate(behaviour):
            parent = {u: u for u in beh}
            size = dict.fromkeys(beh, 1)

            def find(a: tuple, parent: dict = parent) -> tuple:
                while parent.get(a, a) != a:
                    a = parent[a]
                return a

            for (u, v), e in pairs.items():
                ru, rv = find(u), find(v)
                if e >= k and ru != rv:
                    ru, rv = (rv, ru) if size[ru] < size[rv] else (ru, rv)
                    parent[rv] = ru
                    size[ru] += size[rv]
            for tr in nodes:
                key = (find(tuple(tr[c] for c in s)), tuple(tr[c] for c in comp), label[tr])
                buckets[key if parity else (si, *key)].append(tr)
        adjacency: dict[tuple, set] = defaultdict(set)
        for members in buckets.values():
            for a, b in itertools.combinations(members, 2):
                adjacency[a].add(b)
                adjacency[b].add(a)
        covered = set(train)
        todo = deque(train)
        while todo:
            for b in adjacency[todo.popleft()] - covered:
                covered.add(b)
                todo.append(b)
        for qi, q in enumerate(queries):
            result[qi][k - 1] = q in covered
    return result


def _json_files(root: Path) -> dict[str, Path]:
    """{relative path: path} of the JSON files under a directory (recursively)."""
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a directory")
    files = {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*.json"))}
    if not files:
        raise ValueError(f"{root}: no .json files (expected a dataset or annotation directory)")
    return files


def _canon(value: Any) -> str:
    """Compact, key-sorted JSON of a value (identity for comparisons and examples)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _item_key(item: Any) -> str:
    """An item's identity across files: its input_text, else the whole item."""
    if isinstance(item, dict) and isinstance(item.get("input_text"), str):
        return item["input_text"]
    return _canon(item)


def _diff_values(a: Any, b: Any, examples: int) -> list[str]:
    """Lines describing how two different JSON values of one file differ, item by item."""
    if isinstance(a, list) and isinstance(b, list):
        groups: list[dict[str, list[str]]] = [defaultdict(list), defaultdict(list)]
        for group, items in zip(groups, (a, b), strict=True):
            for item in items:
                group[_item_key(item)].append(_canon(item))
        ga, gb = groups
        missing = [k for k in ga if k not in gb]
        added = [k for k in gb if k not in ga]
        changed = [k for k in ga if k in gb and sorted(ga[k]) != sorted(gb[k])]
        lines = [f"{len(a)} vs {len(b)} items: {len(missing)} keys only in A, {len(added)} only "
                 f"in B, {len(changed)} changed (items keyed by input_text)"]  # fmt: skip
        lines += [f"only in A: {' '.join(ga[k])}" for k in missing[:examples]]
        lines += [f"only in B: {' '.join(gb[k])}" for k in added[:examples]]
        lines += [f"changed {k}: A {' '.join(ga[k])} | B {' '.join(gb[k])}"
                  for k in changed[:examples]]  # fmt: skip
        if not (missing or added or changed):
            first = next(i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y)
            lines = [f"{len(a)} items, the same ones in a different order (first at item {first})"]
        return lines
    if isinstance(a, dict) and isinstance(b, dict):
        keys = list(dict.fromkeys([*a, *b]))
        diff = [k for k in keys if a.get(k, ...) != b.get(k, ...)]
        return [f"{len(diff)} of {len(keys)} keys differ"] + [
            f"{k}: A {_canon(a[k]) if k in a else '(absent)'} | "
            f"B {_canon(b[k]) if k in b else '(absent)'}" for k in diff[:examples]
        ]  # fmt: skip
    return [f"A {type(a).__name__} {_canon(a)[:200]} | B {type(b).__name__} {_canon(b)[:200]}"]


def compare(
    dir_a: str | os.PathLike[str], dir_b: str | os.PathLike[str], examples: int = 3
) -> tuple[bool, list[str]]:
    """(identical, report lines) of two dataset or annotation directories' JSON files.

    Files are matched by relative path; those in one directory only are listed. Files with
    equal bytes are identical; otherwise the report says whether only the formatting differs,
    only the order, or which items (keyed by input_text) are only in A, only in B or changed,
    with up to `examples` of each. For migrating results between this and the upstream code.
    """
    a, b = Path(dir_a), Path(dir_b)
    files_a, files_b = _json_files(a), _json_files(b)
    lines = [f"A: {a}", f"B: {b}"]
    same = 0
    for name in dict.fromkeys([*files_a, *files_b]):
        if name not in files_b or name not in files_a:
            lines.append(f"{name}: only in {'A' if name in files_a else 'B'}")
            continue
        raw_a, raw_b = files_a[name].read_bytes(), files_b[name].read_bytes()
        if raw_a == raw_b:
            same += 1
            continue
        va, vb = read_json(files_a[name]), read_json(files_b[name])
        detail = (["same JSON content, different bytes (formatting)"] if va == vb
                  else _diff_values(va, vb, examples))  # fmt: skip
        lines += [f"{name}: {detail[0]}"] + [f"  {line}" for line in detail[1:]]
    identical = len(lines) == 2
    lines.append(f"{same} of {len(set(files_a) | set(files_b))} files byte-identical"
                 + ("" if identical else "; directories differ"))  # fmt: skip
    return identical, lines
