"""Importer fixtures: a small simulated corp, and a repository on SQLite and on PostgreSQL.

PostgreSQL (127.0.0.1:5432, user postgres or root, trust auth) is never skipped: if it is
unreachable the postgres variants fail. Each session creates one throwaway database, migrates it
once, empties it before every test and drops it at the end.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from import_harness import SimCorp

from sigsci_iga.store import Repository, open_repository


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
