"""Provisioning tasks: validation, row conversion, claiming, leases and ending them.

The module functions run inside a transaction their caller owns; `Tasks` owns its own.
"""

from __future__ import annotations

import builtins
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from sigsci_iga.domain.diff import compute_partial_diff
from sigsci_iga.domain.emails import email_key, normalize_email
from sigsci_iga.domain.model import AccountSnapshot, EntitlementType, iso
from sigsci_iga.domain.tasks import Operation, TaskState, runs_alongside
from sigsci_iga.errors import InvalidInputError, LeaseLostError, RecordNotFoundError, TaskStateError
from sigsci_iga.store.apply import apply_diff, link_key
from sigsci_iga.store.db import Database
from sigsci_iga.store.endpoints import find_endpoint_id
from sigsci_iga.store.journal import insert_journal
from sigsci_iga.store.records import FinishResult, JournalEntry, TaskFinish, TaskRecord
from sigsci_iga.store.tables import (
    FINAL_TASK_STATES,
    OPEN_TASK_STATES,
    TASK_OPERATIONS,
    TASK_STATES,
    endpoints,
    journal,
    tasks,
)
from sigsci_iga.store.values import plain_json, refuse_secrets
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


def lease_problem(row: Row[Any], worker: str) -> str | None:
    """Why `worker` may no longer work on this task, or None while it holds the lease."""
    if row.state == "in_progress" and row.lease_owner == worker:
        return None
    holder = f"held by {row.lease_owner}" if row.lease_owner else "held by nobody"
    return (
        f"task {row.id} is {row.state} and {holder}: worker {worker} lost its lease; "
        "stop working on it"
    )


def held_task(conn: Connection, task_id: int, worker: str) -> Row[Any]:
    """The locked task row, if `worker` still holds its lease; `LeaseLostError` otherwise."""
    row = task_row(conn, task_id, lock=True)
    problem = lease_problem(row, worker)
    if problem is not None:
        raise LeaseLostError(problem)
    return row


def locked_tasks(conn: Connection, task_ids: Sequence[int]) -> dict[int, Row[Any]]:
    """Several task rows in one statement, locked (PostgreSQL) in id order until commit."""
    rows = {
        row.id: row
        for row in conn.execute(
            tasks_query()
            .where(tasks.c.id.in_(sorted(set(task_ids))))
            .order_by(tasks.c.id)
            .with_for_update(of=tasks)
        )
    }
    for task_id in task_ids:
        if task_id not in rows:
            raise RecordNotFoundError(f"task {task_id} does not exist")
    return rows


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


#: Spare candidates read per task to claim, and at most (SQLite takes 32,766 parameters).
_SPARE_CANDIDATES = 3
_MAX_SPARE = 10_000


