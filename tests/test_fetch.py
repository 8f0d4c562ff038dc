"""`data fetch/list/check` against local archives (file:// and a 127.0.0.1 http.server)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from compgen_jax import cli
from tasks import fetch
from tasks.benchmarks import cfq, gscan

FIXTURES = Path(__file__).parent / "fixtures"


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    """A zip archive with the given members."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _gscan_sources(url: str) -> dict[str, tuple[fetch.Source, ...]]:
    """The gscan compositional_splits source pointed at `url`."""
    return {"gscan": (fetch.Source(url, "gscan-compositional_splits.zip",
                                   "gscan/compositional_splits", "compositional_splits/"),)}


@pytest.fixture()
def gscan_zip(tmp_path: Path) -> Path:
    """The gSCAN fixture packed as upstream's compositional_splits.zip."""
    text = (FIXTURES / "gscan" / "compositional_splits" / "dataset.txt").read_bytes()
    return _zip(tmp_path / "compositional_splits.zip", {
        "compositional_splits/dataset.txt": text,
        "compositional_splits/train_dataset_stats.txt": b"stats\n",
    })


def test_fetch_file_url_records_checksum_and_loads(tmp_path: Path, gscan_zip: Path) -> None:
    root = tmp_path / "data"
    sources = _gscan_sources(gscan_zip.as_uri())
    fetch.fetch("gscan", root, sources=sources)
    checksums = json.loads((root / fetch.CHECKSUMS).read_text())
    digest = hashlib.sha256(gscan_zip.read_bytes()).hexdigest()
    assert checksums[gscan_zip.as_uri()]["sha256"] == digest
    assert (root / "gscan" / "compositional_splits" / "train_dataset_stats.txt").is_file()
    assert len(gscan.load("train", root)) == 2
    assert not list(root.glob(".staging-*"))
    fetch.fetch("gscan", root, force=True, sources=sources)  # verified against the record


def test_checksum_mismatch_keeps_old_data(tmp_path: Path, gscan_zip: Path) -> None:
    root = tmp_path / "data"
    sources = _gscan_sources(gscan_zip.as_uri())
    fetch.fetch("gscan", root, sources=sources)
    before = (root / "gscan" / "compositional_splits" / "dataset.txt").read_bytes()
    _zip(gscan_zip, {"compositional_splits/dataset.txt": b"{}"})
    with pytest.raises(ValueError, match="checksum mismatch for file://"):
        fetch.fetch("gscan", root, force=True, sources=sources)
    assert (root / "gscan" / "compositional_splits" / "dataset.txt").read_bytes() == before
    assert not (root / fetch.DOWNLOADS / "gscan-compositional_splits.zip").exists()


def test_unsafe_member_rejected(tmp_path: Path) -> None:
    bad = _zip(tmp_path / "bad.zip", {"compositional_splits/../../evil.txt": b"x"})
    with pytest.raises(ValueError, match="unsafe member path"):
        fetch.fetch("gscan", tmp_path / "data", sources=_gscan_sources(bad.as_uri()))
    assert not (tmp_path / "evil.txt").exists()


