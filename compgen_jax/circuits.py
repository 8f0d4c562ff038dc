"""Circuit analyses of trained coverage-task decoders (COVERAGE_PRINCIPLE s.4), vmapped over seeds.

Hidden states follow HF indexing (0 = embeddings, l = block l output, ln_f on the last). Collapse
metrics and IICG group the residual at (layer, position) by a task's grouping (GROUPINGS); the
logit lens ranks every bridge entity; causal tracing (2-hop, inf and CoT) patches
hidden_states[l][p] with a counterfactual query's and re-runs blocks l.. . Fixes: Q24 (no double
ln_f), Q25 (CoT tracing ranks the bridge b/b' that the patched position changes, at the last input
position, which predicts it), Q26 (n_layers from the model); `parity=True` reproduces Q24 and Q25.

A grouping is a comma-joined list of quantities: inputs x1.., bridges b (b1, b2 with two), target
t. Deduplication keeps one item per group and per the input positions the grouped quantities
depend on (all inputs for an input-only grouping, as upstream's nontree x2). OOD = the test types
in which every hop computing a grouped bridge/target has an unseen key (type = code + 1, the hop-j
bit of the code weighing 2^(H-1-j), s.1.3); an input-only grouping takes every OOD type. This
rule reproduces the OOD lists of all upstream collapse scripts.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from analysis.atomic import write_text
from analysis.coverage import kcoverage_table
from analysis.coverage_dataset import read_items, read_json
from compgen_jax.coverage_data import CoverageData
from compgen_jax.multiseed import MultiSeedTrainer
from tasks.benchmarks import coverage

_INDEX = re.compile(r"<t_(\d+)>")
# Collapse groupings per task, each with the atomic_idx of that task's upstream script (an alias;
# None: no upstream script). threehop "b2,x3" is upstream's idx 4, "b2,x4" the spec's wording.
GROUPINGS: dict[str, dict[str, int | None]] = {
    "twohop": {"b": 1, "t": 2, "b,x2": 4},
    "threehop": {"b1": 1, "b2": 2, "t": 3, "b2,x4": None, "b2,x3": 4, "b1,b2": 5},
    "parallel2hop": {"b1": 1, "b2": 2, "t": 3, "b1,b2": None},
    "nontree": {"b": 1, "t": 2, "x2": 3, "b,x2": 4, "b,x1": 5},
}
COVERAGE_SCHEMES = ("low_mid_high", "split3", "per_k")


def token_indices(text: str) -> tuple[int, ...]:
    """Indices i of the <t_i> tokens of a text."""
    return tuple(int(i) for i in _INDEX.findall(text))


def load_function(path: Path) -> dict[tuple[int, ...], int]:
    """A primitive function from an atomic_facts_f*.json file."""
    items = read_json(path)
    return {token_indices(it["input_text"]): token_indices(it["target_text"])[-1] for it in items}


@dataclasses.dataclass(frozen=True)
class Task:
    """A dataset's name, structure, mode (inf/cot/...) and full primitive functions f1, f2, ..."""

    dataset: str
    structure: coverage.Structure
    mode: str
    fns: tuple[dict, ...]

    @property
    def bridges(self) -> tuple[str, ...]:
        """Bridge names: b for one bridge, else b1, b2, ..."""
        n = len(self.structure.hops) - 1
        return ("b",) if n == 1 else tuple(f"b{j + 1}" for j in range(n))

    def quantities(self, xs: Sequence[int]) -> dict[str, int]:
        """{x1.., bridges.., t} of an input tuple."""
        hs = coverage.chain_values(self.structure.name, self.fns, xs)
        return {**{f"x{i + 1}": x for i, x in enumerate(xs)},
                **dict(zip(self.bridges, hs[:-1], strict=True)), "t": hs[-1]}


def load_task(dataset_dir: Path) -> Task:
    """The Task of an upstream-layout dataset dir (name parsed, atomic_facts_f*.json loaded)."""
    name, *_, mode = coverage.parse_name(dataset_dir.name)
    s = coverage.STRUCTURES[name]
    fns = tuple(load_function(dataset_dir / f"atomic_facts_f{f + 1}.json")
                for f in range(1 + max(f for f, _ in s.hops)))
    return Task(dataset_dir.name, s, mode, fns)


