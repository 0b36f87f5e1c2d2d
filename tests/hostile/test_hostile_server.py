"""The product against a server that misbehaves: every case fails fast, in bounded memory, and
leaves the repository as it was.

Each test runs `python -m sigsci_iga` in a child process against `hostile_server` on loopback,
after one good import; the child's peak memory comes from the kernel (`wait4`), and the
repository's tables (all but the runs log) are compared row by row before and after.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hostile_server import CALLER, CORP, PREFIX, TOKEN, Hostile, gzip_bomb, serve, user
from pydantic import SecretStr

from sigsci_iga.connectors.base import RemoveFromSite
from sigsci_iga.connectors.rest.loader import load_package
from sigsci_iga.connectors.rest.runtime import RestConnector
from sigsci_iga.connectors.signalsciences.client import SigSciClient
from sigsci_iga.errors import BadRequestError, UnexpectedResponseError

#: A child that has not finished by then is a failure to fail fast (and is killed).
KILL_AFTER = 90.0
#: Peak memory of a child that refused a body: far below what the bomb decodes to (1 GiB).
MEMORY_CEILING = 600 * 1024 * 1024
#: Tables that do not hold the inventory: the runs log records each attempt by design.
LOG_TABLES = {"import_runs", "alembic_version"}


@dataclass
class Child:
    code: int
    stdout: str
    stderr: str
    seconds: float
    peak_bytes: int

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass
class Product:
    hostile: Hostile
    workdir: Path

    @property
    def database(self) -> Path:
        return self.workdir / "repo.db"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIGSCI_")}
        env.update(
            SIGSCI_API_URL=self.hostile.base_url,
            SIGSCI_EMAIL=CALLER,
            SIGSCI_TOKEN=TOKEN,
            SIGSCI_CORP=CORP,
            SIGSCI_IGA_DATABASE_URL=f"sqlite:///{self.database}",
            SIGSCI_IGA_READ_ATTEMPTS="1",
            COLUMNS="200",
            NO_COLOR="1",
        )
        env.update(extra)
        return env

    def run(self, *args: str, **extra: str) -> Child:
        """Run one command to its end (killed after KILL_AFTER s); its peak RSS from the kernel."""
        out = self.workdir / "out.txt"
        err = self.workdir / "err.txt"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            started = time.monotonic()
            proc = subprocess.Popen(  # noqa: S603  # our own interpreter and module
                [sys.executable, "-m", "sigsci_iga", *args],
                cwd=self.workdir,
                env=self.env(**extra),
                stdout=stdout,
                stderr=stderr,
            )
            timer = threading.Timer(KILL_AFTER, os.kill, (proc.pid, signal.SIGKILL))
            timer.start()
            try:
                _, status, usage = os.wait4(proc.pid, 0)
            finally:
                timer.cancel()
            proc.returncode = os.waitstatus_to_exitcode(status)
            seconds = time.monotonic() - started
        return Child(
            code=proc.returncode,
            stdout=out.read_text(),
            stderr=err.read_text(),
            seconds=seconds,
            # Linux reports kilobytes.
            peak_bytes=usage.ru_maxrss * 1024,
        )

    def inventory(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every inventory table, sorted, so two readings compare exactly."""
        with sqlite3.connect(self.database) as db:
            tables = [
                row[0]
                for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                if row[0] not in LOG_TABLES
            ]
            return {
                name: sorted(db.execute(f'SELECT * FROM "{name}"').fetchall(), key=repr)  # noqa: S608  # names from sqlite_master
                for name in tables
            }


@pytest.fixture(scope="module")
def server() -> Iterator[Hostile]:
    with serve(Hostile()) as hostile:
        yield hostile


