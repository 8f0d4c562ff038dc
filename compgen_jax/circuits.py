"""Circuit analyses of a trained 2-hop decoder (COVERAGE_PRINCIPLE s.4), vmapped over seeds.

Hidden states follow HF indexing (0 = embeddings, l = block l output, ln_f on the last). Collapse
metrics and IICG group the residual at (layer, position) by bridge / target / (bridge, x2); causal
tracing patches hidden_states[l][p] with a counterfactual query's and re-runs blocks l..; the logit
lens ranks the bridge entity. Fixes: Q24 (no double ln_f), Q26 (n_layers from the model).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from compgen_jax.multiseed import MultiSeedTrainer
from compgen_jax.synthetic import CoverageData
from tasks.atomic import write_text
from tasks.benchmarks import coverage

_INDEX = re.compile(r"<t_(\d+)>")
OOD_TYPES = {1: ("type_1", "type_2"), 2: ("type_1", "type_3"), 4: ("type_1", "type_2")}


def token_indices(text: str) -> tuple[int, ...]:
    """Indices i of the <t_i> tokens of a text."""
    return tuple(int(i) for i in _INDEX.findall(text))


def load_function(path: Path) -> dict[tuple[int, ...], int]:
    """A primitive function from an atomic_facts_f*.json file."""
    items = json.loads(path.read_text(encoding="utf-8"))
    return {token_indices(it["input_text"]): token_indices(it["target_text"])[-1] for it in items}


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


def collapse_items(data: CoverageData, test_items: Sequence[dict], f1: dict,
                   atomic_idx: int) -> dict[str, tuple[np.ndarray, list]]:
    """{id_train, id_test, ood}: (test.json rows, group keys), deduplicated as upstream."""
    types = {"id_train": ("train_inferred",), "id_test": ("type_0",),
             "ood": OOD_TYPES[atomic_idx]}
    out = {}
    for split, wanted in types.items():
        rows, keys, seen = [], [], set()
        for i, item in enumerate(test_items):
            if item["type"] not in wanted:
                continue
            x1, x2, x3, t = token_indices(item["target_text"])[:4]
            b = f1[(x1, x2)]
            group = {1: b, 2: t, 4: (b, x2)}[atomic_idx]
            dedup = (group, (x1, x2, x3) if atomic_idx == 2 else (x1, x2))
            if dedup not in seen:
                seen.add(dedup)
                rows.append(i)
                keys.append(group)
        out[split] = (np.asarray(rows, np.int64), keys)
    return out


def collapse_table(trainer: MultiSeedTrainer, params: Any, seeds: Sequence[int],
                   data: CoverageData, test_items: Sequence[dict], f1: dict,
                   atomic_idx: int = 1) -> pd.DataFrame:
    """Collapse metrics per (seed, split, layer, position) over the input positions."""
    rows = []
    positions = range(len(token_indices(test_items[0]["input_text"])))
    for split, (idx, keys) in collapse_items(data, test_items, f1, atomic_idx).items():
        if len(idx) == 0:
            continue
        hs = hidden_states(trainer, params, data.test["tokens"][idx])
        for s, seed in enumerate(seeds):
            for layer in range(hs.shape[1]):
                for pos in positions:
                    rows.append({"seed": seed, "split": split, "atomic_idx": atomic_idx,
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
def _tracing_fn(trainer: MultiSeedTrainer, last: int):
    """jit(vmap over seeds): per-(layer, position) patched logits at `last` -> [S, L-1, P, B, V]."""

    def one(params, orig, query):
        model = trainer.model(params)
        h_orig, h_query = model.hidden_states(orig), model.hidden_states(query)
        out = []
        for layer in range(1, h_orig.shape[0] - 1):
            out.append(jnp.stack([
                model.logits_from(h_orig[layer].at[:, p].set(h_query[layer][:, p]), layer)[:, last]
                for p in range(last + 1)]))
        base = model.logits_from(h_orig[1], 1)[:, last], model.logits_from(h_query[1], 1)[:, last]
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
                   train_items: Sequence[dict]) -> pd.DataFrame:
    """Per (seed, item, layer, position): ranks of t and t' and p(t') before/after patching."""
    cf = counterfactuals(test_items, train_items, f1, f2)
    if not cf:
        return pd.DataFrame()
    rows_idx = np.array([c[0] for c in cf])
    orig = data.test["tokens"][rows_idx]
    query = orig.copy()
    query[:, :3] = np.array([[data.token_id(f"<t_{x}>") for x in c[1]] for c in cf])
    t = np.array([data.token_id(f"<t_{c[3]}>") for c in cf])
    tq = np.array([data.token_id(f"<t_{c[4]}>") for c in cf])
    patched, before, on_query = (np.asarray(a) for a in _tracing_fn(trainer, 2)(
        params, jnp.asarray(orig), jnp.asarray(query)))
    rows = []
    p_after, p_before, p_query = _softmax(patched), _softmax(before), _softmax(on_query)
    r_t, r_tq = _rank(patched, t), _rank(patched, tq)
    r0_t, r0_tq = _rank(before, t), _rank(before, tq)
    n = len(cf)
    for s, seed in enumerate(seeds):
        for li in range(patched.shape[1]):
            for p in range(patched.shape[2]):
                rows.append(pd.DataFrame({
                    "seed": seed, "row": rows_idx,
                    "type": [test_items[i]["type"] for i in rows_idx],
                    "layer": li + 1, "position": p, "rank_t_before": r0_t[s],
                    "rank_tq_before": r0_tq[s], "rank_t_after": r_t[s, li, p],
                    "rank_tq_after": r_tq[s, li, p],
                    "p_tq_before": p_before[s, np.arange(n), tq],
                    "p_tq_query": p_query[s, np.arange(n), tq],
                    "p_tq_after": p_after[s, li, p, np.arange(n), tq]}))
    return pd.concat(rows, ignore_index=True)


def rank_summary(trace: pd.DataFrame) -> pd.DataFrame:
    """Per (seed, type, position, layer): upstream's pre-filtered rank and flip counts."""
    kept = trace[trace["rank_t_before"] <= trace["rank_tq_before"]].assign(
        top5=lambda d: d["rank_tq_after"] <= 5,
        flip=lambda d: d["rank_t_after"] > d["rank_tq_after"])
    summary = kept.assign(both=kept["top5"] & kept["flip"]).groupby(
        ["seed", "type", "position", "layer"]).agg(
        passed_data_num=("row", "size"), top5=("top5", "sum"), flip=("flip", "sum"),
        both=("both", "sum")).reset_index()
    sample = trace.groupby(["seed", "type", "position", "layer"]).size().rename("sample_num")
    return summary.merge(sample.reset_index(), on=["seed", "type", "position", "layer"])


