"""Read and validate the trainer's results tables (results.csv / results.parquet)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.manifest_format import read_manifest_json
from analysis.schema import EXTRA, FRACTIONS, KEY, REQUIRED

# Column added by read_results: the file each row came from, so reports can state their inputs.
SOURCE = "source_file"
RESULT_NAMES = ("results.csv", "results.parquet")
# A sweep root's collected table (every cell's rows plus its factor_* columns), the sweep's
# record of its cells, and each cell's finished marker (compgen_jax.sweep writes them).
SWEEP_RESULTS = "sweep_results.csv"
SWEEP_FILE = "sweep.json"
CELL_FILE = "cell.json"
# Column of the collected table: sha256 of the cell's results.csv as collected.
RESULTS_SHA256 = "results_sha256"

_MISSING_TEXT = {"", "nan", "na", "n/a", "null", "none"}
_READERS = {
    ".csv": lambda p: pd.read_csv(p, dtype=str, na_filter=False),
    ".parquet": pd.read_parquet,
}
_TRUE = {"true", "1", "1.0"}
_FALSE = {"false", "0", "0.0"}


def read_results(path: str | os.PathLike) -> pd.DataFrame:
    """Read one results file, or every results.csv/.parquet under a directory, validated.

    A sweep root holding sweep_results.csv (`compgen-jax sweep collect`) is read from that file
    alone: it has the design's factor_* columns that the per-cell files lack. Beside its
    sweep.json the table must still reflect the cells on disk (check_collected).
    """
    path = Path(path)
    if path.is_dir() and (path / SWEEP_RESULTS).is_file():
        path = path / SWEEP_RESULTS
    if path.is_dir():
        files = sorted(f for name in RESULT_NAMES for f in path.rglob(name) if f.is_file())
        if not files:
            raise ValueError(f"{path}: no {' or '.join(RESULT_NAMES)} files beneath this directory")
    elif path.is_file():
        files = [path]
    else:
        raise ValueError(f"{path}: no such file or directory")
    df = pd.concat([_read_one(f) for f in files], ignore_index=True)
    _check_unique(df)
    if path.name == SWEEP_RESULTS and (path.parent / SWEEP_FILE).is_file():
        check_collected(path.parent, df)
    return df


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks (a cell's results.csv, a benchmark file)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def check_collected(root: Path, table: pd.DataFrame) -> None:
    """ValueError naming every cell of the sweep under `root` that its collected table no longer
    reflects: deleted or unfinished since collect, results.csv changed (its sha256 is not the
    collected one), a manifest that is not the one its seed's rows name, or finished since
    collect but absent from the table. Plain files only, so every reader of a sweep root (the
    report, summaries) sees the cells as they are now."""
    collected_file = root / SWEEP_RESULTS
    rerun = f"re-collect with `compgen-jax sweep collect {root}` (`sweep status` shows each cell)"
    if RESULTS_SHA256 not in table.columns:
        raise ValueError(f"{collected_file}: no {RESULTS_SHA256} column to check the cells "
                         f"against (collected by an older compgen-jax); {rerun}")
    try:
        cells = [c["name"] for c in json.loads((root / SWEEP_FILE).read_text())["cells"]]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{root / SWEEP_FILE}: unreadable sweep record ({err})") from None
    fingerprints = table.groupby("cell")[RESULTS_SHA256].first()
    stale = [f"{c} (not a cell of {SWEEP_FILE})" for c in fingerprints.index if c not in cells]
    for name in cells:
        cell_dir = root / name
        finished = (cell_dir / CELL_FILE).is_file()
        if name not in fingerprints.index:
            stale += [f"{name} (finished since collect, not in the table)"] if finished else []
        elif not cell_dir.is_dir():
            stale.append(f"{name} (deleted since collect)")
        elif not finished:
            stale.append(f"{name} (not finished: no {CELL_FILE})")
        elif (not (cell_dir / "results.csv").is_file()
              or file_sha256(cell_dir / "results.csv") != fingerprints[name]):
            stale.append(f"{name} (results.csv changed since collect)")
        elif problems := manifest_problems(table[table["cell"] == name], cell_dir):
            stale.append(f"{name} ({'; '.join(problems)})")
    if stale:
        raise ValueError(f"{collected_file} does not reflect the cells on disk: "
                         f"{'; '.join(stale)}; {rerun}")


def final_step(df: pd.DataFrame) -> pd.DataFrame:
    """Keep each (cell, seed, split)'s rows at its last eval step: the seed's final result."""
    require_columns(df, ["cell", "seed", "split", "step"], "results table")
    last = df.groupby(["cell", "seed", "split"], sort=False)["step"].transform("max")
    return df[df["step"] == last].reset_index(drop=True)


def require_columns(df: pd.DataFrame, names: list[str], source: str) -> None:
    """Raise ValueError naming `source` and every column of `names` that `df` lacks."""
    missing = [c for c in names if c not in df.columns]
    if missing:
        raise ValueError(f"{source}: missing required columns: {', '.join(missing)}")


def _read_one(path: Path) -> pd.DataFrame:
    """Read one results file into a validated frame with canonical dtypes."""
    suffix = path.suffix.lower()
    reader = _READERS.get(suffix)
    if reader is None:
        raise ValueError(f"{path}: unsupported results format {suffix!r} (.csv or .parquet)")
    try:
        raw = reader(path)
    except (ValueError, OSError) as err:  # pandas/pyarrow parse errors subclass ValueError
        raise ValueError(f"{path}: cannot read results table: {err}") from err
    require_columns(raw, list(REQUIRED), str(path))
    line = (lambda i: f"line {i + 2}") if suffix == ".csv" else (lambda i: f"row {i}")
    df = raw.copy()
    problems = []
    known = {**REQUIRED, **{c: k for c, k in EXTRA.items() if c in raw.columns}}
    for name, kind in known.items():
        values, bad = _coerce(raw[name], kind)
        if name in FRACTIONS:
            bad |= values.notna() & ((values < 0) | (values > 1))
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            expected = "a fraction in [0, 1]" if name in FRACTIONS else kind
            problems.append(
                f"{name} (expected {expected}; {int(bad.sum())} bad, "
                f"first {raw[name].iloc[i]!r} at {line(i)})"
            )
        df[name] = values
    if problems:
        raise ValueError(f"{path}: bad values in columns: {'; '.join(problems)}")
    df[SOURCE] = str(path)
    return df


def _coerce(col: pd.Series, kind: str) -> tuple[pd.Series, pd.Series]:
    """Convert `col` to `kind`; return the converted column and a mask of unconvertible values."""
    text = col.astype(str).str.strip()
    missing = col.isna() | text.str.lower().isin(_MISSING_TEXT)
    if kind == "str":
        return text, missing
    if kind == "text":
        return text.where(~col.isna(), ""), pd.Series(False, index=col.index)
    if kind == "bool":
        lower = text.str.lower()
        bad = ~(lower.isin(_TRUE) | lower.isin(_FALSE))
        return lower.isin(_TRUE), bad
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        num = col.astype("float64")
    else:
        num = pd.to_numeric(text.where(~missing), errors="coerce").astype("float64")
    if kind == "float":
        return num, ~missing & num.isna()
    bad = missing | ~np.isfinite(num) | (num.fillna(0) % 1 != 0)
    return num.where(~bad, 0).astype("int64"), bad


def _check_unique(df: pd.DataFrame) -> None:
    """Raise ValueError when a (cell, seed, step, split) row occurs twice, naming its files."""
    dup = df.duplicated(list(KEY), keep=False)
    if dup.any():
        first = df[dup].iloc[0]
        same = df[dup & (df[list(KEY)] == first[list(KEY)]).all(axis=1)]
        where = ", ".join(sorted(set(same[SOURCE])))
        key = ", ".join(f"{k}={first[k]!r}" for k in KEY)
        raise ValueError(f"{where}: duplicate results rows for {key} ({int(dup.sum())} rows)")


# --------------------------------------------------------------------------- tidy frame

# Factors that identify a cell: constant over its seeds.
CELL_FACTORS = ("benchmark", "task", "strategy", "n_unique", "exposure")
# Design factors beyond N and E: the sweep's `factor_<name>` columns (compgen_jax sweep collect).
# Other columns (seed_steps, cell_id, anything left over) are never treated as factors.
FACTOR_PREFIX = "factor_"
DESIGN_EXPOSURE = f"{FACTOR_PREFIX}exposure"
EXCLUDED_COLUMNS = ["cell", "seed", "reason"]


@dataclasses.dataclass(frozen=True)
class Tidy:
    """Final-step results of one split, one row per (cell, seed), and what was left out and why."""

    frame: pd.DataFrame
    excluded: pd.DataFrame
    split: str
    metric: str

    @property
    def factors(self) -> list[str]:
        """The design's `factor_<name>` columns (e.g. factor_coverage, factor_quantile)."""
        return design_factors(self.frame)


