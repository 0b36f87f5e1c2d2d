"""Provisioning fixtures: a small simulated corp, imported into a repository on SQLite and on
PostgreSQL.

PostgreSQL (127.0.0.1:5432, user postgres or root, trust auth) is never skipped: if it is
unreachable the postgres variants fail. One throwaway database per session, emptied before every
test and dropped at the end.
"""

from __future__ import annotations

import pytest
from prov_harness import Corp

from sigsci_iga.store import Repository


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
