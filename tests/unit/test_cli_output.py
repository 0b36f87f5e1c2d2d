"""The CLI's one rendering module: what it makes of outside text, and that it is the only one."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import typer

import sigsci_iga.cli
from sigsci_iga.cli.output import csv_cell, fail, visible
from sigsci_iga.errors import InvalidInputError

CLI_DIR = Path(sigsci_iga.cli.__file__).parent


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain text, [red]markup[/] and :x: stay", "plain text, [red]markup[/] and :x: stay"),
        ("José Ünïcode 名前", "José Ünïcode 名前"),
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
        (
            "bell\x07 back\x08 nul\x00 del\x7f c1\x9b",
            "bell\\x07 back\\x08 nul\\x00 del\\x7f c1\\x9b",
        ),
        ("line\nbreak\r\ttab", "line\\nbreak\\r\\ttab"),
        ("\u202egnp.exe", "\\u202egnp.exe"),
        ("zero\u200bwidth\u200d\ufeff", "zero\\u200bwidth\\u200d\\ufeff"),
        ("isolate\u2066x\u2069", "isolate\\u2066x\\u2069"),
        ("sep\u2028para\u2029", "sep\\u2028para\\u2029"),
        ("tag\U000e0041", "tag\\U000e0041"),
        ("surrogate \udcff", "surrogate \\udcff"),
        (None, ""),
        (42, "42"),
    ],
)
def test_visible_spells_out_control_and_invisible_characters_only(raw: object, shown: str) -> None:
    assert visible(raw) == shown


@pytest.mark.parametrize(
    ("raw", "cell"),
    [
        ("=SUM(A1:A2)", "'=SUM(A1:A2)"),
        ("+1@evil.example", "'+1@evil.example"),
        ("-2+3", "'-2+3"),
        ("@SUM(1)", "'@SUM(1)"),
        ("\t=1", "'\\t=1"),
        ("\r=1", "'\\r=1"),
        ("a=1", "a=1"),
        ("owner@example.com", "owner@example.com"),
        ("", ""),
        (None, ""),
        (7, "7"),
    ],
)
def test_csv_cells_that_a_spreadsheet_would_run_start_with_a_quote(raw: object, cell: str) -> None:
    assert csv_cell(raw) == cell


def calls_outside_output() -> list[str]:
    """Every place a CLI module other than output.py prints or builds a console or table."""
    banned_calls = {"print", "echo", "secho", "write"}
    banned_names = {"Console", "Table", "stdout", "Text"}
    found = []
    for path in sorted(CLI_DIR.glob("*.py")):
        if path.name == "output.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name in banned_calls or name in banned_names:
                    found.append(f"{path.name}:{node.lineno}: {name}(...)")
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rich"):
                names = {alias.name for alias in node.names}
                if names & banned_names:
                    found.append(f"{path.name}:{node.lineno}: imports {sorted(names)}")
    return found


def test_every_cli_module_renders_through_output_only() -> None:
    assert calls_outside_output() == []


def test_fail_prints_one_error_line_and_indents_any_detail_lines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(typer.Exit) as ended:
        fail(InvalidInputError("bad [/] input \x1b[2J:x:\nerror: forged\x07 detail"))

    assert ended.value.exit_code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        "error: bad [/] input \\x1b[2J:x:",
        "  error: forged\\x07 detail",
    ]