def design_factors(frame: pd.DataFrame) -> list[str]:
    """Columns named factor_<name>: the design factors a sweep records for every cell."""
    return [c for c in frame.columns if str(c).startswith(FACTOR_PREFIX) and c != FACTOR_PREFIX]


def factor_name(column: str) -> str:
    """factor_coverage -> coverage (for display)."""
    return column[len(FACTOR_PREFIX):] if column.startswith(FACTOR_PREFIX) else column


def design_exposure(frame: pd.DataFrame) -> pd.DataFrame:
    """`exposure` at the design's level where the sweep records one (factor_exposure).

    A cell's realized exposure is steps x batch / N with whole steps, so a design level E = 2 comes
    out as 2.24 at N = 100 and 2.0 at N = 400; analysed as is, one design level would become
    several and N x E analyses would see N and E confounded. The realized value is kept in
    `realized_exposure`.
    """
    if DESIGN_EXPOSURE not in frame.columns:
        return frame
    design = pd.to_numeric(frame[DESIGN_EXPOSURE], errors="coerce")
    return frame.assign(realized_exposure=frame["exposure"],
                        exposure=design.fillna(frame["exposure"]).astype(float))


def tidy_results(
    df: pd.DataFrame,
    split: str,
    metric: str = "exact_match",
    min_seeds: int = 2,
    drop_diverged: bool = True,
) -> Tidy:
    """Each (cell, seed)'s final-step row on `split`; NaN, diverged and thin cells set aside.

    Exclusions are explicit: a seed whose `metric` is NaN, a diverged seed (when
    `drop_diverged`), and then every seed of a cell left with fewer than `min_seeds` usable seeds
    go to `excluded` with a reason, never silently. A cell whose factors (CELL_FACTORS) differ
    between its seeds is an error.
    """
    require_columns(df, [*REQUIRED, metric], "results table")
    if min_seeds < 1:
        raise ValueError(f"tidy_results: min_seeds must be >= 1, got {min_seeds}")
    rows = df[df["split"] == split]
    if rows.empty:
        present = ", ".join(map(repr, sorted(df["split"].unique())))
        raise ValueError(f"results table: no rows for split {split!r} (present: {present})")
    final = design_exposure(final_step(rows).sort_values(["cell", "seed"], ignore_index=True))
    varying = final.groupby("cell")[[*CELL_FACTORS, *design_factors(final)]].nunique(
        dropna=False
    ).gt(1)
    if varying.to_numpy().any():
        cell = varying.index[varying.any(axis=1)][0]
        cols = ", ".join(varying.columns[varying.loc[cell]])
        raise ValueError(f"results table: cell {cell!r} has seeds with different {cols}")
    reasons = pd.Series("", index=final.index)
    reasons[final[metric].isna()] = f"{metric} is NaN"
    if drop_diverged:
        reasons[(reasons == "") & final["diverged"]] = "diverged"
    usable = (reasons == "").groupby(final["cell"]).transform("sum")
    thin = (reasons == "") & (usable < min_seeds)
    reasons[thin] = usable[thin].map(lambda k: f"cell has {k} usable seed(s) < {min_seeds}")
    excluded = final.loc[reasons != "", ["cell", "seed"]].assign(reason=reasons[reasons != ""])
    return Tidy(
        frame=final[reasons == ""].reset_index(drop=True),
        excluded=excluded.reset_index(drop=True),
        split=split,
        metric=metric,
    )