def claimable(
    conn: Connection,
    endpoint_id: int,
    *,
    now: datetime,
    limit: int,
    per_operation_limits: Mapping[str, int] | None,
    task_ids: Sequence[int] | None,
) -> list[Row[Any]]:
    """Due tasks this transaction now holds, oldest first: each account's head, and after it
    the site grants that run alongside it (see `_first_in_line`).

    On PostgreSQL the rows are locked with SKIP LOCKED, so concurrent claimers split the work
    instead of waiting for or duplicating each other.
    """
    # Abandoned: in progress, but the lease ran out (the worker died or hung).
    due = sa.or_(
        sa.and_(tasks.c.state == "new", tasks.c.next_attempt_at <= now),
        sa.and_(tasks.c.state == "in_progress", tasks.c.lease_until < now),
    )
    # Spare candidates, so that a claimer racing another one still fills its batch with the
    # rows the other did not lock.
    spare = min(limit * _SPARE_CANDIDATES, _MAX_SPARE)
    candidates = _first_in_line(
        conn, endpoint_id, now, due, limit + spare, per_operation_limits, task_ids
    )
    if not candidates:
        return []
    # `due` is checked again as the rows are locked: a task another claimer took or finished
    # since the first read is skipped (still locked) or no longer due (committed).
    rows = conn.execute(
        sa.select(tasks)
        .where(tasks.c.id.in_([i for i, _ in candidates]), tasks.c.endpoint_id == endpoint_id, due)
        .order_by(tasks.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    return _in_order(candidates, rows)


def _in_order(candidates: Sequence[tuple[int, str]], rows: Sequence[Row[Any]]) -> list[Row[Any]]:
    """The locked rows that are a prefix of their account's candidates, head included.

    A racing claimer may have locked, taken or finished some of an account's candidates between
    the read and the lock; what is left then is not the account's queue in order. Keeping only
    an unbroken run from the head means two claimers never split one account's tasks.
    """
    locked = {row.id: row for row in rows}
    kept: list[Row[Any]] = []
    broken: set[str] = set()
    for task_id, email in candidates:
        if email in broken:
            continue
        row = locked.get(task_id)
        if row is None:
            broken.add(email)
        else:
            kept.append(row)
    return kept


def _first_in_line(
    conn: Connection,
    endpoint_id: int,
    now: datetime,
    due: sa.ColumnElement[bool],
    limit: int,
    per_operation_limits: Mapping[str, int] | None,
    task_ids: Sequence[int] | None,
) -> list[tuple[int, str]]:
    """(id, email) of due tasks at the front of their account's queue, oldest first.

    An account's tasks run in order: a task may go if it is its account's oldest open task, or
    if it and every older open task of the account are due site grants on different sites (they
    commute: `runs_alongside`), and no task of the account runs under a live lease. Ranked with
    window functions in one pass rather than a correlated NOT EXISTS: without fresh statistics
    (a thousand tasks just queued) PostgreSQL ran that as a nested loop over every pair of tasks.
    """
    account = (tasks.c.email,)
    site = tasks.c.params["value"].as_string()
    grant = sa.and_(
        tasks.c.operation == Operation.ADD_ACCESS.value,
        tasks.c.params["entitlement_type"].as_string() == EntitlementType.SITE.value,
    )
    first_on_site = (
        sa.func.row_number().over(partition_by=(tasks.c.email, site), order_by=tasks.c.id) == 1
    )
    flagged = (
        sa.select(
            tasks.c.id,
            tasks.c.email,
            tasks.c.operation,
            sa.case((due, 1), else_=0).label("due"),
            sa.case((sa.and_(due, grant, first_on_site), 1), else_=0).label("alongside"),
            sa.func.row_number().over(partition_by=account, order_by=tasks.c.id).label("place"),
            sa.func.max(
                sa.case(
                    (sa.and_(tasks.c.state == "in_progress", tasks.c.lease_until >= now), 1),
                    else_=0,
                )
            )
            .over(partition_by=account)
            .label("busy"),
        )
        .where(tasks.c.endpoint_id == endpoint_id, tasks.c.state.in_(OPEN_TASK_STATES))
        .subquery("flagged")
    )
    # `run`: 1 while this task and every older open task of the account may run alongside.
    ranked = sa.select(
        flagged,
        sa.func.min(flagged.c.alongside)
        .over(partition_by=flagged.c.email, order_by=flagged.c.id)
        .label("run"),
    ).subquery("ranked")
    # `busy`: a task of the account runs under a live lease (a retried older task waits too).
    heads = conn.execute(
        sa.select(ranked.c.id, ranked.c.email, ranked.c.operation)
        .where(
            ranked.c.busy == 0,
            sa.or_(sa.and_(ranked.c.place == 1, ranked.c.due == 1), ranked.c.run == 1),
        )
        .order_by(ranked.c.id)
    ).all()
    wanted = None if task_ids is None else set(task_ids)
    limits = dict(per_operation_limits or {})
    taken: dict[str, int] = defaultdict(int)
    picked: list[tuple[int, str]] = []
    # An account whose task is passed over keeps its later tasks back too: they wait in order.
    held_back: set[str] = set()
    for task_id, email, operation in heads:
        if email in held_back:
            continue
        if (wanted is not None and task_id not in wanted) or (
            operation in limits and taken[operation] >= limits[operation]
        ):
            held_back.add(email)
            continue
        taken[operation] += 1
        picked.append((int(task_id), str(email)))
        if len(picked) >= limit:
            break
    return picked


def history_owners(
    changes: Mapping[str, AccountSnapshot | None], task_of: Mapping[str, int]
) -> dict[str, int]:
    """History object keys -> the task behind them: each account's own task (and each link's,
    where `task_of` names it by `link_key`), and for a site or role first seen through several
    accounts, the oldest of their tasks."""
    owners: dict[str, int] = {key: task for key, task in task_of.items() if key not in changes}
    for email in sorted(changes, key=lambda e: task_of[e]):
        task_id = owners[email] = task_of[email]
        snapshot = changes[email]
        if snapshot is not None:
            for site in snapshot.sites:
                owners.setdefault(f"{EntitlementType.SITE.value}:{site}", task_id)
            owners.setdefault(f"{EntitlementType.CORP_ROLE.value}:{snapshot.role}", task_id)
    return owners


def apply_account_changes(
    conn: Connection,
    endpoint_id: int,
    changes: Mapping[str, AccountSnapshot | None],
    *,
    task_of: Mapping[str, int],
    now: datetime,
) -> None:
    """Bring just these accounts up to date; None means the account is gone from the target.

    `task_of` names, for each email, the task whose outcome this is (for the history).
    """
    # Holding the endpoint row serialises this with imports and other tasks of the endpoint, so
    # the version read here is still current when `apply_diff` bumps it.
    conn.execute(
        sa.select(endpoints.c.version)
        .where(endpoints.c.id == endpoint_id)
        .with_for_update(key_share=True)  # see journal._lock_heads: no deadlock with FK checks
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
        task_of=history_owners(changes, task_of),
    )


def check_finishes(finishes: Sequence[TaskFinish]) -> list[int]:
    """The task ids of a batch of finishes, once each state and id is known to be sound."""
    ids = [f.task_id for f in finishes]
    for finish in finishes:
        if finish.state not in FINAL_TASK_STATES:
            raise InvalidInputError(
                f"a task finishes as one of {', '.join(FINAL_TASK_STATES)}, not {finish.state!r}"
            )
    if len(set(ids)) != len(ids):
        raise InvalidInputError(f"a batch finishes each task once; got task ids {ids}")
    return ids


def changes_by_endpoint(
    held: Sequence[tuple[TaskFinish, Row[Any]]],
) -> tuple[dict[int, dict[str, AccountSnapshot | None]], dict[int, dict[str, int]]]:
    """The batch's account changes per endpoint id, and which task made each.

    Several tasks may change one account in a batch only if they report the same outcome
    (site grants that ran side by side, read back together); the account's history then names
    the newest of them, and each link the grant that added it.
    """
    changes: dict[int, dict[str, AccountSnapshot | None]] = defaultdict(dict)
    task_of: dict[int, dict[str, int]] = defaultdict(dict)
    for finish, row in held:
        for email, snapshot in (finish.account_changes or {}).items():
            owner = task_of[row.endpoint_id].get(email)
            if owner is not None and changes[row.endpoint_id][email] != snapshot:
                raise InvalidInputError(
                    f"account {email!r} is changed by tasks {owner} and {row.id} in one batch "
                    "with different outcomes; finish them one after the other"
                )
            changes[row.endpoint_id][email] = snapshot
            task_of[row.endpoint_id][email] = max(row.id, owner or 0)
            params = row.params or {}
            if runs_alongside(row.operation, params):
                key = link_key(email, EntitlementType.SITE.value, str(params.get("value")))
                task_of[row.endpoint_id][key] = row.id
    return changes, task_of


def _now() -> datetime:
    return datetime.now(UTC)


class Tasks:
    """Provisioning tasks: new -> in_progress (leased) -> a final state, or back to new.

    PostgreSQL lets several worker processes claim concurrently (SKIP LOCKED); on SQLite every
    write takes the database's write lock, so claims are serialised: run one writer there.
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(
        self,
        endpoint: str,
        operation: str,
        email: str,
        params: Mapping[str, Any],
        *,
        request_id: str | None = None,
        requester: str | None = None,
        justification: str | None = None,
        max_attempts: int = 10,
        now: datetime | None = None,
    ) -> TaskRecord:
        """Queue a task (state `new`, due now) and journal it as `requested`, atomically."""
        check_operation(operation)
        email = normalize_email(email)
        refuse_secrets(params, "params")
        stored_params = plain_json(params, "task params")
        if max_attempts < 1:
            raise InvalidInputError("max_attempts must be at least 1")
        now = now or _now()
        request_id = request_id or uuid.uuid4().hex
        with self._db.write() as conn:
            endpoint_id = find_endpoint_id(conn, endpoint)
            task_id = conn.execute(
                tasks.insert().returning(tasks.c.id),
                {
                    "endpoint_id": endpoint_id,
                    "operation": operation,
                    "email": email,
                    "params": stored_params,
                    "state": "new",
                    "attempts": 0,
                    "max_attempts": max_attempts,
                    "next_attempt_at": now,
                    "request_id": request_id,
                    "requester": requester,
                    "justification": justification,
                    "created_at": now,
                    "updated_at": now,
                    "write_sent": False,
                },
            ).scalar_one()
            entry = JournalEntry(
                endpoint=endpoint,
                kind="requested",
                task_id=task_id,
                request_id=request_id,
                operation=operation,
                target=email,
                attempt=0,
                state_after="new",
                detail={
                    "params": stored_params,
                    "requester": requester,
                    "justification": justification,
                },
            )
            insert_journal(conn, [entry], now)
            return task_record(task_row(conn, task_id))

    def statistics(self) -> builtins.list[tuple[str, str, int, int]]:
        """(state, operation, tasks, attempts) for every pair that has tasks."""
        query = sa.select(
            tasks.c.state,
            tasks.c.operation,
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(tasks.c.attempts), 0),
        ).group_by(tasks.c.state, tasks.c.operation)
        with self._db.read() as conn:
            return [(str(s), str(o), int(n), int(a)) for s, o, n, a in conn.execute(query)]

    def due_endpoints(self, now: datetime) -> builtins.list[str]:
        """Names of the endpoints with a task a worker could claim now."""
        due = sa.or_(
            sa.and_(tasks.c.state == "new", tasks.c.next_attempt_at <= now),
            sa.and_(tasks.c.state == "in_progress", tasks.c.lease_until < now),
        )
        query = (
            sa.select(endpoints.c.name)
            .join(tasks, tasks.c.endpoint_id == endpoints.c.id)
            .where(due, endpoints.c.retired_at.is_(None))
            .distinct()
            .order_by(endpoints.c.name)
        )
        with self._db.read() as conn:
            return [str(name) for (name,) in conn.execute(query)]

    def get(self, task_id: int) -> TaskRecord:
        with self._db.read() as conn:
            return task_record(task_row(conn, task_id))

    def list(
        self,
        *,
        endpoint: str | None = None,
        state: str | Sequence[str] | None = None,
        email: str | None = None,
        request_id: str | None = None,
        limit: int | None = None,
    ) -> builtins.list[TaskRecord]:
        """Tasks by id (oldest first); `state` may be one state or several."""
        query = tasks_query().order_by(tasks.c.id)
        if endpoint is not None:
            query = query.where(endpoints.c.name == endpoint)
        if state is not None:
            states = [state] if isinstance(state, str) else list(state)
            check_states(states)
            query = query.where(tasks.c.state.in_(states))
        if email is not None:
            query = query.where(tasks.c.email == email_key(email))
        if request_id is not None:
            query = query.where(tasks.c.request_id == request_id)
        if limit is not None:
            query = query.limit(limit)
        with self._db.read() as conn:
            return [task_record(row) for row in conn.execute(query)]

    def claim(
        self,
        endpoint: str,
        *,
        worker: str,
        now: datetime,
        lease_seconds: float,
        limit: int,
        per_operation_limits: Mapping[str, int] | None = None,
        task_ids: Sequence[int] | None = None,
    ) -> builtins.list[TaskRecord]:
        """Lease up to `limit` due tasks to `worker`, oldest first, and journal each as `claimed`.

        Due: `new` and past `next_attempt_at`, or `in_progress` with an expired lease (its worker
        died). A task waits while an older task of its account is open or another task of its
        account is running, so one account's tasks run in order and one at a time. At most
        `per_operation_limits[op]` tasks of an operation are claimed in this call. `worker` must
        be unique per worker process: leases are checked by it.
        """
        if limit < 1:
            return []
        for operation in per_operation_limits or {}:
            check_operation(operation)
        until = now + timedelta(seconds=lease_seconds)
        with self._db.write() as conn:
            endpoint_id = find_endpoint_id(conn, endpoint)
            rows = claimable(
                conn,
                endpoint_id,
                now=now,
                limit=limit,
                per_operation_limits=per_operation_limits,
                task_ids=task_ids,
            )
            if not rows:
                return []
            ids = [row.id for row in rows]
            conn.execute(
                tasks.update()
                .where(tasks.c.id.in_(ids))
                .values(
                    state="in_progress",
                    lease_owner=worker,
                    lease_until=until,
                    attempts=tasks.c.attempts + 1,
                    updated_at=now,
                )
            )
            entries = []
            for row in rows:
                detail: dict[str, Any] = {"worker": worker, "lease_until": iso(until)}
                if row.state == "in_progress":
                    detail["reclaimed_from"] = row.lease_owner
                entries.append(
                    JournalEntry(
                        endpoint=endpoint,
                        kind="claimed",
                        task_id=row.id,
                        request_id=row.request_id,
                        operation=row.operation,
                        target=row.email,
                        attempt=row.attempts + 1,
                        state_before=row.state,
                        state_after="in_progress",
                        detail=detail,
                        at=now,
                    )
                )
            insert_journal(conn, entries, now)
            claimed = conn.execute(tasks_query().where(tasks.c.id.in_(ids)).order_by(tasks.c.id))
            return [task_record(row) for row in claimed]

    def extend_lease(
        self, task_id: int, *, worker: str, now: datetime, lease_seconds: float
    ) -> TaskRecord:
        """Keep a long task leased; `LeaseLostError` if `worker` no longer holds it."""
        with self._db.write() as conn:
            held_task(conn, task_id, worker)
            conn.execute(
                tasks.update()
                .where(tasks.c.id == task_id)
                .values(lease_until=now + timedelta(seconds=lease_seconds), updated_at=now)
            )
            return task_record(task_row(conn, task_id))

    def record_intent(self, task_id: int, *, worker: str, entry: JournalEntry) -> TaskRecord:
        """Say a write is about to be sent (sets `write_sent`) and journal it, atomically.

        Call it before every write to the target: if the attempt then dies without an answer,
        the next attempt knows it must re-read the target rather than assume nothing happened.
        """
        if entry.kind != "intent":
            raise InvalidInputError(f"record_intent journals an intent, not {entry.kind!r}")
        self.record_intents({task_id: [entry]}, worker=worker)
        return self.get(task_id)

    def record_intents(self, lines: Mapping[int, Sequence[JournalEntry]], *, worker: str) -> None:
        """`record_intent` for several tasks that share one write, in one transaction.

        Each task's lines are its intents, optionally after a `snapshot` of what the account
        held. All or nothing: if `worker` lost the lease of any task, `LeaseLostError`.
        """
        for task_id, entries in lines.items():
            kinds = {entry.kind for entry in entries}
            other = sorted(kinds - {"intent", "snapshot"})
            if other:
                raise InvalidInputError(
                    f"record_intents journals intents and snapshots, not {other[0]!r} "
                    f"(task {task_id})"
                )
            if "intent" not in kinds:
                raise InvalidInputError(f"record_intents got no intent for task {task_id}")
        if not lines:
            return
        with self._db.write() as conn:
            rows = locked_tasks(conn, list(lines))
            for row in rows.values():
                problem = lease_problem(row, worker)
                if problem is not None:
                    raise LeaseLostError(problem)
            now = _now()
            insert_journal(
                conn,
                [for_task(entry, rows[task_id]) for task_id, es in lines.items() for entry in es],
                now,
            )
            conn.execute(
                tasks.update()
                .where(tasks.c.id.in_(list(rows)))
                .values(write_sent=True, updated_at=now)
            )

    def finish(
        self,
        task_id: int,
        *,
        worker: str,
        state: TaskState | str,
        error: str | None = None,
        journal: Sequence[JournalEntry] = (),
        account_changes: Mapping[str, AccountSnapshot | None] | None = None,
        now: datetime | None = None,
    ) -> TaskRecord:
        """End a leased task, journal it, and update the accounts it changed, in one transaction.

        `account_changes` maps email to what the target now holds (None: the account is gone,
        so it is suspended and loses its links, as an import would do). Only those accounts are
        read and diffed; the change is recorded in the history with this task's id and bumps
        the endpoint version, so a held import diffed before cannot be approved after.
        """
        finish = TaskFinish(
            task_id=task_id,
            state=state,
            error=error,
            journal=journal,
            account_changes=account_changes,
        )
        result = self.finish_many([finish], worker=worker, now=now)
        if result.lost:
            raise LeaseLostError(result.lost[0])
        return result.finished[0]

    def finish_many(
        self, finishes: Sequence[TaskFinish], *, worker: str, now: datetime | None = None
    ) -> FinishResult:
        """`finish` for a batch of tasks, in one transaction and a fixed number of statements.

        A task `worker` no longer holds is left as it is and named in `lost`; the rest end
        together or, on any error, none of them does. Two finishes changing the same account
        in one batch are refused: their order would be lost.
        """
        ids = check_finishes(finishes)
        if not finishes:
            return FinishResult([], [])
        now = now or _now()
        with self._db.write() as conn:
            rows = locked_tasks(conn, ids)
            held: builtins.list[tuple[TaskFinish, Row[Any]]] = []
            lost: builtins.list[str] = []
            for finish in finishes:
                row = rows[finish.task_id]
                problem = lease_problem(row, worker)
                if problem is None:
                    held.append((finish, row))
                else:
                    lost.append(problem)
            if not held:
                return FinishResult([], lost)
            changes, task_of = changes_by_endpoint(held)
            if changes:
                # Take the endpoint rows before the journal insert's foreign-key share lock
                # does: two workers each holding that share lock and waiting to upgrade it
                # deadlock.
                conn.execute(
                    sa.select(endpoints.c.id)
                    .where(endpoints.c.id.in_(sorted(changes)))
                    .order_by(endpoints.c.id)
                    .with_for_update()
                ).all()
            entries: builtins.list[JournalEntry] = []
            for finish, row in held:
                entries.extend(for_task(entry, row) for entry in finish.journal)
                entries.append(state_entry(row, finish.state, error=finish.error))
            # One UPDATE per outcome (usually one for the whole batch), not one per task.
            outcomes: dict[tuple[str, str | None], builtins.list[int]] = defaultdict(list)
            for finish, row in held:
                outcomes[(str(finish.state), finish.error)].append(row.id)
            for (state, error), task_ids in outcomes.items():
                conn.execute(
                    tasks.update()
                    .where(tasks.c.id.in_(task_ids))
                    .values(
                        state=state,
                        last_error=error,
                        finished_at=now,
                        updated_at=now,
                        next_attempt_at=None,
                        lease_owner=None,
                        lease_until=None,
                    )
                )
            insert_journal(conn, entries, now)
            for endpoint_id, accounts_changed in changes.items():
                apply_account_changes(
                    conn, endpoint_id, accounts_changed, task_of=task_of[endpoint_id], now=now
                )
            finished = conn.execute(
                tasks_query()
                .where(tasks.c.id.in_([row.id for _, row in held]))
                .order_by(tasks.c.id)
            )
            return FinishResult([task_record(row) for row in finished], lost)

    def reschedule(
        self,
        task_id: int,
        *,
        worker: str,
        error: str,
        next_attempt_at: datetime,
        journal: Sequence[JournalEntry] = (),
        now: datetime | None = None,
    ) -> TaskRecord:
        """Give a leased task back for a later attempt, or fail it once it used `max_attempts`."""
        now = now or _now()
        with self._db.write() as conn:
            row = held_task(conn, task_id, worker)
            exhausted = row.attempts >= row.max_attempts
            after = "failed" if exhausted else "new"
            detail = (
                {"reason": f"{row.attempts} of {row.max_attempts} attempts used"}
                if exhausted
                else {"next_attempt_at": iso(next_attempt_at)}
            )
            entries = [for_task(entry, row) for entry in journal]
            entries.append(state_entry(row, after, error=error, detail=detail))
            conn.execute(
                tasks.update()
                .where(tasks.c.id == task_id)
                .values(
                    state=after,
                    next_attempt_at=None if exhausted else next_attempt_at,
                    finished_at=now if exhausted else None,
                    last_error=error,
                    updated_at=now,
                    lease_owner=None,
                    lease_until=None,
                )
            )
            insert_journal(conn, entries, now)
            return task_record(task_row(conn, task_id))

    def release(
        self, worker: str, *, now: datetime | None = None, reason: str = "worker stopped"
    ) -> builtins.list[int]:
        """Give back, due at once, every task `worker` still holds (it is stopping); their ids.

        The attempt is not counted against the task: it was interrupted, not failed. The next
        attempt re-reads the account, so a write that did go out is not sent twice.
        """
        now = now or _now()
        with self._db.write() as conn:
            rows = conn.execute(
                tasks_query()
                .where(tasks.c.lease_owner == worker, tasks.c.state == "in_progress")
                .with_for_update(of=tasks)
            ).all()
            for row in rows:
                conn.execute(
                    tasks.update()
                    .where(tasks.c.id == row.id)
                    .values(
                        state="new",
                        attempts=sa.func.max(tasks.c.attempts - 1, 0)
                        if conn.dialect.name == "sqlite"
                        else sa.func.greatest(tasks.c.attempts - 1, 0),
                        next_attempt_at=now,
                        updated_at=now,
                        lease_owner=None,
                        lease_until=None,
                    )
                )
            entries = [
                state_entry(row, "new", kind="note", detail={"action": "release", "reason": reason})
                for row in rows
            ]
            insert_journal(conn, entries, now)
            return [int(row.id) for row in rows]

    def retry(self, task_id: int, *, now: datetime | None = None) -> TaskRecord:
        """Put a failed or discontinued task back in the queue with a fresh attempt budget."""
        now = now or _now()
        with self._db.write() as conn:
            row = task_row(conn, task_id, lock=True)
            if row.state not in ("failed", "discontinued"):
                raise TaskStateError(
                    f"task {task_id} is {row.state}; only failed or discontinued tasks can be "
                    "retried"
                )
            conn.execute(
                tasks.update()
                .where(tasks.c.id == task_id)
                .values(
                    state="new",
                    attempts=0,
                    next_attempt_at=now,
                    finished_at=None,
                    updated_at=now,
                    lease_owner=None,
                    lease_until=None,
                )
            )
            entry = state_entry(row, "new", kind="note", detail={"action": "retry"}, attempt=0)
            insert_journal(conn, [entry], now)
            return task_record(task_row(conn, task_id))

    def discontinue(
        self, task_id: int, *, reason: str | None = None, now: datetime | None = None
    ) -> TaskRecord:
        """Stop a task that is new, failed or in progress (its worker then loses the lease)."""
        now = now or _now()
        with self._db.write() as conn:
            row = task_row(conn, task_id, lock=True)
            if row.state not in ("new", "failed", "in_progress"):
                raise TaskStateError(
                    f"task {task_id} is {row.state}; only new, failed or in-progress tasks can "
                    "be discontinued"
                )
            conn.execute(
                tasks.update()
                .where(tasks.c.id == task_id)
                .values(
                    state="discontinued",
                    finished_at=now,
                    updated_at=now,
                    next_attempt_at=None,
                    lease_owner=None,
                    lease_until=None,
                )
            )
            detail = {"reason": reason} if reason else None
            insert_journal(conn, [state_entry(row, "discontinued", detail=detail)], now)
            return task_record(task_row(conn, task_id))

    def last_removed_access(self, endpoint: str, email: str) -> dict[str, Any] | None:
        """What the newest `remove_account` task saw the account hold before deleting it.

        The `detail` of that task's `snapshot` line (role, sites, name), for `restore`.
        """
        with self._db.read() as conn:
            endpoint_id = find_endpoint_id(conn, endpoint)
            detail = conn.execute(
                sa.select(journal.c.detail)
                .where(
                    journal.c.endpoint_id == endpoint_id,
                    journal.c.target == email_key(email),
                    journal.c.kind == "snapshot",
                    journal.c.operation == "remove_account",
                )
                .order_by(journal.c.id.desc())
                .limit(1)
            ).scalar_one_or_none()
        return dict(detail) if detail is not None else None
