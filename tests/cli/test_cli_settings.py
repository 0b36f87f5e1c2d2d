"""Settings mistakes end the command before anything is sent or stored, and echo no secret."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_inprocess import fingerprint, invoke

from sigsci_iga.sim import DEMO_CORP, DEMO_EMAIL, DEMO_TOKEN, SimConfig, create_app
from sigsci_iga.sim import serve_in_thread as serve


@pytest.fixture
def served() -> Iterator[tuple[str, dict[str, int]]]:
    """A loopback simulator and a count of the API calls it answered."""
    app = create_app(SimConfig(users=10, sites=2, seed=5))
    seen: dict[str, int] = {"calls": 0}

    @app.middleware("http")
    async def count(request, call_next):  # type: ignore[no-untyped-def]
        if request.url.path.startswith("/api/"):
            seen["calls"] += 1
        return await call_next(request)

    with serve(app) as url:
        yield url, seen


def settings_env(url: str, db: Path, **changes: str) -> dict[str, str]:
    return {
        "SIGSCI_API_URL": url,
        "SIGSCI_EMAIL": DEMO_EMAIL,
        "SIGSCI_TOKEN": DEMO_TOKEN,
        "SIGSCI_CORP": DEMO_CORP,
        "SIGSCI_IGA_DATABASE_URL": f"sqlite:///{db}",
        **changes,
    }


@pytest.mark.parametrize("variable", ["SIGSCI_TOKEN", "SIGSCI_PASSWORD"])
@pytest.mark.parametrize("value", ["", " ", "\t"])
def test_a_blank_token_or_password_is_exit_2_naming_the_variable_and_nothing_is_sent(
    served: tuple[str, dict[str, int]], tmp_path: Path, variable: str, value: str
) -> None:
    url, seen = served
    db = tmp_path / "iga.db"
    env = settings_env(url, db, **{variable: value})

    for args in (("check",), ("import",)):
        outcome = invoke(*args, env=env)
        assert outcome.crash is None
        assert outcome.code == 2, outcome.stderr
        assert len(outcome.error_lines) == 1
        assert outcome.error_lines[0].startswith("error: ")
        assert variable in outcome.stderr
        assert "401" not in outcome.stderr
    assert seen["calls"] == 0
    assert fingerprint(db) is None


def test_an_api_url_with_a_password_is_refused_without_echoing_it(
    served: tuple[str, dict[str, int]], tmp_path: Path
) -> None:
    url, seen = served
    db = tmp_path / "iga.db"
    with_password = url.replace("http://", "http://iga:hunter2-secret@")

    outcome = invoke("check", env=settings_env(with_password, db))

    assert outcome.crash is None
    assert outcome.code == 2
    assert len(outcome.error_lines) == 1
    assert "SIGSCI_API_URL" in outcome.stderr
    assert "hunter2" not in outcome.stdout + outcome.stderr
    assert seen["calls"] == 0


@pytest.mark.parametrize(
    "api_url",
    ["http://iga:hunter2-secret@127.0.0.1:9", "https://hunter2-secret@example.com", "ftp://x.io"],
)
def test_endpoints_add_refuses_an_api_url_with_credentials_and_stores_nothing(
    served: tuple[str, dict[str, int]], tmp_path: Path, api_url: str
) -> None:
    url, _seen = served
    db = tmp_path / "iga.db"
    env = {**settings_env(url, db), "ACME_TOKEN": "tok-acme-0123"}
    assert invoke("db", "upgrade", env=env).code == 0
    before = fingerprint(db)

    outcome = invoke(
        "endpoints", "add", "acme", "--corp", "acme", "--email", "iga@acme.example",
        "--token-env", "ACME_TOKEN", "--api-url", api_url,
        env=env,
    )  # fmt: skip

    assert outcome.crash is None
    assert outcome.code == 2
    assert len(outcome.error_lines) == 1
    assert "--api-url" in outcome.stderr
    assert "hunter2" not in outcome.stdout + outcome.stderr
    assert fingerprint(db) == before