# --------------------------------------------------------------------------- manifests

_SEED_FILE = re.compile(r"seed_(\d+)\.json")


def manifest_files(root: str | os.PathLike) -> list[Path]:
    """Every <cell>/manifests/seed_<k>.json beneath `root`, sorted: the layout that train,
    `manifest build` and sweeps write (a sweep root's other JSON files are not manifests)."""
    return sorted(
        f for f in Path(root).rglob("seed_*.json")
        if f.parent.name == "manifests" and _SEED_FILE.fullmatch(f.name)
    )  # fmt: skip


def read_manifests(root: str | os.PathLike) -> pd.DataFrame:
    """Every <cell>/manifests/seed_<k>.json beneath `root`: one row per (cell, seed).

    Columns: cell (the cell directory's name), seed (from the file name), hash, pool, pool_size,
    strategy, n_unique, total, the scalar entries of `stats` (e.g. mean_depth, n_signatures),
    pair_coverage_<split> per eval split, ids (int array) and path. The stored hash is checked
    against the content (sha256 of the canonical JSON of the other fields).
    """
    root = Path(root)
    files = manifest_files(root)
    if not files:
        raise ValueError(f"{root}: no <cell>/manifests/seed_<k>.json files beneath this directory")
    frame = pd.DataFrame([_read_manifest(f) for f in files])
    dup = frame.duplicated(["cell", "seed"], keep=False)
    if dup.any():
        paths = ", ".join(frame.loc[dup, "path"].iloc[:2])
        raise ValueError(f"{paths}: two manifests for the same cell and seed")
    return frame


