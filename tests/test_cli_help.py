"""The one command line: every subcommand's --help (prog, description, example, option help), the
analysis subcommands under `compgen-jax analysis` without JAX, one flag style."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from conftest import REPO_ROOT

from analysis.__main__ import FLAG_ALIASES
from compgen_jax.cli import build_parser, main

ANALYSIS = ["summary", "report", "decompose", "coverage", "compare", "scaling"]


def walk(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """PARSER and every parser below it, depth first."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from walk(child)


def parsers() -> list[argparse.ArgumentParser]:
    return list(walk(build_parser()))


def test_every_subcommand_help_has_prog_description_example_and_option_help() -> None:
    found = parsers()
    progs = {p.prog for p in found}
    assert {"compgen-jax analysis summary", "compgen-jax report", "compgen-jax models",
            "compgen-jax sweep launch", "compgen-jax coverage circuits"} <= progs
    hidden = set()
    for parser in found:
        text = parser.format_help()
        assert parser.prog.startswith("compgen-jax"), parser.prog
        assert text.startswith(f"usage: {parser.prog}"), parser.prog
        assert parser.description and len(parser.description.strip()) > 10, parser.prog
        examples = text.split("example:\n", 1)
        assert len(examples) == 2, f"{parser.prog}: no example"
        assert examples[1].strip().startswith(parser.prog), f"{parser.prog}: {examples[1]}"
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                assert all(a.help for a in action._choices_actions), parser.prog
            elif action.help == argparse.SUPPRESS:
                hidden.update(action.option_strings)
            else:
                assert action.help, f"{parser.prog} {action.option_strings or action.dest}"
    assert hidden == set(FLAG_ALIASES)  # the only hidden options: the hyphen aliases


def test_one_flag_style_underscores() -> None:
    """Every visible long option is spelled with underscores (t5x / gin style)."""
    for parser in parsers():
        for action in parser._actions:
            if action.help == argparse.SUPPRESS:
                continue
            for flag in action.option_strings:
                assert "-" not in flag.lstrip("-"), f"{parser.prog} {flag}"


def test_hyphen_aliases_parse_to_the_same_settings() -> None:
    parse = build_parser().parse_args
    a = parse(["report", "r", "--out", "o", "--n-perm", "7", "--n-boot", "5"])
    b = parse(["analysis", "report", "r", "--out", "o", "--n_perm", "7", "--n_boot", "5"])
    assert (a.n_perm, a.n_boot) == (b.n_perm, b.n_boot) == (7, 5)
    defaults = parse(["report", "r", "--out", "o"])
    assert (defaults.n_perm, defaults.n_boot) == (10000, 2000)


def test_report_help_prints_compgen_jax_usage(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["report", "--help"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith("usage: compgen-jax report ")


def test_analysis_help_lists_the_analysis_subcommands(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["analysis", "--help"])
    text = capsys.readouterr().out
    assert text.startswith("usage: compgen-jax analysis ")
    listed = [line.split()[0] for line in text.split("positional arguments:")[1].splitlines()
              if line.startswith("    ") and not line.startswith("     ")]
    assert listed == ANALYSIS


def test_analysis_subcommand_runs_without_importing_jax(tmp_path) -> None:
    """`compgen-jax analysis summary` in a fresh interpreter: the table, and jax never loaded."""
    rows = ["cell,benchmark,task,split,strategy,n_unique,exposure,manifest_hash,seed,step,"
            "exact_match,n_examples,train_loss,diverged"]
    rows += [f"n{n},scan,scan_simple,test,random,{n},1.0,abc,{s},10,{em},8,0.2,False"
             for n, ems in ((100, (0.125, 0.25)), (400, (0.5, 0.75)))
             for s, em in enumerate(ems)]
    (tmp_path / "results.csv").write_text("\n".join(rows) + "\n")
    code = ("import sys; from compgen_jax.cli import main; "
            f"rc = main(['analysis', 'summary', {str(tmp_path / 'results.csv')!r}]); "
            "print('JAX LOADED' if 'jax' in sys.modules else 'no jax'); sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert ["400", "2", "0", "62.50", "17.68", "50.00", "75.00"] in [
        line.split() for line in proc.stdout.splitlines()]
    assert proc.stdout.strip().endswith("no jax")


def test_analysis_errors_through_compgen_jax_are_one_line_exit_2(
        tmp_path, capsys: pytest.CaptureFixture) -> None:
    assert main(["analysis", "summary", str(tmp_path / "absent.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "absent.csv" in err[0]
    assert main(["analysis", "decompose", "E1"]) == 2
    assert "expected NAME=RESULTS, got 'E1'" in capsys.readouterr().err


def test_compare_exit_codes_and_old_spelling(tmp_path, capsys: pytest.CaptureFixture) -> None:
    """`analysis compare A B`: 0 identical, 1 different; `python -m analysis coverage compare`
    still works."""
    from analysis.__main__ import main as analysis_main

    for name, text in (("a", '[{"input_text": "x", "y": 1}]'),
                       ("b", '[{"input_text": "x", "y": 1}]'),
                       ("c", '[{"input_text": "x", "y": 2}]')):
        (tmp_path / name).mkdir()
        (tmp_path / name / "test.json").write_text(text)
    assert main(["analysis", "compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    assert main(["analysis", "compare", str(tmp_path / "a"), str(tmp_path / "c")]) == 1
    assert analysis_main(["coverage", "compare", str(tmp_path / "a"), str(tmp_path / "c")]) == 1
    assert "changed" in capsys.readouterr().out


def test_models_prints_parameter_counts(capsys: pytest.CaptureFixture) -> None:
    """`compgen-jax models` at the COGS vocabulary: the small model's 11.75M in all and 11.04M
    without embeddings and head, the counts models/small.gin and the accelerator suite state."""
    assert main(["models", "--vocab_size", "874"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[2:]}
    assert rows["models/tiny.gin"][1] == "TransformerConfig"
    assert rows["models/small.gin"][2:] == ["11,752,298", "11,041,792"]