def resolve_grouping(task: Task, grouping: str | int) -> str:
    """Canonical grouping name ("b,x2"; upstream atomic_idx aliases accepted), or ValueError."""
    if task.structure.name not in GROUPINGS:  # fivehop: upstream has no circuit analyses
        raise ValueError(f"{task.dataset}: no circuit analyses for {task.structure.name}; "
                         f"tasks with them: {', '.join(GROUPINGS)}")
    table = GROUPINGS[task.structure.name]
    aliases = {str(i): name for name, i in table.items() if i is not None}
    key = str(grouping).replace(" ", "").strip("()")
    name = aliases.get(key, key)
    if name not in table:
        allowed = ", ".join(f"{n!r}" + (f" (alias {i})" if i is not None else "")
                            for n, i in table.items())
        raise ValueError(f"{task.dataset}: no collapse grouping {grouping!r} for "
                         f"{task.structure.name}; allowed: {allowed}")
    return name


def _sources(task: Task) -> dict[str, tuple[frozenset[int], int | None]]:
    """Per quantity: the input positions it depends on and the hop computing it (None: input)."""
    s = task.structure
    out: dict[str, tuple[frozenset[int], int | None]] = {
        f"x{i + 1}": (frozenset({i}), None) for i in range(s.n_inputs)}
    deps: list[frozenset[int]] = []
    for _, args in s.hops:
        deps.append(frozenset().union(*(frozenset({int(a[1:])}) if a[0] == "x"
                                        else deps[int(a[1:])] for a in args)))
    for hop, name in enumerate((*task.bridges, "t")):
        out[name] = (deps[hop], hop)
    return out


def dedup_positions(task: Task, grouping: str | int) -> tuple[int, ...]:
    """Input positions keyed for deduplication: those the grouped computed quantities depend on."""
    sources = _sources(task)
    names = resolve_grouping(task, grouping).split(",")
    if all(sources[n][1] is None for n in names):
        return tuple(range(task.structure.n_inputs))
    return tuple(sorted(frozenset().union(*(sources[n][0] for n in names))))


def ood_types(task: Task, grouping: str | int) -> tuple[str, ...]:
    """Test types in which every hop computing a grouped quantity has an unseen key."""
    sources = _sources(task)
    hops = [sources[n][1] for n in resolve_grouping(task, grouping).split(",")
            if sources[n][1] is not None]
    h = len(task.structure.hops)
    return tuple(f"type_{k}" for k in range(1, 2**h)
                 if not any((k - 1) >> (h - 1 - j) & 1 for j in hops))


def analysis_positions(task: Task) -> list[int]:
    """Input positions, plus the bridge-slot positions of cot / fakebridge sequences."""
    n = task.structure.n_inputs
    slots = len(task.bridges) if task.mode in ("cot", "fakebridge") else 0
    return list(range(n + slots))


@functools.lru_cache(maxsize=8)
def _hidden_fn(trainer: MultiSeedTrainer):
    """jit(vmap over seeds) of hidden_states: params [S], tokens [B, T] -> [S, L+1, B, T, D]."""
    return jax.jit(jax.vmap(lambda p, t: trainer.model(p).hidden_states(t), in_axes=(0, None)))


