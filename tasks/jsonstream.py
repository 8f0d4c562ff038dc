"""Incremental JSON reading: stream the items of big arrays (CFQ dataset.json, gSCAN dataset.txt).

Only the containers walked with `items`/`members` are streamed; every value handed out is decoded
whole with the standard library's decoder. Errors name the file, line and item index.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

CHUNK_CHARS = 1 << 20
MAX_VALUE_CHARS = 1 << 26  # a single streamed value larger than this is treated as malformed

_DECODER = json.JSONDecoder()
_WHITESPACE = " \t\n\r"


def read_json_file(path: str | os.PathLike[str], what: str,
                   error: type[ValueError] = ValueError, **loads_kwargs: Any) -> Any:
    """A whole (small) JSON file; malformed content raises `error` naming path:line and `what`."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.loads(f.read(), **loads_kwargs)
    except json.JSONDecodeError as err:
        raise error(f"{path}:{err.lineno}: malformed {what}: {err.msg}") from None


class JsonStream:
    """A buffered reader over one JSON file that decodes values one at a time."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = os.fspath(path)
        self._file = open(self.path, encoding="utf-8")  # closed by close() / __exit__
        self._buf = ""
        self._pos = 0
        self._line = 1  # line number of self._buf[self._pos]
        self._eof = False

    def __enter__(self) -> JsonStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the underlying file."""
        self._file.close()

    def _fill(self) -> bool:
        """Read one more chunk (dropping consumed text); False at end of file."""
        if self._eof:
            return False
        chunk = self._file.read(CHUNK_CHARS)
        self._buf = self._buf[self._pos :] + chunk
        self._pos = 0
        self._eof = not chunk
        return bool(chunk)

    def _advance(self, end: int) -> None:
        """Consume the buffer up to `end`, keeping the line count."""
        self._line += self._buf.count("\n", self._pos, end)
        self._pos = end

    def _error(self, what: str) -> ValueError:
        """A ValueError naming the file and current line."""
        return ValueError(f"{self.path}:{self._line}: {what}")

    def peek(self) -> str:
        """The next non-whitespace character ('' at end of file)."""
        while True:
            while self._pos < len(self._buf) and self._buf[self._pos] in _WHITESPACE:
                self._advance(self._pos + 1)
            if self._pos < len(self._buf) or not self._fill():
                return self._buf[self._pos : self._pos + 1]

    def expect(self, char: str, context: str) -> None:
        """Consume `char` (after whitespace) or raise naming what was found instead."""
        found = self.peek()
        if found != char:
            got = repr(found) if found else "end of file (truncated JSON?)"
            raise self._error(f"expected {char!r} {context}, found {got}")
        self._advance(self._pos + 1)

    def value(self, context: str) -> Any:
        """Decode the next complete JSON value."""
        self.peek()
        while True:
            try:
                obj, end = _DECODER.raw_decode(self._buf, self._pos)
            except json.JSONDecodeError as err:
                if len(self._buf) - self._pos > MAX_VALUE_CHARS or not self._fill():
                    raise self._error(
                        f"malformed or truncated JSON in {context}: {err.msg}"
                    ) from None
                continue
            if end == len(self._buf) and not self._eof and isinstance(obj, (int, float)):
                if self._fill():  # a number may continue in the next chunk
                    continue
            self._advance(end)
            return obj

    def _separator(self, close: str, context: str) -> bool:
        """After an item: consume ',' (True: another item follows) or `close` (False)."""
        found = self.peek()
        if found in (",", close):
            self._advance(self._pos + 1)
            return found == ","
        got = repr(found) if found else "end of file (truncated JSON?)"
        raise self._error(f"expected ',' or {close!r} after {context}, found {got}")

    def items(self, context: str) -> Iterator[tuple[int, int]]:
        """Walk an array: yield (index, line) before each item; the caller reads the item."""
        self.expect("[", f"at the start of {context}")
        if self.peek() == "]":
            self._advance(self._pos + 1)
            return
        index = 0
        while True:
            self.peek()
            yield index, self._line
            if not self._separator("]", f"{context}[{index}]"):
                return
            index += 1

    def members(self, context: str) -> Iterator[str]:
        """Walk an object: yield each key; the caller reads (or walks) the member's value."""
        self.expect("{", f"at the start of {context}")
        if self.peek() == "}":
            self._advance(self._pos + 1)
            return
        while True:
            key = self.value(f"a key of {context}")
            if not isinstance(key, str):
                raise self._error(f"expected a string key in {context}, found {key!r}")
            self.expect(":", f"after key {key!r} of {context}")
            yield key
            if not self._separator("}", f"member {key!r} of {context}"):
                return

    def end(self) -> None:
        """Require that nothing but whitespace follows."""
        extra = self.peek()
        if extra:
            raise self._error(f"unexpected {extra!r} after the top-level JSON value")


def iter_array(path: str | os.PathLike[str]) -> Iterator[tuple[int, int, Any]]:
    """(index, line, item) for each item of a file holding one top-level JSON array."""
    with JsonStream(path) as stream:
        for index, line in stream.items("the top-level array"):
            yield index, line, stream.value(f"item {index} (line {line})")
        stream.end()
