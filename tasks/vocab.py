"""Word-level seqio vocabulary (PAD=0, EOS=1, UNK=2, then words): one joint vocab per benchmark."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

# isort: off
from tasks.tf_env import tf  # TensorFlow loads quietly here, before seqio imports it
import seqio
# isort: on

from analysis.atomic import write_text
from tasks.tokens import EOS, PAD, SPECIALS, UNK

__all__ = ["EOS", "PAD", "SPECIALS", "UNK", "WordVocabulary"]


class WordVocabulary(seqio.Vocabulary):
    """Whitespace-token vocabulary; unknown words map to UNK, decoding stops at the first EOS."""

    def __init__(self, words: Sequence[str]):
        words = tuple(words)
        bad = [w for w in words if w in SPECIALS or not w or w != "".join(w.split())]
        if bad:
            raise ValueError(f"WordVocabulary: invalid words {bad[:5]} (reserved, empty or spaced)")
        if len(set(words)) != len(words):
            dupes = sorted({w for w in words if words.count(w) > 1})
            raise ValueError(f"WordVocabulary: duplicate words {dupes[:5]}")
        self._tokens = SPECIALS + words
        self._ids = {tok: i for i, tok in enumerate(self._tokens)}
        self._tf_tables: tuple[tf.lookup.StaticHashTable, tf.Tensor] | None = None
        super().__init__(extra_ids=0)

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> WordVocabulary:
        """Vocabulary of every whitespace token in `texts`, words in sorted order."""
        return cls(sorted({tok for text in texts for tok in text.split()}))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> WordVocabulary:
        """Read a vocabulary saved by `save` (one token per line, specials first)."""
        lines = Path(path).read_text(encoding="utf-8").split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        for lineno, (got, want) in enumerate(zip(lines, SPECIALS, strict=False), start=1):
            if got != want:
                raise ValueError(f"{path}:{lineno}: expected special token {want!r}, got {got!r}")
        if len(lines) < len(SPECIALS):
            raise ValueError(f"{path}: {len(lines)} lines; expected at least {SPECIALS}")
        try:
            return cls(lines[len(SPECIALS) :])
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write one token per line (ids are line numbers minus one), atomically."""
        write_text(path, "".join(f"{tok}\n" for tok in self._tokens))

    @property
    def tokens(self) -> tuple[str, ...]:
        """All tokens in id order, specials included."""
        return self._tokens

    @property
    def eos_id(self) -> int:
        """Id of the end-of-sequence token."""
        return 1

    @property
    def unk_id(self) -> int:
        """Id every unknown word maps to."""
        return 2

    @property
    def _base_vocab_size(self) -> int:
        """Number of ids, specials included."""
        return len(self._tokens)

    def _encode(self, s: str | bytes) -> list[int]:
        """Word ids of a string, without EOS."""
        text = s.decode("utf-8") if isinstance(s, bytes) else s
        return [self._ids.get(tok, self.unk_id) for tok in text.split()]

    def _decode(self, ids: Iterable[int]) -> str:
        """Words of an id sequence; PAD and EOS are dropped, UNK shows as <unk>."""
        specials = (self.pad_id, self.eos_id)
        return " ".join(self._tokens[i] for i in map(int, ids) if i not in specials)

    def _tables(self) -> tuple[tf.lookup.StaticHashTable, tf.Tensor]:
        """TF lookup table (word -> id) and token array (id -> word), built once eagerly."""
        if self._tf_tables is None:
            with tf.init_scope():
                keys = tf.constant(self._tokens, dtype=tf.string)
                values = tf.range(len(self._tokens), dtype=tf.int32)
                table = tf.lookup.StaticHashTable(
                    tf.lookup.KeyValueTensorInitializer(keys, values), default_value=self.unk_id
                )
                self._tf_tables = (table, keys)
        return self._tf_tables

    def _encode_tf(self, s: tf.Tensor) -> tf.Tensor:
        """Word ids of a string tensor (whitespace split), without EOS."""
        table, _ = self._tables()
        return table.lookup(tf.strings.split(s))

    def _decode_tf(self, ids: tf.Tensor) -> tf.Tensor:
        """Strings of an id tensor along its last axis; PAD and EOS are dropped."""
        _, tokens = self._tables()
        ids = tf.convert_to_tensor(ids, dtype=tf.int32)
        keep = tf.logical_and(tf.not_equal(ids, self.pad_id), tf.not_equal(ids, self.eos_id))
        words = tf.gather(tokens, tf.ragged.boolean_mask(ids, keep))
        return tf.strings.reduce_join(words, axis=-1, separator=" ")

    def __getstate__(self) -> dict:
        """Pickle without the TF tables (resources do not pickle); they are rebuilt on use."""
        return {**self.__dict__, "_tf_tables": None}

    def __eq__(self, other: object) -> bool:
        """Vocabularies are equal when their token lists are."""
        return isinstance(other, WordVocabulary) and self._tokens == other._tokens

    def __hash__(self) -> int:
        """Hash of the token list (consistent with __eq__)."""
        return hash(self._tokens)
