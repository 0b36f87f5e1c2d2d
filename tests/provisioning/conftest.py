"""Provisioning fixtures: a small simulated corp, imported into a repository on SQLite and on
PostgreSQL.

PostgreSQL (127.0.0.1:5432, user postgres or root, trust auth) is never skipped: if it is
unreachable the postgres variants fail. One throwaway database per session, emptied before every
test and dropped at the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prov_harness import Corp, sqlite_copy

from pg_databases import create_pg_database, drop_pg_database, truncate_all
from sigsci_iga.store import Repository, open_repository
from sigsci_iga.store.db import upgrade


@pytest.fixture(scope="session")
def prov_pg_url() -> Iterator[str]:
    """One migrated throwaway PostgreSQL database for the provisioning tests."""
    url = create_pg_database("sigsci_iga_prov_test")
    try:
        upgrade(url)
        yield url
    finally:
        drop_pg_database(url)


@pytest.fixture(scope="session")
def prov_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file; tests copy it instead of migrating a new one each time."""
    path = tmp_path_factory.mktemp("prov-template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def repo_url(request: pytest.FixtureRequest, tmp_path: Path, prov_sqlite_template: Path) -> str:
    """A clean repository: a new SQLite file, or the session's PostgreSQL database emptied."""
    if request.param == "sqlite":
        return sqlite_copy(prov_sqlite_template, tmp_path)
    url: str = request.getfixturevalue("prov_pg_url")
    truncate_all(url)
    return url


@pytest.fixture
def pg_url(prov_pg_url: str) -> str:
    """The session's PostgreSQL database, emptied."""
    truncate_all(prov_pg_url)
    return prov_pg_url


@pytest.fixture
def sqlite_url(tmp_path: Path, prov_sqlite_template: Path) -> str:
    return sqlite_copy(prov_sqlite_template, tmp_path)


@pytest.fixture
def repo(repo_url: str) -> Iterator[Repository]:
    repository = open_repository(repo_url)
    try:
        yield repository
    finally:
        repository.close()


@pytest.fixture
def corp() -> Corp:
    """30 users (3 owners, every role), 8 sites, ~3 sites per user; nobody pending."""
    return Corp.create(users=30, sites=8, seed=5, pending_share=0.0)


@pytest.fixture
def imported(repo: Repository, corp: Corp) -> Repository:
    """The repository with the corp registered and fully imported (so sites are known)."""
    corp.register(repo)
    corp.import_(repo, mode="full")
    return repo
