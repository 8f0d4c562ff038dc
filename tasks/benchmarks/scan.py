"""SCAN (Lake & Baroni 2018): grammar, splits, canonical files and adapter (BENCHMARKS.md s.4)."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from tasks.data_dir import benchmark_file
from tasks.example import Example
from tasks.metrics import token_exact_match, token_match

BENCHMARK = "scan"
SPLITS = ("length", "simple", "addprim_jump")
SUBSETS = ("train", "test")
FILES = {
    ("length", "train"): "length_split/tasks_train_length.txt",
    ("length", "test"): "length_split/tasks_test_length.txt",
    ("simple", "train"): "simple_split/tasks_train_simple.txt",
    ("simple", "test"): "simple_split/tasks_test_simple.txt",
    ("addprim_jump", "train"): "add_prim_split/tasks_train_addprim_jump.txt",
    ("addprim_jump", "test"): "add_prim_split/tasks_test_addprim_jump.txt",
}
# Canonical files only: BENCHMARKS.md s.4.3 gives their sizes but not a rule to generate them.
FILE_ONLY = {
    ("addprim_turn_left", "train"): "add_prim_split/tasks_train_addprim_turn_left.txt",
    ("addprim_turn_left", "test"): "add_prim_split/tasks_test_addprim_turn_left.txt",
    ("template_around_right", "train"): "template_split/tasks_train_template_around_right.txt",
    ("template_around_right", "test"): "template_split/tasks_test_template_around_right.txt",
}
FILE_SPLITS = (*SPLITS, "addprim_turn_left", "template_around_right")
PAIR_CONSTRUCT = (
    "parse-tree composition: within each S (verb, direction modifier), (verb, repetition), "
    "(modifier, repetition); across S (S1-string, conj), (conj, S2-string)"
)

MAX_TRAIN_LENGTH = 22  # length split: train <= 22 actions, test >= 24 (no command yields 23)
SIMPLE_TRAIN_SIZE = 16_728  # canonical simple split sizes: 16,728 train / 4,182 test
ADDPRIM_JUMP_COPIES = 1_467  # canonical addprim_jump train repeats `jump -> I_JUMP` this often

_PRIMITIVES = {"walk": "I_WALK", "look": "I_LOOK", "run": "I_RUN", "jump": "I_JUMP"}
_VERBS = (*_PRIMITIVES, "turn")
_DIRECTIONS = {"left": "I_TURN_LEFT", "right": "I_TURN_RIGHT"}
_REPETITIONS = {"twice": 2, "thrice": 3}
_CONJUNCTIONS = ("and", "after")


class _Phrase(NamedTuple):
    """One S phrase: `verb [opposite|around] [left|right] [twice|thrice]`."""

    verb: str
    modifier: str | None  # "left", "opposite right", "around left", ...
    repetition: str | None

    def actions(self) -> list[str]:
        """The action sequence of this phrase under the interpretation grammar."""
        base = [_PRIMITIVES[self.verb]] if self.verb != "turn" else []
        kind, _, direction = (self.modifier or "").rpartition(" ")
        turn = [_DIRECTIONS[direction]] if direction else []
        if kind == "around":
            out = (turn + base) * 4
        elif kind == "opposite":
            out = turn + turn + base
        else:
            out = turn + base
        return out * _REPETITIONS.get(self.repetition or "", 1)


def _parse_phrase(tokens: Sequence[str], command: str) -> _Phrase:
    """Parse one S phrase; raise ValueError naming the command if it is not in the grammar."""
    repetition = tokens[-1] if tokens and tokens[-1] in _REPETITIONS else None
    words = list(tokens[:-1] if repetition else tokens)
    if not words or words[0] not in _VERBS:
        raise ValueError(f"not a SCAN command (expected a verb in {_VERBS}): {command!r}")
    verb, mods = words[0], words[1:]
    valid = (
        (not mods and verb != "turn")
        or (len(mods) == 1 and mods[0] in _DIRECTIONS)
        or (len(mods) == 2 and mods[0] in ("opposite", "around") and mods[1] in _DIRECTIONS)
    )
    if not valid:
        raise ValueError(f"not a SCAN command (bad phrase {' '.join(tokens)!r}): {command!r}")
    return _Phrase(verb, " ".join(mods) or None, repetition)


@functools.cache  # bounded: only the 20,910 valid commands are cached (invalid ones raise)
def _parse(command: str) -> tuple[tuple[_Phrase, ...], str | None]:
    """Parse a command into its S phrases and the conjunction joining them (None if single)."""
    tokens = command.split()
    conj_at = [i for i, tok in enumerate(tokens) if tok in _CONJUNCTIONS]
    if len(conj_at) > 1:
        raise ValueError(f"not a SCAN command (more than one conjunction): {command!r}")
    if not conj_at:
        return (_parse_phrase(tokens, command),), None
    i = conj_at[0]
    halves = (_parse_phrase(tokens[:i], command), _parse_phrase(tokens[i + 1 :], command))
    return halves, tokens[i]


def _compose(phrases: Sequence[_Phrase], conj: str | None) -> list[str]:
    """Actions of a parsed command: `and` concatenates in order, `after` swaps the halves."""
    parts = [p.actions() for p in phrases]
    return parts[1] + parts[0] if conj == "after" else [a for part in parts for a in part]


def interpret(command: str) -> str:
    """The action sequence of a SCAN command under the interpretation grammar (section 4.2)."""
    return " ".join(_compose(*_parse(command)))


def _s_phrases() -> list[str]:
    """All 102 S phrases in grammar order (V, then V twice, V thrice for each V)."""
    v_phrases = [
        *(f"{u}{suffix}" for u in _PRIMITIVES for suffix in ("", " left", " right")),
        *(f"turn {d}" for d in _DIRECTIONS),
        *(f"{x} {k} {d}" for x in _VERBS for k in ("opposite", "around") for d in _DIRECTIONS),
    ]
    return [f"{v}{rep}" for v in v_phrases for rep in ("", " twice", " thrice")]


def generate() -> list[tuple[str, str]]:
    """All 20,910 (command, actions) pairs of the SCAN grammar, in a fixed grammar order."""
    phrases = _s_phrases()
    acts = {s: _parse_phrase(s.split(), s).actions() for s in phrases}
    out = [(s, " ".join(acts[s])) for s in phrases]
    out += [(f"{a} and {b}", " ".join(acts[a] + acts[b])) for a in phrases for b in phrases]
    out += [(f"{a} after {b}", " ".join(acts[b] + acts[a])) for a in phrases for b in phrases]
    return out


def _check_split(split: str, subset: str | None = None, known: tuple[str, ...] = SPLITS) -> None:
    """Raise ValueError naming the valid values if `split` (or `subset`) is unknown."""
    if split not in known:
        raise ValueError(f"unknown SCAN split {split!r}; expected one of {known}")
    if subset is not None and subset not in SUBSETS:
        raise ValueError(f"unknown SCAN subset {subset!r}; expected one of {SUBSETS}")


def generate_split(name: str, seed: int = 0) -> dict[str, list[tuple[str, str]]]:
    """Train/test pairs of a SCAN split built from the grammar, each in grammar order.

    `length` and `addprim_jump` follow the canonical rules and equal the canonical files as
    multisets. `simple` is a seeded random 80/20 split with the canonical sizes (16,728/4,182);
    it cannot equal the canonical random split, whose draw is not reproducible. `seed` is used
    by `simple` only.
    """
    _check_split(name)
    items = generate()
    if name == "length":
        return {
            "train": [p for p in items if out_len(p[1]) <= MAX_TRAIN_LENGTH],
            "test": [p for p in items if out_len(p[1]) > MAX_TRAIN_LENGTH],
        }
    if name == "simple":
        order = np.random.Generator(np.random.PCG64(seed)).permutation(len(items))
        train = np.sort(order[:SIMPLE_TRAIN_SIZE])
        test = np.sort(order[SIMPLE_TRAIN_SIZE:])
        return {"train": [items[i] for i in train], "test": [items[i] for i in test]}
    has_jump = ["jump" in cmd.split() for cmd, _ in items]
    return {
        "train": [p for p, j in zip(items, has_jump, strict=True) if not j]
        + [("jump", "I_JUMP")] * ADDPRIM_JUMP_COPIES,
        "test": [p for p, j in zip(items, has_jump, strict=True) if j and p[0] != "jump"],
    }


def read_file(path: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """Parse a canonical `IN: <cmd> OUT: <actions>` file, checking each line against the grammar."""
    out = []
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, start=1):
            line = raw.rstrip("\r\n")
            head, sep, actions = line.partition(" OUT: ")
            command = head.removeprefix("IN: ")
            if not (sep and head.startswith("IN: ") and command.strip() and actions.strip()):
                raise ValueError(
                    f"{path}:{lineno}: expected 'IN: <command> OUT: <actions>', got {line!r}"
                )
            try:
                expected = interpret(command)
            except ValueError as err:
                raise ValueError(f"{path}:{lineno}: {err}; line {line!r}") from None
            if " ".join(actions.split()) != expected:
                raise ValueError(
                    f"{path}:{lineno}: actions disagree with the SCAN grammar "
                    f"(expected {expected!r}); line {line!r}"
                )
            out.append((" ".join(command.split()), expected))
    return out


def _examples(
    label: str, items: Sequence[tuple[str, str]], metas: Sequence[dict] | None = None
) -> list[Example]:
    """Example records with ids 0..n-1 in the given order."""
    return [
        Example(
            benchmark=BENCHMARK,
            split=label,
            id=i,
            input=cmd,
            target=actions,
            atoms=atoms(cmd, actions),
            pairs=pairs(cmd),
            depth=depth(cmd),
            out_len=out_len(actions),
            meta=metas[i] if metas is not None else {"source": "grammar"},
        )
        for i, (cmd, actions) in enumerate(items)
    ]


def load(split: str, subset: str, data_dir: str | os.PathLike[str] | None = None) -> list[Example]:
    """Examples of a canonical SCAN split file under `<data_dir>/scan` (ids follow line order)."""
    _check_split(split, subset, FILE_SPLITS)
    rel = FILES.get((split, subset)) or FILE_ONLY[(split, subset)]
    path = benchmark_file(data_dir, f"scan/{rel}",
                          f"SCAN {split} split, {subset} subset")
    items = read_file(path)
    metas = [{"source": str(path), "line": i + 1} for i in range(len(items))]
    return _examples(f"{split}:{subset}", items, metas)


def generated(split: str, subset: str, seed: int = 0) -> list[Example]:
    """Examples of a SCAN split generated from the grammar: the embedded default, no download."""
    _check_split(split, subset)
    return _examples(f"{split}:{subset}", generate_split(split, seed)[subset])


def atoms(cmd: str, actions: str) -> frozenset[str]:
    """Atoms of an example: its command tokens together with its action tokens."""
    return frozenset(cmd.split()) | frozenset(actions.split())


def pairs(cmd: str) -> frozenset[tuple[str, str]]:
    """Parse-tree pairs of a command (see PAIR_CONSTRUCT)."""
    phrases, conj = _parse(cmd)
    out: set[tuple[str, str]] = set()
    for p in phrases:
        if p.modifier:
            out.add((p.verb, p.modifier))
        if p.repetition:
            out.add((p.verb, p.repetition))
        if p.modifier and p.repetition:
            out.add((p.modifier, p.repetition))
    if conj:
        halves = cmd.split(f" {conj} ")
        out |= {(halves[0], conj), (conj, halves[1])}
    return frozenset(out)


def depth(cmd: str) -> int:
    """Structural depth 0-4: [conj] + max over halves of [direction]+[opposite/around]+[repeat]."""
    phrases, conj = _parse(cmd)
    per_phrase = [
        (p.modifier is not None)
        + (p.modifier is not None and " " in p.modifier)
        + (p.repetition is not None)
        for p in phrases
    ]
    return int(conj is not None) + max(per_phrase)


def out_len(actions: str) -> int:
    """Output length: the number of action tokens."""
    return len(actions.split())


METRIC_NAME = "exact_match"
match = token_match  # a prediction is correct when its tokens equal the target's
metric = token_exact_match  # seqio metric fn
