"""The journal: append-only, secret-free, read back in order, and the source for restore."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DatabaseError

from sigsci_iga.errors import InvalidInputError
from sigsci_iga.store import JournalEntry, RecordNotFoundError, Repository

from .helpers import add_endpoint

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def prod(repo: Repository) -> Repository:
    add_endpoint(repo)
    return repo


def test_entries_are_appended_and_listed_oldest_first(prod: Repository) -> None:
    ids = prod.journal.append(
        [
            JournalEntry(
                endpoint="prod",
                kind="call",
                request_id="r1",
                target="Alice@X.io",
                method="GET",
                path="/api/v0/corps/c/users/alice@x.io",
                status=200,
                detail={"shared": True},
                at=T0,
            ),
            JournalEntry(endpoint="prod", kind="note", request_id="r2", error="a note"),
        ]
    )

    entries = prod.journal.list(endpoint="prod")

    assert [e.id for e in entries] == ids
    assert ids[0] < ids[1]
    first = entries[0]
    assert (first.kind, first.target, first.status, first.at) == ("call", "alice@x.io", 200, T0)
    assert first.to_json()["at"] == "2024-03-01T12:00:00+00:00"
    assert [e.id for e in prod.journal.list(target="ALICE@x.io")] == [ids[0]]
    assert [e.id for e in prod.journal.list(request_id="r2", kind="note")] == [ids[1]]
    assert prod.journal.list(limit=1) == [first]


def test_secret_looking_keys_and_headers_are_refused_and_nothing_is_written(
    prod: Repository,
) -> None:
    fine = JournalEntry(endpoint="prod", kind="note")
    for detail in (
        {"Authorization": "Bearer x"},
        {"request": {"headers": {"x-api-user": "bot"}}},
        {"calls": [{"ok": 1}, {"x-api-token": "t"}]},
        {"body": {"password": "p"}},
    ):
        with pytest.raises(InvalidInputError, match="never stored"):
            prod.journal.append([fine, JournalEntry(endpoint="prod", kind="call", detail=detail)])

    assert prod.journal.list() == []


def test_unknown_kinds_endpoints_and_non_json_details_are_refused(prod: Repository) -> None:
    with pytest.raises(InvalidInputError, match="journal kind 'debug'"):
        prod.journal.append([JournalEntry(endpoint="prod", kind="debug")])
    with pytest.raises(RecordNotFoundError, match="'nope'"):
        prod.journal.append([JournalEntry(endpoint="nope", kind="note")])
    with pytest.raises(InvalidInputError, match="JSON-compatible"):
        prod.journal.append([JournalEntry(endpoint="prod", kind="note", detail={"x": {1, 2}})])


def test_the_database_refuses_to_update_or_delete_journal_lines(prod: Repository) -> None:
    prod.journal.append([JournalEntry(endpoint="prod", kind="note", error="original")])

    for statement in ("UPDATE journal SET error = 'rewritten'", "DELETE FROM journal"):
        with pytest.raises(DatabaseError, match="append-only"), prod.engine.begin() as conn:
            conn.execute(sa.text(statement))

    assert [e.error for e in prod.journal.list()] == ["original"]
    # Nothing in the API rewrites the journal: it can only be appended to, read and verified.
    public = sorted(name for name in dir(prod.journal) if not name.startswith("_"))
    assert public == ["append", "list", "verify"]


def test_entries_given_with_a_finish_are_filled_in_from_the_task(prod: Repository) -> None:
    task = prod.tasks.create("prod", "add_access", "a@x.io", {"site": "www"}, now=T0)
    prod.tasks.claim("prod", worker="w1", now=T0, lease_seconds=60, limit=1)
    call = JournalEntry(endpoint="prod", kind="call", method="PUT", path="/x", status=200)

    prod.tasks.finish(task.id, worker="w1", state="completed", journal=[call])

    *_, logged, state = prod.journal.list(task_id=task.id)
    assert (logged.kind, logged.target, logged.request_id, logged.attempt) == (
        "call",
        "a@x.io",
        task.request_id,
        1,
    )
    assert (state.kind, state.state_before, state.state_after) == (
        "state",
        "in_progress",
        "completed",
    )
    other = JournalEntry(endpoint="prod", kind="call", task_id=task.id)
    task2 = prod.tasks.create("prod", "add_access", "b@x.io", {"site": "www"}, now=T0)
    prod.tasks.claim("prod", worker="w1", now=T0, lease_seconds=60, limit=1)
    with pytest.raises(InvalidInputError, match="names task"):
        prod.tasks.finish(task2.id, worker="w1", state="completed", journal=[other])


def test_the_last_removed_access_is_the_newest_remove_account_snapshot(
    prod: Repository,
) -> None:
    def snapshot(operation: str, **detail: object) -> JournalEntry:
        return JournalEntry(
            endpoint="prod",
            kind="snapshot",
            operation=operation,
            target="alice@x.io",
            detail=dict(detail),
        )

    prod.journal.append(
        [
            snapshot("remove_account", role="user", sites=["www"], name="Alice"),
            snapshot("remove_account", role="admin", sites=["api", "www"], name="Alice A."),
            snapshot("update_account", role="owner", sites=[], name="Alice"),
        ]
    )

    assert prod.tasks.last_removed_access("prod", "ALICE@x.io") == {
        "role": "admin",
        "sites": ["api", "www"],
        "name": "Alice A.",
    }
    assert prod.tasks.last_removed_access("prod", "bob@x.io") is None
