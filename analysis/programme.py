"""The programme report: each finding's measured value beside the paper's, with a verdict.

Input is plain data (one record per part: its analysis kind, split, collected results and wall
time), so this module needs no ML framework. Each part also gets the full `report` under
<out>/<part>/, and the replication parts one cross-dataset report under <out>/replication/.
A finding that cannot be computed (e.g. every seed at 0% EM) says so and why.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis import dose_response, escape, stats
from analysis.atomic import write_text
from analysis.decompose import decomposition_from_sweeps
from analysis.report import ReportOptions, write_report
from analysis.results import read_results, require_columns, tidy_results
from analysis.storage import as_path

METRIC = "exact_match"
PATTERN_P_RATIO = 10.0  # "diversity effect size an order of magnitude above exposure"
TOST_MARGIN_PP = 3.0
PAPER = {  # SCIENCE.md sections 2-3
    "dose_response": "EM 0.71% -> 33.18% over N = 50 .. 4000 (7 levels); Spearman rho = 1.0; "
                     "logistic in log N, R^2 = 0.996",
    "decomposition": "+30.20 pp diversity confound - 4.33 pp typicality penalty + 0.37 pp "
                     "coverage = +26.24 pp (E1 easy gap)",
    "factorial": "partial eta^2 diversity 0.882 vs exposure 0.196; P(escape) ~ log N + log E: "
                 "+3.73, +1.06",
    "equivalence": "q99 vs q1 within 0.4 pp; TOST at +/-3 pp supported; eta^2(N) 0.431, "
                   "eta^2(coverage) 0.013",
    "replication": "diversity effect an order of magnitude above exposure (Pattern P) on SCAN, "
                   "ReCOGS, gSCAN; CFQ mcd1 flat at 0.106",
}
GOAL = {
    "dose_response": "monotone: Spearman rho (per-N means) >= 0.9 over >= 5 levels",
    "decomposition": "diversity confound > 0 (CI above 0); coverage term's CI includes 0",
    "factorial": "eta^2(diversity) > eta^2(exposure)",
    "equivalence": f"TOST q99 vs q1 at +/-{TOST_MARGIN_PP:g} pp supported (cell-means model)",
    "replication": f"eta^2(diversity) >= {PATTERN_P_RATIO:g} x eta^2(exposure)",
}


def write_programme_report(
    parts: Sequence[Mapping[str, Any]],
    decomposition: Sequence[str],
    out: str | os.PathLike,
    command: str,
    options: ReportOptions | None = None,
    settings: Sequence[str] = (),
    not_run: Sequence[tuple[str, str]] = (),
) -> Path:
    """Write <out>/report.md (findings vs paper, per-part tables and plots) and each part's full
    report; return the path of report.md. Byte-identical for identical inputs.

    `settings` are the programme-wide gin bindings (every part's, before its own); `not_run`
    the (part, reason) pairs this scale leaves out."""
    out = as_path(out)
    options = options or ReportOptions()
    by_name = {p["name"]: p for p in parts}
    doc = ["# The paper's programme: measured vs published", "",
           f"Command: `{command}`", "",
           "Each part is a sweep; its numbers come from `<root>/<part>/sweep_results.csv`. "
           "Verdicts compare the measured value with the published one *in kind* (direction and "
           "ordering), by the stated rule; at CPU scale a floor (every seed near 0% EM) leaves a "
           "finding untested rather than refuted.", "",
           "## Parts", "",
           f"Programme-wide settings: {'; '.join(settings) or '-'}.", "",
           "| part | analysis | split | design | scale settings | cells | trainings "
           "| cell wall (min) |",
           "|---|---|---|---|---|---|---|---|"]
    for p in parts:
        wall = "n/a" if p["wall_s"] is None else f"{p['wall_s'] / 60:.1f}"
        name = f"{p['name']} (smoke test)" if p["smoke_test"] else p["name"]
        doc.append(f"| {name} | {p['analysis']} | {p['split']} | {', '.join(p['gin_files'])} | "
                   f"{'; '.join(p['bindings']) or '-'} | {p['cells']} | {p['trainings']} | "
                   f"{wall} |")
    total = [p["wall_s"] for p in parts]
    if None not in total:
        doc += ["", f"Total wall time: {sum(total) / 60:.1f} min (the sum of the cells' own wall "
                "times; cells that ran side by side overlap in elapsed time)."]
    if not_run:
        doc += ["", "Not run at this scale (no finding can be read from them here):", "",
                "| part | why |", "|---|---|"]
        doc += [f"| {name} | {why} |" for name, why in not_run]
    findings: list[tuple[str, str, str, str]] = []
    sections: list[str] = []
    for p in parts:
        if p["analysis"] in _FINDINGS:
            lines, measured, verdict = _guarded(lambda p=p: _FINDINGS[p["analysis"]](p, out))
            label = f"{p['name']}: {p['analysis'].replace('_', ' ')}"
            if p["smoke_test"]:
                verdict = "smoke test: no finding read"
            findings.append((label, PAPER[p["analysis"]], measured, verdict))
            sections += [f"## {p['name']}", "", *lines,
                         f"Full report: [{p['name']}/report.md]({p['name']}/report.md)", ""]
            _part_report(p["results"], p["split"], out / p["name"], options, sections)
    if decomposition:
        chain = {name.upper(): by_name[name]["results"] for name in decomposition}
        lines, measured, verdict = _guarded(lambda: _decomposition(chain))
        findings.insert(1, (f"{' -> '.join(chain)}: decomposition", PAPER["decomposition"],
                            measured, verdict))
        sections += [f"## Decomposition {' -> '.join(chain)}", "", *lines]
    replication = [p for p in parts if p["analysis"] == "replication"]
    if replication:
        _replication_report(replication, out, options, sections)
    doc += ["", "## Findings", "", "| finding | paper | measured | reproduces in kind? |",
            "|---|---|---|---|"]
    doc += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in findings]
    doc += ["", "Rules: " + "; ".join(f"{k.replace('_', ' ')}: {v}" for k, v in GOAL.items())
            + ".", "", "Primary models (seeds inside a cell share its design point; the other "
            "models in each part's report are sensitivity analyses): "
            + "; ".join(f"{k.replace('_', ' ')}: {v}" for k, v in stats.PRIMARY_MODEL.items())
            + ".", "", *sections]
    path = out / "report.md"
    write_text(path, "\n".join(doc).rstrip("\n") + "\n")
    return path


def _guarded(body: Callable[[], tuple[list[str], str, str]]) -> tuple[list[str], str, str]:
    """A finding's (lines, measured, verdict); a ValueError becomes 'not computed: why'."""
    try:
        return body()
    except ValueError as err:
        why = " ".join(str(err).split())
        return [f"_Not computed: {why}._", ""], f"not computed ({why})", "untested"


def _final(part: Mapping[str, Any], raw: pd.DataFrame | None = None) -> pd.DataFrame:
    """Final-step per-seed rows of the part's split (diverged / NaN seeds excluded)."""
    raw = read_results(part["results"]) if raw is None else raw
    return tidy_results(raw, part["split"], METRIC).frame


def _floor(values: pd.Series) -> bool:
    return bool((values.to_numpy() < 0.01).all())


def _floor_finding(split: str) -> tuple[list[str], str, str]:
    """Section lines, measured text and verdict of a finding whose seeds are all at the floor."""
    return ([f"Every seed is below 1% EM on {split}.", ""], "floor: every seed < 1% EM",
            "untested: floor")


def _pct(value: float) -> str:
    return f"{100 * value:.2f}%"


def _eta(table: pd.DataFrame, effect: str) -> float:
    return float(table.loc[effect, "partial_eta_sq"])


def _dose_response(part: Mapping[str, Any], out: Path) -> tuple[list[str], str, str]:
    raw = read_results(part["results"])
    splits = [s for s in ("dev", part["split"], "gen:hard") if s in set(raw["split"])]
    table = pd.DataFrame({"N": sorted(raw["n_unique"].unique())})
    for split in dict.fromkeys(splits):
        summary = dose_response.diversity_summary(raw, split, METRIC).set_index("N")
        table[f"{split} mean %"] = 100 * summary["mean"].reindex(table["N"]).to_numpy()
        table[f"{split} sd"] = 100 * summary["sd"].reindex(table["N"]).to_numpy()
    trend = dose_response.diversity_trend(raw, part["split"], METRIC)
    final = _final(part, raw)
    means = final.groupby("n_unique")[METRIC].mean()
    try:
        fit = stats.logistic_dose_response(means.index.to_numpy(), means.to_numpy())
        fit_text = (f"logistic in log N R^2 = {fit['r2']:.3f}, N50 = {fit['n50']:.4g}"
                    if fit["identifiable"] else f"logistic fit not identifiable ({fit['why']})")
    except ValueError as err:
        fit_text = f"logistic fit not computed ({' '.join(str(err).split())})"
    try:
        cell = stats.cell_slope(final["n_unique"], final[METRIC], final["cell"])
        fit_text += (f"; cell-means slope {100 * cell['slope']:.2f} pp per log N (95% CI "
                     f"{100 * cell['ci'][0]:.2f} .. {100 * cell['ci'][1]:.2f})")
    except ValueError as err:
        fit_text += f"; cell-means slope not computed ({' '.join(str(err).split())})"
    plot = dose_response.plot_dose_response(raw, part["split"], out / f"{part['name']}_dose.png")
    measured = (f"EM {_pct(means.iloc[0])} -> {_pct(means.iloc[-1])} over N = "
                f"{means.index[0]} .. {means.index[-1]} ({trend['n_levels']} levels); Spearman "
                f"rho = {trend['rho_means']:.3f} ({stats.p_phrase(trend['p_means'])}); {fit_text}")
    if "dev" in splits and part["split"] != "dev":
        dev = dose_response.diversity_trend(raw, "dev", METRIC)
        measured += (f"; in-distribution dev: EM {table['dev mean %'].iloc[0]:.2f}% -> "
                     f"{table['dev mean %'].iloc[-1]:.2f}%, rho = {dev['rho_means']:.3f}")
    if _floor(final[METRIC]):
        verdict = "untested: floor (every seed < 1% EM)"
    elif trend["n_levels"] >= 5 and trend["rho_means"] >= 0.9:
        verdict = "yes"
    else:
        verdict = "no"
    lines = [markdown_table(table), f"{measured}.", "", f"![dose-response]({plot.name})", ""]
    return lines, measured, verdict


def _factorial(part: Mapping[str, Any], out: Path) -> tuple[list[str], str, str]:
    raw = read_results(part["results"])
    final = _final(part, raw)
    if _floor(final[METRIC]):
        return _floor_finding(part["split"])
    anova = stats.two_way_anova(final, "n_unique", "exposure", METRIC)
    eta_n, eta_e = _eta(anova, "n_unique"), _eta(anova, "exposure")
    measured = f"partial eta^2 diversity {eta_n:.3f} vs exposure {eta_e:.3f}"
    try:
        labels = escape.label_escapes(raw, part["split"], METRIC)
        fit = escape.escape_regression(labels)
        measured += (f"; P(escape) ~ log N + log E: {fit['coef']['log_n']:+.2f}, "
                     f"{fit['coef']['log_e']:+.2f} ({int(labels['escaped'].sum())}/"
                     f"{len(labels)} seeds escaped)")
    except ValueError as err:
        measured += f"; escape regression not computed ({' '.join(str(err).split())})"
    table = anova.reset_index()[["effect", "df", "F", "p", "partial_eta_sq"]]
    return [markdown_table(table), f"{measured}.", ""], measured, "yes" if eta_n > eta_e else "no"


def _equivalence(part: Mapping[str, Any], out: Path) -> tuple[list[str], str, str]:
    final = _final(part)
    if _floor(final[METRIC]):
        return _floor_finding(part["split"])
    quantile = "factor_quantile"
    require_columns(final, [quantile], part["results"])
    cell = stats.cell_tost(final, quantile, "q99", "q1", "n_unique", METRIC, TOST_MARGIN_PP)
    # Sensitivity, seeds as the unit: each seed's EM relative to its N level's mean (N blocks)
    pp = 100 * (final[METRIC] - final.groupby("n_unique")[METRIC].transform("mean"))
    high, low = (pp[final[quantile] == q].to_numpy() for q in ("q99", "q1"))
    seed = stats.tost_ind(high, low, TOST_MARGIN_PP, stats.PP)
    measured = (f"q99 - q1 = {cell['diff_pp']:+.2f} pp over {cell['n_cells']} cell means (90% "
                f"CI {cell['ci_pp'][0]:+.2f} .. {cell['ci_pp'][1]:+.2f}, {cell['df']:g} df); "
                f"TOST {stats.p_phrase(cell['p'])}; seeds as the unit: 90% CI "
                f"{seed['ci_pp'][0]:+.2f} .. {seed['ci_pp'][1]:+.2f}, TOST "
                f"{stats.p_phrase(seed['p'])}")
    try:
        anova = stats.two_way_anova(final, "n_unique", quantile, METRIC)
        measured += (f"; eta^2(N) {_eta(anova, 'n_unique'):.3f}, eta^2(coverage) "
                     f"{_eta(anova, quantile):.3f}")
    except ValueError as err:
        measured += f"; ANOVA not computed ({' '.join(str(err).split())})"
    verdict = "yes" if cell["equivalent"] else "no (equivalence not shown)"
    return [f"{measured}.", ""], measured, verdict


def _replication(part: Mapping[str, Any], out: Path) -> tuple[list[str], str, str]:
    final = _final(part)
    per_cell = final.groupby(["n_unique", "exposure"])[METRIC].agg(["mean", "std", "count"])
    table = (100 * per_cell[["mean", "std"]]).join(per_cell["count"]).reset_index().rename(
        columns={"n_unique": "N", "exposure": "E", "mean": "mean %", "std": "sd %",
                 "count": "seeds"})
    span = f"EM {_pct(per_cell['mean'].min())} .. {_pct(per_cell['mean'].max())} over cells"
    if _floor(final[METRIC]):
        return [markdown_table(table), ""], f"{span}; floor", "untested: floor (every seed < 1% EM)"
    anova = stats.two_way_anova(final, "n_unique", "exposure", METRIC)
    eta_n, eta_e = _eta(anova, "n_unique"), _eta(anova, "exposure")
    ratio = eta_n / eta_e if eta_e > 0 else math.inf
    measured = (f"{span}; partial eta^2 diversity {eta_n:.3f} vs exposure {eta_e:.3f} "
                f"(ratio {ratio:.3g})")
    verdict = "yes" if ratio >= PATTERN_P_RATIO else ("partly (diversity > exposure)"
                                                      if eta_n > eta_e else "no")
    return [markdown_table(table), f"{measured}.", ""], measured, verdict


_FINDINGS: dict[str, Callable[[Mapping[str, Any], Path], tuple[list[str], str, str]]] = {
    "dose_response": _dose_response, "factorial": _factorial, "equivalence": _equivalence,
    "replication": _replication,
}


def _decomposition(chain: Mapping[str, str]) -> tuple[list[str], str, str]:
    finals = [tidy_results(read_results(path), "gen:easy", METRIC).frame[METRIC]
              for path in chain.values()]
    if all(_floor(values) for values in finals):
        return (["Every seed of every experiment is below 1% EM on gen:easy.", ""],
                "floor: every seed < 1% EM", "untested: floor")
    table = decomposition_from_sweeps(chain, "gen:easy", METRIC, where={"difficulty": "easy"})
    rows = table.set_index("term")
    terms = [t for t in rows.index if rows.loc[t, "kind"] == "component"]
    measured = " ".join(f"{rows.loc[t, 'estimate_pp']:+.2f} pp {t}" for t in terms)
    measured += f" = {rows.loc['total', 'estimate_pp']:+.2f} pp"
    first, last = rows.loc[terms[0]], rows.loc[terms[-1]]
    ok = first["ci_lo_pp"] > 0 and last["ci_lo_pp"] <= 0 <= last["ci_hi_pp"]
    return [markdown_table(table), f"{measured}.", ""], measured, "yes" if ok else "no"


def _part_report(results: str, split: str, out: Path, options: ReportOptions,
                 sections: list[str]) -> None:
    """The full analysis report of one part; a failure is noted, not raised."""
    try:
        write_report(results, out, split, METRIC, options=options)
    except ValueError as err:
        sections += [f"_Full report not written: {' '.join(str(err).split())}._", ""]


def _replication_report(parts: Sequence[Mapping[str, Any]], out: Path, options: ReportOptions,
                        sections: list[str]) -> None:
    """One cross-dataset report (slope comparisons, headroom null, power) over the replication
    parts that are not smoke tests, each on its own held-out split (relabelled `heldout`)."""
    frames = []
    for p in parts:
        if not p["smoke_test"]:
            raw = read_results(p["results"])
            frames.append(raw[raw["split"] == p["split"]].assign(split="heldout"))
    if len(frames) < 2:
        return
    combined = out / "replication" / "heldout_results.csv"
    write_text(combined, pd.concat(frames, ignore_index=True).to_csv(index=False))
    splits = ", ".join(f"{p['name']} {p['split']}" for p in parts if not p["smoke_test"])
    sections += ["## Replication across datasets", "",
                 f"Held-out splits: {splits}. Report: "
                 "[replication/report.md](replication/report.md)", ""]
    _part_report(str(combined), "heldout", out / "replication", options, sections)


def markdown_table(df: pd.DataFrame) -> str:
    """A markdown table, floats to 4 significant digits."""
    def cell(v: Any) -> str:
        if isinstance(v, float | np.floating):
            return "nan" if not np.isfinite(v) else f"{v:.4g}"
        return str(v)

    head = "| " + " | ".join(map(str, df.columns)) + " |\n|" + "---|" * len(df.columns)
    body = "\n".join("| " + " | ".join(cell(v) for v in row) + " |"
                     for row in df.itertuples(index=False))
    return f"{head}\n{body}\n"
