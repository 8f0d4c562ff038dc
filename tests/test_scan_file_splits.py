"""SCAN file-only splits (addprim_turn_left, template_around_right): loaders and registration."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks import registry
from tasks.benchmarks import scan


def _write(root: Path, split: str, subset: str, commands: list[str]) -> None:
    """A canonical-format split file of `commands`."""
    path = root / "scan" / scan.FILE_ONLY[(split, subset)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"IN: {c} OUT: {scan.interpret(c)}\n" for c in commands))


def test_turn_left_and_template_files_load_and_register(tmp_path: Path) -> None:
    _write(tmp_path, "addprim_turn_left", "train", ["turn left", "walk twice", "turn left"])
    _write(tmp_path, "addprim_turn_left", "test", ["turn left twice"])
    assert registry.register_scan_optional_tasks(tmp_path) == ["scan_addprim_turn_left_files"]
    _write(tmp_path, "template_around_right", "train", ["jump around left"])
    _write(tmp_path, "template_around_right", "test", ["jump around right and walk"])
    test = scan.load("template_around_right", "test", tmp_path)
    assert test[0].target == "I_TURN_RIGHT I_JUMP " * 3 + "I_TURN_RIGHT I_JUMP I_WALK"
    assert test[0].pairs == {("jump", "around right"), ("jump around right", "and"),
                             ("and", "walk")}
    assert test[0].depth == 3 and test[0].out_len == 9
    names = registry.register_scan_optional_tasks(tmp_path)
    assert names == ["scan_addprim_turn_left_files", "scan_template_around_right_files"]
    assert len(registry.get_examples(names[0], "train")) == 3


def test_file_only_splits_are_not_generated() -> None:
    with pytest.raises(ValueError, match="unknown SCAN split 'addprim_turn_left'"):
        scan.generated("addprim_turn_left", "train")
