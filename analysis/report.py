"""Markdown report with PNG plots from a results directory (SCIENCE.md sections 2-6).

Every section that cannot be computed for these results says so and why; nothing is dropped
silently. The report opens with its inputs: result files, manifest hashes and excluded seeds.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis import audit, decompose, dose_response, escape, seeds, stats
from analysis.atomic import atomic_path
from analysis.results import (
    SOURCE,
    Tidy,
    attach_manifests,
    read_manifests,
    read_results,
    tidy_results,
)

MAX_FACTOR_LEVELS = 12
MAX_LISTED = 12
ORDINAL = {"low": 0.0, "medium": 0.5, "high": 1.0}


@dataclasses.dataclass(frozen=True)
class ReportOptions:
    """Knobs of the report's resampling analyses."""

    n_boot: int = 2000
    n_perm: int = 10000
    power_draws: int = 200
    power_perm: int = 200
    power_ns: tuple[int, ...] = seeds.DEFAULT_NS
    tost_margin_pp: float = 3.0
    gain: float = 0.03
    seed: int = 0


def write_report(
    results: str | os.PathLike,
    out: str | os.PathLike,
    split: str = "test",
    metric: str = "exact_match",
    measures: str | os.PathLike | None = None,
    constructs: Mapping[str, str] | None = None,
    model_dir: str | os.PathLike | None = None,
    options: ReportOptions = ReportOptions(),
) -> Path:
    """Write OUT/report.md and its PNGs from the results under `results`; return the .md path.

    `measures` (CSV: benchmark, example_id, n_atoms, n_pairs, depth, out_len) and `constructs`
    (benchmark -> what its pairs measure) enable the audit; manifests are read from `model_dir`
    (default: `results`) when the audit needs example ids.
    """
    out = Path(out)
    raw = read_results(results)
    tidy = tidy_results(raw, split, metric)
    if tidy.frame.empty:
        raise ValueError(f"{results}: no usable seeds on split {split!r} after exclusions")
    if measures is not None and constructs is not None:  # inputs checked before writing
        measures = _audit_inputs(measures, tidy.frame, model_dir or results)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a directory")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        path = _write(staging, results, raw, tidy, metric, measures, constructs, options)
        out.mkdir(exist_ok=True)
        for made in sorted(staging.iterdir()):
            os.replace(made, out / made.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out / path.name


def _audit_inputs(measures: str | os.PathLike, frame: pd.DataFrame,
                  model_dir: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(measures table, per-seed rows with manifest ids): a bad file or a manifest whose hash
    is not the one the results name is a ValueError, raised before the report writes."""
    try:
        table = pd.read_csv(measures)
    except (ValueError, OSError) as err:
        raise ValueError(f"{measures}: cannot read the measures CSV ({err})") from None
    manifests = read_manifests(model_dir)[["cell", "seed", "hash", "ids", "path"]]
    return audit.check_measures(table), attach_manifests(frame, manifests).drop(columns="path")


def _write(out: Path, results: Any, raw: pd.DataFrame, tidy: Tidy, metric: str, measures: Any,
           constructs: Mapping[str, str] | None, options: ReportOptions) -> Path:
    """Every section, figure and table of the report into the (empty) directory `out`."""
    doc = _Doc(out)
    _inputs(doc, results, raw, tidy)
    frame = tidy.frame
    for bench, rows in frame.groupby("benchmark"):
        doc.h(2, f"{bench}")
        doc.section(
            "Diversity dose-response", lambda r=rows, b=bench: _dose(doc, r, b, tidy, options)
        )
        doc.section("Diversity x exposure", lambda r=rows, b=bench: _anova(doc, r, b, metric))
        for factor in _extra_factors(tidy, rows):
            doc.section(
                f"Diversity x {factor}",
                lambda r=rows, f=factor, b=bench: _factor(doc, r, b, f, metric, options),
            )
        doc.section("Escape audit", lambda r=rows, b=bench: _escape(doc, raw, r, b, tidy))
    doc.h(2, "Across datasets")
    doc.section("Slope comparisons", lambda: _between(doc, frame, metric, options))
    doc.section("Additive decomposition", lambda: _decomposition(doc, frame, metric, options))
    doc.section("Closed-headroom null calibration", lambda: _headroom(doc, frame, metric, options))
    doc.section(
        "Audit: measures, signatures, bucketization robustness",
        lambda: _audit(doc, metric, measures, constructs, options),
    )
    doc.section("Seed-count threshold", lambda: _power(doc, frame, metric, options))
    path = out / "report.md"
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(doc.lines) + "\n", encoding="utf-8")
    return path


class _Doc:
    """Markdown lines and figure paths, with sections that report their own failures."""

    def __init__(self, out: Path) -> None:
        """Start an empty document writing figures under `out`."""
        self.out = out
        self.lines: list[str] = ["# compgen-jax results report", ""]

    def h(self, level: int, text: str) -> None:
        """A heading."""
        self.lines += [f"{'#' * level} {text}", ""]

    def p(self, text: str) -> None:
        """A paragraph."""
        self.lines += [text, ""]

    def table(self, df: pd.DataFrame, digits: int = 4) -> None:
        """A markdown table; floats in compact general format."""
        cols = [str(c) for c in df.columns]
        self.lines.append("| " + " | ".join(cols) + " |")
        self.lines.append("|" + "---|" * len(cols))
        for row in df.itertuples(index=False):
            self.lines.append("| " + " | ".join(_fmt(v, digits) for v in row) + " |")
        self.lines.append("")

    def figure(self, name: str, caption: str) -> Path:
        """Reserve a PNG path beside the report and link it."""
        self.lines += [f"![{caption}]({name})", ""]
        return self.out / name

    def section(self, title: str, body: Callable[[], None]) -> None:
        """A titled subsection; a ValueError inside becomes a 'not computed' line."""
        self.h(3, title)
        try:
            body()
        except ValueError as err:
            self.p(f"_Not computed: {' '.join(str(err).split())}._")


def _fmt(value: Any, digits: int) -> str:
    """One table cell."""
    if isinstance(value, float | np.floating):
        return "-" if np.isnan(value) else f"{value:.{digits}g}"
    return str(value).replace("|", "\\|")


def _slug(text: str) -> str:
    """A file-name-safe version of a label."""
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(text))


def _inputs(doc: _Doc, results: Any, raw: pd.DataFrame, tidy: Tidy) -> None:
    """Inputs: files, rows, split, metric, manifest hashes and explicit exclusions."""
    doc.h(2, "Inputs")
    files = sorted(raw[SOURCE].unique())
    hashes = sorted(tidy.frame["manifest_hash"].unique())
    doc.p(
        f"Results `{results}`: {len(files)} file(s), {len(raw)} rows; split `{tidy.split}`, "
        f"metric `{tidy.metric}` at each seed's final eval step; {len(tidy.frame)} seeds in "
        f"{tidy.frame['cell'].nunique()} cells used."
    )
    doc.lines += [f"- `{f}`" for f in files] + [""]
    shown = ", ".join(f"`{h[:12]}`" for h in hashes[:MAX_LISTED])
    more = f" and {len(hashes) - MAX_LISTED} more" if len(hashes) > MAX_LISTED else ""
    inputs = doc.out / "inputs.csv"
    with atomic_path(inputs) as tmp:
        tidy.frame[["cell", "seed", "manifest_hash", SOURCE]].to_csv(tmp, index=False)
    doc.p(f"Manifest hashes ({len(hashes)}): {shown}{more}; every seed's in `{inputs.name}`.")
    if tidy.extra_factors:
        doc.p("Extra design columns kept: " + ", ".join(f"`{c}`" for c in tidy.extra_factors))
    if tidy.excluded.empty:
        doc.p("Excluded seeds: none.")
    else:
        doc.p(f"Excluded seeds ({len(tidy.excluded)}):")
        doc.table(tidy.excluded)


def _dose(doc: _Doc, rows: pd.DataFrame, bench: str, tidy: Tidy, options: ReportOptions) -> None:
    """Summary per N, Spearman, logistic fit, bootstrap slope CI and the dose-response plot."""
    metric = tidy.metric
    doc.table(dose_response.diversity_summary(rows, tidy.split, metric))
    trend = dose_response.diversity_trend(rows, tidy.split, metric)
    doc.p(
        f"Spearman rho vs N: seeds {trend['rho_seeds']:.3f} (p = {trend['p_seeds']:.3g}), "
        f"per-N means {trend['rho_means']:.3f} (p = {trend['p_means']:.3g})."
    )
    n, y = rows["n_unique"].to_numpy(), rows[metric].to_numpy()
    slope, lo, hi = stats.bootstrap_slope_ci(n, y, n_boot=options.n_boot, seed=options.seed)
    doc.p(f"OLS slope per log N: {slope:.4g} (95% bootstrap CI {lo:.4g} .. {hi:.4g}).")
    try:
        means = rows.groupby("n_unique")[metric].mean()
        fit = stats.logistic_dose_response(means.index.to_numpy(), means.to_numpy())
        doc.p(
            f"Logistic fit in log N (per-N means): R^2 = {fit['r2']:.4f}, lower {fit['lower']:.4f},"
            f" upper {fit['upper']:.4f}, N50 = {fit['n50']:.4g}, k = {fit['k']:.3g}."
        )
    except ValueError as err:
        doc.p(f"_Logistic fit not computed: {err}._")
    path = doc.figure(f"dose_{_slug(bench)}.png", f"{bench} dose-response")
    dose_response.plot_dose_response(rows, tidy.split, path, metric)


def _anova(doc: _Doc, rows: pd.DataFrame, bench: str, metric: str) -> None:
    """Two-way ANOVA N x E (types II and III) and a heatmap of cell means."""
    levels = rows["n_unique"].nunique(), rows["exposure"].nunique()
    if min(levels) < 2:
        raise ValueError(f"needs >= 2 levels of N and of E (have {levels[0]} and {levels[1]})")
    crossed = rows.groupby("n_unique")["exposure"].nunique().min()
    if crossed < 2:
        raise ValueError("N and E are confounded (some N is trained at a single exposure, as in a "
                         "fixed-budget diversity sweep); a factorial N x E design is needed")
    for typ in (2, 3):
        table = stats.two_way_anova(rows, "n_unique", "exposure", metric, typ=typ)
        doc.p(f"Type {'II' if typ == 2 else 'III'} sums of squares:")
        doc.table(table.reset_index())
    eta = table["partial_eta_sq"]
    verdict = "dominates" if eta["n_unique"] > eta["exposure"] else "does not dominate"
    doc.p(
        f"Partial eta^2 (type III): diversity {eta['n_unique']:.3f}, exposure "
        f"{eta['exposure']:.3f}; diversity {verdict} exposure (SCIENCE.md section 6: raise "
        "distinct examples first)."
    )
    means = rows.pivot_table(index="n_unique", columns="exposure", values=metric, aggfunc="mean")
    path = doc.figure(f"heatmap_{_slug(bench)}.png", f"{bench} N x E mean {metric}")
    _heatmap(means, path, f"{bench}: mean {metric} (%)")


def _extra_factors(tidy: Tidy, rows: pd.DataFrame) -> list[str]:
    """Extra design columns that are cell factors here: constant per cell, 2..12 levels."""
    out = []
    for col in tidy.extra_factors:
        if rows[col].isna().any():
            continue
        per_cell = rows.groupby("cell")[col].nunique()
        if (per_cell == 1).all() and 2 <= rows[col].nunique() <= MAX_FACTOR_LEVELS:
            out.append(col)
    return out


def _factor(
    doc: _Doc, rows: pd.DataFrame, bench: str, factor: str, metric: str, options: ReportOptions
) -> None:
    """N x factor ANOVA (if N varies) and TOST of the factor's extreme levels at each N."""
    if rows["n_unique"].nunique() >= 2:
        doc.table(stats.two_way_anova(rows, "n_unique", factor, metric, typ=2).reset_index())
    levels = sorted(rows[factor].unique(), key=_level_key)
    lo_level, hi_level = levels[0], levels[-1]
    out = []
    for n, g in rows.groupby("n_unique"):
        a = g.loc[g[factor] == hi_level, metric].to_numpy()
        b = g.loc[g[factor] == lo_level, metric].to_numpy()
        if a.size < 2 or b.size < 2:
            continue
        res = stats.tost_ind(a, b, options.tost_margin_pp)
        out.append(
            (n, res["diff_pp"], res["ci_pp"][0], res["ci_pp"][1], res["p"], res["equivalent"])
        )
    doc.p(f"TOST {factor} = {hi_level} vs {lo_level}, margin +/- {options.tost_margin_pp} pp:")
    cols = ["N", "diff_pp", "ci90_lo_pp", "ci90_hi_pp", "p_tost", "equivalent"]
    doc.table(pd.DataFrame(out, columns=cols))


def _level_key(value: Any) -> tuple:
    """Sort levels numerically when they look like numbers (q1 < q25 < q99), low before high."""
    if str(value).lower() in ORDINAL:
        return (0, ORDINAL[str(value).lower()], str(value))
    digits = "".join(ch for ch in str(value) if ch.isdigit() or ch == ".")
    try:
        return (0, float(digits), str(value))
    except ValueError:
        return (1, 0.0, str(value))


def _escape(doc: _Doc, raw: pd.DataFrame, rows: pd.DataFrame, bench: str, tidy: Tidy) -> None:
    """Per-cell mixture audit, strip plot, P(escape) regression, convergence-step test."""
    labels = escape.label_escapes(rows, tidy.split, tidy.metric)
    per_cell = labels.groupby("cell").agg(
        N=("n_unique", "first"), E=("exposure", "first"), seeds=("seed", "size"),
        k=("cell_k", "first"), escaped=("escaped", "sum"),
    ).reset_index().sort_values(["N", "E"])  # fmt: skip
    doc.table(per_cell)
    share = per_cell.assign(share=per_cell["escaped"] / per_cell["seeds"])
    floor = share[share["share"] >= 0.5].groupby("N")["E"].min()
    doc.p(
        "Exposure floor (smallest E with at least half the seeds escaped), per N: "
        + ", ".join(
            f"N = {n:g}: {floor.get(n, float('nan')):g}" for n in sorted(share["N"].unique())
        )
        + " (nan: never reached)."
    )
    path = doc.figure(f"strip_{_slug(bench)}.png", f"{bench} per-seed {tidy.metric} by cell")
    _strip(labels, tidy.metric, path, f"{bench}: per-seed {tidy.metric}, floor vs escaped")
    try:
        with warnings.catch_warnings():  # separation is reported by escape_regression itself
            warnings.simplefilter("ignore")
            reg = escape.escape_regression(labels)
        terms = pd.DataFrame(
            [(t, reg["coef"][t], reg["se"][t], *reg["ci"][t], reg["p"][t]) for t in reg["coef"]],
            columns=["term", "coef", "se", "ci_lo", "ci_hi", "p"],
        )
        doc.p(f"Logistic P(escape) ~ log N + log E ({reg['n']} seeds, {reg['n_escaped']} escaped):")
        doc.table(terms)
    except ValueError as err:
        doc.p(f"_Escape regression not computed: {err}._")
    curves = raw[(raw["split"] == tidy.split) & raw["cell"].isin(rows["cell"])]
    curves = curves.merge(labels[["cell", "seed", "escaped"]], on=["cell", "seed"])
    try:
        res = escape.escaped_converge_later(curves, tidy.split, tidy.metric)
        doc.p(
            f"Escaped seeds converge later? median step {res['median_step_escaped']:g} (escaped, "
            f"n = {res['n_escaped']}) vs {res['median_step_floor']:g} (floor, n = "
            f"{res['n_floor']}); one-sided Mann-Whitney p = {res['p']:.3g}."
        )
    except ValueError as err:
        doc.p(f"_Convergence test not computed: {err}._")


def _between(doc: _Doc, frame: pd.DataFrame, metric: str, options: ReportOptions) -> None:
    """Pairwise label-exchange permutation tests of diversity slopes."""
    benches = sorted(b for b, g in frame.groupby("benchmark") if g["n_unique"].nunique() >= 2)
    if len(benches) < 2:
        raise ValueError("needs at least two benchmarks with >= 2 N levels")
    rows = []
    for a, b in itertools.combinations(benches, 2):
        ga, gb = frame[frame["benchmark"] == a], frame[frame["benchmark"] == b]
        res = stats.permutation_test_slopes(
            ga["n_unique"], ga[metric], gb["n_unique"], gb[metric],
            n_perm=options.n_perm, seed=options.seed,
        )  # fmt: skip
        rows.append(
            (a, b, res["slope_1"], res["slope_2"], res["diff"], res["p"], res["n_shared_levels"])
        )
    cols = ["dataset_1", "dataset_2", "slope_1", "slope_2", "diff", "p", "shared_N_levels"]
    doc.p(f"Permutation tests ({options.n_perm} label exchanges within shared N levels, centred):")
    doc.table(pd.DataFrame(rows, columns=cols))


def _decomposition(doc: _Doc, frame: pd.DataFrame, metric: str, options: ReportOptions) -> None:
    """E1 -> E2 -> E3 decomposition when the results carry experiment and coverage columns."""
    if not {"experiment", "coverage"} <= set(frame.columns):
        raise ValueError("results have no 'experiment' and 'coverage' columns (E1-E3 designs)")
    table = decompose.decomposition_from_frame(
        frame, metric, n_boot=options.n_boot, seed=options.seed
    )
    doc.table(table)


def _headroom(doc: _Doc, frame: pd.DataFrame, metric: str, options: ReportOptions) -> None:
    """Observed vs constant-gain headroom spread."""
    res = audit.headroom_null(frame, metric, gain=options.gain)
    doc.table(res["table"])
    doc.p(
        f"Datasets used: {', '.join(res['datasets'])}"
        + (f" (excluded, headroom <= 0: {', '.join(res['excluded'])})" if res["excluded"] else "")
        + f". Observed spread {res['observed_spread']:.3g}x; constant gain +{res['gain']:g} "
        f"gives {res['synthetic_spread']:.3g}x: null share {100 * res['null_share']:.1f}%, "
        f"differential gain {100 * res['differential_share']:.1f}%."
    )


def _audit(
    doc: _Doc,
    metric: str,
    measures: tuple[pd.DataFrame, pd.DataFrame] | Any,
    constructs: Mapping[str, str] | None,
    options: ReportOptions,
) -> None:
    """Measure table, cardinality spread, robustness sweep with claim shares and a bar plot."""
    if measures is None or constructs is None:
        raise ValueError("pass --measures CSV and --constructs JSON to run the audit")
    table, with_ids = measures
    measured = audit.measure_table(table, constructs)
    doc.table(measured)
    spread = audit.cardinality_spread(measured)
    doc.p(
        f"Cardinality spread across datasets: pair instances {spread['pair_instances']:.3g}x, "
        f"unified signatures ({audit.DEFAULT_SCHEME}) {spread['n_signatures']:.3g}x."
    )
    res = audit.robustness_sweep(
        with_ids, table, metric, n_boot=options.n_boot, n_perm=options.n_perm, seed=options.seed
    )
    n_schemes = len(res["schemes"])
    doc.p(f"Share of the {n_schemes} bucket schemes preserving each claim of the log N analysis:")
    doc.table(res["claims"])
    doc.p("Slopes per log N (first row) and per log signature count under each scheme:")
    doc.table(res["slopes"].reset_index(names="x"))
    counts = res["signature_counts"].pivot_table(
        index="n_unique", columns="benchmark", values=audit.DEFAULT_SCHEME, aggfunc="mean"
    )
    doc.p(f"Mean distinct unified signatures ({audit.DEFAULT_SCHEME}) per manifest, by N:")
    doc.table(counts.reset_index().rename(columns={"n_unique": "N"}))
    path = doc.figure("robustness.png", "share of schemes preserving each claim")
    _bars(res["claims"], path)


def _power(doc: _Doc, frame: pd.DataFrame, metric: str, options: ReportOptions) -> None:
    """Power curves of the default contrasts and their thresholds."""
    contrasts = seeds.default_contrasts(frame)
    if not contrasts:
        raise ValueError("no benchmark has >= 2 N levels")
    pilot = frame.groupby("cell")["seed"].nunique()
    curves = seeds.power_curves(
        frame, metric, contrasts, ns=options.power_ns, n_draws=options.power_draws,
        n_perm=options.power_perm, seed=options.seed,
    )  # fmt: skip
    doc.p(
        f"Seeds drawn with replacement from pilot cells of {pilot.min()}-{pilot.max()} seeds; "
        f"{options.power_draws} draws x {options.power_perm} permutations per n; threshold = "
        f"smallest n with power >= {seeds.TARGET_POWER}."
    )
    doc.table(seeds.thresholds(curves))
    seeds.plot_power(curves, doc.figure("power.png", "power vs seeds per cell"))


def _new_figure(size: tuple[float, float]) -> Any:
    """A matplotlib Figure with an Agg canvas (no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=120)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Path) -> None:
    """Write a figure atomically as PNG."""
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


def _heatmap(means: pd.DataFrame, path: Path, title: str) -> None:
    """N (rows) x E (columns) heatmap of mean metric in %, annotated."""
    fig = _new_figure((6, 4))
    ax = fig.add_subplot()
    values = 100 * means.to_numpy(dtype=float)
    im = ax.imshow(values, cmap="viridis", aspect="auto", origin="lower")
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.1f}", ha="center", va="center", color="white", fontsize=7)
    ax.set_xticks(range(means.shape[1]), [f"{e:g}" for e in means.columns])
    ax.set_yticks(range(means.shape[0]), [f"{n:g}" for n in means.index])
    ax.set_xlabel("exposure E (passes per unique example)")
    ax.set_ylabel("distinct examples N")
    ax.set_title(title)
    fig.colorbar(im, ax=ax)
    _save(fig, path)


def _strip(labels: pd.DataFrame, metric: str, path: Path, title: str) -> None:
    """Per-seed metric per cell (ordered by N, E), floor seeds and escaped seeds coloured."""
    cells = labels.drop_duplicates("cell").sort_values(["n_unique", "exposure"])["cell"].tolist()
    pos = {c: i for i, c in enumerate(cells)}
    fig = _new_figure((max(5.0, 0.35 * len(cells) + 2), 4))
    ax = fig.add_subplot()
    jitter = np.random.default_rng(0).uniform(-0.15, 0.15, len(labels))
    x = labels["cell"].map(pos).to_numpy() + jitter
    for flag, colour, name in ((False, "tab:grey", "floor"), (True, "tab:red", "escaped")):
        m = labels["escaped"].to_numpy() == flag
        ax.scatter(x[m], 100 * labels[metric].to_numpy()[m], s=12, c=colour, label=name)
    ax.set_xticks(range(len(cells)), cells, rotation=60, ha="right", fontsize=6)
    ax.set_ylabel(f"{metric} (%)")
    ax.set_title(title)
    ax.legend(loc="best")
    _save(fig, path)


def _bars(claims: pd.DataFrame, path: Path) -> None:
    """Horizontal bars: share of schemes preserving each claim."""
    fig = _new_figure((7, 0.4 * len(claims) + 1.5))
    ax = fig.add_subplot()
    ax.barh(range(len(claims)), 100 * claims["share"].to_numpy(), color="tab:blue")
    ax.set_yticks(range(len(claims)), claims["claim"].tolist(), fontsize=6)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("schemes preserving the claim (%)")
    ax.set_title("bucketization robustness")
    _save(fig, path)


def load_constructs(path: str | os.PathLike) -> dict[str, str]:
    """A JSON object benchmark -> pair construct string."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: cannot read constructs JSON: {err}") from err
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ValueError(f"{path}: constructs must be a JSON object benchmark -> string")
    return data
