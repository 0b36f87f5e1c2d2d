"""Importer fixtures: a small simulated corp, and a repository on SQLite and on PostgreSQL.

PostgreSQL (127.0.0.1:5432, user postgres or root, trust auth) is never skipped: if it is
unreachable the postgres variants fail. Each session creates one throwaway database, migrates it
once, empties it before every test and drops it at the end.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from import_harness import SimCorp, sqlite_copy

from sigsci_iga.store import Repository, open_repository
from sigsci_iga.store.db import create_engine_for, upgrade
from sigsci_iga.store.tables import metadata

PG_HOST = os.environ.get("SIGSCI_IGA_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("SIGSCI_IGA_TEST_PG_PORT", "5432"))
PG_USERS = ("postgres", "root")


@contextmanager
def pg_admin() -> Iterator[tuple[psycopg.Connection, str]]:
    """An autocommit connection to the `postgres` database, and the user that worked."""
    errors = []
    for user in PG_USERS:
        try:
            conn = psycopg.connect(
                host=PG_HOST,
                port=PG_PORT,
                user=user,
                dbname="postgres",
                autocommit=True,
                connect_timeout=5,
            )
        except psycopg.OperationalError as exc:
            errors.append(f"{user}: {exc}")
            continue
        with conn:
            yield conn, user
        return
    pytest.fail(f"PostgreSQL at {PG_HOST}:{PG_PORT} is unreachable: {'; '.join(errors)}")


@pytest.fixture(scope="session")
def importer_pg_url() -> Iterator[str]:
    """One migrated throwaway PostgreSQL database for the importer tests."""
    name = f"sigsci_iga_import_test_{secrets.token_hex(6)}"
    with pg_admin() as (conn, user):
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql://{user}@{PG_HOST}:{PG_PORT}/{name}"
    try:
        upgrade(url)
        yield url
    finally:
        with pg_admin() as (conn, _user):
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def migrated_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file; tests copy it instead of migrating a new one each time."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


def _truncate_all(url: str) -> None:
    engine = create_engine_for(url)
    try:
        names = ", ".join(t.name for t in metadata.sorted_tables)
        with engine.begin() as conn:
            conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    finally:
        engine.dispose()


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
    _truncate_all(url)
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
