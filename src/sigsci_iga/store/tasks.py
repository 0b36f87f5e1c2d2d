"""Provisioning tasks and the journal: row conversion, validation, claiming and appending.

Callers (the `Repository`) own the transaction; nothing here commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from sigsci_iga.domain.diff import compute_partial_diff
from sigsci_iga.domain.model import AccountSnapshot
from sigsci_iga.domain.tasks import Operation, TaskState
from sigsci_iga.errors import InvalidInputError, LeaseLostError, RecordNotFoundError
from sigsci_iga.store.apply import apply_diff
from sigsci_iga.store.records import JournalEntry, TaskRecord
from sigsci_iga.store.tables import (
    OPEN_TASK_STATES,
    TASK_OPERATIONS,
    TASK_STATES,
    endpoints,
    tasks,
)
from sigsci_iga.store.view import load_view


def check_operation(operation: str) -> None:
    if operation not in TASK_OPERATIONS:
        raise InvalidInputError(
            f"operation {operation!r} is not one of {', '.join(TASK_OPERATIONS)}"
        )


def check_states(states: Iterable[str]) -> None:
    unknown = sorted(set(states) - set(TASK_STATES))
    if unknown:
        raise InvalidInputError(f"task state(s) {unknown} are not among {', '.join(TASK_STATES)}")


def tasks_query() -> sa.Select[Any]:
    return sa.select(tasks, endpoints.c.name.label("endpoint_name")).join(
        endpoints, endpoints.c.id == tasks.c.endpoint_id
    )


def task_record(row: Row[Any]) -> TaskRecord:
    return TaskRecord(
        id=row.id,
        endpoint=row.endpoint_name,
        operation=Operation(row.operation),
        email=row.email,
        params=dict(row.params or {}),
        state=TaskState(row.state),
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        next_attempt_at=row.next_attempt_at,
        last_error=row.last_error,
        request_id=row.request_id,
        requester=row.requester,
        justification=row.justification,
        created_at=row.created_at,
        updated_at=row.updated_at,
        finished_at=row.finished_at,
        lease_owner=row.lease_owner,
        lease_until=row.lease_until,
        write_sent=bool(row.write_sent),
    )


def task_row(conn: Connection, task_id: int, *, lock: bool = False) -> Row[Any]:
    """The task with its endpoint name; `lock` holds the row (PostgreSQL) until commit."""
    query = tasks_query().where(tasks.c.id == task_id)
    if lock:
        query = query.with_for_update(of=tasks)
    row = conn.execute(query).first()
    if row is None:
        raise RecordNotFoundError(f"task {task_id} does not exist")
    return row


def held_task(conn: Connection, task_id: int, worker: str) -> Row[Any]:
    """The locked task row, if `worker` still holds its lease; `LeaseLostError` otherwise."""
    row = task_row(conn, task_id, lock=True)
    if row.state != "in_progress" or row.lease_owner != worker:
        holder = f"held by {row.lease_owner}" if row.lease_owner else "held by nobody"
        raise LeaseLostError(
            f"task {task_id} is {row.state} and {holder}: worker {worker} lost its lease; "
            "stop working on it"
        )
    return row


def for_task(entry: JournalEntry, row: Row[Any]) -> JournalEntry:
    """`entry` with the task's identifiers filled in where it left them None."""
    if entry.task_id is not None and entry.task_id != row.id:
        raise InvalidInputError(f"journal entry names task {entry.task_id}, not task {row.id}")
    if entry.endpoint != row.endpoint_name:
        raise InvalidInputError(
            f"journal entry names endpoint {entry.endpoint!r}, task {row.id} belongs to "
            f"{row.endpoint_name!r}"
        )
    return replace(
        entry,
        task_id=row.id,
        request_id=entry.request_id if entry.request_id is not None else row.request_id,
        operation=entry.operation if entry.operation is not None else row.operation,
        target=entry.target if entry.target is not None else row.email,
        attempt=entry.attempt if entry.attempt is not None else row.attempts,
    )


