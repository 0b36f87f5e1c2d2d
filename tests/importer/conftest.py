"""Importer fixtures: a small simulated corp, and a repository on SQLite and on PostgreSQL.

PostgreSQL (127.0.0.1:5432, user postgres or root, trust auth) is never skipped: if it is
unreachable the postgres variants fail. Each session creates one throwaway database, migrates it
once, empties it before every test and drops it at the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from import_harness import SimCorp, sqlite_copy

from pg_databases import create_pg_database, drop_pg_database, truncate_all
from sigsci_iga.store import Repository, open_repository
from sigsci_iga.store.db import upgrade


@pytest.fixture(scope="session")
def importer_pg_url() -> Iterator[str]:
    """One migrated throwaway PostgreSQL database for the importer tests."""
    url = create_pg_database("sigsci_iga_import_test")
    try:
        upgrade(url)
        yield url
    finally:
        drop_pg_database(url)


@pytest.fixture(scope="session")
def migrated_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file; tests copy it instead of migrating a new one each time."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def repo_url(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    migrated_sqlite_template: Path,
) -> str:
    """A clean repository: a new SQLite file, or the session's PostgreSQL database emptied."""
    if request.param == "sqlite":
        return sqlite_copy(migrated_sqlite_template, tmp_path)
    url: str = request.getfixturevalue("importer_pg_url")
    truncate_all(url)
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path, migrated_sqlite_template: Path) -> str:
    """A clean SQLite repository, for tests where the database engine is not the point."""
    return sqlite_copy(migrated_sqlite_template, tmp_path)


@pytest.fixture
def repo(repo_url: str) -> Iterator[Repository]:
    repository = open_repository(repo_url)
    try:
        yield repository
    finally:
        repository.close()


@pytest.fixture
def sqlite_repo(sqlite_url: str) -> Iterator[Repository]:
    repository = open_repository(sqlite_url)
    try:
        yield repository
    finally:
        repository.close()


@pytest.fixture
def corp() -> SimCorp:
    """A small corp: 40 users (3 owners, 3 pending, every role), 8 sites, ~3 sites per user."""
    return SimCorp.create(users=40, sites=8, seed=11, pending_share=0.15)
