"""A canary token and password, echoed back by a hostile server, never leave the process.

The real command runs end to end (child processes against a loopback simulator, on SQLite and
on PostgreSQL) with a canary token and password. The server refuses calls with messages that
repeat the secrets in upper case, percent-encoded, base64 (alone and as a basic-auth header),
and in a message long enough that the token sits across the point where messages are cut.
Afterwards standard output and error of every command, the SQLite file's bytes and a
`pg_dump` of the PostgreSQL database are searched for the secrets in every spelling, and for
any 8-character piece of them.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, quote_plus, urlsplit

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from pg_databases import create_pg_database, drop_pg_database
from sigsci_iga.sim import DEMO_CORP, DEMO_EMAIL, OBSERVER_EMAIL, SimConfig, create_app
from sigsci_iga.sim import serve_in_thread as serve

SUFFIX = secrets.token_hex(10)
#: `/`, `+`, `=` and a space make the percent-encoded spellings differ from the plain one.
TOKEN = f"cnryTok/{SUFFIX}+x=y z"
PASSWORD = f"cnryPass/{SUFFIX[::-1]}+p=q w"


def b64(data: str) -> str:
    return base64.b64encode(data.encode()).decode()


def b64url(data: str) -> str:
    return base64.urlsafe_b64encode(data.encode()).decode()


def spellings(secret: str) -> dict[str, str]:
    """The secret as a server, a log or a database might hold it."""
    return {
        "plain": secret,
        "upper": secret.upper(),
        "lower": secret.lower(),
        "quote": quote(secret, safe=""),
        "quote-default": quote(secret),
        "quote_plus": quote_plus(secret),
        "base64": b64(secret),
        "base64-unpadded": b64(secret).rstrip("="),
        "base64-url": b64url(secret),
        "basic": b64(f"{DEMO_EMAIL}:{secret}"),
        "basic-url": b64url(f"{DEMO_EMAIL}:{secret}").rstrip("="),
    }


def pieces(secret: str, size: int = 8) -> set[str]:
    return {secret[i : i + size] for i in range(len(secret) - size + 1)}


def leaks(text: str, where: str) -> list[str]:
    """Every spelling of a canary, or a piece of one (what a cut leaves), found in `text`."""
    found = []
    lowered = text.lower()
    for name, secret in (("token", TOKEN), ("password", PASSWORD)):
        for form, spelled in spellings(secret).items():
            # The start of a basic-auth value encodes the email, which is no secret.
            shown = {spelled} if form.startswith("basic") else pieces(spelled, 12)
            found += [f"{where}: the {name}, {form}: {piece!r}" for piece in shown if piece in text]
        found += [
            f"{where}: a piece of the {name}: {piece!r}"
            for piece in pieces(secret)
            if piece.lower() in lowered
        ]
    return found


# -- the hostile server ------------------------------------------------------------------------


@dataclass
class Echo:
    """Which calls the server refuses next, and with what words."""

    method: str = ""
    path_end: str = ""
    status: int = 400
    message: Callable[[], str] = str
    #: How many more calls to refuse; 0 is off.
    times: int = 0
    refused: list[str] = field(default_factory=list)

    def arm(self, method: str, path_end: str, status: int, message: Callable[[], str]) -> None:
        self.method, self.path_end, self.status, self.message = method, path_end, status, message
        self.times = 10**6

    def off(self) -> None:
        self.times = 0


def upper_echo(*secrets: str) -> Callable[[], str]:
    return lambda: "Unauthorized: " + ", ".join(f"{s.upper()} is revoked" for s in secrets)


def percent_echo(*secrets: str) -> Callable[[], str]:
    return lambda: (
        "bad credentials " + " / ".join(f"{quote(s, safe='')} {quote_plus(s)}" for s in secrets)
    )


def base64_echo(*secrets: str) -> Callable[[], str]:
    return lambda: (
        "refused: "
        + "; ".join(
            f"Authorization: Basic {b64(f'{DEMO_EMAIL}:{s}')} ({b64(s)}, {b64url(s).rstrip('=')})"
            for s in secrets
        )
    )


def long_echo(secret: str) -> Callable[[], str]:
    # The secret starts 190 characters in: a message cut at 200 would keep half of it.
    return lambda: "z" * 182 + " secret " + secret + " was refused " + "y" * 120


def hostile_app() -> tuple[FastAPI, Echo]:
    app = create_app(SimConfig(users=12, sites=3, seed=29, pending_share=0.0))
    app.state.sim.state.add_api_token(DEMO_EMAIL, TOKEN, password=PASSWORD)
    echo = Echo()

    @app.middleware("http")
    async def refuse(request: Request, call_next):  # type: ignore[no-untyped-def]
        if (
            echo.times
            and request.method == echo.method
            and request.url.path.endswith(echo.path_end)
        ):
            echo.times -= 1
            echo.refused.append(f"{request.method} {request.url.path}")
            return JSONResponse({"message": echo.message()}, status_code=echo.status)
        return await call_next(request)

    return app, echo


# -- the story ---------------------------------------------------------------------------------


@dataclass
class Story:
    url: str
    database_url: str
    cwd: Path
    echo: Echo
    outputs: list[tuple[str, str]] = field(default_factory=list)

    def env(self, **changes: str | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIGSCI")}
        env.update(
            {
                "SIGSCI_API_URL": self.url,
                "SIGSCI_EMAIL": DEMO_EMAIL,
                "SIGSCI_TOKEN": TOKEN,
                # Both canaries in every run: the client must scrub the one it does not use too.
                "SIGSCI_PASSWORD": PASSWORD,
                "SIGSCI_CORP": DEMO_CORP,
                "SIGSCI_IGA_DATABASE_URL": self.database_url,
                "SIGSCI_IGA_READ_ATTEMPTS": "1",
                "SIGSCI_IGA_RETRY_BASE_SECONDS": "0.2",
                "COLUMNS": "250",
                "NO_COLOR": "1",
            }
        )
        for name, value in changes.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        return env

    def run(self, *args: str, expect: int | None = 0, **changes: str | None) -> str:
        done = subprocess.run(  # noqa: S603  # our own module, fixed arguments
            [sys.executable, "-m", "sigsci_iga", *args],
            env=self.env(**changes),
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        self.outputs.append((" ".join(args), done.stdout + done.stderr))
        assert "Traceback" not in done.stderr, (args, done.stderr)
        if expect is not None:
            assert done.returncode == expect, (args, done.returncode, done.stdout, done.stderr)
        return done.stdout


def play(story: Story) -> None:
    """Every command that shows or stores what a server said, with the server echoing secrets."""
    echo = story.echo
    corp_path = f"/corps/{DEMO_CORP}"

    story.run("check")
    for message in (
        upper_echo(TOKEN, PASSWORD),
        percent_echo(TOKEN, PASSWORD),
        base64_echo(TOKEN, PASSWORD),
        long_echo(TOKEN),
        long_echo(PASSWORD),
    ):
        echo.arm("GET", corp_path, 401, message)
        story.run("check", expect=3)
    echo.off()

    echo.arm("GET", "/users", 500, long_echo(TOKEN))
    story.run("import", "--full", expect=None)
    echo.off()
    story.run("import", "--full")

    sites = json.loads(story.run("entitlements", "list", "--type", "Site", "--json"))
    held = json.loads(story.run("accounts", "show", OBSERVER_EMAIL, "--json"))["sites"]
    site = next(s["value"] for s in sites if s["value"] not in held)
    echo.arm("POST", f"/sites/{site}/members", 400, long_echo(TOKEN))
    story.run("request", "add-access", "--email", OBSERVER_EMAIL, "--site", site, expect=1)
    echo.arm("POST", f"/sites/{site}/members", 400, base64_echo(TOKEN, PASSWORD))
    story.run("request", "add-access", "--email", OBSERVER_EMAIL, "--site", site, expect=1)

    echo.arm("PATCH", f"/users/{OBSERVER_EMAIL}", 500, base64_echo(TOKEN))
    story.run("request", "update-role", "--email", OBSERVER_EMAIL, "--role", "user")
    echo.arm("PATCH", f"/users/{OBSERVER_EMAIL}", 500, percent_echo(TOKEN, PASSWORD))
    story.run("provision", "run", "--until-done", "--max-wait", "1")
    echo.arm("PATCH", f"/users/{OBSERVER_EMAIL}", 500, upper_echo(PASSWORD, TOKEN))
    story.run("provision", "run", "--until-done", "--max-wait", "1")
    echo.off()
    story.run("provision", "run", "--until-done", "--max-wait", "30")
    assert echo.refused, "the server never echoed anything"

    # The session-login flow holds only the password: that is what its server echoes.
    for message in (upper_echo(PASSWORD), base64_echo(PASSWORD), long_echo(PASSWORD)):
        echo.arm("POST", "/auth", 401, message)
        story.run("check", expect=3, SIGSCI_TOKEN=None)
    echo.off()
    story.run("check", SIGSCI_TOKEN=None)

    tasks = json.loads(story.run("tasks", "list", "--json"))
    assert any(t["state"] == "failed" for t in tasks)
    for args in (
        ("journal", "list"),
        ("journal", "list", "--json"),
        ("journal", "export", "--format", "csv"),
        ("journal", "export", "--format", "json"),
        ("tasks", "list"),
        ("endpoints", "list"),
        ("endpoints", "list", "--json"),
        ("runs", "list"),
        ("runs", "show", "1"),
        ("runs", "show", "1", "--json"),
    ):
        story.run(*args)
    for task in tasks:
        story.run("tasks", "show", str(task["id"]))
        story.run("tasks", "show", str(task["id"]), "--json")


def sqlite_bytes(path: Path) -> str:
    parts = [p for p in (path, path.with_name(path.name + "-wal")) if p.exists()]
    return "".join(p.read_bytes().decode("utf-8", "replace") for p in parts)


def pg_dump(url: str) -> tuple[str, str]:
    """The whole database as SQL text, and how it was made."""
    parts = urlsplit(url)
    dump = shutil.which("pg_dump")
    if dump is not None:
        done = subprocess.run(  # noqa: S603  # the PostgreSQL client, fixed arguments
            [dump, "-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 5432),
             "-U", parts.username or "postgres", "--no-owner", parts.path.lstrip("/")],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout, "pg_dump"
    return _dump_text_columns(url), "SQL over every text and json column (no pg_dump on PATH)"


def _dump_text_columns(url: str) -> str:
    import psycopg  # noqa: PLC0415  (only when pg_dump is missing)

    lines = []
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
        columns = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND data_type IN "
            "('text', 'character varying', 'json', 'jsonb', 'bytea')"
        ).fetchall()
        for table, column in columns:
            for (value,) in conn.execute(f'SELECT "{column}"::text FROM "{table}"'):  # noqa: S608
                lines.append(str(value))
    return "\n".join(lines)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    if request.param == "sqlite":
        yield "sqlite", f"sqlite:///{tmp_path / 'iga.db'}"
        return
    url = create_pg_database("sigsci_iga_canary")
    try:
        yield "postgresql", url
    finally:
        drop_pg_database(url)


# About 40 whole CLI processes in a row, some waiting out retries: slow on a loaded machine.
@pytest.mark.timeout(900)
def test_canary_secrets_echoed_by_a_server_reach_no_output_and_no_repository(
    backend: tuple[str, str], tmp_path: Path
) -> None:
    kind, database_url = backend
    app, echo = hostile_app()
    with serve(app) as url:
        story = Story(url, database_url, tmp_path, echo)
        play(story)

    found: list[str] = []
    for command, output in story.outputs:
        found += leaks(output, f"output of {command}")
    if kind == "sqlite":
        stored = sqlite_bytes(tmp_path / "iga.db")
        assert "testcorp" in stored
        found += leaks(stored, "the SQLite file")
    else:
        stored, how = pg_dump(database_url)
        assert "testcorp" in stored, how
        found += leaks(stored, f"the PostgreSQL dump ({how})")
    places = Counter(leak.split(": ", 1)[0] for leak in found)
    assert found == [], f"{len(found)} leaks in {dict(places)}; e.g. {found[:5]}"
    assert "***" in stored, "the echoed secrets should be stored scrubbed"


def test_the_leak_detector_finds_every_spelling_and_a_half_token() -> None:
    for secret in (TOKEN, PASSWORD):
        for spelled in spellings(secret).values():
            assert leaks(f"x {spelled} y", "probe")
    assert leaks("cut here: " + TOKEN[:12] + "…", "probe")
    assert leaks(long_echo(TOKEN)()[:200], "probe")
    assert leaks(long_echo(PASSWORD)()[:200], "probe")
    assert not leaks("nothing secret: *** and ***", "probe")