@pytest.fixture()
def http_dir(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A directory served on 127.0.0.1 (an ephemeral port) and its base URL."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_fetch_cfq_tarball_over_http(tmp_path: Path, http_dir: tuple[Path, str]) -> None:
    served, base = http_dir
    with tarfile.open(served / "cfq1.1.tar.gz", "w:gz") as tf:
        for rel in ("dataset.json", "splits/mcd1.json"):
            data = (FIXTURES / "cfq" / rel).read_bytes()
            info = tarfile.TarInfo(f"cfq/{rel}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    root = tmp_path / "data"
    sources = {"cfq": (fetch.Source(f"{base}/cfq1.1.tar.gz", "cfq1.1.tar.gz", "cfq", "cfq/"),)}
    fetch.fetch("cfq", root, sources=sources)
    assert {k: len(v) for k, v in cfq.load("mcd1", root).items()} == {"train": 2, "dev": 1,
                                                                       "test": 1}
    st = fetch.status("cfq", root)
    assert st.missing == ("cfq/splits/mcd2.json", "cfq/splits/mcd3.json") and not st.complete
    assert "partial" in fetch.describe(st)


def test_status_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "data"
    for rel in fetch.REQUIRED["cogs"]:  # a real COGS row: parses, but not the canonical file
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("A cat ran .\tcat ( x _ 1 ) AND run . agent ( x _ 2 , x _ 1 )"
                                "\tin_distribution\n")
    assert fetch.status("cogs", root).complete
    assert not fetch.status("scan", root).present
    assert cli.main(["data", "check", "cogs", "--data_dir", str(root)]) == 2  # not the canonical
    assert cli.main(["data", "check", "cogs", "--record", "--data_dir", str(root)]) == 0
    assert cli.main(["data", "check", "cogs", "--data_dir", str(root)]) == 0  # recorded: trusted
    assert cli.main(["data", "check", "--data_dir", str(root)]) == 2
    assert cli.main(["data", "list", "--data_dir", str(root)]) == 0
    out = capsys.readouterr()
    assert "cogs   complete" in out.out and "scan   absent" in out.out
    assert "incomplete in" in out.err and "scan" in out.err
    assert cli.main(["data", "check", "nope", "--data_dir", str(root)]) == 2
    assert "unknown benchmark 'nope'" in capsys.readouterr().err


def test_check_reports_tampered_archive(tmp_path: Path, gscan_zip: Path) -> None:
    root = tmp_path / "data"
    sources = _gscan_sources(gscan_zip.as_uri())
    fetch.fetch("gscan", root, sources=sources)
    checksums = json.loads((root / fetch.CHECKSUMS).read_text())
    checksums[fetch.SOURCES["gscan"][0].url] = checksums.pop(gscan_zip.as_uri())
    (root / fetch.CHECKSUMS).write_text(json.dumps(checksums))
    assert fetch.status("gscan", root).archives[fetch.SOURCES["gscan"][0].url] == "ok"
    (root / fetch.DOWNLOADS / "gscan-compositional_splits.zip").write_bytes(b"tampered")
    st = fetch.status("gscan", root)
    assert not st.complete and "checksum MISMATCH" in fetch.describe(st)


def test_real_shared_data_status(shared_data: Path) -> None:
    assert fetch.status("scan", shared_data).complete
    assert fetch.status("cogs", shared_data).complete


def test_recogs_derived_then_fetched_files_take_precedence(tmp_path: Path) -> None:
    from tasks.benchmarks import recogs

    root = tmp_path / "data"
    (root / "cogs").mkdir(parents=True)
    cogs_line = "A cat ran .\tcat ( x _ 1 ) AND run . agent ( x _ 2 , x _ 1 )\tin_distribution\n"
    for split in ("train", "gen"):
        (root / "cogs" / f"{split}.tsv").write_text(cogs_line, encoding="utf-8")
    st = fetch.status("recogs", root)
    assert st.derived == ("recogs/recogs_v1/train.tsv", "recogs/recogs_v1/gen.tsv",
                          "recogs/recogs_v2/train.tsv", "recogs/recogs_v2/gen.tsv",
                          "recogs/recogs_positional_index/train.tsv",
                          "recogs/recogs_positional_index/gen.tsv")
    assert "DERIVED from cogs/" in fetch.describe(st) and not st.complete
    assert recogs.load("gen", root, "recogs_positional_index")[0].target == (
        "cat ( 1 ) ; run ( 2 ) AND agent ( 2 , 1 )")
    # the released file, fetched (here from a file:// URL), replaces the derived split
    upstream = tmp_path / "gen.tsv"
    upstream.write_text("A cat ran .\tcat ( 7 ) ; run ( 3 ) AND agent ( 3 , 7 )\t"
                        "in_distribution\n", encoding="utf-8")
    sources = {"recogs": (fetch.Source(upstream.as_uri(), "recogs-recogs_positional_index-gen"
                                       ".tsv", "recogs/recogs_positional_index"),)}
    fetch.fetch("recogs", root, sources=sources)
    gen = recogs.load("gen", root, "recogs_positional_index")
    assert gen[0].target == "cat ( 7 ) ; run ( 3 ) AND agent ( 3 , 7 )"
    assert not gen[0].meta["derived"]
    assert "recogs/recogs_positional_index/gen.tsv" not in fetch.status("recogs", root).derived
    assert all(s.url.startswith("https://raw.githubusercontent.com/frankaging/ReCOGS/main/")
               for s in fetch.SOURCES["recogs"]) and len(fetch.SOURCES["recogs"]) == 12


# A required file of each benchmark in the shared data, cut in half (issue 30 case 4); CFQ's
# dataset.json is its local 10-example sample, with split.json as the three MCD split files.
CUT = {
    "scan": "scan/simple_split/tasks_train_simple.txt",
    "cogs": "cogs/gen.tsv",
    "gscan": "gscan/compositional_splits/dataset.txt",
    "recogs": "recogs/recogs_v1/dev.tsv",
    "cfq": "cfq/dataset.json",
}


def _benchmark_copy(shared_data: Path, root: Path, benchmark: str) -> None:
    """The file to cut (CFQ: with its split files) copied from the shared data under root."""
    sources = {CUT[benchmark]: CUT[benchmark]}
    if benchmark == "cfq":
        sources = {"cfq/dataset.json": "cfq/example_data/dataset.json",
                   **{f"cfq/splits/mcd{k}.json": "cfq/example_data/split.json" for k in (1, 2, 3)}}
    for rel, source in sources.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes((shared_data / source).read_bytes())


@pytest.mark.parametrize("benchmark", sorted(CUT))
def test_data_check_parses_every_file_it_vouches_for(shared_data: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str],
                                                     benchmark: str) -> None:
    root, rel = tmp_path / "data", CUT[benchmark]
    _benchmark_copy(shared_data, root, benchmark)
    data = (root / rel).read_bytes()
    (root / rel).write_bytes(data[: len(data) // 2])
    for record in ([], ["--record"]):
        assert cli.main(["data", "check", benchmark, "--data_dir", str(root), *record]) == 2
        out, err = capsys.readouterr()
        assert f"{benchmark:6s} damaged " in out
        error = fetch.parse_required(benchmark, root)[rel]
        assert error.startswith(f"{root / rel}:") and f"  {rel}: " in out
        assert f"UNREADABLE ({error})" in out
        assert err.strip() == f"compgen-jax data: error: incomplete in {root}: {benchmark}"
        recorded = fetch.read_checksums(root)
        assert rel not in recorded  # --record never trusts a file that does not parse
    if benchmark == "cfq":  # the splits were recorded, the dataset was not
        assert set(recorded) == {f"cfq/splits/mcd{k}.json" for k in (1, 2, 3)}
    (root / rel).write_bytes(data)
    assert fetch.parse_required(benchmark, root)[rel] == ""  # the intact copy parses