def hidden_states(trainer: MultiSeedTrainer, params: Any, tokens: np.ndarray,
                  chunk: int = 2048) -> np.ndarray:
    """Per-seed residual stream [S, L+1, B, T, D] of a token batch, in chunks."""
    fn = _hidden_fn(trainer)
    return np.concatenate([np.asarray(fn(params, jnp.asarray(tokens[i: i + chunk])))
                           for i in range(0, len(tokens), chunk)], axis=2)


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise cosine similarity [len(a), len(b)]."""
    a = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12)
    return a @ b.T


def collapse_metrics(vectors: np.ndarray, groups: Sequence[Any]) -> dict[str, float]:
    """within / between (centroids) / between (all vectors) / all mean cosines, and IICG."""
    labels = np.unique(np.asarray([str(g) for g in groups]), return_inverse=True)[1]
    sim = _cos(vectors, vectors)
    upper = np.triu(np.ones_like(sim, bool), k=1)
    same = labels[:, None] == labels[None, :]
    centroids = np.stack([vectors[labels == g].mean(axis=0) for g in range(labels.max() + 1)])
    csim = _cos(centroids, centroids)
    out = {"within": sim[upper & same].mean() if (upper & same).any() else np.nan,
           "between_centroids": csim[np.triu_indices(len(centroids), k=1)].mean()
           if len(centroids) > 1 else np.nan,
           "between_all": sim[upper & ~same].mean() if (upper & ~same).any() else np.nan,
           "all": sim[upper].mean() if upper.any() else np.nan}
    out["iicg"] = out["within"] - out["between_all"]
    return {k: float(v) for k, v in out.items()}


def collapse_items(task: Task, test_items: Sequence[dict], grouping: str | int,
                   cover_groups: Mapping[int, str] | None = None,
                   ) -> dict[str, tuple[np.ndarray, list]]:
    """{id_train, id_test, ood[, id_test_<label>]}: (test.json rows, group keys), deduplicated.

    `cover_groups` ({type_0 row: coverage group}) adds one id_test split per group.
    """
    names = resolve_grouping(task, grouping).split(",")
    keep = dedup_positions(task, grouping)
    wanted = {"id_train": ("train_inferred",), "id_test": ("type_0",),
              "ood": ood_types(task, grouping)}
    members = {split: [i for i, it in enumerate(test_items) if it["type"] in types]
               for split, types in wanted.items()}
    for label in dict.fromkeys((cover_groups or {}).values()):
        members[f"id_test_{label}"] = sorted(i for i, g in cover_groups.items() if g == label)
    out = {}
    for split, rows in members.items():
        chosen, keys, seen = [], [], set()
        for i in rows:
            xs = token_indices(test_items[i]["input_text"])
            q = task.quantities(xs)
            group = q[names[0]] if len(names) == 1 else tuple(q[n] for n in names)
            dedup = (group, tuple(xs[p] for p in keep))
            if dedup not in seen:
                seen.add(dedup)
                chosen.append(i)
                keys.append(group)
        out[split] = (np.asarray(chosen, np.int64), keys)
    return out


def collapse_table(trainer: MultiSeedTrainer, params: Any, seeds: Sequence[int],
                   data: CoverageData, task: Task, test_items: Sequence[dict],
                   grouping: str | int, cover_groups: Mapping[int, str] | None = None,
                   ) -> pd.DataFrame:
    """Collapse metrics per (seed, split, layer, position) over analysis_positions."""
    name = resolve_grouping(task, grouping)
    rows = []
    for split, (idx, keys) in collapse_items(task, test_items, name, cover_groups).items():
        if len(idx) == 0:
            continue
        hs = hidden_states(trainer, params, data.test["tokens"][idx])
        for s, seed in enumerate(seeds):
            for layer in range(hs.shape[1]):
                for pos in analysis_positions(task):
                    rows.append({"seed": seed, "split": split, "grouping": name,
                                 "layer": layer, "position": pos, "n_vectors": len(idx),
                                 "n_groups": len(set(map(str, keys))),
                                 **collapse_metrics(hs[s, layer, :, pos], keys)})
    return pd.DataFrame(rows)


def counterfactuals(test_items: Sequence[dict], train_items: Sequence[dict], f1: dict,
                    f2: dict) -> list[tuple[int, tuple[int, int, int], int, int, int]]:
    """(test row, query (x1, x2', x3), b, t, t') per item, selected as upstream (seed 0)."""
    seen_f1, seen_f2 = set(), set()
    for item in train_items:
        x1, x2, x3 = token_indices(item["input_text"])[:3]
        seen_f1.add((x1, x2))
        seen_f2.add((f1[(x1, x2)], x3))
    by_bridge: dict[tuple[int, int], list[int]] = {}
    for x1, x2 in sorted(seen_f1):
        by_bridge.setdefault((x1, f1[(x1, x2)]), []).append(x2)
    rng = np.random.RandomState(0)
    out, done = [], set()
    for i, item in enumerate(test_items):
        if item["type"] not in ("train_inferred", "type_0"):
            continue
        x1, x2, x3 = token_indices(item["input_text"])[:3]
        b, t = f1[(x1, x2)], f2[(f1[(x1, x2)], x3)]
        if (x1, x2) in done:
            continue
        done.add((x1, x2))
        candidates = sorted(
            (x2q, bq) for bq in {bb for (_, bb) in seen_f2 if bb != b}
            if (bq, x3) in seen_f2 and f2[(bq, x3)] != t
            for x2q in by_bridge.get((x1, bq), []) if x2q != x2)
        if candidates:
            x2q, bq = candidates[rng.randint(len(candidates))]
            out.append((i, (x1, x2q, x3), b, t, f2[(bq, x3)]))
    return out


@functools.lru_cache(maxsize=8)
def _tracing_fn(trainer: MultiSeedTrainer, read: int, patch: tuple[int, ...]):
    """jit(vmap over seeds): logits at `read` patched per (layer, p in patch) -> [S, L-1, P, B, V],
    and the unpatched logits at `read` of the original and the query [S, B, V]."""

    def one(params, orig, query):
        model = trainer.model(params)
        h_orig, h_query = model.hidden_states(orig), model.hidden_states(query)
        out = [jnp.stack([model.logits_from(h_orig[layer].at[:, p].set(h_query[layer][:, p]),
                                            layer)[:, read] for p in patch])
               for layer in range(1, h_orig.shape[0] - 1)]
        base = model.logits_from(h_orig[1], 1)[:, read], model.logits_from(h_query[1], 1)[:, read]
        return jnp.stack(out), base[0], base[1]

    return jax.jit(jax.vmap(one, in_axes=(0, None, None)))


def _rank(logits: np.ndarray, target: np.ndarray) -> np.ndarray:
    """0-based rank of target ids (broadcastable to logits.shape[:-1]) under logits [..., V]."""
    target = np.broadcast_to(target, logits.shape[:-1])
    chosen = np.take_along_axis(logits, target[..., None], axis=-1)
    return (logits > chosen).sum(axis=-1)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def causal_tracing(trainer: MultiSeedTrainer, params: Any, seeds: Sequence[int],
                   data: CoverageData, test_items: Sequence[dict], f1: dict, f2: dict,
                   train_items: Sequence[dict], cot: bool = False,
                   parity: bool = False) -> pd.DataFrame:
    """Per (seed, item, layer, position): ranks of the true and counterfactual answer (columns
    t, tq) and p(tq) before/after patching, read at the last input position.

    inf: patch positions 0..2 and rank t/t'. cot: patch only position 1 (the query's (x1, x2'))
    and rank b/b', which that position predicts (Q25 fixed); `parity` ranks t/t' there as
    upstream. The `measured` column says which quantity the t/tq columns hold.
    """
    cf = counterfactuals(test_items, train_items, f1, f2)
    if not cf:
        return pd.DataFrame()
    rows_idx = np.array([c[0] for c in cf])
    orig = data.test["tokens"][rows_idx]
    query = orig.copy()
    query[:, :3] = np.array([[data.token_id(f"<t_{x}>") for x in c[1]] for c in cf])
    measured = "b" if cot and not parity else "t"
    pairs = ([(b, f1[query_xs[:2]]) for _, query_xs, b, _, _ in cf] if measured == "b"
             else [(t, tq) for *_, t, tq in cf])
    t, tq = (np.array([data.token_id(f"<t_{v}>") for v in col]) for col in zip(*pairs, strict=True))
    patch = (1,) if cot else (0, 1, 2)
    patched, before, on_query = (np.asarray(a) for a in _tracing_fn(trainer, 2, patch)(
        params, jnp.asarray(orig), jnp.asarray(query)))
    rows = []
    p_after, p_before, p_query = _softmax(patched), _softmax(before), _softmax(on_query)
    r_t, r_tq = _rank(patched, t), _rank(patched, tq)
    r0_t, r0_tq = _rank(before, t), _rank(before, tq)
    n = len(cf)
    for s, seed in enumerate(seeds):
        for li in range(patched.shape[1]):
            for pi, p in enumerate(patch):
                rows.append(pd.DataFrame({
                    "seed": seed, "row": rows_idx,
                    "type": [test_items[i]["type"] for i in rows_idx], "measured": measured,
                    "layer": li + 1, "position": p, "rank_t_before": r0_t[s],
                    "rank_tq_before": r0_tq[s], "rank_t_after": r_t[s, li, pi],
                    "rank_tq_after": r_tq[s, li, pi],
                    "p_tq_before": p_before[s, np.arange(n), tq],
                    "p_tq_query": p_query[s, np.arange(n), tq],
                    "p_tq_after": p_after[s, li, pi, np.arange(n), tq]}))
    return pd.concat(rows, ignore_index=True)


def rank_summary(trace: pd.DataFrame, keys: Sequence[str] = ("type",)) -> pd.DataFrame:
    """Per (seed, *keys, position, layer): upstream's pre-filtered rank and flip counts."""
    by = ["seed", *keys, "position", "layer"]
    kept = trace[trace["rank_t_before"] <= trace["rank_tq_before"]].assign(
        top5=lambda d: d["rank_tq_after"] <= 5,
        flip=lambda d: d["rank_t_after"] > d["rank_tq_after"])
    summary = kept.assign(both=kept["top5"] & kept["flip"]).groupby(by).agg(
        passed_data_num=("row", "size"), top5=("top5", "sum"), flip=("flip", "sum"),
        both=("both", "sum")).reset_index()
    sample = trace.groupby(by).size().rename("sample_num")
    return summary.merge(sample.reset_index(), on=by)


def prob_summary(trace: pd.DataFrame, keys: Sequence[str] = ("type",)) -> pd.DataFrame:
    """Mean (p_after - p_before) / (p_query - p_before) per (seed, *keys, position, layer)."""
    denom = trace["p_tq_query"] - trace["p_tq_before"]
    bad = (trace["p_tq_after"] > trace["p_tq_query"]) | (denom < 1e-6)
    drop = bad.groupby([trace["seed"], trace["row"]]).transform("any")
    kept = trace[~drop].assign(effect=(trace["p_tq_after"] - trace["p_tq_before"]) / denom)
    return kept.groupby(["seed", *keys, "position", "layer"])["effect"].mean().reset_index()


def coverage_labels(thresholds: Mapping[int, int], scheme: str) -> dict[int, str]:
    """{row: coverage group} of per-row thresholds max_k, with upstream's `_coverage` labels:
    low_mid_high (k<3 / k=3 / k>3 cutoff), split3 (k<3 / k>=3) or per_k (covered_k)."""
    if scheme not in COVERAGE_SCHEMES:
        raise ValueError(f"unknown coverage grouping {scheme!r}; expected one of "
                         f"{COVERAGE_SCHEMES}")

    def label(k: int) -> str:
        if scheme == "per_k":
            return f"covered_{k}"
        if k < 3:
            return "low_cutoff"
        return "mid_cutoff" if k == 3 and scheme == "low_mid_high" else "high_cutoff"

    return {row: label(k) for row, k in thresholds.items()}


def thresholds_from_annotated(test_items: Sequence[dict],
                              annotated: Sequence[dict]) -> dict[int, int]:
    """{type_0 row of test.json: k} from test_annotated.json's covered_{k} duplicates (Q8)."""
    k_of = {it["input_text"]: int(it["type"].removeprefix("covered_")) for it in annotated
            if it["type"].startswith("covered_")}
    out = {}
    for i, item in enumerate(test_items):
        if item["type"] != "type_0":
            continue
        if item["input_text"] not in k_of:
            raise ValueError(f"test_annotated.json has no covered_k entry for type_0 item {i} "
                             f"({item['input_text']})")
        out[i] = k_of[item["input_text"]]
    return out


def coverage_thresholds(dataset_dir: Path, test_items: Sequence[dict],
                        k_max: int = 20) -> dict[int, int]:
    """{type_0 row: max_k}: from dataset_dir/test_annotated.json, else analysis.coverage."""
    annotated = dataset_dir / "test_annotated.json"
    if annotated.is_file():
        return thresholds_from_annotated(
            test_items, read_json(annotated))
    table = kcoverage_table(dataset_dir, k_max)
    t0 = table[table["type"] == "type_0"]
    return dict(zip(t0["index"].tolist(), t0["max_k"].tolist(), strict=True))


def add_coverage_groups(trace: pd.DataFrame, labels: Mapping[int, str]) -> pd.DataFrame:
    """The type_0 rows of a trace with a `coverage_group` column (labels by test.json row)."""
    t0 = trace[trace["type"] == "type_0"]
    return t0.assign(coverage_group=t0["row"].map(labels))


@functools.lru_cache(maxsize=8)
def _lens_fn(trainer: MultiSeedTrainer, parity: bool):
    """jit(vmap over seeds) of the logit lens of hidden_states[layer] (parity: Q24 double ln_f)."""

    def one(params, h, layer):
        model = trainer.model(params)
        if parity:
            return model.wte.attend(model.ln_f(h)).astype(jnp.float32)
        return model.lens(h, layer)

    return jax.jit(jax.vmap(one, in_axes=(0, 0, None)), static_argnums=2)


def logit_lens(trainer: MultiSeedTrainer, params: Any, seeds: Sequence[int],
               data: CoverageData, task: Task, test_items: Sequence[dict],
               parity: bool = False) -> pd.DataFrame:
    """Mean rank of each bridge under the logit lens per (seed, bridge, type, layer 1..L,
    position); items are train_inferred + type_0, deduplicated as that bridge's grouping."""
    lens = _lens_fn(trainer, parity)
    rows = []
    for bridge in task.bridges:
        split = collapse_items(task, test_items, bridge)
        idx = np.concatenate([split["id_train"][0], split["id_test"][0]])
        target = np.array([data.token_id(f"<t_{v}>")
                           for v in split["id_train"][1] + split["id_test"][1]])
        types = np.array([test_items[i]["type"] for i in idx])
        hs = hidden_states(trainer, params, data.test["tokens"][idx])
        for layer in range(1, hs.shape[1]):
            ranks = _rank(np.asarray(lens(params, jnp.asarray(hs[:, layer]), layer)),
                          target[:, None])
            for s, seed in enumerate(seeds):
                for pos in analysis_positions(task):
                    for t in sorted(set(types)):
                        rows.append({"seed": seed, "bridge": bridge, "type": t, "layer": layer,
                                     "position": pos,
                                     "mean_rank": float(ranks[s, types == t, pos].mean())})
    return pd.DataFrame(rows)


def plot_iicg(table: pd.DataFrame, path: Path) -> Path:
    """IICG by layer (mean over seeds): one panel per position; id_train / id_test / ood in bold,
    coverage-group splits (id_test_<group>) thin on a colour ramp in natural order (by k)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    positions = sorted(table["position"].unique())
    splits = list(dict.fromkeys(table["split"]))
    groups = sorted((s for s in splits if s not in ("id_train", "id_test", "ood")),
                    key=lambda s: [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", s)])
    splits = [s for s in splits if s not in groups] + groups
    ramp = plt.get_cmap("viridis")
    fig, axes = plt.subplots(1, len(positions), figsize=(3.6 * len(positions) + 2, 3.6),
                             sharey=True, squeeze=False)
    for ax, pos in zip(axes[0], positions, strict=True):
        for split in splits:
            m = table[(table["position"] == pos) & (table["split"] == split)].groupby(
                "layer")["iicg"].mean()
            if split in groups:
                style = {"color": ramp(groups.index(split) / max(len(groups) - 1, 1)), "lw": 0.8}
            else:
                style = {"lw": 2.2, "marker": "o"}
            ax.plot(m.index, m.values, label=split, **style)
        ax.set(xlabel="layer", title=f"position {pos}")
    axes[0][0].set_ylabel("IICG (within - between)")
    axes[0][-1].legend(fontsize=6, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle("Collapse by layer")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_patching(summary: pd.DataFrame, path: Path) -> Path:
    """Heatmaps of the flip fraction (layer x position), one panel per data type."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    types = sorted(summary["type"].unique())
    fig, axes = plt.subplots(1, len(types), figsize=(4 * len(types), 3.5), squeeze=False)
    for ax, t in zip(axes[0], types, strict=True):
        g = summary[summary["type"] == t].groupby(["layer", "position"])
        g = g[["flip", "passed_data_num"]].sum()
        frac = (g["flip"] / g["passed_data_num"].clip(lower=1)).unstack("position")
        im = ax.imshow(frac.values, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set(xticks=range(frac.shape[1]), xticklabels=frac.columns, yticks=range(frac.shape[0]),
               yticklabels=frac.index, xlabel="position", ylabel="layer", title=f"{t}: flip")
        fig.colorbar(im, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def run_circuits(model_dir: Path, trainer: MultiSeedTrainer, params: Any, seeds: Sequence[int],
                 data: CoverageData, dataset_dir: Path, grouping: str | int | None = None,
                 coverage_groups: str | None = None, parity: bool = False,
                 k_max: int = 20, step: int | None = None) -> list[Path]:
    """All analyses of a trained coverage cell into model_dir/circuits/[step_<step>/]; returns
    the written paths.

    Collapse/IICG under one grouping (default: the first bridge) and the logit lens for every
    task; causal tracing for twohop inf/cot. `coverage_groups` (a COVERAGE_SCHEMES name, 3-token
    tasks) splits type_0 by coverage threshold in the collapse table and tracing summaries.
    """
    task = load_task(dataset_dir)
    name = resolve_grouping(task, task.bridges[0] if grouping is None else grouping)
    test_items = read_items(dataset_dir, "test")
    labels = None
    if coverage_groups is not None:
        if task.structure.n_inputs != 3:
            raise ValueError(f"{task.dataset}: coverage groups need the 3-token inputs of "
                             "twohop or nontree (analysis.coverage)")
        labels = coverage_labels(coverage_thresholds(dataset_dir, test_items, k_max),
                                 coverage_groups)
    out = model_dir / "circuits" / ("" if step is None else f"step_{step}")
    out.mkdir(parents=True, exist_ok=True)
    stem = name.replace(",", "-")
    collapse = collapse_table(trainer, params, seeds, data, task, test_items, name, labels)
    tables = {f"collapse_{stem}.csv": collapse,
              "logit_lens.csv": logit_lens(trainer, params, seeds, data, task, test_items, parity)}
    plots = [plot_iicg(collapse, out / f"iicg_{stem}.png")]
    if task.structure.name == "twohop" and task.mode in ("inf", "cot"):
        train_items = read_items(dataset_dir, "train")
        trace = causal_tracing(trainer, params, seeds, data, test_items, *task.fns, train_items,
                               cot=task.mode == "cot", parity=parity)
        ranks = rank_summary(trace)
        tables |= {"tracing_rank.csv": ranks, "tracing_prob.csv": prob_summary(trace)}
        if labels is not None:
            grouped = add_coverage_groups(trace, labels)
            tables |= {f"tracing_rank_{coverage_groups}.csv":
                       rank_summary(grouped, ("coverage_group",)),
                       f"tracing_prob_{coverage_groups}.csv":
                       prob_summary(grouped, ("coverage_group",))}
        plots.append(plot_patching(ranks, out / "patching_flip.png"))
    for table_name, table in tables.items():
        write_text(out / table_name, table.to_csv(index=False))
    return [out / table_name for table_name in tables] + plots
