"""Throwaway PostgreSQL databases for the tests (127.0.0.1:5432, trust auth).

PostgreSQL is never skipped: if the server is unreachable the postgres variants fail, as they
would in CI.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
import sqlalchemy as sa

from sigsci_iga.store.db import create_engine_for
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


def create_pg_database(prefix: str = "sigsci_iga_test") -> str:
    """Create a throwaway database and return its URL."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    with pg_admin() as (conn, user):
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql://{user}@{PG_HOST}:{PG_PORT}/{name}"


def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with pg_admin() as (conn, _user):
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def truncate_all(url: str) -> None:
    """Empty every repository table (identities included) and restart the ids."""
    engine = create_engine_for(url)
    try:
        names = ", ".join(t.name for t in metadata.sorted_tables)
        with engine.begin() as conn:
            conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    finally:
        engine.dispose()
