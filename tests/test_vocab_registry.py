"""Word vocabulary (Python and TF paths) and the SCAN seqio tasks and tokenized pools."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import seqio

from tasks import registry
from tasks.benchmarks import scan
from tasks.tf_env import tf
from tasks.vocab import WordVocabulary

SCAN_WORDS = (
    "I_JUMP I_LOOK I_RUN I_TURN_LEFT I_TURN_RIGHT I_WALK "
    "after and around jump left look opposite right run thrice turn twice walk"
).split()  # BENCHMARKS.md s.4.1: 13 command words + 6 actions, here in sorted order


@pytest.fixture(scope="module")
def vocab() -> WordVocabulary:
    return registry.scan_vocabulary()


@pytest.fixture(scope="module")
def generated_tasks() -> list[str]:
    return registry.register_scan_tasks(data_dir="")  # "" = explicitly no data dir


def test_vocabulary_layout(vocab: WordVocabulary) -> None:
    assert vocab.tokens == ("<pad>", "</s>", "<unk>", *SCAN_WORDS)
    assert (vocab.pad_id, vocab.eos_id, vocab.unk_id) == (0, 1, 2)
    assert vocab.vocab_size == 3 + 19
    assert WordVocabulary.from_texts(["b a", "a  c"]).tokens[3:] == ("a", "b", "c")


def test_encode_decode_round_trip(vocab: WordVocabulary) -> None:
    for cmd, actions in scan.generate()[::97]:
        for text in (cmd, actions):
            ids = vocab.encode(text)
            assert len(ids) == len(text.split()) and min(ids) >= 3
            assert vocab.decode(ids) == text
            assert vocab.decode([*ids, vocab.eos_id, 5, 6, 0]) == text  # stops at EOS


def test_unknown_words_map_to_unk(vocab: WordVocabulary) -> None:
    ids = vocab.encode("walk fly twice")
    assert ids[1] == vocab.unk_id
    assert vocab.decode(ids) == "walk <unk> twice"


def test_tf_and_python_paths_agree(vocab: WordVocabulary) -> None:
    texts = [t for pair in scan.generate()[::211] for t in pair] + ["walk fly  twice"]
    rows = []
    for text in texts:
        tf_ids = vocab.encode_tf(tf.constant(text)).numpy().tolist()
        assert tf_ids == vocab.encode(text), text
        rows.append([*tf_ids, vocab.eos_id])
    width = max(map(len, rows)) + 2
    padded = np.array([row + [7] * (width - len(row)) for row in rows], dtype=np.int32)
    decoded = [s.decode() for s in vocab.decode_tf(tf.constant(padded)).numpy()]
    assert decoded == [vocab.decode(row) for row in padded]
    assert decoded[0] == texts[0]


def test_save_load_round_trip(vocab: WordVocabulary, tmp_path: Path) -> None:
    path = tmp_path / "vocab.txt"
    vocab.save(path)
    assert path.read_text().splitlines() == list(vocab.tokens)
    assert WordVocabulary.load(path) == vocab
    assert list(tmp_path.iterdir()) == [path]  # atomic write leaves no temp file


def test_load_bad_file_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "vocab.txt"
    path.write_text("<pad>\n<unk>\n</s>\nwalk\n")
    with pytest.raises(ValueError, match=f"{path}:2: expected special token"):
        WordVocabulary.load(path)
    path.write_text("<pad>\n</s>\n<unk>\nwalk\nwalk\n")
    with pytest.raises(ValueError, match="duplicate words"):
        WordVocabulary.load(path)


def test_invalid_words_are_rejected() -> None:
    with pytest.raises(ValueError, match="invalid words"):
        WordVocabulary(["walk", "two words"])
    with pytest.raises(ValueError, match="invalid words"):
        WordVocabulary(["</s>"])


def test_registered_names_and_split_sizes(generated_tasks: list[str]) -> None:
    assert generated_tasks == ["scan_length", "scan_simple"]
    sizes = {"scan_length": (16_990, 3_920), "scan_simple": (16_728, 4_182)}
    for name, (train, test) in sizes.items():
        task = seqio.get_mixture_or_task(name)
        assert (task.num_input_examples("train"), task.num_input_examples("test")) == (train, test)
        assert len(registry.get_examples(name, "train")) == train
        assert task.metric_fns == [scan.metric]
        assert registry.get_vocabulary(name) == registry.scan_vocabulary()
    assert registry.register_scan_tasks(data_dir="") == generated_tasks  # idempotent


def test_file_tasks(shared_data: Path) -> None:
    names = registry.register_scan_tasks(shared_data)
    assert names == [
        "scan_length",
        "scan_simple",
        "scan_length_files",
        "scan_simple_files",
        "scan_addprim_jump_files",
    ]
    sizes = {
        "scan_length_files": (16_990, 3_920),
        "scan_simple_files": (16_728, 4_182),
        "scan_addprim_jump_files": (14_670, 7_706),
    }
    for name, expected in sizes.items():
        got = tuple(len(registry.get_examples(name, s)) for s in ("train", "test"))
        assert got == expected, name


def test_missing_data_dir_fails_at_registration(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="length_split/tasks_train_length.txt"):
        registry.register_scan_tasks(tmp_path)


def test_tokenized_pool(generated_tasks: list[str], vocab: WordVocabulary) -> None:
    pool = registry.tokenized_pool("scan_length", "test")
    examples = registry.get_examples("scan_length", "test")
    n = len(examples)
    assert pool["inputs"].shape == (n, 10)  # longest command 9 words + EOS
    assert pool["targets"].shape == (n, 49)  # longest action sequence 48 + EOS
    assert all(a.dtype == np.int32 for a in pool.values())
    np.testing.assert_array_equal(pool["example_id"], np.arange(n))
    for feature, text in (("inputs", "input"), ("targets", "target")):
        lengths = np.array([len(getattr(ex, text).split()) for ex in examples])
        rows = pool[feature]
        np.testing.assert_array_equal(rows[np.arange(n), lengths], vocab.eos_id)
        after = np.arange(rows.shape[1])[None, :] > lengths[:, None]
        assert (rows[after] == 0).all() and (rows[~after] != 0).all()
    for i in (0, 1_000, n - 1):
        assert vocab.decode(pool["inputs"][i]) == examples[i].input
        assert vocab.decode(pool["targets"][i]) == examples[i].target


def test_tokenized_pool_fixed_lengths_and_truncation(generated_tasks: list[str]) -> None:
    pool = registry.tokenized_pool("scan_simple", "test", {"inputs": 16, "targets": 64})
    assert pool["inputs"].shape == (4_182, 16) and pool["targets"].shape == (4_182, 64)
    default = registry.tokenized_pool("scan_simple", "test")
    np.testing.assert_array_equal(pool["targets"][:, :49], default["targets"])
    assert not pool["targets"][:, 49:].any()
    with pytest.raises(ValueError) as info:
        registry.tokenized_pool("scan_simple", "test", {"targets": 30})
    message = str(info.value)
    assert "scan_simple" in message and "test" in message and "'targets'" in message
    assert "needs length 49" in message
    with pytest.raises(ValueError, match="unknown features"):
        registry.tokenized_pool("scan_simple", "test", {"decoder_targets": 64})


def test_a_split_is_tokenized_once_per_registration(monkeypatch: pytest.MonkeyPatch) -> None:
    examples = {"train": scan._examples("train", [("jump", "I_JUMP")]),
                "test": scan._examples("test", [("walk twice", "I_WALK I_WALK")])}
    registry._register_loaded("scan_once", examples, scan.metric, registry.scan_vocabulary())
    runs = []
    real = registry._encoded_tokens
    monkeypatch.setattr(registry, "_encoded_tokens", lambda task, split: runs.append(split)
                        or real(task, split))
    first = registry.tokenized_pool("scan_once", "test")
    first["targets"][0, 0] = 99  # a caller's change reaches neither the cache nor a later call
    again = registry.tokenized_pool("scan_once", "test", {"inputs": 4, "targets": 4})
    assert runs == ["test"] and again["targets"][0, :3].tolist() == [8, 8, 1]
    registry._register_loaded("scan_once", {**examples, "test": examples["train"]}, scan.metric,
                              registry.scan_vocabulary())
    assert registry.tokenized_pool("scan_once", "test")["targets"][0].tolist() == [3, 1]
    assert runs == ["test", "test"]  # re-registered: its new data tokenized


def test_pool_matches_seqio_feature_converter(generated_tasks: list[str]) -> None:
    pool = registry.tokenized_pool("scan_length", "test", {"inputs": 12, "targets": 50})
    ds = seqio.get_dataset(
        "scan_length",
        task_feature_lengths={"inputs": 12, "targets": 50, "example_id": 1},
        dataset_split="test",
        shuffle=False,
        num_epochs=1,
        batch_size=64,
        feature_converter=seqio.EncDecFeatureConverter(
            pack=False, passthrough_features=registry.EXAMPLE_ID_PASSTHROUGH
        ),
    )
    batch = next(ds.as_numpy_iterator())
    np.testing.assert_array_equal(batch["encoder_input_tokens"], pool["inputs"][:64])
    np.testing.assert_array_equal(batch["decoder_target_tokens"], pool["targets"][:64])
    np.testing.assert_array_equal(batch["example_id"][:, 0], np.arange(64))


def test_our_pools_equal_the_seqio_tasks_datasets(generated_tasks: list[str],
                                                  shared_data: Path) -> None:
    """Our tasks' pools are encoded in Python: the ids, EOS and padding of the Task's own
    tokenize + append_eos pipeline, on every example (generated SCAN, real COGS gen)."""
    registry.ensure_registered("cogs", shared_data)
    for name, split in (("scan_length", "test"), ("cogs", "gen")):
        pool = registry.tokenized_pool(name, split)
        through_tf = registry._dataset_tokens(seqio.get_mixture_or_task(name), split)
        for feature in ("inputs", "targets", "example_id"):
            np.testing.assert_array_equal(pool[feature], through_tf[feature])


def test_tasks_refuse_shuffling(generated_tasks: list[str]) -> None:
    with pytest.raises(ValueError, match="Shuffling is disallowed"):
        seqio.get_mixture_or_task("scan_length").get_dataset(split="train", shuffle=True)


def test_unknown_task_or_split(generated_tasks: list[str]) -> None:
    with pytest.raises(ValueError, match="'scan_nope' is not registered"):
        registry.get_examples("scan_nope", "train")
    with pytest.raises(ValueError, match="no split 'dev'"):
        registry.tokenized_pool("scan_length", "dev")


# ---------------------------------------------------------------------------------------------
# Registered on import, read lazily; any seqio Task or Mixture by name (t5x pattern).


def test_plain_seqio_lookup_after_one_import(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    code = ("import seqio, tasks.registry\n"
            "t = seqio.get_mixture_or_task('scan_length')\n"
            "print(t.num_input_examples('test'), sorted(t.splits))\n"
            "c = seqio.get_mixture_or_task('cfq_mcd1')\n"
            "print(c.name, sorted(c.splits))\n"
            "try:\n    c.get_dataset(split='train', shuffle=False)\n"
            "except FileNotFoundError as err:\n    print('read:', err)\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
           "COMPGEN_DATA_DIR": str(tmp_path)}  # an empty data dir: registering reads nothing
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True).stdout.splitlines()
    assert out[0] == "3920 ['test', 'train']"
    assert out[1] == "cfq_mcd1 ['dev', 'test', 'train']"
    assert out[2].startswith("read: CFQ split mcd1: expected file ")
    assert str(tmp_path / "cfq" / "splits" / "mcd1.json") in out[2]
    assert "compgen-jax data fetch cfq" in out[2]


@pytest.fixture()
def reset_import_registration():
    """Tests that re-register our tasks leave them as a fresh import would."""
    yield
    registry._register_on_import()


def test_registration_and_vocabulary_are_lazy(monkeypatch: pytest.MonkeyPatch,
                                              reset_import_registration: None) -> None:
    from tasks.benchmarks import cogs
    from tasks.example import Example

    reads: list[str] = []

    def fake_load(split: str, data_dir: object = None, fmt: str = "lf") -> list[Example]:
        reads.append(split)
        return [Example("cogs", split, 0, f"a {split} cat", "cat ( x _ 2 )", frozenset(),
                        frozenset(), 0, 3)]

    monkeypatch.setattr(cogs, "load", fake_load)
    registry._register_on_import()
    task = seqio.get_mixture_or_task("cogs")
    vocab = registry.get_vocabulary("cogs")
    assert task.splits == cogs.SPLITS and reads == []  # registered, nothing read
    assert [e.input for e in registry.get_examples("cogs", "dev")] == ["a dev cat"]
    assert reads == ["dev"]  # only the requested split
    # a, cat, the 4 split names, ( x _ 2 ): the joint vocabulary reads every split, once
    assert vocab.vocab_size == 3 + 11
    assert sorted(reads) == sorted(cogs.SPLITS)
    assert vocab.encode("a gen cat") == [vocab.tokens.index(w) for w in ("a", "gen", "cat")]
    pool = registry.tokenized_pool("cogs", "gen")
    assert vocab.decode(pool["inputs"][0].tolist()) == "a gen cat"
    assert sorted(reads) == sorted(cogs.SPLITS)
    import pickle

    assert pickle.loads(pickle.dumps(vocab)) == vocab


def test_missing_cfq_split_is_one_clear_error(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from compgen_jax import cli

    missing = tmp_path / "cfq" / "splits" / "mcd1.json"
    with pytest.raises(FileNotFoundError, match=f"{missing}.*compgen-jax data fetch cfq"):
        registry.ensure_registered("cfq_mcd1", tmp_path)
    assert cli.main(["data", "measures", "cfq_mcd1", "--data_dir", str(tmp_path),
                     "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(missing) in err[0] and "data fetch cfq" in err[0]
    assert not (tmp_path / "out").exists()


@pytest.fixture()
def scan_mixture(generated_tasks: list[str]):
    seqio.MixtureRegistry.add("scan_length_simple_mix", ["scan_length", "scan_simple"],
                              default_rate=1.0)
    yield "scan_length_simple_mix"
    seqio.MixtureRegistry.remove("scan_length_simple_mix")


def test_mixture_examples_vocabulary_and_pool(scan_mixture: str, vocab: WordVocabulary) -> None:
    registry.ensure_registered(scan_mixture)  # accepted: a registered seqio Mixture
    exs = registry.get_examples(scan_mixture, "test")
    length, simple = (registry.get_examples(t, "test") for t in ("scan_length", "scan_simple"))
    assert len(exs) == 3_920 + 4_182 and [e.id for e in exs] == list(range(len(exs)))
    assert [e.input for e in exs] == [e.input for e in (*length, *simple)]
    assert {e.meta["task"] for e in exs[:3_920]} == {"scan_length"}
    assert exs[3_920].meta["task_id"] == 0 and exs[0].pairs == length[0].pairs
    assert registry.get_vocabulary(scan_mixture) == vocab
    assert registry.get_metric_fns(scan_mixture) == [scan.metric]
    pool = registry.tokenized_pool(scan_mixture, "test")
    part = registry.tokenized_pool("scan_simple", "test")
    assert pool["inputs"].shape[0] == 8_102 and pool["example_id"].tolist() == list(range(8_102))
    np.testing.assert_array_equal(pool["targets"][3_920:, : part["targets"].shape[1]],
                                  part["targets"])
    assert vocab.decode(pool["targets"][-1].tolist()) == simple[-1].target


def test_foreign_seqio_task_and_vocabulary_mismatch() -> None:
    def add(name: str, words: WordVocabulary) -> None:
        def dataset_fn(split: str, shuffle_files: bool, seed: int | None = None
                       ) -> tf.data.Dataset:
            return tf.data.Dataset.from_tensor_slices({"inputs": ["a b", "c"],
                                                       "targets": ["b", "c a a"]})

        seqio.TaskRegistry.add(
            name, source=seqio.FunctionDataSource(dataset_fn, splits=["train"]),
            output_features={k: seqio.Feature(words, add_eos=True) for k in ("inputs", "targets")},
            preprocessors=[seqio.preprocessors.tokenize, seqio.preprocessors.append_eos])

    add("foreign_abc", WordVocabulary(["a", "b", "c"]))
    add("foreign_cba", WordVocabulary(["c", "b", "a"]))
    seqio.MixtureRegistry.add("abc_and_cba", ["foreign_abc", "foreign_cba"], default_rate=1.0)
    try:
        registry.ensure_registered("foreign_abc")
        exs = registry.get_examples("foreign_abc", "train")
        assert [(e.input, e.target, e.out_len) for e in exs] == [("a b", "b", 1), ("c", "c a a", 3)]
        pool = registry.tokenized_pool("foreign_abc", "train")
        np.testing.assert_array_equal(pool["targets"], [[4, 1, 0, 0], [5, 3, 3, 1]])
        assert len(registry.get_examples("abc_and_cba", "train")) == 4
        assert registry.get_metric_fns("foreign_abc") == []
        with pytest.raises(ValueError, match="different vocabularies"):
            registry.get_vocabulary("abc_and_cba")
    finally:
        seqio.MixtureRegistry.remove("abc_and_cba")
        for name in ("foreign_abc", "foreign_cba"):
            seqio.TaskRegistry.remove(name)


@pytest.mark.slow
def test_train_cell_on_seqio_mixture(scan_mixture: str, tmp_path: Path) -> None:
    import csv

    from compgen_jax import cli

    out = tmp_path / "mix"
    assert cli.main(["train", "--gin_file=experiments/scan_simple_cell_cpu.gin",
                     f"--gin.MODEL_DIR='{out}'", f"--gin.MIXTURE_OR_TASK_NAME='{scan_mixture}'",
                     "--gin.N_UNIQUE=200", "--gin.NUM_SEEDS=2", "--gin.TRAIN_STEPS=50"]) == 0
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert {r["task"] for r in rows} == {scan_mixture} and {r["seed"] for r in rows} == {"0", "1"}
    assert all(r["diverged"] == "False" and int(r["n_examples"]) > 0 for r in rows)
