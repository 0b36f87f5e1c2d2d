"""Database faults end a command with one clear line and exit 10, never a traceback."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sigsci_iga.errors import DatabaseUnavailableError, rule_for

DATABASE_EXIT = rule_for(DatabaseUnavailableError).exit_code


def run(*args: str, database_url: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    child = {k: v for k, v in os.environ.items() if not k.startswith("SIGSCI")}
    child.update({"SIGSCI_IGA_DATABASE_URL": database_url, "SIGSCI_CORP": "testcorp", **env})
    return subprocess.run(  # noqa: S603  # our own module, fixed arguments
        [sys.executable, "-m", "sigsci_iga", *args],
        env=child,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def one_clear_line(done: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_a_database_in_a_missing_directory_names_the_url_and_the_fix(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/no/such/dir/iga.db"
    done = run("accounts", "list", database_url=url, cwd=tmp_path)

    assert done.returncode == DATABASE_EXIT
    line = one_clear_line(done)
    assert "no/such/dir/iga.db" in line
    assert "directory" in line


def test_an_unreachable_postgresql_server_is_one_line_without_the_password(
    tmp_path: Path,
) -> None:
    url = f"postgresql://someone:hunter2secret@127.0.0.1:{free_port()}/iga"
    done = run("accounts", "list", database_url=url, cwd=tmp_path)

    assert done.returncode == DATABASE_EXIT
    line = one_clear_line(done)
    assert "hunter2secret" not in done.stderr + done.stdout
    assert "cannot be reached" in line
    assert "***" in line


@pytest.mark.postgres
def test_a_postgresql_database_that_does_not_exist_says_so(tmp_path: Path) -> None:
    url = "postgresql://postgres@127.0.0.1:5432/sigsci_iga_no_such_database"
    done = run("accounts", "list", database_url=url, cwd=tmp_path)

    assert done.returncode == DATABASE_EXIT
    assert "does not exist" in one_clear_line(done)


def test_a_locked_sqlite_database_waits_the_busy_timeout_then_fails_in_one_line(
    tmp_path: Path,
) -> None:
    database = tmp_path / "iga.db"
    url = f"sqlite:///{database}"
    created = run("db", "upgrade", database_url=url, cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    people = tmp_path / "people.csv"
    people.write_text("username,email\npat,pat@example.com\n")

    holder = sqlite3.connect(database, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        done = run(
            "identities",
            "load",
            str(people),
            database_url=url,
            cwd=tmp_path,
            SIGSCI_IGA_DB_BUSY_TIMEOUT="0.5",
        )
        waited = time.monotonic() - started
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    assert done.returncode == DATABASE_EXIT
    line = one_clear_line(done)
    assert "locked" in line
    assert "SIGSCI_IGA_DB_BUSY_TIMEOUT" in line
    assert waited < 20
    listed = run("identities", "list", "--json", database_url=url, cwd=tmp_path)
    assert listed.stdout.strip() == "[]"


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0"])
def test_nonsense_database_timeouts_are_configuration_errors(tmp_path: Path, value: str) -> None:
    done = run(
        "accounts",
        "list",
        database_url=f"sqlite:///{tmp_path}/iga.db",
        cwd=tmp_path,
        SIGSCI_IGA_DB_BUSY_TIMEOUT=value,
    )

    assert done.returncode == 2
    assert "db_busy_timeout_seconds" in one_clear_line(done)
    assert not (tmp_path / "iga.db").exists()
