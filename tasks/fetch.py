"""Canonical downloads into a data dir: streamed, sha256-recorded on first download, atomic.

Archives are kept under `<data dir>/downloads/` and their sha256 in `<data dir>/checksums.json`
(recorded the first time, verified on every later fetch and by `check`). Each archive is
extracted into a staging directory and its files renamed into place one by one, so a failed
fetch leaves no half-written file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath

from analysis.atomic import atomic_path, write_text
from analysis.results import file_sha256 as sha256
from tasks.benchmarks import cfq, cogs, gscan, recogs, scan
from tasks.jsonstream import read_json_file

CHECKSUMS = "checksums.json"
DOWNLOADS = "downloads"
CHUNK_BYTES = 1 << 20


@dataclasses.dataclass(frozen=True)
class Source:
    """One download: `url` saved as `filename`, unpacked (`strip` removed) into `into`."""

    url: str
    filename: str
    into: str
    strip: str = ""

    @property
    def kind(self) -> str:
        """'zip', 'tar' or 'file' (a single file copied to `into/<URL basename>`)."""
        if self.filename.endswith(".zip"):
            return "zip"
        if self.filename.endswith((".tar.gz", ".tgz", ".tar")):
            return "tar"
        return "file"


_COGS = "https://raw.githubusercontent.com/najoungkim/COGS/main/data/"
_GSCAN = "https://raw.githubusercontent.com/LauraRuis/groundedSCAN/master/data/"
_RECOGS = "https://raw.githubusercontent.com/frankaging/ReCOGS/main/"
SOURCES: dict[str, tuple[Source, ...]] = {
    "scan": (Source("https://github.com/brendenlake/SCAN/archive/master.zip", "SCAN-master.zip",
                    "scan", "SCAN-master/"),),
    "cogs": tuple(Source(_COGS + name, f"cogs-{name}", "cogs")
                  for name in ("train.tsv", "dev.tsv", "test.tsv", "gen.tsv", "train_100.tsv",
                               "gen_cases_to_paper_sections.json")),
    "gscan": tuple(Source(_GSCAN + f"{name}.zip", f"gscan-{name}.zip", f"gscan/{name}", f"{name}/")
                   for name in ("compositional_splits", "target_length_split")),
    "cfq": (Source("https://storage.googleapis.com/cfq_dataset/cfq1.1.tar.gz", "cfq1.1.tar.gz",
                   "cfq", "cfq/"),),
    "recogs": tuple(Source(_RECOGS + f"{version}/{split}.tsv", f"recogs-{version}-{split}.tsv",
                           f"recogs/{version}")
                    for version in recogs.VERSIONS for split in recogs.SPLITS),
}
# Files an adapter needs for the benchmark to count as complete (relative to the data dir).
REQUIRED: dict[str, tuple[str, ...]] = {
    "scan": ("scan/tasks.txt", "scan/length_split/tasks_train_length.txt",
             "scan/length_split/tasks_test_length.txt", "scan/simple_split/tasks_train_simple.txt",
             "scan/simple_split/tasks_test_simple.txt",
             "scan/add_prim_split/tasks_train_addprim_jump.txt",
             "scan/add_prim_split/tasks_test_addprim_jump.txt"),
    "cogs": ("cogs/train.tsv", "cogs/dev.tsv", "cogs/test.tsv", "cogs/gen.tsv"),
    "gscan": ("gscan/compositional_splits/dataset.txt",),
    "cfq": ("cfq/dataset.json", "cfq/splits/mcd1.json", "cfq/splits/mcd2.json",
            "cfq/splits/mcd3.json"),
    "recogs": tuple(f"recogs/{version}/{split}.tsv"
                    for version in recogs.VERSIONS for split in recogs.SPLITS),
}


def derived_from(rel: str, root: Path) -> str | None:
    """The local file a missing required file is derived from offline (None: not derivable).

    A ReCOGS split is derived from the COGS file of the same split (tasks.benchmarks.recogs).
    """
    parts = PurePosixPath(rel).parts
    if len(parts) == 3 and parts[0] == "recogs":
        cogs_file = f"cogs/{PurePosixPath(rel).name}"
        return cogs_file if (root / cogs_file).is_file() else None
    return None


# (bytes, sha256) of canonical files as the upstream repositories ship them: SCAN at
# brendenlake/SCAN c4b756c, COGS train/dev/test at najoungkim/COGS 165a7b6. Measured on
# intact copies whose line counts are the published split sizes (SCAN 20,910 / 16,990 + 3,920 /
# 16,728 + 4,182 / 14,670 + 7,706; COGS 24,155 / 3,000 / 3,000). `check` verifies a local file
# against these when checksums.json records none for it.
CANONICAL_FILES: dict[str, tuple[int, str]] = {
    "scan/tasks.txt": (
        4080388, "d824c7d9e9149ba497e25f701981dac79954e04bf670d22e5c209f076ac6c89f"),
    "scan/length_split/tasks_train_length.txt": (
        2723418, "b034212dc7cf87ce62f3a067dd6ad49c4d5cd18d51d615d13825516bcb1ebbc2"),
    "scan/length_split/tasks_test_length.txt": (
        1356970, "0760752ed34a75116ae11dcc1ee17526b7500060da1366540730fa24894d7db3"),
    "scan/simple_split/tasks_train_simple.txt": (
        3267938, "941bb8a088c5f53ceff12fde902dc008933cf0c4203cc672c47b5f79d73262dd"),
    "scan/simple_split/tasks_test_simple.txt": (
        812450, "1fe1c8f5a19d0dc40e41bab94278f45f66f3dc415a978bd29855a23440610fc6"),
    "scan/add_prim_split/tasks_train_addprim_jump.txt": (
        2579619, "e3c78485692e028eed4205e1b8b3fd0e785ef2c12d45b5b89204dadf5b239e23"),
    "scan/add_prim_split/tasks_test_addprim_jump.txt": (
        1531555, "8147ae2651422c701162e174d9d66158daa57858a26b30317ac61797118ac7a5"),
    "cogs/train.tsv": (
        4146574, "220b3804b562c0156ee986eff1bdd15c27e52142549362a64f57baf86e304c78"),
    "cogs/dev.tsv": (
        522121, "ab66388a309c7ac1ad210c781a6a0ce12281a9ef24619a12422a752cef61bc21"),
    "cogs/test.tsv": (
        521111, "68f8e51e9f6d9cd22d64efe68dd21d7ea5ba327e9a2359481030161aea757035"),
}


def verify_files(benchmark: str, data_dir: str | os.PathLike[str], record: bool = False
                 ) -> dict[str, str]:
    """Each present required file of a benchmark, read with its own reader (parse_required) and
    checked against its recorded sha256 in checksums.json (keyed by the file's path in the data
    dir), else CANONICAL_FILES: 'ok', 'MISMATCH (...)' or 'unverified', followed by
    '; UNREADABLE (...)' when it does not parse. With `record`, every present file that parses
    has its sha256 recorded (after a fetch, or to trust local files from now on) and the result
    is 'recorded'; one that does not parse is 'UNREADABLE (...)' and is not recorded."""
    _check_benchmark(benchmark)
    root = Path(data_dir)
    checksums = read_checksums(root)
    errors = parse_required(benchmark, root)
    states = {}
    for rel, error in errors.items():
        path = root / rel
        unreadable = f"UNREADABLE ({error})" if error else ""
        size, digest = path.stat().st_size, sha256(path)
        if record:
            if not error:
                checksums[rel] = {"sha256": digest, "bytes": size}
            states[rel] = unreadable or "recorded"
            continue
        known = checksums.get(rel)
        expected = ((known.get("bytes"), known.get("sha256")) if isinstance(known, dict)
                    else CANONICAL_FILES.get(rel))
        if expected is None:
            state = "unverified"
        elif expected[1] == digest:
            state = "ok"
        else:
            state = (f"MISMATCH ({size} bytes, sha256 {digest[:12]}; expected "
                     f"{expected[0]} bytes, sha256 {str(expected[1])[:12]})")
        states[rel] = f"{state}; {unreadable}" if error else state
    if record and "recorded" in states.values():
        write_text(root / CHECKSUMS, json.dumps(checksums, indent=2, sort_keys=True) + "\n")
    return states


def bad_state(state: str) -> bool:
    """Whether a verify_files state fails the check (a checksum mismatch or a parse error)."""
    return state.startswith("MISMATCH") or "UNREADABLE" in state


CFQ_DATASET = "cfq/dataset.json"


def parse_required(benchmark: str, data_dir: str | os.PathLike[str]) -> dict[str, str]:
    """Each present required file of a benchmark read whole with the benchmark's own reader, as
    training reads it (SCAN lines against the grammar, COGS/ReCOGS rows and LFs, every gSCAN and
    CFQ example, CFQ split indices against the dataset): rel -> '' when it parses, else the
    error naming the file and line. A file cut short fails here whatever its checksum record."""
    _check_benchmark(benchmark)
    root = Path(data_dir)
    errors, cfq_items = {}, None
    for rel in (r for r in REQUIRED[benchmark] if (root / r).is_file()):
        try:
            count = _parse(benchmark, rel, root, cfq_items)
        except (ValueError, RecursionError) as err:  # UnicodeDecodeError is a ValueError
            errors[rel] = " ".join(str(err).split())
            continue
        errors[rel] = ""
        cfq_items = count if rel == CFQ_DATASET else cfq_items
    return errors


def _parse(benchmark: str, rel: str, root: Path, cfq_items: int | None) -> int:
    """Read one required file with its benchmark's reader; the examples (or indices) it holds."""
    path, name = root / rel, PurePosixPath(rel)
    if benchmark == "scan":
        return len(scan.read_file(path))
    if benchmark == "cogs":
        return len(cogs.load(name.stem, root))
    if benchmark == "recogs":
        return len(recogs.load(name.stem, root, name.parts[1]))
    if benchmark == "gscan":
        return gscan.check_file(path, name.parts[1])
    if rel == CFQ_DATASET:
        return cfq.check_dataset(path)
    if cfq_items is None:  # dataset.json absent or unreadable: the split file's own structure
        return sum(map(len, cfq.read_split_file(path).values()))
    return cfq.check_split_file(path, root / CFQ_DATASET, cfq_items)


