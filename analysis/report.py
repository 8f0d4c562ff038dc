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
    factor_name,
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

    def __post_init__(self) -> None:
        """Refuse counts below 1 up front (0 resamples: an IndexError deep in a section)."""
        for name in ("n_boot", "n_perm", "power_draws", "power_perm"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                flag = "--" + name
                raise ValueError(f"report option {flag} must be a positive integer, got {value!r}")
        if not self.tost_margin_pp > 0 or not 0 < self.gain < 1:
            raise ValueError("report options: tost margin must be > 0 and gain in (0, 1)")


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
    # Everything is written into a staging folder and moved into OUT only when the whole report
    # succeeded: a failing run creates no OUT and never leaves a new inputs.csv by an older report.
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        doc = _Doc(staging)
        _build(doc, results, raw, tidy, metric, measures, constructs, options)
        with atomic_path(staging / "report.md") as tmp:
            tmp.write_text("\n".join(doc.lines) + "\n", encoding="utf-8")
        names = sorted(f.name for f in staging.iterdir() if f.name != "report.md")
        out.mkdir(exist_ok=True)
        for name in [*names, "report.md"]:
            os.replace(staging / name, out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out / "report.md"


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


def _build(
    doc: _Doc,
    results: Any,
    raw: pd.DataFrame,
    tidy: Tidy,
    metric: str,
    measures: Any,
    constructs: Mapping[str, str] | None,
    options: ReportOptions,
) -> None:
    """Every section of the report, in order."""
    _inputs(doc, results, raw, tidy)
    doc.p(
        "Models: seeds inside a cell share its design point, so each design's primary model "
        "has one observation per cell (the cell mean) and is printed first in its section: "
        + "; ".join(f"{k.replace('_', ' ')}: {v}" for k, v in stats.PRIMARY_MODEL.items())
        + ". Every other model a section prints (seeds as independent, cell-clustered SEs, the "
        "binomial GLM) is a sensitivity analysis. Every inference also prints the paper's "
        "procedure (`paper`) so published numbers can be checked: slope CIs (percentile "
        "bootstrap), between-dataset slopes (centred label exchange), the decomposition "
        "(percentile bootstrap) and the headroom null (synthetic / observed spread). Families "
        "of tests carry Holm-adjusted p (p_holm). Diverged and NaN seeds are excluded (listed "
        "below); design factors are the results' factor_* columns."
    )
    frame = tidy.frame
    for bench, rows in frame.groupby("benchmark"):
        doc.h(2, f"{bench}")
        doc.section(
            "Diversity dose-response", lambda r=rows, b=bench: _dose(doc, r, b, tidy, options)
        )
        doc.section("Diversity x exposure", lambda r=rows, b=bench: _anova(doc, r, b, metric))
        for factor in _design_factors(tidy, rows):
            doc.section(
                f"Diversity x {factor_name(factor)}",
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


def _pfmt(table: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    """Copy of `table` with its p-value columns as `stats.p_text` strings (never a bare '0')."""
    out = table.copy()
    for c in cols:
        out[c] = [stats.p_text(v) if isinstance(v, float | np.floating) else v for v in out[c]]
    return out


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
    if tidy.factors:
        doc.p("Design factors (results schema `factor_*`): "
              + ", ".join(f"`{factor_name(c)}`" for c in tidy.factors))
    if tidy.excluded.empty:
        doc.p("Excluded seeds: none.")
    else:
        doc.p(f"Excluded seeds ({len(tidy.excluded)}):")
        doc.table(tidy.excluded)


def _dose(doc: _Doc, rows: pd.DataFrame, bench: str, tidy: Tidy, options: ReportOptions) -> None:
    """Summary per N (per N x E when E varies), Spearman, slope CIs, logistic fit and the plot."""
    metric = tidy.metric
    if rows["exposure"].nunique() > 1:
        doc.p(f"Per cell (exposure varies, so N levels are not pooled over E); {metric} in %:")
        per = rows.groupby(["n_unique", "exposure"])[metric].agg(
            seeds="count", mean="mean", sd="std", min="min", max="max").reset_index()  # fmt: skip
        per[["mean", "sd", "min", "max"]] *= 100
        doc.table(per.rename(columns={"n_unique": "N", "exposure": "E"}))
    else:
        doc.table(dose_response.diversity_summary(rows, tidy.split, metric))
    trend = dose_response.diversity_trend(rows, tidy.split, metric)
    doc.p(
        f"Spearman rho vs N: seeds {trend['rho_seeds']:.3f} ({stats.p_phrase(trend['p_seeds'])}), "
        f"per-N means {trend['rho_means']:.3f} ({stats.p_phrase(trend['p_means'])})."
    )
    n, y = rows["n_unique"].to_numpy(), rows[metric].to_numpy()
    slope, lo, hi = stats.bootstrap_slope_ci(n, y)
    _, plo, phi = stats.bootstrap_slope_ci(n, y, n_boot=options.n_boot, seed=options.seed,
                                           method="percentile")  # fmt: skip
    try:
        cell = stats.cell_slope(n, y, rows["cell"].to_numpy())
        primary = (f"{cell['slope']:.4g} per log N, 95% CI {cell['ci'][0]:.4g} .. "
                   f"{cell['ci'][1]:.4g}, {stats.p_phrase(cell['p'])} ({cell['n_cells']} cells, "
                   f"t on {cell['df']:g} df)")
    except ValueError as err:
        primary = f"not computed ({' '.join(str(err).split())})"
    doc.p(f"Slope per log N. Primary ({stats.PRIMARY_MODEL['dose_response']}): {primary}. "
          f"Sensitivity: seeds as independent, OLS t interval {slope:.4g} ({lo:.4g} .. {hi:.4g}; "
          f"too narrow when cells differ beyond their seeds); paper: percentile bootstrap "
          f"{plo:.4g} .. {phi:.4g} (under-covers at 5 seeds per cell).")
    means = rows.groupby("n_unique")[metric].mean()
    try:
        fit = stats.logistic_dose_response(means.index.to_numpy(), means.to_numpy())
    except ValueError as err:
        doc.p(f"_Logistic fit not computed: {' '.join(str(err).split())}._")
    else:
        held = f"; held at the bound: {', '.join(fit['at_bound'])}" if fit["at_bound"] else ""
        if fit["identifiable"]:
            doc.p(f"Logistic fit in log N (per-N means, asymptotes bounded to [0, 1]{held}): "
                  f"R^2 = {fit['r2']:.4f}, floor {fit['lower']:.4f}, ceiling {fit['upper']:.4f}, "
                  f"N50 = {fit['n50']:.4g}, slope k = {fit['k']:.3g} (SE {fit['se']['k']:.2g}).")
        else:
            doc.p(f"_Logistic fit not identifiable: {fit['why']}; no N50 or slope is reported "
                  f"(R^2 = {fit['r2']:.4f} with asymptotes bounded to [0, 1]{held})._")
    path = doc.figure(f"dose_{_slug(bench)}.png", f"{bench} dose-response")
    dose_response.plot_dose_response(rows, tidy.split, path, metric)


def _anova(doc: _Doc, rows: pd.DataFrame, bench: str, metric: str) -> None:
    """N x E: Gaussian ANOVA (types II/III, HC3), binomial GLM, diagnostics and a heatmap."""
    levels = rows["n_unique"].nunique(), rows["exposure"].nunique()
    if min(levels) < 2:
        raise ValueError(f"needs >= 2 levels of N and of E (have {levels[0]} and {levels[1]})")
    crossed = rows.groupby("n_unique")["exposure"].nunique().min()
    if crossed < 2:
        raise ValueError("N and E are confounded (some N is trained at a single exposure, as in a "
                         "fixed-budget diversity sweep); a factorial N x E design is needed")
    empty = stats.empty_cells(rows, "n_unique", "exposure")
    if empty:
        listed = ", ".join(f"N = {n:g}, E = {e:g}" for n, e in empty)
        doc.p(f"Empty cells (every seed excluded): {listed}; type II only (type III hypotheses "
              "are undefined with empty cells).")
    try:
        primary = stats.factorial_cell_model(rows, metric)
        doc.p(f"Primary ({stats.PRIMARY_MODEL['factorial']}; {primary['n_cells']} cells, "
              f"{primary['df']:g} df; p_holm over the three slopes). The models after it treat "
              "seeds as independent or cluster them by cell and are sensitivity analyses:")
        doc.table(_pfmt(primary["table"], ["p", "p_holm"]))
    except ValueError as err:
        doc.p(f"_Primary cell-means model not computed: {' '.join(str(err).split())}._")
    tables = {}
    for typ in (2, 3):
        try:
            tables[typ] = stats.two_way_anova(rows, "n_unique", "exposure", metric, typ=typ)
        except ValueError:
            if typ == 2:
                raise
            continue
        table = tables[typ].reset_index()
        effects = table["effect"] != "Residual"
        table["p_holm"] = np.nan
        table.loc[effects, "p_holm"] = stats.holm(table.loc[effects, "p"])
        doc.p(f"Gaussian ANOVA, type {'II' if typ == 2 else 'III'} sums of squares (partial eta^2 "
              "with 95% CI from the noncentral F; p_holm: Holm over the three effects):")
        doc.table(_pfmt(table, ["p", "p_holm"]))
    typ = 3 if 3 in tables else 2
    eta = tables[typ]["partial_eta_sq"]
    lo, hi = tables[typ]["eta_ci_lo"], tables[typ]["eta_ci_hi"]
    if not (np.isfinite(eta["n_unique"]) and np.isfinite(eta["exposure"])):
        verdict = "cannot be compared with exposure (no variance to partition)"
    elif lo["n_unique"] > hi["exposure"]:
        verdict = "dominates exposure (the 95% CIs do not overlap)"
    elif eta["n_unique"] > eta["exposure"]:
        verdict = "exceeds exposure in the point estimate, but the 95% CIs overlap"
    else:
        verdict = "does not dominate exposure"
    doc.p(
        f"Partial eta^2 (type {'III' if typ == 3 else 'II'}): diversity {eta['n_unique']:.3f} "
        f"({lo['n_unique']:.3f} .. {hi['n_unique']:.3f}), exposure {eta['exposure']:.3f} "
        f"({lo['exposure']:.3f} .. {hi['exposure']:.3f}); diversity {verdict} (SCIENCE.md "
        "section 6: raise distinct examples first)."
    )
    _robust_models(doc, rows, metric, empty)
    means = rows.pivot_table(index="n_unique", columns="exposure", values=metric, aggfunc="mean")
    path = doc.figure(f"heatmap_{_slug(bench)}.png", f"{bench} N x E mean {metric}")
    _heatmap(means, path, f"{bench}: mean {metric} (%)")


def _robust_models(doc: _Doc, rows: pd.DataFrame, metric: str, empty: list) -> None:
    """Residual diagnostics, HC3 type II ANOVA and the binomial GLM with cell-clustered SEs."""
    from scipy import stats as sps

    cell_mean = rows.groupby("cell")[metric].transform("mean")
    resid = (rows[metric] - cell_mean).to_numpy(dtype=float)
    groups = [g[metric].to_numpy(dtype=float) for _, g in rows.groupby("cell")]
    shapiro = sps.shapiro(resid) if np.ptp(resid) > 0 and resid.size >= 3 else None
    levene = sps.levene(*groups) if all(g.size >= 2 for g in groups) and np.ptp(resid) > 0 else None
    zero_sd = sum(float(np.ptp(g)) == 0 for g in groups)
    doc.p(
        "Residual diagnostics (seed minus cell mean): Shapiro-Wilk "
        + (f"W = {shapiro.statistic:.3f}, {stats.p_phrase(shapiro.pvalue)}" if shapiro else "n/a")
        + "; Brown-Forsythe equal variances across cells "
        + (stats.p_phrase(levene.pvalue) if levene else "n/a")
        + f"; {zero_sd} of {len(groups)} cells have zero spread. "
        + ("Normality or equal variances are rejected, so the Gaussian F-tests above are "
           "approximate: read the HC3 and binomial rows below."
           if (shapiro and shapiro.pvalue < 0.05) or (levene and levene.pvalue < 0.05)
           else "No evidence against the Gaussian assumptions.")
    )
    if not empty:
        import statsmodels.formula.api as smf
        from statsmodels.stats.anova import anova_lm

        frame = pd.DataFrame({"y": rows[metric].to_numpy(float), "N": rows["n_unique"].to_numpy(),
                              "E": rows["exposure"].to_numpy()})  # fmt: skip
        fit = smf.ols("y ~ C(N, Sum) * C(E, Sum)", frame).fit()
        hc3 = anova_lm(fit, typ=2, robust="hc3").drop(index="Residual", errors="ignore")
        hc3.index = ["n_unique", "exposure", "n_unique:exposure"]
        hc3 = hc3.reset_index(names="effect")[["effect", "df", "F", "PR(>F)"]].rename(
            columns={"PR(>F)": "p"})  # fmt: skip
        hc3["p_holm"] = stats.holm(hc3["p"])
        doc.p("Type II ANOVA with HC3 heteroskedasticity-robust Wald tests:")
        doc.table(_pfmt(hc3, ["p", "p_holm"]))
    glm = stats.binomial_glm(rows, metric)
    doc.p(
        f"Binomial GLM of per-seed {metric} (logit link, {glm['trials']} trials per seed, SEs "
        f"cluster-robust by cell, {glm['n_clusters']} clusters; p_holm over the three slopes):"
    )
    doc.table(_pfmt(glm["table"], ["p", "p_holm"]))


def _design_factors(tidy: Tidy, rows: pd.DataFrame) -> list[str]:
    """The schema's factor_* columns that vary here: constant per cell, 2..12 levels."""
    out = []
    for col in tidy.factors:
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
        doc.table(_pfmt(stats.two_way_anova(rows, "n_unique", factor, metric, typ=2)
                        .reset_index(), ["p"]))  # fmt: skip
    levels = sorted(rows[factor].unique(), key=_level_key)
    lo_level, hi_level = levels[0], levels[-1]
    try:
        cell = stats.cell_tost(rows, factor, hi_level, lo_level, "n_unique", metric,
                               options.tost_margin_pp)  # fmt: skip
        doc.p(f"Primary ({stats.PRIMARY_MODEL['equivalence']}): {factor_name(factor)} = "
              f"{hi_level} - {lo_level} = {cell['diff_pp']:+.2f} pp over {cell['n_cells']} cells "
              f"(90% CI {cell['ci_pp'][0]:+.2f} .. {cell['ci_pp'][1]:+.2f}, t on {cell['df']:g} "
              f"df); TOST at +/- {options.tost_margin_pp:g} pp {stats.p_phrase(cell['p'])}: "
              + ("equivalence supported." if cell["equivalent"] else "equivalence not shown."))
    except ValueError as err:
        doc.p(f"_Primary cell-level TOST not computed: {' '.join(str(err).split())}._")
    out = []
    for n, g in rows.groupby("n_unique"):
        a = g.loc[g[factor] == hi_level, metric].to_numpy()
        b = g.loc[g[factor] == lo_level, metric].to_numpy()
        if a.size < 2 or b.size < 2:
            continue
        res = stats.tost_ind(a, b, options.tost_margin_pp, metric)
        out.append((n, res["diff_pp"], res["ci_pp"][0], res["ci_pp"][1], res["p"]))
    if not out:
        raise ValueError(f"no N has >= 2 seeds at both {factor_name(factor)} = {hi_level} and "
                         f"{lo_level}")  # fmt: skip
    cols = ["N", "diff_pp", "ci90_lo_pp", "ci90_hi_pp", "p_tost"]
    table = pd.DataFrame(out, columns=cols)
    table["p_holm"] = stats.holm(table["p_tost"])
    table["equivalent"] = table["p_holm"] < 0.05
    doc.p(f"Sensitivity (seeds as the unit, a statement about these two cells at each N): TOST "
          f"{factor_name(factor)} = {hi_level} vs {lo_level}, margin +/- "
          f"{options.tost_margin_pp} pp, one Welch test per N; p_holm: Holm over the {len(table)} "
          "tests, equivalence at p_holm < 0.05:")
    doc.table(_pfmt(table, ["p_tost", "p_holm"]))


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
        doc.p(f"Logistic P(escape) ~ log N + log E ({reg['n']} seeds, {reg['n_escaped']} escaped;"
              f" SEs {reg['se_kind']}; converged: {'yes' if reg['converged'] else 'no'}; labels: "
              "maximum-posterior mixture classes, whose uncertainty the next line carries):")
        doc.table(_pfmt(terms, ["p"]))
        soft = escape.escape_regression(labels, escaped="p_escaped")
        doc.p(
            "With each seed's posterior P(escaped) as a fractional outcome (label uncertainty "
            f"carried into the fit): log N {soft['coef']['log_n']:.3g} (95% CI "
            f"{soft['ci']['log_n'][0]:.3g} .. {soft['ci']['log_n'][1]:.3g}), log E "
            f"{soft['coef']['log_e']:.3g} ({soft['ci']['log_e'][0]:.3g} .. "
            f"{soft['ci']['log_e'][1]:.3g})."
        )
    except ValueError as err:
        doc.p(f"_Escape regression not computed: {err}._")
    curves = raw[(raw["split"] == tidy.split) & raw["cell"].isin(rows["cell"])]
    curves = curves.merge(labels[["cell", "seed", "escaped"]], on=["cell", "seed"])
    try:
        res = escape.escaped_converge_later(curves, tidy.split, tidy.metric)
        within = ("not computed: no cell holds both escaped and floor seeds"
                  if not res["n_mixed_cells"] else
                  f"escaped seeds {res['diff_within']:+.3f} vs their cell's mean over "
                  f"{res['n_mixed_cells']} cells holding both, "
                  f"{stats.p_phrase(res['p_within'])}")
        doc.p(
            "Escaped seeds converge later? Convergence step as a fraction of the seed's run. "
            f"Primary (within cells, escape labels permuted inside each cell): {within}. "
            f"Sensitivity (seeds pooled over cells, one-sided Mann-Whitney): median "
            f"{res['median_fraction_escaped']:.2f} (escaped, n = {res['n_escaped']}) vs "
            f"{res['median_fraction_floor']:.2f} (floor, n = {res['n_floor']}), "
            f"{stats.p_phrase(res['p'])}."
        )
    except ValueError as err:
        doc.p(f"_Convergence test not computed: {err}._")


def _between(doc: _Doc, frame: pd.DataFrame, metric: str, options: ReportOptions) -> None:
    """Pairwise diversity-slope differences: the valid interaction test and the paper's scheme."""
    benches = sorted(b for b, g in frame.groupby("benchmark") if g["n_unique"].nunique() >= 2)
    if len(benches) < 2:
        raise ValueError("needs at least two benchmarks with >= 2 N levels")
    rows = []
    for a, b in itertools.combinations(benches, 2):
        ga, gb = frame[frame["benchmark"] == a], frame[frame["benchmark"] == b]
        try:
            prim = stats.cell_slope_difference(ga["n_unique"], ga[metric], ga["cell"],
                                               gb["n_unique"], gb[metric], gb["cell"])
            primary = (prim["diff"], prim["se"], prim["df"], *prim["ci"], prim["p"])
        except ValueError:
            primary = (np.nan,) * 6
        seed = stats.slope_difference_test(
            ga["n_unique"], ga[metric], gb["n_unique"], gb[metric],
            n_flip=options.n_perm, seed=options.seed,
        )  # fmt: skip
        try:
            cell = stats.slope_difference_test(
                ga["n_unique"], ga[metric], gb["n_unique"], gb[metric], ga["cell"], gb["cell"],
                n_flip=options.n_perm, seed=options.seed,
            )["p"]  # fmt: skip
        except ValueError:
            cell = np.nan
        old = stats.permutation_test_slopes(
            ga["n_unique"], ga[metric], gb["n_unique"], gb[metric],
            n_perm=options.n_perm, seed=options.seed,
        )  # fmt: skip
        rows.append((f"{a} - {b}", *primary, seed["diff"], seed["p"], cell, old["p"],
                     old["n_shared_levels"]))  # fmt: skip
    cols = ["pair", "slope_diff", "se", "df", "ci_lo", "ci_hi", "p", "slope_diff_seeds",
            "p_seeds_hc3", "p_cell_cr1", "p_paper", "shared_N"]  # fmt: skip
    table = pd.DataFrame(rows, columns=cols)
    table.insert(7, "p_holm", stats.holm(table["p"]))
    doc.p(
        f"Primary ({stats.PRIMARY_MODEL['between']}): each dataset's slope on log N over its "
        "cell means (t on G - 2 df), the difference's SE sqrt(se_1^2 + se_2^2), 95% CI and p on "
        f"Welch-Satterthwaite df; p_holm: Holm over the {len(table)} pairs ('-': a dataset has "
        "< 3 cells). Sensitivity: seeds as independent (OLS interaction, HC3, "
        f"{options.n_perm} wild-bootstrap sign flips: p_seeds_hc3), CR1 cell-clustered SEs with "
        "flips per cell (p_cell_cr1), and the "
        "paper's label exchange within shared N levels after centring (p_paper: valid only "
        "when both datasets share one N grid, far too conservative otherwise)."
    )
    doc.table(_pfmt(table, ["p", "p_holm", "p_seeds_hc3", "p_cell_cr1", "p_paper"]))


def _decomposition(doc: _Doc, frame: pd.DataFrame, metric: str, options: ReportOptions) -> None:
    """E1 -> E2 -> E3 decomposition when the results carry factor_experiment / factor_coverage."""
    if not {"factor_experiment", "factor_coverage"} <= set(frame.columns):
        raise ValueError("results have no factor_experiment and factor_coverage columns (run "
                         "`compgen-jax analysis decompose` on the E1, E2 and E3 sweeps)")
    new = decompose.decomposition_from_frame(frame, metric, n_boot=options.n_boot,
                                             seed=options.seed)  # fmt: skip
    old = decompose.decomposition_from_frame(frame, metric, n_boot=options.n_boot,
                                             seed=options.seed, method="percentile")  # fmt: skip
    new["paper_ci_lo_pp"], new["paper_ci_hi_pp"] = old["ci_lo_pp"], old["ci_hi_pp"]
    doc.p("95% CIs: Welch t (default) and the paper's percentile bootstrap; they differ because "
          "the percentile bootstrap is too narrow at 3-5 seeds per cell (coverage ~0.89).")
    doc.table(new)


def _headroom(doc: _Doc, frame: pd.DataFrame, metric: str, options: ReportOptions) -> None:
    """Observed vs constant-gain headroom spread, in both modes."""
    res = audit.headroom_null(frame, metric, gain=options.gain, n_boot=options.n_boot,
                              seed=options.seed)  # fmt: skip
    doc.table(res["table"])
    top, bottom = res["pair"]
    lo, hi = res["log_share_ci"]
    doc.p(
        f"Datasets used: {', '.join(res['datasets'])}"
        + (f" (excluded, headroom <= 0: {', '.join(res['excluded'])})" if res["excluded"] else "")
        + f". Observed spread {res['observed_spread']:.3g}x; constant gain +{res['gain']:g} "
        f"gives {res['synthetic_spread']:.3g}x."
    )
    doc.lines += [
        f"- Default: log-spread share of {top} vs {bottom} explained by baseline arithmetic "
        f"{100 * res['log_share']:.1f}% (95% BCa CI {100 * lo:.1f}% .. {100 * hi:.1f}%).",
        f"- Paper: null share = synthetic / observed spread = {100 * res['null_share']:.1f}% "
        f"(differential gain {100 * res['differential_share']:.1f}%).",
        "- Why they differ: the paper's ratio of spreads is at least 1/observed even when the "
        "null spreads nothing (1.00x) and ignores which dataset the null ranks higher; the log "
        "share is 0 for a null that explains nothing and negative when it predicts the "
        "opposite order.",
        "",
    ]


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
    if len(res["datasets"]) >= 2:
        inter, paper = res["interaction_p"], res["permutation_p"]
        rows = []
        for pair in inter.columns:
            adj = stats.holm(inter[pair].to_numpy()[1:])
            rows.append((pair, inter[pair].iloc[0], float(np.nanmean(adj < 0.05)),
                         paper[pair].iloc[0], float(np.mean(paper[pair].to_numpy()[1:] < 0.05))))
        doc.p(f"Between-dataset slope tests: log N row, and the share of the {n_schemes} schemes "
              "rejecting at 0.05 after Holm over the schemes (default: HC3 interaction t test) "
              "or unadjusted (paper: centred label exchange, valid only on a shared grid):")
        doc.table(_pfmt(pd.DataFrame(rows, columns=[
            "pair", "p_log_N", "share_schemes_holm", "p_paper_log_N", "share_schemes_paper"]),
            ["p_log_N", "p_paper_log_N"]))  # fmt: skip
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
    """Power curves of the default contrasts, thresholds with the intervals the pilot supports."""
    contrasts = seeds.default_contrasts(frame)
    if not contrasts:
        raise ValueError("no benchmark has >= 2 N levels")
    pilot = frame.groupby("cell")["seed"].nunique()
    sizes = f"{pilot.min()}" if pilot.min() == pilot.max() else f"{pilot.min()} to {pilot.max()}"
    curves = seeds.power_curves(
        frame, metric, contrasts, ns=options.power_ns, n_draws=options.power_draws,
        n_perm=options.power_perm, seed=options.seed,
    )  # fmt: skip
    doc.p(
        f"Seeds drawn with replacement from pilot cells of {sizes} seeds; "
        f"{options.power_draws} draws x {options.power_perm} permutations per n; threshold = "
        f"smallest n with power >= {seeds.TARGET_POWER}. Each contrast is first tested on the "
        "pilot: its standardized effect delta gets a 95% CI (noncentral t), and the thresholds "
        "at the CI's ends bound the interval the pilot supports (lo_n .. hi_n; '-': beyond the "
        "largest n or unbounded). A pilot that does not exclude delta = 0 supports no threshold "
        f"(threshold_n '-'); pilots under {seeds.MIN_PILOT_SEEDS} seeds per cell are refused."
    )
    table = seeds.threshold_uncertainty(
        frame, metric, contrasts, ns=options.power_ns, n_draws=max(20, options.power_draws // 4),
        n_perm=max(20, options.power_perm // 4), seed=options.seed,
    )  # fmt: skip
    doc.table(_pfmt(table, ["pilot_p"]))
    if table["warning"].str.contains("too small").any():
        doc.p("**Warning**: from thin pilots the supported interval is wide; the point threshold "
              "at the observed effect is biased low (5-seed pilots of a contrast needing 64 "
              "seeds give a median of 20), so read lo_n .. hi_n.")
    seeds.plot_power(curves, doc.figure("power.png", "power vs seeds per cell, at the pilot's "
                                        "observed effect"))  # fmt: skip


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
