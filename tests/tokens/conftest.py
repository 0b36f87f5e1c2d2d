"""Service-token fixtures: a movable clock and an application context per backend."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr
from tokens_harness import KEY, Clock, ContextFactory

from sigsci_iga import app
from sigsci_iga.settings import Settings
from sigsci_iga.store import Repository


@pytest.fixture(autouse=True)
def _no_sigsci_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Settings read the environment: a key exported in the shell must not leak into a test.
    for name in list(os.environ):
        if name.startswith("SIGSCI"):
            monkeypatch.delenv(name)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_ctx(repo: Repository, repo_url: str, clock: Clock) -> ContextFactory:
    """Contexts on one repository, with whatever key settings a test gives (default: KEY)."""

    def make(**settings: Any) -> app.AppContext:
        values: dict[str, Any] = {"database_url": repo_url, "token_key": SecretStr(KEY)}
        values.update(settings)
        return app.AppContext(Settings(**values), repository=repo, clock=clock)

    return make


@pytest.fixture
def ctx(make_ctx: ContextFactory) -> Iterator[app.AppContext]:
    with make_ctx() as context:
        yield context
