"""README.md and docs/*.md: short, no leftover template markers, every `compgen-jax ...` command
they show parses with the real parser, every relative link (and #anchor) resolves."""

from __future__ import annotations

import argparse
import functools
import re
import shlex
from pathlib import Path

import pytest
from conftest import REPO_ROOT

from compgen_jax import cli
from compgen_jax.gin_utils import rewrite_gin_args

README = REPO_ROOT / "README.md"
DOCS = sorted((REPO_ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
build_parser = functools.cache(cli.build_parser)  # parse_args leaves the parser as it was

# Words a template leaves behind, placeholder-looking ALL_CAPS_ROW-style tokens, and <...> fill-ins
# (a phrase or a capitalised name in angle brackets; path patterns like seed_<k>.json stay legal).
MARKERS = re.compile(
    r"\b(TODO|TBD|XXX|FIXME|PLACEHOLDER|Lorem ipsum)\b"
    r"|\b[A-Z][A-Z0-9]*_(ROW|ROWS|VALUE|NUMBER|TIME|RESULT|RESULTS|HERE|TABLE|FILL|PLACEHOLDER)\b"
    r"|<[A-Za-z][\w.-]*(?: [\w.-]+)+>|<[A-Z][A-Z0-9_]*>|\{\{[^}]*\}\}")


def markers(text: str) -> list[str]:
    """Every leftover template marker in TEXT."""
    return [m.group(0) for m in MARKERS.finditer(text)]


def test_marker_check_finds_planted_markers() -> None:
    planted = ("| small | SMALL_ROW |\nTODO: measure\nrun it on <your data dir>\nsee <PATH>\n"
               "{{ number }}")
    assert markers(planted) == ["SMALL_ROW", "TODO", "<your data dir>", "<PATH>", "{{ number }}"]
    assert markers("MODEL_DIR/<cell>/seed_<k>.json, checkpoint_<step>, N_REQ, i < j, k > 1") == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_template_markers(page: Path) -> None:
    assert markers(page.read_text()) == []


def test_readme_is_short_and_opens_with_the_two_commands() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= 250
    first_screen = "\n".join(lines[:25])
    assert "pip install -e '.[dev]' && compgen-jax demo\npython -m pytest\n" in first_screen


def commands(text: str) -> tuple[list[list[str]], list[list[str]]]:
    """(`compgen-jax ...` lines of code blocks, `compgen-jax ...` inline code spans) as argv."""
    blocks, spans = [], []
    for block in re.findall(r"^```[a-z]*\n(.*?)^```", text, re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            if "compgen-jax" not in line:  # output, Python
                continue
            for command in line.split(" && "):
                tokens = shlex.split(command, comments=True)
                while tokens and re.fullmatch(r"[A-Z_]+=\S*", tokens[0]):  # VAR=value prefixes
                    tokens = tokens[1:]
                if tokens[:1] == ["compgen-jax"]:
                    blocks.append(tokens[1:])
    prose = re.sub(r"^```[a-z]*\n.*?^```", "", text, flags=re.S | re.M)
    for span in re.findall(r"`([^`]*)`", prose):
        if span.split()[:1] == ["compgen-jax"]:
            spans.append(shlex.split(span.replace("\n", " "))[1:])
    return blocks, spans


def resolve(argv: list[str]) -> argparse.ArgumentParser:
    """The parser of the subcommand ARGV names; each flag it uses must be that parser's."""
    parser = build_parser()
    argv = rewrite_gin_args(argv)
    for token in argv:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs or token.startswith("-"):
            break
        assert token in subs[0].choices, f"no subcommand {token!r} in {parser.prog}"
        parser = subs[0].choices[token]
    options = {o for a in parser._actions for o in a.option_strings}
    for token in argv:
        if token.startswith("--"):
            assert token.split("=")[0] in options, f"{parser.prog}: no option {token}"
    return parser


def test_command_finder_sees_blocks_continuations_and_spans() -> None:
    text = ("run `compgen-jax data check\n--data_dir d` first\n```bash\n"
            "pip x && X=1 compgen-jax sweep status r   # comment\ncompgen-jax train \\\n"
            "  --gin.A=1\n```\n")
    assert commands(text) == ([["sweep", "status", "r"], ["train", "--gin.A=1"]],
                              [["data", "check", "--data_dir", "d"]])
    with pytest.raises(AssertionError, match="no option --n-perms"):
        resolve(["report", "r", "--out", "o", "--n-perms", "3"])
    with pytest.raises(AssertionError, match="no subcommand 'summarize'"):
        resolve(["analysis", "summarize", "r"])


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_command_shown_exists(page: Path) -> None:
    """Code-block commands parse in full; inline ones name a real subcommand and real flags."""
    blocks, spans = commands(page.read_text())
    for argv in spans:
        if argv:
            resolve(argv)
    for argv in blocks:
        resolve(argv)
        try:
            build_parser().parse_args(rewrite_gin_args(argv))
        except SystemExit as exit_:
            pytest.fail(f"{page.name}: `compgen-jax {shlex.join(argv)}` does not parse "
                        f"(exit {exit_.code})")
    if page == README:
        assert len(blocks) >= 4


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of PAGE's headings."""
    return {re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
            for line in page.read_text().splitlines() if line.startswith("#")}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page: Path) -> None:
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    for link in links:
        if re.match(r"[a-z]+:", link):
            continue
        target, _, anchor = link.partition("#")
        path = (page.parent / target).resolve() if target else page
        assert path.exists(), f"{page.name}: {link} -> {path} does not exist"
        if anchor and path.suffix == ".md":
            assert anchor in anchors(path), f"{page.name}: no heading #{anchor} in {path.name}"