def manifest_problems(rows: pd.DataFrame, cell_dir: Path) -> list[str]:
    """Each <cell_dir>/manifests/seed_<k>.json against the manifest_hash its seed's rows name.

    Problems: a manifest file that fails its own hash check, one whose hash is not the one its
    seed's rows name (e.g. another cell's manifest copied over it), a seed whose rows name two
    manifests or have no manifest file, and a manifest file whose seed has no rows.
    """
    files = {int(_SEED_FILE.fullmatch(f.name).group(1)): f for f in manifest_files(cell_dir)
             if f.parent == cell_dir / "manifests"}
    named = rows.groupby("seed")["manifest_hash"].unique()
    problems = []
    for seed, hashes in named.items():
        if len(hashes) > 1:
            problems.append(f"seed {seed}'s rows name {len(hashes)} manifests")
        if seed not in files:
            problems.append(f"seed {seed} has rows but no manifests/seed_{seed}.json")
    for seed, path in files.items():
        rel = path.relative_to(cell_dir)
        if seed not in named.index:
            problems.append(f"seed {seed} has no rows ({rel} is there): rows missing")
            continue
        try:
            digest = read_manifest_json(path)["hash"]
        except ValueError as err:
            problems.append(str(err))
            continue
        if digest != named[seed][0]:
            problems.append(f"{rel} has hash {digest[:12]}, but seed {seed}'s rows name "
                            f"{named[seed][0][:12]} (a manifest of another cell or task?)")
    return problems


def attach_manifests(frame: pd.DataFrame, manifests: pd.DataFrame) -> pd.DataFrame:
    """Join manifest columns onto per-seed rows by (cell, seed); hashes must agree, none missing."""
    require_columns(frame, ["cell", "seed", "manifest_hash"], "results table")
    extra = [c for c in manifests.columns if c not in ("cell", "seed", "hash")]
    clash = [c for c in extra if c in frame.columns]
    merged = frame.merge(
        manifests.rename(columns={c: f"manifest_{c}" for c in clash}),
        on=["cell", "seed"], how="left", indicator=True,
    )  # fmt: skip
    missing = merged[merged["_merge"] == "left_only"]
    if not missing.empty:
        first = missing.iloc[0]
        raise ValueError(
            f"no manifest for {len(missing)} result seed(s), first cell {first['cell']!r} "
            f"seed {first['seed']}"
        )
    wrong = merged[merged["hash"] != merged["manifest_hash"]]
    if not wrong.empty:
        first = wrong.iloc[0]
        raise ValueError(
            f"cell {first['cell']!r} seed {first['seed']}: results name manifest "
            f"{first['manifest_hash']!r} but {first['path']} has hash {first['hash']!r}"
        )
    return merged.drop(columns=["_merge", "hash"])


def _read_manifest(path: Path) -> dict:
    """One manifest file as a flat record, with errors naming the file."""

    data = read_manifest_json(path)
    ids, counts, stats = data["ids"], data["counts"], data["stats"]
    if not isinstance(ids, list) or not isinstance(counts, list) or len(ids) != len(counts):
        raise ValueError(f"{path}: ids and counts must be lists of equal length")
    if not isinstance(stats, dict):
        raise ValueError(f"{path}: stats must be an object")
    record = {
        "cell": path.parent.parent.name,
        "seed": int(_SEED_FILE.fullmatch(path.name).group(1)),
        "hash": data["hash"],
        "pool": data["pool"],
        "pool_size": data["pool_size"],
        "strategy": data["strategy"],
        "n_unique": len(ids),
        "total": int(sum(counts)),
    }
    for key, value in stats.items():
        if key == "pair_coverage" and isinstance(value, dict):
            record.update({f"pair_coverage_{k}": v for k, v in value.items()})
        elif isinstance(value, int | float) and key not in record:
            record[key] = value
    record["ids"] = np.asarray(ids, dtype=np.int64)
    record["path"] = str(path)
    return record