def prob_summary(trace: pd.DataFrame) -> pd.DataFrame:
    """Mean (p_after - p_before) / (p_query - p_before) per (seed, type, position, layer)."""
    denom = trace["p_tq_query"] - trace["p_tq_before"]
    bad = (trace["p_tq_after"] > trace["p_tq_query"]) | (denom < 1e-6)
    drop = bad.groupby([trace["seed"], trace["row"]]).transform("any")
    kept = trace[~drop].assign(effect=(trace["p_tq_after"] - trace["p_tq_before"]) / denom)
    return kept.groupby(["seed", "type", "position", "layer"])["effect"].mean().reset_index()


def logit_lens(trainer: MultiSeedTrainer, params: Any, seeds: Sequence[int],
               data: CoverageData, test_items: Sequence[dict], f1: dict) -> pd.DataFrame:
    """Mean rank of the bridge b under the logit lens per (seed, type, layer 1..L, position)."""
    idx, _ = collapse_items(data, test_items, f1, 1)["id_train"]
    idx = np.concatenate([idx, collapse_items(data, test_items, f1, 1)["id_test"][0]])
    hs = hidden_states(trainer, params, data.test["tokens"][idx])
    bridge = np.array([data.token_id(f"<t_{f1[token_indices(test_items[i]['input_text'])[:2]]}>")
                       for i in idx])
    types = np.array([test_items[i]["type"] for i in idx])
    lens = jax.jit(jax.vmap(lambda p, h, layer: trainer.model(p).lens(h, layer),
                            in_axes=(0, 0, None)), static_argnums=2)
    rows = []
    for layer in range(1, hs.shape[1]):
        ranks = _rank(np.asarray(lens(params, jnp.asarray(hs[:, layer]), layer)),
                      bridge[:, None])
        for s, seed in enumerate(seeds):
            for pos in range(3):
                for t in sorted(set(types)):
                    rows.append({"seed": seed, "type": t, "layer": layer, "position": pos,
                                 "mean_rank": float(ranks[s, types == t, pos].mean())})
    return pd.DataFrame(rows)


def plot_iicg(table: pd.DataFrame, path: Path) -> Path:
    """IICG by layer (mean over seeds), one line per (split, position)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for (split, pos), g in table.groupby(["split", "position"]):
        m = g.groupby("layer")["iicg"].mean()
        ax.plot(m.index, m.values, marker="o", label=f"{split} pos {pos}")
    ax.set(xlabel="layer", ylabel="IICG (within - between)", title="Collapse by layer")
    ax.legend(fontsize=7)
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
                 data: CoverageData, dataset_dir: Path, atomic_idx: int = 1) -> list[Path]:
    """All analyses of a trained 2-hop cell into model_dir/circuits/; returns written paths."""
    task, *_, mode = coverage.parse_name(dataset_dir.name)
    if (task, mode) != ("twohop", "inf"):
        raise ValueError(f"circuit analyses support twohop.*.inf datasets, not {dataset_dir.name}")
    test_items = json.loads((dataset_dir / "test.json").read_text(encoding="utf-8"))
    train_items = json.loads((dataset_dir / "train.json").read_text(encoding="utf-8"))
    f1 = load_function(dataset_dir / "atomic_facts_f1.json")
    f2 = load_function(dataset_dir / "atomic_facts_f2.json")
    out = model_dir / "circuits"
    out.mkdir(parents=True, exist_ok=True)
    collapse = collapse_table(trainer, params, seeds, data, test_items, f1, atomic_idx)
    trace = causal_tracing(trainer, params, seeds, data, test_items, f1, f2, train_items)
    ranks = rank_summary(trace)
    tables = {f"collapse_f{atomic_idx}.csv": collapse, "tracing_rank.csv": ranks,
              "tracing_prob.csv": prob_summary(trace),
              "logit_lens.csv": logit_lens(trainer, params, seeds, data, test_items, f1)}
    paths = []
    for name, table in tables.items():
        write_text(out / name, table.to_csv(index=False))
        paths.append(out / name)
    paths.append(plot_iicg(collapse, out / f"iicg_f{atomic_idx}.png"))
    paths.append(plot_patching(ranks, out / "patching_flip.png"))
    return paths