@pytest.fixture(scope="module")
def template(server: Hostile, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository holding one good import of the well-behaved server, made once."""
    runner = Product(server, tmp_path_factory.mktemp("template"))
    first = runner.run("import", "--full")
    assert first.code == 0, first.output
    return runner.database


@pytest.fixture
def product(server: Hostile, template: Path, tmp_path: Path) -> Product:
    """The server behaving well again, and a copy of the repository holding its import."""
    server.reset()
    shutil.copyfile(template, tmp_path / "repo.db")
    return Product(server, tmp_path)


def refused(product: Product, mode: str, code: int, *args: str, **extra: str) -> Child:
    """Switch the server to `mode`, import, and check the import failed without changes."""
    before = product.inventory()
    product.hostile.mode = mode
    child = product.run("import", "--full", *args, **extra)
    assert child.code == code, child.output
    assert "Traceback" not in child.output
    assert child.peak_bytes < MEMORY_CEILING, child.peak_bytes
    assert product.inventory() == before
    return child


# -- bounded reads ------------------------------------------------------------------------------


def test_a_server_trickling_a_byte_a_second_fails_at_the_timeout(product: Product) -> None:
    child = refused(product, "trickle", 5, SIGSCI_IGA_TIMEOUT="2")
    assert "no complete answer within 2 s" in child.stderr
    # Per-read timeouts would wait as long as the server keeps sending: minutes for this body.
    # The server notices the hang-up at its next write or two.
    for _ in range(100):
        if product.hostile.trickled:
            break
        time.sleep(0.1)
    (seconds,) = product.hostile.trickled
    assert seconds < 2 + 3


def test_a_gzip_bomb_is_refused_while_decoding_in_bounded_memory(product: Product) -> None:
    assert len(gzip_bomb()) < 2 * 1024 * 1024
    child = refused(product, "gzip_bomb", 6)
    assert "larger than 268435456 bytes once decoded" in child.stderr
    assert child.peak_bytes < MEMORY_CEILING, child.peak_bytes


def test_a_body_over_the_configured_cap_is_refused_before_the_server_finishes(
    product: Product,
) -> None:
    child = refused(product, "huge_body", 6, SIGSCI_IGA_MAX_BODY_BYTES=str(8 * 1024 * 1024))
    assert "larger than 8388608 bytes" in child.stderr
    assert child.peak_bytes < MEMORY_CEILING, child.peak_bytes
    assert child.seconds < 30


def test_json_nested_without_end_is_an_untrustworthy_answer(product: Product) -> None:
    child = refused(product, "deep_users", 6)
    assert "nested deeper than" in child.stderr
    assert "RecursionError" not in child.output


def test_json_nested_a_hundred_deep_in_a_sites_page_is_refused(product: Product) -> None:
    child = refused(product, "deep_sites", 6)
    assert "nested deeper than 64 levels" in child.stderr


def test_a_server_inventing_sites_forever_fails_at_the_configured_maximum(
    product: Product,
) -> None:
    child = refused(product, "endless_sites", 6, SIGSCI_IGA_MAX_SITES="250")
    assert "more than 250 sites" in child.stderr
    pages = [r for r in product.hostile.seen("GET") if r.startswith(f"GET {PREFIX}/sites?")]
    # Three good pages before the server turned hostile, then three of 100 sites at most.
    assert len(pages) <= 1 + 3


def test_a_next_link_that_does_not_advance_stops_the_listing(product: Product) -> None:
    child = refused(product, "stuck_next", 6)
    assert "next link names the page just read" in child.stderr


def test_a_page_that_adds_nothing_new_stops_the_listing(product: Product) -> None:
    child = refused(product, "repeat_page", 6)
    assert "repeats" in child.stderr


@pytest.mark.parametrize("twin", ["alice@example.com", "Alice@Example.com"])
def test_a_users_list_with_one_email_twice_is_an_untrustworthy_answer(
    product: Product, twin: str
) -> None:
    product.hostile.users.append(user(twin, "observer", ("www",)))
    child = refused(product, "normal", 6)
    assert "alice@example.com" in child.stderr
    assert "twice" in child.stderr


# -- names the server sends that cannot be addressed ---------------------------------------------


BAD_EMAILS = [
    ".",
    "..@example.com",
    "a/b@example.com",
    "ctl\x01@example.com",
    "no-at-sign",
    "x%2e%2e@example.com",
    "",
]
BAD_SITES = [".", "..", "a/b", "%2e", "tab\tsite", "rtl\u202esite"]


def test_unaddressable_emails_and_sites_from_the_server_are_reported_and_never_stored(
    product: Product,
) -> None:
    before = product.inventory()
    product.hostile.users.extend(user(email) for email in BAD_EMAILS)
    product.hostile.users.append(user("carol@example.com", "user", ("www", *BAD_SITES)))
    product.hostile.sites.extend(BAD_SITES)
    child = product.run("import", "--full", "--json")
    assert child.code == 0, child.output
    report = child.stdout
    for email in BAD_EMAILS[:-1]:
        assert repr(email)[1:-1] in report.encode().decode("unicode_escape") or email in report
    after = product.inventory()
    stored = {row[2] for row in after["accounts"]} | {row[3] for row in after["accounts"]}
    assert not any(bad in stored for bad in BAD_EMAILS if bad)
    values = {value for row in after["entitlement_values"] for value in row}
    assert not any(bad in values for bad in BAD_SITES)
    # carol is new and addressable: she is stored, with her one good site.
    assert any("carol@example.com" in row for row in after["accounts"])
    assert after["entitlement_values"] == before["entitlement_values"]


def test_an_unknown_role_is_reported_and_never_becomes_an_entitlement(product: Product) -> None:
    product.hostile.users.append(user("mallory@example.com", "superadmin", ("www",)))
    alice = next(u for u in product.hostile.users if u["email"] == "alice@example.com")
    alice["role"] = "godmode"
    before = product.inventory()
    child = product.run("import", "--full")
    assert child.code == 0, child.output
    assert "unknown role 'superadmin'" in child.stdout
    assert "unknown role 'godmode'" in child.stdout
    # Nothing new, and alice is kept as the repository held her (not suspended); only the
    # endpoint's checkpoint moved, as after any full import.
    after = product.inventory()
    assert after.pop("endpoints") != before.pop("endpoints")
    assert after == before


@pytest.mark.parametrize("site", [".", "..", "%2e", "%2E%2e", "a/b", "x\u200by", "s" * 255])
def test_a_remove_access_for_an_unaddressable_site_is_refused_before_anything_is_sent(
    server: Hostile, tmp_path: Path, site: str
) -> None:
    # A repository that has not imported the corp yet knows no sites to check the name against:
    # `sites/./members/EMAIL` would go out as `sites/members/EMAIL`.
    server.reset()
    fresh = Product(server, tmp_path)
    child = fresh.run("request", "remove-access", "--email", "alice@example.com", "--site", site)
    assert child.code == 2, child.output
    assert "site name" in child.stderr
    assert server.seen("DELETE") == []
    # Refused before the repository was even opened: no task, not even a database file.
    assert not fresh.database.exists()


@pytest.mark.parametrize(
    "email", ["al\u200bice@example.com", "alice\u202e@example.com", "\u2066a@example.com"]
)
def test_a_request_for_an_email_with_invisible_characters_is_refused(
    product: Product, email: str
) -> None:
    before = product.inventory()
    child = product.run("request", "remove-account", "--email", email)
    assert child.code == 2, child.output
    assert "invisible" in child.stderr
    assert product.inventory() == before


def test_a_request_for_an_email_longer_than_254_characters_is_refused(product: Product) -> None:
    child = product.run("request", "remove-account", "--email", "a" * 250 + "@example.com")
    assert child.code == 2, child.output
    assert "longer than 254" in child.stderr


# -- activity feed time -----------------------------------------------------------------------


def _checkpoint(product: Product) -> datetime:
    with sqlite3.connect(product.database) as db:
        (value,) = db.execute("SELECT checkpoint_at FROM endpoints").fetchone()
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def test_an_event_dated_in_year_9999_never_moves_the_checkpoint_past_now(
    product: Product,
) -> None:
    before = product.inventory()
    product.hostile.events.append(
        {
            "id": "from-the-future",
            "eventType": "userUpdated",
            "msgData": {"email": "alice@example.com"},
            "created": "9999-12-31T23:59:59Z",
        }
    )
    child = product.run("import", "--incremental")
    assert child.code == 0, child.output
    assert "from-the-future" in child.stdout
    assert "in the future" in child.stdout
    assert _checkpoint(product) <= datetime.now(UTC) + timedelta(seconds=1)
    after = product.inventory()
    after.pop("endpoints")
    before.pop("endpoints")
    assert after == before
    # The next incremental import still reads the feed from about now, not from year 9999.
    product.hostile.events.append(
        {
            "id": "now",
            "eventType": "userUpdated",
            "msgData": {"email": "bob@example.com"},
            "created": datetime.now(UTC).isoformat(),
        }
    )
    product.hostile.users = [
        {**u, "name": "Bob Renamed"} if u["email"] == "bob@example.com" else u
        for u in product.hostile.users
    ]
    again = product.run("import", "--incremental")
    assert again.code == 0, again.output
    assert "read 1 new events" in again.stdout or "read 2 new events" in again.stdout
    names = {row for rows in product.inventory()["accounts"] for row in rows}
    assert "Bob Renamed" in names


# -- the declarative connector, against the same server -----------------------------------------

SHIPPED = (
    Path(__file__).resolve().parents[2]
    / "src"
    / "sigsci_iga"
    / "packages_data"
    / "signalsciences.yaml"
)


def _rest(hostile: Hostile, **options: Any) -> RestConnector:
    params = {"corp": CORP, "email": CALLER, "base_url": hostile.base_url}
    bound = load_package(SHIPPED).bind(params, env={"SIGSCI_TOKEN": TOKEN})
    return RestConnector(bound, **options)


@pytest.mark.parametrize("site", [".", "..", "%2e", "a/b"])
def test_the_rest_connector_refuses_a_dot_site_before_sending(server: Hostile, site: str) -> None:
    server.reset()

    async def main() -> None:
        async with _rest(server) as connector:
            await connector.execute(RemoveFromSite(site=site, email="alice@example.com"))

    with pytest.raises(BadRequestError, match="path segment"):
        asyncio.run(main())
    assert server.seen("DELETE") == []


def test_the_rest_connector_refuses_a_body_over_its_cap_while_decoding(server: Hostile) -> None:
    server.reset()
    server.mode = "gzip_bomb"

    async def main() -> None:
        async with _rest(server, max_body_bytes=8 * 1024 * 1024) as connector:
            await connector.accounts_page(None)

    with pytest.raises(UnexpectedResponseError, match="larger than 8388608 bytes"):
        asyncio.run(main())


def test_the_rest_connector_refuses_json_nested_too_deep(server: Hostile) -> None:
    server.reset()
    server.mode = "deep_sites"

    async def main() -> None:
        async with _rest(server) as connector:
            await connector.sites_page(None)

    with pytest.raises(UnexpectedResponseError, match="nested deeper than 64"):
        asyncio.run(main())


def test_an_incremental_reread_with_an_unknown_role_keeps_the_account_as_held(
    product: Product,
) -> None:
    before = product.inventory()
    product.hostile.events.append(
        {
            "id": "removed-but-not",
            "eventType": "userRemoved",
            "msgData": {"email": "alice@example.com"},
            "created": datetime.now(UTC).isoformat(),
        }
    )
    alice = next(u for u in product.hostile.users if u["email"] == "alice@example.com")
    alice["role"] = "godmode"
    child = product.run("import", "--incremental")
    assert child.code == 0, child.output
    assert "unknown role 'godmode'" in child.stdout
    # The feed says removed, but the re-read found her: she is neither suspended nor changed.
    after = product.inventory()
    after.pop("endpoints")
    before.pop("endpoints")
    assert after == before


def test_an_activity_feed_that_never_ends_stops_at_the_event_cap(server: Hostile) -> None:
    server.reset()
    server.mode = "endless_events"

    async def main() -> None:
        client = SigSciClient(
            base_url=server.base_url,
            corp=CORP,
            email=CALLER,
            token=SecretStr(TOKEN),
            read_attempts=1,
            max_events=250,
        )
        async with client:
            async for _ in client.iter_activity_pages(since=datetime(2020, 1, 1, tzinfo=UTC)):
                pass

    with pytest.raises(UnexpectedResponseError, match="more than 250 activity events"):
        asyncio.run(main())
    assert len([r for r in server.seen("GET") if "/activity" in r]) == 3
