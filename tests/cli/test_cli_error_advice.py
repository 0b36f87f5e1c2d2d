"""Errors say what to do: one line with the fix, the traceback only with --debug."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sigsci_iga.errors import ConfigError, DatabaseUnavailableError, rule_for
from sigsci_iga.sim import DEMO_CORP, DEMO_EMAIL, DEMO_TOKEN, serve_in_thread

DATABASE_EXIT = rule_for(DatabaseUnavailableError).exit_code

#: Runs the command with psycopg unimportable, as on an install without the postgres extra.
WITHOUT_DRIVER = (
    "import sys; sys.modules['psycopg'] = None; "
    "from sigsci_iga.cli.app import main; sys.argv = ['sigsci-iga', *sys.argv[1:]]; main()"
)


def run(
    *args: str, cwd: Path, code: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    child = {k: v for k, v in os.environ.items() if not k.startswith("SIGSCI")}
    child.update({"SIGSCI_CORP": DEMO_CORP, "COLUMNS": "200", **env})
    start = ["-c", code] if code else ["-m", "sigsci_iga"]
    return subprocess.run(  # noqa: S603  # our own interpreter and module, fixed arguments
        [sys.executable, *start, *args],
        env=child,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: ")
    return line


def test_a_file_that_is_not_a_database_is_named_with_the_fix(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("shopping list: eggs, milk, and a great deal more text than a header\n" * 20)
    before = notes.read_bytes()

    done = run("accounts", "list", cwd=tmp_path, SIGSCI_IGA_DATABASE_URL=f"sqlite:///{notes}")

    assert done.returncode == DATABASE_EXIT
    line = one_line(done)
    assert str(notes) in line
    assert "not a SQLite database" in line
    assert notes.read_bytes() == before


def test_a_postgresql_url_without_the_driver_names_the_extra_to_install(tmp_path: Path) -> None:
    url = "postgresql://someone:hunter2secret@127.0.0.1:5432/iga"

    done = run("accounts", "list", cwd=tmp_path, code=WITHOUT_DRIVER, SIGSCI_IGA_DATABASE_URL=url)

    assert done.returncode == rule_for(ConfigError).exit_code
    line = one_line(done)
    assert "pip install 'sigsci-iga[postgres]'" in line
    assert "hunter2secret" not in done.stderr
    assert "someone:***@127.0.0.1" in line


def test_debug_shows_the_traceback_as_well_as_the_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/no/such/dir/iga.db"

    plain = run("accounts", "list", cwd=tmp_path, SIGSCI_IGA_DATABASE_URL=url)
    debug = run("--debug", "accounts", "list", cwd=tmp_path, SIGSCI_IGA_DATABASE_URL=url)

    assert plain.returncode == debug.returncode == DATABASE_EXIT
    assert "Traceback" not in plain.stderr
    assert "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.strip().splitlines()[-1] == one_line(plain)


def test_an_api_url_ending_in_api_v0_is_accepted_as_the_host(tmp_path: Path) -> None:
    with serve_in_thread() as url:
        done = run(
            "check",
            cwd=tmp_path,
            SIGSCI_API_URL=f"{url}/api/v0/",
            SIGSCI_EMAIL=DEMO_EMAIL,
            SIGSCI_TOKEN=DEMO_TOKEN,
            SIGSCI_IGA_DATABASE_URL=f"sqlite:///{tmp_path}/iga.db",
        )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("ok")
