"""A FIFO or a directory named where a file belongs fails at once, with one line, writing nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_inprocess import ImportedCorp, Outcome, fingerprint, invoke


def refused(outcome: Outcome) -> str:
    assert outcome.crash is None, outcome.crash
    assert outcome.code == 2, (outcome.code, outcome.stdout, outcome.stderr)
    assert len(outcome.error_lines) == 1, outcome.stderr
    assert outcome.error_lines[0].startswith("error: "), outcome.stderr
    return outcome.error_lines[0]


def refused_without_writing(corp: ImportedCorp, *args: str) -> str:
    before = corp.state()
    line = refused(corp.run(*args))
    assert corp.state() == before, f"{args} wrote to the repository"
    return line


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe.csv"
    os.mkfifo(path)
    return path


def run_child(
    *args: str, env: dict[str, str], cwd: Path
) -> tuple[subprocess.CompletedProcess[str], float]:
    child = {k: v for k, v in os.environ.items() if not k.startswith("SIGSCI")}
    child.update(env)
    started = time.monotonic()
    done = subprocess.run(  # noqa: S603  # our own module, fixed arguments
        [sys.executable, "-m", "sigsci_iga", *args],
        env=child,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done, time.monotonic() - started


def special_file_cases(special: Path) -> list[tuple[str, ...]]:
    return [
        ("identities", "load", str(special)),
        ("--config", str(special), "accounts", "list"),
        ("packages", "validate", str(special)),
        ("packages", "import-saviynt", str(special)),
        ("packages", "render", str(special), "--operation", "remove-account", "--account", "a@b.c"),
        ("endpoints", "add-rest", "x", "--package", str(special), "--corp", "x"),
        ("endpoints", "add", "acme", "--corp", "acme", "--email", "iga@acme.example",
         "--token-file", str(special)),
    ]  # fmt: skip


def test_a_fifo_given_as_a_file_fails_at_once_with_one_line(
    imported_corp: ImportedCorp, fifo: Path
) -> None:
    for args in special_file_cases(fifo):
        before = imported_corp.state()
        done, seconds = run_child(*args, env=imported_corp.env, cwd=imported_corp.directory)
        assert seconds < 20, (args, "took", seconds)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert len(lines) == 1, (args, done.stderr)
        assert lines[0].startswith("error: ")
        assert "regular file" in lines[0], (args, lines[0])
        assert imported_corp.state() == before, args


def test_a_directory_given_as_a_file_fails_with_one_line(
    imported_corp: ImportedCorp, tmp_path: Path
) -> None:
    directory = tmp_path / "people.csv"
    directory.mkdir()
    for args in special_file_cases(directory):
        line = refused_without_writing(imported_corp, *args)
        assert "regular file" in line, (args, line)


def test_a_fifo_or_directory_named_in_a_fresh_place_creates_no_repository(
    tmp_path: Path, fifo: Path
) -> None:
    db = tmp_path / "fresh.db"
    env = {"SIGSCI_CORP": "testcorp", "SIGSCI_IGA_DATABASE_URL": f"sqlite:///{db}"}
    done, _seconds = run_child("identities", "load", str(fifo), env=env, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    refused(invoke("identities", "load", str(tmp_path), env=env))
    assert fingerprint(db) is None