def state_entry(
    row: Row[Any],
    after: str,
    *,
    kind: str = "state",
    error: str | None = None,
    detail: dict[str, Any] | None = None,
    attempt: int | None = None,
) -> JournalEntry:
    """A journal line for the task moving from its current state to `after`."""
    return JournalEntry(
        endpoint=row.endpoint_name,
        kind=kind,
        task_id=row.id,
        request_id=row.request_id,
        operation=row.operation,
        target=row.email,
        attempt=row.attempts if attempt is None else attempt,
        state_before=row.state,
        state_after=after,
        error=error,
        detail=detail,
    )


def claimable(
    conn: Connection,
    endpoint_id: int,
    *,
    now: datetime,
    limit: int,
    per_operation_limits: Mapping[str, int] | None,
    task_ids: Sequence[int] | None,
) -> list[Row[Any]]:
    """Due tasks this transaction now holds, oldest first, at most one per account.

    On PostgreSQL the rows are locked with SKIP LOCKED, so concurrent claimers split the work
    instead of waiting for or duplicating each other.
    """
    other = tasks.alias("other")
    # An account's tasks run in order, one at a time: wait for any older open task, and for
    # any task of the account another worker is running under a live lease.
    waits = (
        sa.exists()
        .where(
            other.c.endpoint_id == tasks.c.endpoint_id,
            other.c.email == tasks.c.email,
            other.c.id != tasks.c.id,
            sa.or_(
                sa.and_(other.c.id < tasks.c.id, other.c.state.in_(OPEN_TASK_STATES)),
                sa.and_(other.c.state == "in_progress", other.c.lease_until >= now),
            ),
        )
        .correlate(tasks)
    )
    # Abandoned: in progress, but the lease ran out (the worker died or hung).
    due = sa.or_(
        sa.and_(tasks.c.state == "new", tasks.c.next_attempt_at <= now),
        sa.and_(tasks.c.state == "in_progress", tasks.c.lease_until < now),
    )
    where: list[sa.ColumnElement[bool]] = [tasks.c.endpoint_id == endpoint_id, due]
    if task_ids is not None:
        where.append(tasks.c.id.in_(list(task_ids)))
    query = sa.select(tasks).where(*where, ~waits)
    if per_operation_limits:
        ranked = (
            sa.select(
                tasks.c.id,
                tasks.c.operation,
                sa.func.row_number()
                .over(partition_by=tasks.c.operation, order_by=tasks.c.id)
                .label("rank"),
            )
            .where(*where, ~waits)
            .subquery()
        )
        within = sa.or_(
            ranked.c.operation.not_in(list(per_operation_limits)),
            *(
                sa.and_(ranked.c.operation == operation, ranked.c.rank <= maximum)
                for operation, maximum in per_operation_limits.items()
            ),
        )
        # `where` is repeated outside: PostgreSQL re-checks only the outer conditions against a
        # row another worker changed after this statement's snapshot.
        query = sa.select(tasks).where(*where, tasks.c.id.in_(sa.select(ranked.c.id).where(within)))
    rows = conn.execute(
        query.order_by(tasks.c.id).limit(limit).with_for_update(skip_locked=True)
    ).all()
    picked: list[Row[Any]] = []
    seen: set[str] = set()
    for row in rows:
        if row.email not in seen:
            seen.add(row.email)
            picked.append(row)
    return picked


def apply_account_changes(
    conn: Connection,
    endpoint_id: int,
    changes: Mapping[str, AccountSnapshot | None],
    *,
    task_id: int,
    now: datetime,
) -> None:
    """Bring just these accounts up to date; None means the account is gone from the target."""
    # Holding the endpoint row serialises this with imports and other tasks of the endpoint, so
    # the version read here is still current when `apply_diff` bumps it.
    conn.execute(
        sa.select(endpoints.c.version).where(endpoints.c.id == endpoint_id).with_for_update()
    ).scalar_one()
    view = load_view(conn, endpoint_id, emails=list(changes))
    diff = compute_partial_diff(view, changes, {})
    if diff.is_empty:
        return
    apply_diff(
        conn,
        endpoint_id,
        diff,
        run_id=None,
        expected_version=view.version,
        now=now,
        task_id=task_id,
    )
