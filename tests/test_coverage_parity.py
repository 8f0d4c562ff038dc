"""Coverage generators, parity mode: upstream's bytes, its rules, and process independence."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.benchmarks import coverage

# Digests of the files upstream's generators (kaistAI/coverage-principle at 49d368b:
# dataset_generation/{twohop,threehop,parallel-twohop,nontree,fivehop}.py, run under CPython 3.11;
# benchmarks/coverage_generators.py reruns them beside ours and compares the bytes)
# wrote for these arguments: sha256 of the lines "<file name> <sha256 of the file>\n" over the
# sorted *.json names. (task, n, max_train, same, mode, seed, test_size_for_type or None).
UPSTREAM = {
    ("twohop", 6, 40, False, "inf", 42, 30):
        "54668b254ec04db1653f5590e3b95473ff7002a94b09e9abe69efe2c4a5e857a",
    ("twohop", 6, 40, False, "cot", 1, None):
        "ff32f61aba91e98fe5f9a5acda044374009bf54fec5f4fcb0b5f235f21c77fe5",
    ("twohop", 6, 40, True, "fakebridge", 42, 10):
        "c600444a594a30990fc15421165f5bd3cf0679b0e4eeb3d510c4ef2f8bdc4fb7",
    ("threehop", 5, 60, False, "inf", 42, 20):
        "bc8e712c5a5c861237d41e03109a70c895fa43bd6c4c5352c7429c6d458da603",
    ("threehop", 5, 60, True, "cot", 42, None):
        "6c84c95f1d48d6506689e1cc8cf765297f0a11926fc1ccab3e9fe91b539c88d4",
    ("threehop", 5, 60, False, "fakebridge", 42, 15):
        "6fbc59792dc86a0a83c6369537432f4d8cc816cdcc62b7715749c579138a339b",
    ("parallel2hop", 4, 30, False, "inf", 42, 10):
        "b0848695233876a2e966c347ac73e21d916d1e8296dfcea97216c94cf38e0b30",
    ("parallel2hop", 4, 30, True, "include-atomic", 42, 5):
        "4cf0fd7fcfa896483636f6dc9b10693d5711000c6046c8141350b5633198c36e",
    ("nontree", 5, 30, False, "inf", 42, 10):
        "90db25ae71c4a5649446e22638338c85ac1f21e72bb32167b731e82aeaf9c5f4",
    ("nontree", 5, 30, True, "cot", 42, None):
        "a990877c501d0e7121808968b673bc3296cd7636fc4473ece914da3ac0111646",
    ("fivehop", 4, 30, False, "cot", 42, 10):
        "18e23e21e9ed9e7dd60bdfdf205637b89dde99e5c29f5cc2f0cc20f3fced12b0",
    ("fivehop", 5, 60, False, "cot", 42, 20):
        "a127315fa577b76a98f8d75fb852b5634a25ff421c4d9e740d8dee689f864830",
    ("fivehop", 8, 500, False, "cot", 3, 100):
        "ed2bbe75456ecfed12a6965ae0f7bfbf36514193251e1abbb15074ed7d0d135d",
    ("fivehop", 50, 10000, False, "cot", 42, None):
        "c4804329dc61eaaa0056a39e7f3bc25aa8da720f333a7f02471ef2491d23ac5c",
}  # fmt: skip
REPO = Path(__file__).resolve().parents[1]


def _digest(directory: Path) -> str:
    """sha256 over '<name> <sha256>' lines of a dataset directory's JSON files."""
    lines = "".join(f"{p.name} {hashlib.sha256(p.read_bytes()).hexdigest()}\n"
                    for p in sorted(directory.glob("*.json")))  # fmt: skip
    return hashlib.sha256(lines.encode()).hexdigest()


