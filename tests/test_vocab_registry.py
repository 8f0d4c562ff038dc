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


def test_tasks_refuse_shuffling(generated_tasks: list[str]) -> None:
    with pytest.raises(ValueError, match="Shuffling is disallowed"):
        seqio.get_mixture_or_task("scan_length").get_dataset(split="train", shuffle=True)


def test_unknown_task_or_split(generated_tasks: list[str]) -> None:
    with pytest.raises(ValueError, match="'scan_nope' is not registered"):
        registry.get_examples("scan_nope", "train")
    with pytest.raises(ValueError, match="no split 'dev'"):
        registry.tokenized_pool("scan_length", "dev")
