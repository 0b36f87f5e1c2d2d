"""Repository fixtures: every repository test runs on a real SQLite file and on PostgreSQL.

PostgreSQL is never skipped: if the server on 127.0.0.1:5432 is unreachable the postgres
variants fail, as they would in CI.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pg_databases import create_pg_database, drop_pg_database


@pytest.fixture
def fresh_pg_url() -> Iterator[str]:
    """An empty (unmigrated) PostgreSQL database for one test."""
    url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)