def _check_benchmark(benchmark: str) -> None:
    """ValueError naming the known benchmarks if `benchmark` is not one."""
    if benchmark not in SOURCES:
        raise ValueError(f"unknown benchmark {benchmark!r}; expected one of {tuple(SOURCES)}")


def read_checksums(root: Path) -> dict[str, dict[str, object]]:
    """The recorded {url: {sha256, bytes, file}} of a data dir ({} if none yet)."""
    path = root / CHECKSUMS
    if not path.is_file():
        return {}
    data = read_json_file(path, "checksums file")
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object {{url: {{sha256, bytes, file}}}}")
    return data


def download(url: str, target: Path) -> tuple[str, int]:
    """Stream `url` to `target` atomically; return (sha256, bytes)."""
    digest, size = hashlib.sha256(), 0
    with (atomic_path(target) as tmp, open(tmp, "wb") as out,
          urllib.request.urlopen(url, timeout=60) as response):
        while chunk := response.read(CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    return digest.hexdigest(), size


def _member_path(name: str, strip: str, archive: Path) -> PurePosixPath | None:
    """Relative destination of an archive member (None: outside `strip`); unsafe names raise."""
    if not name.startswith(strip) or name == strip:
        return None
    rel = PurePosixPath(name[len(strip) :])
    if rel.is_absolute() or ".." in rel.parts:
        raise ValueError(f"{archive}: unsafe member path {name!r}")
    return rel


def _extract(source: Source, archive: Path, staging: Path) -> None:
    """Unpack `archive` (members under `source.strip`) into `staging`."""
    if source.kind == "file":
        shutil.copyfile(archive, staging / source.url.rsplit("/", 1)[-1])
        return
    if source.kind == "zip":
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                rel = _member_path(info.filename, source.strip, archive)
                if rel is None or info.is_dir():
                    continue
                (staging / rel).parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(staging / rel, "wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK_BYTES)
        return
    with tarfile.open(archive) as tf:
        for member in tf:
            rel = _member_path(member.name, source.strip, archive)
            if rel is None or not member.isfile():
                continue
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            src = tf.extractfile(member)
            assert src is not None  # isfile() members always have a file object
            with src, open(staging / rel, "wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK_BYTES)


def _install(staging: Path, target: Path) -> None:
    """Move the staged files into `target`, replacing same-named files one rename each."""
    for path in sorted(p for p in staging.rglob("*") if p.is_file()):
        dest = target / path.relative_to(staging)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, dest)


def fetch(
    benchmark: str,
    data_dir: str | os.PathLike[str],
    force: bool = False,
    sources: Mapping[str, Sequence[Source]] | None = None,
) -> list[Path]:
    """Download, verify and unpack a benchmark's canonical archives; return the archives used.

    A cached archive in downloads/ is reused unless `force`. The first download of a URL records
    its sha256 in checksums.json; every later one must match it (ValueError otherwise, with the
    data left as it was).
    """
    table = SOURCES if sources is None else sources
    if benchmark not in table:
        raise ValueError(f"unknown benchmark {benchmark!r}; expected one of {tuple(table)}")
    root = Path(data_dir)
    used = []
    for source in table[benchmark]:
        checksums = read_checksums(root)
        archive = root / DOWNLOADS / source.filename
        if force or not archive.is_file():
            digest, size = download(source.url, archive)
        else:
            digest, size = sha256(archive), archive.stat().st_size
        known = checksums.get(source.url)
        if known is None:
            checksums[source.url] = {"sha256": digest, "bytes": size, "file": source.filename}
            write_text(root / CHECKSUMS, json.dumps(checksums, indent=2, sort_keys=True) + "\n")
        elif known.get("sha256") != digest:
            archive.unlink()
            raise ValueError(
                f"checksum mismatch for {source.url}: recorded sha256 {known.get('sha256')} in "
                f"{root / CHECKSUMS}, downloaded {digest}; the archive was discarded"
            )
        target = root / source.into
        target.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=root, prefix=".staging-") as staging:
            _extract(source, archive, Path(staging))
            _install(Path(staging), target)
        used.append(archive)
    return used


@dataclasses.dataclass(frozen=True)
class Status:
    """What a data dir holds for one benchmark."""

    benchmark: str
    path: Path
    present: tuple[str, ...]
    missing: tuple[str, ...]
    archives: dict[str, str]  # url -> "ok" | "absent" | "MISMATCH" | "unrecorded"
    derived: tuple[str, ...] = ()  # missing files that loaders derive offline from other files
    damaged: tuple[str, ...] = ()  # present files failing their checksum or their parse

    @property
    def complete(self) -> bool:
        """All required files present, none damaged, no cached archive failing its checksum."""
        return (not self.missing and not self.damaged
                and "MISMATCH" not in self.archives.values())


def status(benchmark: str, data_dir: str | os.PathLike[str]) -> Status:
    """Required files present/missing and cached-archive checksums of one benchmark."""
    _check_benchmark(benchmark)
    root = Path(data_dir)
    present = tuple(p for p in REQUIRED[benchmark] if (root / p).is_file())
    missing = tuple(p for p in REQUIRED[benchmark] if p not in present)
    checksums = read_checksums(root)
    archives = {}
    for source in SOURCES[benchmark]:
        archive = root / DOWNLOADS / source.filename
        recorded = checksums.get(source.url, {}).get("sha256")
        if not archive.is_file():
            archives[source.url] = "absent"
        elif recorded is None:
            archives[source.url] = "unrecorded"
        else:
            archives[source.url] = "ok" if sha256(archive) == recorded else "MISMATCH"
    derived = tuple(p for p in missing if derived_from(p, root) is not None)
    return Status(benchmark, root / benchmark, present, missing, archives, derived)


def describe(st: Status) -> str:
    """One line per benchmark: state, where, and which files are missing."""
    if st.complete:
        state = "complete"
    elif st.damaged:
        state = "damaged"
    elif st.present or st.path.is_dir():
        state = "partial"
    else:
        state = "absent"
    line = f"{st.benchmark:6s} {state:8s} {st.path}"
    absent = [p for p in st.missing if p not in st.derived]
    if absent and st.path.is_dir():
        line += f"  missing: {', '.join(absent)}"
    if st.derived:
        line += (f"  DERIVED from cogs/ (not the released files; `compgen-jax data fetch "
                 f"{st.benchmark}` gets them): {', '.join(st.derived)}")
    bad = [url for url, s in st.archives.items() if s == "MISMATCH"]
    if bad:
        line += f"  checksum MISMATCH: {', '.join(bad)}"
    return line
