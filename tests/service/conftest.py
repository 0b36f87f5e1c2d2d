"""Service fixtures: an empty PostgreSQL database of its own for tests that run processes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pg_databases import create_pg_database, drop_pg_database


@pytest.fixture
def fresh_pg_url() -> Iterator[str]:
    """An empty (unmigrated) PostgreSQL database for one test, dropped after it."""
    url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)
