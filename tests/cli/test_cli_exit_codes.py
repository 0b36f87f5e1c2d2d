"""The exit codes are a contract: the README's table lists exactly them, and each one happens."""

from __future__ import annotations

import re
import socket
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cli_inprocess import Outcome, invoke
from fastapi import FastAPI

from sigsci_iga.errors import RULES
from sigsci_iga.errors import Outcome as Exit
from sigsci_iga.sim import DEMO_CORP, DEMO_EMAIL, DEMO_TOKEN, SimConfig, SimState, create_app
from sigsci_iga.sim import serve_in_thread as serve

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_codes() -> dict[int, str]:
    """Code -> meaning, from the table under '## Exit codes'."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Exit codes\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d+) \| ([^|]+) \|", section, re.MULTILINE)
    return {int(code): meaning.strip() for code, meaning in rows}


def test_the_readme_table_lists_every_exit_code_once_and_no_other() -> None:
    every = {0} | {rule.exit_code for rule in RULES.values()} | {int(o) for o in Exit}
    text = README.read_text(encoding="utf-8").split("\n## Exit codes\n", 1)[1]
    listed = re.findall(r"^\| (\d+) \|", text.split("\n## ", 1)[0], re.MULTILINE)

    assert sorted(map(int, listed)) == sorted(every)
    assert {1, 8} <= set(readme_codes())


@dataclass
class Corp:
    app: FastAPI
    url: str
    directory: Path

    @property
    def db(self) -> Path:
        return self.directory / "iga.db"

    @property
    def state(self) -> SimState:
        state: SimState = self.app.state.sim.state
        return state

    def run(self, *args: str, **env: str) -> Outcome:
        settings = {
            "SIGSCI_API_URL": self.url,
            "SIGSCI_EMAIL": DEMO_EMAIL,
            "SIGSCI_TOKEN": DEMO_TOKEN,
            "SIGSCI_CORP": DEMO_CORP,
            "SIGSCI_IGA_DATABASE_URL": f"sqlite:///{self.db}",
            "SIGSCI_IGA_READ_ATTEMPTS": "1",
            **env,
        }
        done = invoke(*args, env=settings, cwd=self.directory)
        assert done.crash is None, done.crash
        return done

    def expect(self, code: int, *args: str, usage: bool = False, **env: str) -> Outcome:
        """Run a command that must exit `code`; an error is one line (click's usage aside)."""
        done = self.run(*args, **env)
        assert done.code == code, (args, done.code, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        if not usage and code not in (0, Exit.PENDING, Exit.TASKS_FAILED, Exit.JOURNAL_BROKEN):
            (line,) = done.error_lines
            assert line.startswith("error: ")
        return done

    def remove_users(self, count: int) -> list[str]:
        victims = sorted(u.email for u in self.state.users.values() if u.role != "owner")
        for email in victims[:count]:
            self.state.remove_user(email)
        return victims[:count]


@pytest.fixture
def corp(tmp_path: Path) -> Iterator[Corp]:
    app = create_app(SimConfig(users=25, sites=3, seed=5, pending_share=0.0))
    with serve(app) as url:
        yield Corp(app, url, tmp_path)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_0_done(corp: Corp) -> None:
    corp.expect(0, "check")
    corp.expect(0, "import")
    corp.expect(0, "import", "--dry-run")


def test_1_a_run_in_the_wrong_state(corp: Corp) -> None:
    corp.expect(0, "import")

    done = corp.expect(1, "import", "approve", "1")

    assert "only held runs" in done.stderr


def test_2_configuration_and_input(corp: Corp) -> None:
    corp.expect(2, "check", SIGSCI_CORP="")
    corp.expect(0, "import")
    corp.expect(2, "accounts", "list", "--status", "bogus")
    corp.expect(2, "accounts", "list", "--no-such-option", usage=True)


def test_3_credentials_refused_names_the_settings_to_fix(corp: Corp) -> None:
    done = corp.expect(3, "check", SIGSCI_TOKEN="not-the-token")

    assert "SIGSCI_EMAIL" in done.stderr
    assert "SIGSCI_TOKEN" in done.stderr
    assert "not-the-token" not in done.stderr


def test_4_not_found(corp: Corp) -> None:
    corp.expect(4, "runs", "show", "999")
    corp.expect(4, "check", SIGSCI_CORP="nosuchcorp")


def test_5_an_unreachable_host_names_the_host(corp: Corp) -> None:
    port = free_port()

    done = corp.expect(5, "check", SIGSCI_API_URL=f"http://127.0.0.1:{port}")

    assert f"127.0.0.1:{port}" in done.stderr


def test_6_an_answer_that_cannot_be_trusted(corp: Corp) -> None:
    httpx.post(f"{corp.url}/_sim/faults", json={"kind": "login_redirect"}, timeout=10)

    corp.expect(6, "check")


def test_7_changes_pending_or_held(corp: Corp) -> None:
    corp.expect(0, "import")
    corp.remove_users(1)
    corp.expect(Exit.PENDING, "import", "--dry-run")
    corp.remove_users(11)

    held = corp.expect(Exit.PENDING, "import")

    assert "-> held" in held.stdout
    site = sorted(corp.state.sites)[0]
    corp.expect(
        Exit.PENDING,
        "request", "create-account", "--email", "new@example.com", "--role", "user",
        "--site", site, "--dry-run",
    )  # fmt: skip


def test_8_the_repository_changed_since_the_held_diff(corp: Corp) -> None:
    corp.expect(0, "import")
    corp.remove_users(11)
    corp.expect(Exit.PENDING, "import", "--full")
    unlimited = ("--max-suspend", "-1", "--max-suspend-percent", "-1")
    links = ("--max-links-removed", "-1", "--max-links-removed-percent", "-1")
    corp.expect(0, "import", "--full", *unlimited, *links)

    done = corp.expect(8, "import", "approve", "2")

    assert "import again" in done.stderr


def test_9_a_broken_journal_chain(corp: Corp) -> None:
    corp.expect(0, "import")
    user = next(u.email for u in corp.state.users.values() if u.role == "user")
    corp.expect(0, "request", "update-role", "--email", user, "--role", "observer")
    with sqlite3.connect(corp.db) as conn:
        for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'journal'"
        ).fetchall():
            conn.execute(f'DROP TRIGGER "{name}"')
        conn.execute("UPDATE journal SET target = 'someone@else.example' WHERE id = 1")

    done = corp.expect(Exit.JOURNAL_BROKEN, "journal", "verify")

    assert "BROKEN" in done.stdout


def test_10_a_database_that_cannot_be_opened(corp: Corp) -> None:
    missing = corp.directory / "no" / "such" / "iga.db"

    done = corp.expect(10, "accounts", "list", SIGSCI_IGA_DATABASE_URL=f"sqlite:///{missing}")

    assert str(missing) in done.stderr


def test_11_some_tasks_failed(corp: Corp) -> None:
    corp.expect(0, "import")
    owner = next(e for e in corp.state.owners() if e != DEMO_EMAIL)
    site = sorted(corp.state.sites)[0]

    corp.expect(Exit.TASKS_FAILED, "request", "remove-access", "--email", owner, "--site", site)
    corp.expect(
        0, "request", "remove-access", "--email", owner, "--site", site,
        SIGSCI_IGA_INSTANT_PROVISIONING="false",
    )  # fmt: skip
    corp.expect(Exit.TASKS_FAILED, "provision", "run", "--until-done", "--max-wait", "5")
