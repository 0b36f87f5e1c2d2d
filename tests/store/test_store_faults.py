"""Database faults become one clear error each, and leave nothing half-written."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from sigsci_iga.errors import DatabaseBusyError, DatabaseUnavailableError, StorageFullError
from sigsci_iga.store import DatabaseOptions, JournalEntry, open_repository

from .helpers import add_endpoint

QUICK_LOCKS = DatabaseOptions(busy_timeout_seconds=0.3, statement_timeout_seconds=30)
QUICK_STATEMENTS = DatabaseOptions(busy_timeout_seconds=30, statement_timeout_seconds=0.3)


@pytest.mark.postgres
def test_a_row_another_session_holds_fails_after_the_lock_timeout(pg_url: str) -> None:
    repo = open_repository(pg_url, options=QUICK_LOCKS)
    holder = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        add_endpoint(repo)
        with holder.connect() as other, other.begin():
            other.execute(sa.text("SELECT id FROM endpoints FOR UPDATE"))
            started = time.monotonic()
            with pytest.raises(DatabaseBusyError, match="locked by another process"):
                repo.journal.append([JournalEntry(endpoint="prod", kind="note")])
            assert time.monotonic() - started < 10
        assert repo.journal.list() == []
    finally:
        holder.dispose()
        repo.close()


@pytest.mark.postgres
def test_a_statement_longer_than_the_statement_timeout_is_cancelled(pg_url: str) -> None:
    repo = open_repository(pg_url, options=QUICK_STATEMENTS)
    try:
        with (
            pytest.raises(DatabaseBusyError, match="SIGSCI_IGA_DB_STATEMENT_TIMEOUT"),
            repo.db.read() as conn,
        ):
            conn.execute(sa.text("SELECT pg_sleep(5)"))
    finally:
        repo.close()


def test_a_full_sqlite_database_fails_in_one_error_and_keeps_nothing(sqlite_url: str) -> None:
    repo = open_repository(sqlite_url)
    try:
        add_endpoint(repo)
        pages = _page_count(repo.engine)
        repo.engine.dispose()

        @sa.event.listens_for(repo.engine, "connect")
        def _small(dbapi_connection: Any, _record: Any) -> None:
            # A database that may not grow past its size now: what a full disk looks like.
            dbapi_connection.execute(f"PRAGMA max_page_count={pages + 2}")

        lines = [
            JournalEntry(endpoint="prod", kind="note", detail={"pad": "x" * 2000, "n": n})
            for n in range(200)
        ]
        with pytest.raises(StorageFullError, match="no space left"):
            repo.journal.append(lines)
        assert repo.journal.list() == []
    finally:
        repo.close()


def _page_count(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        count: int = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
        return count


def test_a_database_file_that_cannot_be_created_is_reported_with_its_path(tmp_path: Path) -> None:
    with pytest.raises(DatabaseUnavailableError, match=r"missing/iga\.db"):
        open_repository(f"sqlite:///{tmp_path}/missing/iga.db")
