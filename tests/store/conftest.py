"""Repository fixtures: every repository test runs on a real SQLite file and on PostgreSQL.

PostgreSQL is never skipped: if the server on 127.0.0.1:5432 is unreachable the postgres
variants fail, as they would in CI.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pg_databases import create_pg_database, drop_pg_database, truncate_all
from sigsci_iga.store import Repository, open_repository
from sigsci_iga.store.db import upgrade


@pytest.fixture(scope="session")
def pg_session_url() -> Iterator[str]:
    """One migrated PostgreSQL database for the whole session, dropped at the end."""
    url = create_pg_database()
    try:
        upgrade(url)
        yield url
    finally:
        drop_pg_database(url)


@pytest.fixture
def fresh_pg_url() -> Iterator[str]:
    """An empty (unmigrated) PostgreSQL database for one test."""
    url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def repo_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A clean repository URL: a new SQLite file, or the session PostgreSQL database emptied."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('repo') / 'repo.db'}"
    url: str = request.getfixturevalue("pg_session_url")
    truncate_all(url)
    return url


@pytest.fixture
def repo(repo_url: str) -> Iterator[Repository]:
    repository = open_repository(repo_url)
    try:
        yield repository
    finally:
        repository.close()
