"""The journal's hash chain: `verify` names the first line that was edited, deleted or added."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DatabaseError

from sigsci_iga.store import JournalEntry, Repository, open_repository
from sigsci_iga.store.db import create_engine_for, upgrade
from sigsci_iga.store.journal import line_hash

from .helpers import add_endpoint

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def journaled(repo: Repository) -> Repository:
    add_endpoint(repo, "prod")
    add_endpoint(repo, "test")
    for n in range(3):
        repo.journal.append(
            [
                JournalEntry(endpoint="prod", kind="note", target=f"u{n}@x.io", detail={"n": n}),
                JournalEntry(endpoint="test", kind="call", method="GET", path=f"/p/{n}", at=T0),
            ]
        )
    repo.journal.append([JournalEntry(endpoint="prod", kind="note", error="last")])
    return repo


def ids(repo: Repository, endpoint: str = "prod") -> list[int]:
    return [e.id for e in repo.journal.list(endpoint=endpoint)]


def problem(repo: Repository, endpoint: str = "prod") -> str:
    (report,) = repo.journal.verify(endpoint)
    assert not report.intact
    assert report.problem is not None
    return report.problem


@contextmanager
def guard_lifted(repo: Repository) -> Iterator[sa.Connection]:
    """A connection on which the append-only triggers are off, as a privileged attacker has."""
    with repo.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("ALTER TABLE journal DISABLE TRIGGER journal_append_only")
            try:
                yield conn
            finally:
                conn.exec_driver_sql("ALTER TABLE journal ENABLE TRIGGER journal_append_only")
        else:
            for name in ("update", "delete", "replace"):
                conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS journal_append_only_{name}")
            yield conn


def test_untouched_chains_verify_per_endpoint_with_their_heads(journaled: Repository) -> None:
    reports = {r.endpoint: r for r in journaled.journal.verify()}

    assert set(reports) == {"prod", "test"}
    assert all(r.intact for r in reports.values())
    assert (reports["prod"].lines, reports["prod"].head_seq) == (4, 4)
    assert (reports["test"].lines, reports["test"].head_seq) == (3, 3)
    assert len(reports["prod"].head_hash) == 64


def test_an_update_through_a_dropped_trigger_is_found_on_the_edited_line(
    journaled: Repository,
) -> None:
    target = ids(journaled)[1]
    with guard_lifted(journaled) as conn:
        conn.execute(sa.text("UPDATE journal SET error = 'forged' WHERE id = :id"), {"id": target})

    assert "edited" in problem(journaled)
    assert journaled.journal.verify("prod")[0].line_id == target
    assert journaled.journal.verify("test")[0].intact


def test_a_deleted_line_in_the_middle_is_reported_as_missing(journaled: Repository) -> None:
    _, second, third, _ = ids(journaled)
    with guard_lifted(journaled) as conn:
        conn.execute(sa.text("DELETE FROM journal WHERE id = :id"), {"id": second})

    assert "missing" in problem(journaled)
    assert "deleted" in problem(journaled)
    assert journaled.journal.verify("prod")[0].line_id == third


def test_lines_deleted_at_the_end_are_found_against_the_head(journaled: Repository) -> None:
    last = ids(journaled)[-1]
    with guard_lifted(journaled) as conn:
        conn.execute(sa.text("DELETE FROM journal WHERE id = :id"), {"id": last})

    assert "deleted at the end" in problem(journaled)


def test_a_truncated_journal_is_found_against_the_head(journaled: Repository) -> None:
    if journaled.engine.dialect.name == "postgresql":
        # TRUNCATE fires no row triggers: any owner of the table can do it.
        with journaled.engine.begin() as conn:
            conn.exec_driver_sql("TRUNCATE journal")
    else:
        with guard_lifted(journaled) as conn:
            conn.exec_driver_sql("DELETE FROM journal")

    assert "head says 4" in problem(journaled)


def test_a_forged_insert_is_found(journaled: Repository) -> None:
    with journaled.engine.begin() as conn:
        endpoint_id = conn.execute(sa.text("SELECT id FROM endpoints WHERE name = 'prod'")).scalar()
        conn.execute(
            sa.text(
                "INSERT INTO journal (at, endpoint_id, kind, error, seq, prev_hash, chain_hash) "
                "VALUES (:at, :endpoint, 'note', 'forged', 5, :h, :h)"
            ),
            {"at": T0, "endpoint": endpoint_id, "h": "f" * 64},
        )

    assert "forged" not in problem(journaled)
    assert journaled.journal.verify("prod")[0].line_id == max(ids(journaled))


def test_a_forged_insert_with_a_correct_hash_is_still_found_against_the_head(
    journaled: Repository,
) -> None:
    report = journaled.journal.verify("prod")[0]
    with journaled.engine.begin() as conn:
        endpoint_id = conn.execute(sa.text("SELECT id FROM endpoints WHERE name = 'prod'")).scalar()
        values = {
            "at": T0,
            "endpoint_id": endpoint_id,
            **dict.fromkeys(
                (
                    "task_id",
                    "request_id",
                    "operation",
                    "target",
                    "attempt",
                    "state_before",
                    "state_after",
                    "method",
                    "path",
                    "status",
                    "detail",
                ),
            ),
            "kind": "note",
            "error": "forged",
        }
        digest = line_hash(report.head_hash, 5, values)
        conn.execute(
            sa.text(
                "INSERT INTO journal (at, endpoint_id, kind, error, seq, prev_hash, chain_hash) "
                "VALUES (:at, :endpoint_id, 'note', 'forged', 5, :prev, :digest)"
            ),
            {**values, "prev": report.head_hash, "digest": digest},
        )

    assert "outside the journal" in problem(journaled)


def test_sqlite_refuses_replace_into_and_verify_finds_one_made_without_the_guard(
    sqlite_url: str,
) -> None:
    repo = open_repository(sqlite_url)
    try:
        add_endpoint(repo, "prod")
        repo.journal.append(
            [JournalEntry(endpoint="prod", kind="note", error=str(n)) for n in range(3)]
        )
        middle = ids(repo)[1]
        replace = sa.text(
            "REPLACE INTO journal (id, at, endpoint_id, kind, error, seq, prev_hash, chain_hash) "
            "SELECT id, at, endpoint_id, kind, 'replaced', seq, prev_hash, chain_hash "
            "FROM journal WHERE id = :id"
        )
        with pytest.raises(DatabaseError, match="REPLACE refused"), repo.engine.begin() as conn:
            conn.execute(replace, {"id": middle})
        assert repo.journal.verify("prod")[0].intact

        with guard_lifted(repo) as conn:
            conn.execute(replace, {"id": middle})

        assert "edited or replaced" in problem(repo)
        assert repo.journal.verify("prod")[0].line_id == middle
    finally:
        repo.close()


def test_journal_verify_exits_9_and_names_the_line_when_a_chain_is_broken(
    sqlite_url: str,
) -> None:
    repo = open_repository(sqlite_url)
    try:
        add_endpoint(repo, "prod")
        repo.journal.append([JournalEntry(endpoint="prod", kind="note") for _ in range(2)])
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIGSCI")}
        env["SIGSCI_IGA_DATABASE_URL"] = sqlite_url

        def verify() -> subprocess.CompletedProcess[str]:
            return subprocess.run(  # our own module, fixed arguments
                [sys.executable, "-m", "sigsci_iga", "journal", "verify"],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )

        intact = verify()
        assert intact.returncode == 0, intact.stderr
        assert "prod: intact, 2 lines" in intact.stdout

        with guard_lifted(repo) as conn:
            conn.execute(sa.text("DELETE FROM journal WHERE id = :id"), {"id": ids(repo)[0]})
        broken = verify()
        assert broken.returncode == 9
        assert "prod: BROKEN" in broken.stdout
        assert "missing" in broken.stdout
    finally:
        repo.close()


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_journal_lines_written_before_the_chain_existed_are_chained_on_upgrade(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'old.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("fresh_pg_url")
    )
    upgrade(url, "0003")
    engine = create_engine_for(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO endpoints (name, connector, api_url, corp, settings,"
                " checkpoint_event_ids, version, created_at)"
                " VALUES ('prod', 'signalsciences', 'https://x', 'c', '{}', '[]', 1, :at)"
            ),
            {"at": T0},
        )
        for n in range(3):
            conn.execute(
                sa.text(
                    "INSERT INTO journal (at, endpoint_id, kind, error, detail)"
                    " VALUES (:at, 1, 'note', :error, :detail)"
                ),
                {"at": T0, "error": f"old {n}", "detail": json.dumps({"n": n})},
            )
    engine.dispose()

    repo = open_repository(url)
    try:
        repo.journal.append([JournalEntry(endpoint="prod", kind="note", error="new")])
        (report,) = repo.journal.verify()
        assert report.intact, report.problem
        assert report.lines == 4
        with pytest.raises(DatabaseError, match="append-only"), repo.engine.begin() as conn:
            conn.execute(sa.text("UPDATE journal SET error = 'x'"))
    finally:
        repo.close()