@pytest.mark.parametrize("args", list(UPSTREAM), ids=lambda a: ".".join(map(str, a[:5])))
def test_parity_writes_upstream_bytes(tmp_path: Path, args: tuple) -> None:
    task, n, max_train, same, mode, seed, test_size = args
    out = coverage.generate(task, tmp_path, n, max_train, same=same, mode=mode, seed=seed,
                            test_size=test_size, parity=True)  # fmt: skip
    assert _digest(out) == UPSTREAM[args], f"see: python -m analysis coverage compare {out} ..."


@pytest.mark.parametrize("args", [("threehop", 5, 60, False, "inf", 42, 20),
                                  ("parallel2hop", 4, 30, False, "inf", 42, 10)],
                         ids=lambda a: a[0])  # fmt: skip
def test_parity_does_not_depend_on_the_block_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: tuple
) -> None:
    """Test candidates are typed by numpy per block of f1 keys: one f1 key per block still
    gives upstream's bytes."""
    monkeypatch.setattr(coverage, "_BLOCK", 1)
    task, n, max_train, same, mode, seed, test_size = args
    out = coverage.generate(task, tmp_path, n, max_train, same=same, mode=mode, seed=seed,
                            test_size=test_size, parity=True)  # fmt: skip
    assert _digest(out) == UPSTREAM[args]


def test_parity_rules_read_from_upstream(tmp_path: Path) -> None:
    """Rules visible in the files: Q11 (the slice aliases train items, so they carry `type`),
    Q32 (test_size >= max_train: the slice is every train item, no sample), Q34 (include-atomic
    appends the f1 facts after the shuffle, in key order)."""
    out = coverage.generate("twohop", tmp_path, 6, 40, mode="cot", seed=1, parity=True)
    train = json.loads((out / "train.json").read_text())
    test = json.loads((out / "test.json").read_text())
    sliced = [item for item in test if item["type"] == "train_inferred"]
    assert sorted(map(json.dumps, sliced)) == sorted(map(json.dumps, train))
    assert all(item["type"] == "train_inferred" for item in train)
    out = coverage.generate("parallel2hop", tmp_path, 4, 30, same=True, mode="include-atomic",
                            test_size=5, parity=True)  # fmt: skip
    train = json.loads((out / "train.json").read_text())
    facts = json.loads((out / "atomic_facts_f1.json").read_text())
    assert len(facts) == 16 and train[-16:] == facts
    assert sum(item.get("type") == "train_inferred" for item in train) == 5
    default = coverage.generate("parallel2hop", tmp_path / "d", 4, 30, same=True,
                                mode="include-atomic", test_size=5)  # fmt: skip
    assert json.loads((default / "train.json").read_text())[-16:] != facts  # shuffled in


@pytest.mark.parametrize(
    ("task", "n", "max_train", "mode"),
    [("twohop", 8, 150, "cot"), ("threehop", 5, 60, "fakebridge"),
     ("parallel2hop", 4, 30, "inf"), ("nontree", 6, 60, "cot"), ("fivehop", 6, 200, "cot")],
)  # fmt: skip
def test_parity_is_independent_of_process_and_hash_seed(
    tmp_path: Path, task: str, n: int, max_train: int, mode: str
) -> None:
    """Upstream's sets hold int tuples, whose hashes do not depend on PYTHONHASHSEED."""
    code = ("import sys; from tasks.benchmarks import coverage; "
            f"print(coverage.generate({task!r}, sys.argv[1], {n}, {max_train}, mode={mode!r}, "
            "test_size=7, parity=True))")  # fmt: skip
    digests = []
    for hash_seed in ("0", "1234567", "random"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(REPO)}
        done = subprocess.run([sys.executable, "-c", code, str(tmp_path / hash_seed)], env=env,
                              capture_output=True, text=True, check=True)  # fmt: skip
        digests.append(_digest(Path(done.stdout.strip())))
    here = coverage.generate(task, tmp_path / "here", n, max_train, mode=mode, test_size=7,
                             parity=True)  # fmt: skip
    assert digests == [_digest(here)] * 3
    default = coverage.generate(task, tmp_path / "default", n, max_train, mode=mode, test_size=7)
    assert _digest(default) != digests[0]
