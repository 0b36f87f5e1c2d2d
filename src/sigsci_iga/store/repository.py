"""The repository: endpoints, import runs, applying diffs, and the queries the CLI shows."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.exc import IntegrityError

from sigsci_iga.domain.diff import Diff
from sigsci_iga.domain.model import (
    AccountSnapshot,
    EntitlementStatus,
    EntitlementType,
    RepositoryView,
    iso,
)
from sigsci_iga.errors import InvalidInputError
from sigsci_iga.store import identities as identity_store
from sigsci_iga.store import tasks as task_store
from sigsci_iga.store.apply import apply_diff, ensure_types
from sigsci_iga.store.db import WRITE_LOCK
from sigsci_iga.store.errors import RecordNotFoundError, RunStateError, TaskStateError
from sigsci_iga.store.records import (
    AccountRecord,
    Checkpoint,
    CorrelationResult,
    EndpointInfo,
    EntitlementRecord,
    HistoryRecord,
    IdentityLoadResult,
    IdentityRecord,
    JournalEntry,
    JournalRecord,
    RunRecord,
    TaskRecord,
)
from sigsci_iga.store.tables import (
    CONNECTOR_KINDS,
    FINAL_TASK_STATES,
    account_entitlements,
    accounts,
    endpoints,
    entitlement_types,
    entitlement_values,
    history,
    identities,
    import_runs,
    tasks,
)
from sigsci_iga.store.tables import journal as journal_table
from sigsci_iga.store.tasks import SECRET_MARKERS
from sigsci_iga.store.view import load_view

RunMode = Literal["full", "incremental"]
FinalTaskState = Literal["completed", "no_action_required", "failed", "discontinued"]
# Substrings of setting names that would hold a secret; such settings are refused, not stored.
_SECRET_MARKERS = SECRET_MARKERS


def _now() -> datetime:
    return datetime.now(UTC)


def _refuse_secrets(settings: Mapping[str, Any], path: str = "settings") -> None:
    for key, value in settings.items():
        lowered = str(key).lower()
        if any(marker in lowered for marker in _SECRET_MARKERS):
            raise InvalidInputError(
                f"{path}.{key}: secrets are never stored in the repository; "
                "pass them through the environment instead"
            )
        if isinstance(value, Mapping):
            _refuse_secrets(value, f"{path}.{key}")


class Repository:
    """All repository access; every method runs in its own transaction and returns plain data."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @property
    def engine(self) -> Engine:
        return self._engine

    def close(self) -> None:
        """Release pooled connections."""
        self._engine.dispose()

    def __enter__(self) -> Repository:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with (
            self._engine.connect().execution_options(**{WRITE_LOCK: True}) as conn,
            conn.begin(),
        ):
            yield conn

    # -- endpoints ---------------------------------------------------------------------------

    def add_endpoint(
        self,
        name: str,
        *,
        corp: str,
        api_url: str,
        email: str | None = None,
        connector: str = "signalsciences",
        settings: Mapping[str, Any] | None = None,
    ) -> EndpointInfo:
        """Register a governed corp; `settings` must hold no secrets (refused if they look so)."""
        if not name.strip():
            raise InvalidInputError("endpoint name must not be empty")
        if connector not in CONNECTOR_KINDS:
            raise InvalidInputError(
                f"connector {connector!r} is not one of {', '.join(CONNECTOR_KINDS)}"
            )
        _refuse_secrets(settings or {})
        try:
            with self._write() as conn:
                endpoint_id = conn.execute(
                    endpoints.insert().returning(endpoints.c.id),
                    {
                        "name": name,
                        "connector": connector,
                        "api_url": api_url,
                        "corp": corp,
                        "email": email,
                        "settings": dict(settings or {}),
                        "checkpoint_event_ids": [],
                        "version": 0,
                        "created_at": _now(),
                    },
                ).scalar_one()
                ensure_types(conn, endpoint_id)
        except IntegrityError as exc:
            raise InvalidInputError(f"endpoint {name!r} already exists") from exc
        return self.get_endpoint(name)

    def update_endpoint(
        self,
        name: str,
        *,
        api_url: str | None = None,
        email: str | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> EndpointInfo:
        """Change connection details; arguments left as None keep their value."""
        values: dict[str, Any] = {}
        if api_url is not None:
            values["api_url"] = api_url
        if email is not None:
            values["email"] = email
        if settings is not None:
            _refuse_secrets(settings)
            values["settings"] = dict(settings)
        if values:
            with self._write() as conn:
                endpoint_id = self._endpoint_id(conn, name)
                conn.execute(endpoints.update().where(endpoints.c.id == endpoint_id).values(values))
        return self.get_endpoint(name)

    def get_endpoint(self, name: str) -> EndpointInfo:
        with self._read() as conn:
            row = conn.execute(sa.select(endpoints).where(endpoints.c.name == name)).first()
        if row is None:
            raise RecordNotFoundError(f"endpoint {name!r} is not registered")
        return _endpoint_info(row)

    def list_endpoints(self) -> list[EndpointInfo]:
        with self._read() as conn:
            rows = conn.execute(sa.select(endpoints).order_by(endpoints.c.name)).all()
        return [_endpoint_info(row) for row in rows]

    def set_checkpoint(self, name: str, checkpoint: Checkpoint) -> None:
        """Record where the next incremental import starts."""
        with self._write() as conn:
            _write_checkpoint(conn, self._endpoint_id(conn, name), checkpoint)

    @staticmethod
    def _endpoint_id(conn: Connection, name: str) -> int:
        endpoint_id = conn.execute(
            sa.select(endpoints.c.id).where(endpoints.c.name == name)
        ).scalar_one_or_none()
        if endpoint_id is None:
            raise RecordNotFoundError(f"endpoint {name!r} is not registered")
        return int(endpoint_id)

    # -- import runs -------------------------------------------------------------------------

    def load_view(self, endpoint: str) -> RepositoryView:
        """The endpoint's current state for `compute_diff`, read as one consistent snapshot."""
        # Several statements must see one snapshot, not READ COMMITTED's moving one; SQLite's
        # transactions are serializable already.
        options = (
            {} if self._engine.dialect.name == "sqlite" else {"isolation_level": "REPEATABLE READ"}
        )
        with self._engine.connect().execution_options(**options) as conn, conn.begin():
            return load_view(conn, self._endpoint_id(conn, endpoint))

    def start_run(self, endpoint: str, *, mode: RunMode = "full", dry_run: bool = False) -> int:
        """Record a run as `running`; returns its id."""
        with self._write() as conn:
            endpoint_id = self._endpoint_id(conn, endpoint)
            run_id = conn.execute(
                import_runs.insert().returning(import_runs.c.id),
                {
                    "endpoint_id": endpoint_id,
                    "mode": mode,
                    "dry_run": dry_run,
                    "status": "running",
                    "started_at": _now(),
                },
            ).scalar_one()
        return int(run_id)

    def finish_run(
        self,
        run_id: int,
        *,
        status: Literal["succeeded", "failed"],
        counts: Mapping[str, Any] | None = None,
        reason: str | None = None,
    ) -> RunRecord:
        """End a running run without applying anything (a dry run, or a failure)."""
        with self._write() as conn:
            self._running(conn, run_id)
            conn.execute(
                import_runs.update()
                .where(import_runs.c.id == run_id)
                .values(status=status, finished_at=_now(), counts=_counts(counts), reason=reason)
            )
        return self.get_run(run_id)

    def hold_run(
        self, run_id: int, *, diff: Diff, base_version: int, reasons: list[str]
    ) -> RunRecord:
        """Store the diff of a run that exceeded thresholds; `approve_run` may apply it later."""
        with self._write() as conn:
            self._running(conn, run_id)
            conn.execute(
                import_runs.update()
                .where(import_runs.c.id == run_id)
                .values(
                    status="held",
                    finished_at=_now(),
                    counts=diff.summary(),
                    reason="; ".join(reasons),
                    diff=diff.to_json(),
                    base_version=base_version,
                )
            )
        return self.get_run(run_id)

    def apply_run(
        self,
        run_id: int,
        diff: Diff,
        *,
        base_version: int,
        checkpoint: Checkpoint | None = None,
    ) -> RunRecord:
        """Apply `diff` and mark the run succeeded, atomically; the checkpoint moves with it.

        Raises `RepositoryChangedError` if the endpoint is no longer at `base_version`.
        """
        with self._write() as conn:
            endpoint_id = self._running(conn, run_id)
            now = _now()
            version = apply_diff(
                conn, endpoint_id, diff, run_id=run_id, expected_version=base_version, now=now
            )
            if checkpoint is not None:
                _write_checkpoint(conn, endpoint_id, checkpoint)
            conn.execute(
                import_runs.update()
                .where(import_runs.c.id == run_id)
                .values(
                    status="succeeded",
                    finished_at=now,
                    counts=diff.summary(),
                    base_version=base_version,
                    applied_version=version,
                )
            )
        return self.get_run(run_id)

    def approve_run(self, run_id: int) -> RunRecord:
        """Apply exactly the held diff, if the repository is still at the version it was diffed on.

        Raises `RepositoryChangedError` otherwise (the run stays held; import again instead).
        """
        with self._write() as conn:
            row = self._run_row(conn, run_id)
            if row.status != "held" or row.diff is None or row.base_version is None:
                raise RunStateError(f"run {run_id} is {row.status}, only held runs can be approved")
            diff = Diff.from_json(row.diff)
            now = _now()
            version = apply_diff(
                conn,
                row.endpoint_id,
                diff,
                run_id=run_id,
                expected_version=row.base_version,
                now=now,
            )
            conn.execute(
                import_runs.update()
                .where(import_runs.c.id == run_id)
                .values(status="approved", finished_at=now, applied_version=version)
            )
        return self.get_run(run_id)

    def refuse_run(self, run_id: int, reason: str | None = None) -> RunRecord:
        """Discard a held run; its diff is kept for the record but can no longer be applied."""
        with self._write() as conn:
            row = self._run_row(conn, run_id)
            if row.status != "held":
                raise RunStateError(f"run {run_id} is {row.status}, only held runs can be refused")
            values: dict[str, Any] = {"status": "refused", "finished_at": _now()}
            if reason:
                values["reason"] = f"{row.reason}; refused: {reason}" if row.reason else reason
            conn.execute(import_runs.update().where(import_runs.c.id == run_id).values(values))
        return self.get_run(run_id)

    def get_run(self, run_id: int) -> RunRecord:
        with self._read() as conn:
            rows = conn.execute(_runs_query().where(import_runs.c.id == run_id)).all()
        if not rows:
            raise RecordNotFoundError(f"import run {run_id} does not exist")
        return _run_record(rows[0])

    def get_run_diff(self, run_id: int) -> Diff | None:
        """The diff stored with a held (or since approved/refused) run."""
        with self._read() as conn:
            row = self._run_row(conn, run_id)
        return Diff.from_json(row.diff) if row.diff is not None else None

    def list_runs(self, endpoint: str | None = None, *, limit: int = 50) -> list[RunRecord]:
        """Newest first."""
        query = _runs_query().order_by(import_runs.c.id.desc()).limit(limit)
        if endpoint is not None:
            query = query.where(endpoints.c.name == endpoint)
        with self._read() as conn:
            return [_run_record(row) for row in conn.execute(query)]

    def _run_row(self, conn: Connection, run_id: int) -> Row[Any]:
        row = conn.execute(sa.select(import_runs).where(import_runs.c.id == run_id)).first()
        if row is None:
            raise RecordNotFoundError(f"import run {run_id} does not exist")
        return row

    def _running(self, conn: Connection, run_id: int) -> int:
        row = self._run_row(conn, run_id)
        if row.status != "running":
            raise RunStateError(f"run {run_id} is already {row.status}")
        return int(row.endpoint_id)

    # -- identities and correlation ----------------------------------------------------------

    def load_identities(self, path: str | Path) -> IdentityLoadResult:
        """Upsert identities from a CSV or JSON file, all or nothing."""
        records = identity_store.read_identities(path)
        with self._write() as conn:
            return identity_store.upsert_identities(conn, records, now=_now())

    def list_identities(self) -> list[IdentityRecord]:
        with self._read() as conn:
            return identity_store.list_identities(conn)

    def correlate(
        self, endpoint: str, rule: identity_store.CorrelationRule | str = "email"
    ) -> CorrelationResult:
        """(Re)link every account of `endpoint` to the identity the rule picks, or to none."""
        chosen = identity_store.correlation_rule(rule) if isinstance(rule, str) else rule
        with self._write() as conn:
            return identity_store.correlate(conn, self._endpoint_id(conn, endpoint), chosen)

    def unmatched_accounts(self, endpoint: str) -> list[AccountRecord]:
        """Accounts not linked to any identity (suspended ones included)."""
        return self.list_accounts(endpoint, correlated=False)

    # -- queries for the CLI -----------------------------------------------------------------

    def list_accounts(
        self,
        endpoint: str,
        *,
        site: str | None = None,
        role: str | None = None,
        status: str | None = None,
        correlated: bool | None = None,
    ) -> list[AccountRecord]:
        """Accounts sorted by email, each with its sorted active sites and identity username."""
        filters: list[sa.ColumnElement[bool]] = []
        if role is not None:
            filters.append(accounts.c.role == role)
        if status is not None:
            filters.append(accounts.c.status == status)
        if correlated is not None:
            filters.append(
                accounts.c.identity_id.is_not(None)
                if correlated
                else accounts.c.identity_id.is_(None)
            )
        with self._read() as conn:
            endpoint_id = self._endpoint_id(conn, endpoint)
            if site is not None:
                filters.append(
                    accounts.c.id.in_(_holders(endpoint_id, EntitlementType.SITE.value, site))
                )
            return _account_records(conn, endpoint, endpoint_id, filters)

    def get_account(self, endpoint: str, email: str) -> AccountRecord:
        """One account by email (case-insensitive)."""
        with self._read() as conn:
            endpoint_id = self._endpoint_id(conn, endpoint)
            wanted = [sa.func.lower(accounts.c.email) == email.strip().lower()]
            found = _account_records(conn, endpoint, endpoint_id, wanted)
        if not found:
            raise RecordNotFoundError(f"account {email!r} is not in endpoint {endpoint!r}")
        return found[0]

    def list_entitlements(
        self, endpoint: str, *, type: str | None = None, status: str | None = None
    ) -> list[EntitlementRecord]:
        """Entitlement values sorted by type and value, with how many accounts hold each."""
        holders = (
            sa.select(
                account_entitlements.c.value_id,
                sa.func.count().label("n"),
            )
            .group_by(account_entitlements.c.value_id)
            .subquery()
        )
        with self._read() as conn:
            endpoint_id = self._endpoint_id(conn, endpoint)
            query = (
                sa.select(
                    entitlement_types.c.name,
                    entitlement_values.c.value,
                    entitlement_values.c.display_name,
                    entitlement_values.c.status,
                    sa.func.coalesce(holders.c.n, 0),
                )
                .join(entitlement_types, entitlement_types.c.id == entitlement_values.c.type_id)
                .outerjoin(holders, holders.c.value_id == entitlement_values.c.id)
                .where(entitlement_types.c.endpoint_id == endpoint_id)
                .order_by(entitlement_types.c.name, entitlement_values.c.value)
            )
            if type is not None:
                query = query.where(entitlement_types.c.name == type)
            if status is not None:
                query = query.where(entitlement_values.c.status == status)
            return [
                EntitlementRecord(endpoint, t, v, d, s, int(n))
                for t, v, d, s, n in conn.execute(query)
            ]

    def list_history(
        self,
        *,
        endpoint: str | None = None,
        run_id: int | None = None,
        object_type: str | None = None,
        object_key: str | None = None,
        limit: int | None = 1000,
        task_id: int | None = None,
    ) -> list[HistoryRecord]:
        """Recorded changes, newest first."""
        query = (
            sa.select(history, endpoints.c.name.label("endpoint_name"))
            .outerjoin(endpoints, endpoints.c.id == history.c.endpoint_id)
            .order_by(history.c.id.desc())
        )
        if endpoint is not None:
            query = query.where(endpoints.c.name == endpoint)
        if run_id is not None:
            query = query.where(history.c.run_id == run_id)
        if object_type is not None:
            query = query.where(history.c.object_type == object_type)
        if object_key is not None:
            query = query.where(history.c.object_key == object_key)
        if task_id is not None:
            query = query.where(history.c.task_id == task_id)
        if limit is not None:
            query = query.limit(limit)
        with self._read() as conn:
            return [
                HistoryRecord(
                    id=row.id,
                    run_id=row.run_id,
                    endpoint=row.endpoint_name,
                    object_type=row.object_type,
                    object_key=row.object_key,
                    field=row.field,
                    old_value=_load(row.old_value),
                    new_value=_load(row.new_value),
                    changed_at=row.changed_at,
                    task_id=row.task_id,
                )
                for row in conn.execute(query)
            ]

    def account_state(self, endpoint: str, email: str) -> AccountRecord | None:
        """One account by email (case-insensitive), or None if the repository does not hold it."""
        with self._read() as conn:
            endpoint_id = self._endpoint_id(conn, endpoint)
            wanted = [sa.func.lower(accounts.c.email) == email.strip().lower()]
            found = _account_records(conn, endpoint, endpoint_id, wanted)
        return found[0] if found else None

    # -- provisioning tasks ------------------------------------------------------------------
    #
    # A task runs new -> in_progress (claimed under a lease) -> completed / no_action_required /
    # failed / discontinued, or back to new when rescheduled. PostgreSQL lets several worker
    # processes claim concurrently (SKIP LOCKED); on SQLite every write takes the database's
    # write lock, so claims are serialised: run one writer there.

    def create_task(
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
        task_store.check_operation(operation)
        email = task_store.normalize_email(email)
        task_store.refuse_secrets(params, "params")
        stored_params = task_store.plain_json(params, "task params")
        if max_attempts < 1:
            raise InvalidInputError("max_attempts must be at least 1")
        now = now or _now()
        request_id = request_id or uuid.uuid4().hex
        with self._write() as conn:
            endpoint_id = self._endpoint_id(conn, endpoint)
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
            task_store.insert_journal(conn, [entry], now)
            return task_store.task_record(task_store.task_row(conn, task_id))

    def get_task(self, task_id: int) -> TaskRecord:
        with self._read() as conn:
            return task_store.task_record(task_store.task_row(conn, task_id))

    def list_tasks(
        self,
        *,
        endpoint: str | None = None,
        state: str | Sequence[str] | None = None,
        email: str | None = None,
        request_id: str | None = None,
        limit: int | None = None,
    ) -> list[TaskRecord]:
        """Tasks by id (oldest first); `state` may be one state or several."""
        query = task_store.tasks_query().order_by(tasks.c.id)
        if endpoint is not None:
            query = query.where(endpoints.c.name == endpoint)
        if state is not None:
            states = [state] if isinstance(state, str) else list(state)
            task_store.check_states(states)
            query = query.where(tasks.c.state.in_(states))
        if email is not None:
            query = query.where(tasks.c.email == email.strip().lower())
        if request_id is not None:
            query = query.where(tasks.c.request_id == request_id)
        if limit is not None:
            query = query.limit(limit)
        with self._read() as conn:
            return [task_store.task_record(row) for row in conn.execute(query)]

    def claim_tasks(
        self,
        endpoint: str,
        *,
        worker: str,
        now: datetime,
        lease_seconds: float,
        limit: int,
        per_operation_limits: Mapping[str, int] | None = None,
        task_ids: Sequence[int] | None = None,
    ) -> list[TaskRecord]:
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
            task_store.check_operation(operation)
        until = now + timedelta(seconds=lease_seconds)
        with self._write() as conn:
            endpoint_id = self._endpoint_id(conn, endpoint)
            rows = task_store.claimable(
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
            task_store.insert_journal(conn, entries, now)
            claimed = conn.execute(
                task_store.tasks_query().where(tasks.c.id.in_(ids)).order_by(tasks.c.id)
            )
            return [task_store.task_record(row) for row in claimed]

    def extend_lease(
        self, task_id: int, *, worker: str, now: datetime, lease_seconds: float
    ) -> TaskRecord:
        """Keep a long task leased; `LeaseLostError` if `worker` no longer holds it."""
        with self._write() as conn:
            task_store.held_task(conn, task_id, worker)
            conn.execute(
                tasks.update()
                .where(tasks.c.id == task_id)
                .values(lease_until=now + timedelta(seconds=lease_seconds), updated_at=now)
            )
            return task_store.task_record(task_store.task_row(conn, task_id))

    def record_intent(self, task_id: int, *, worker: str, entry: JournalEntry) -> TaskRecord:
        """Say a write is about to be sent (sets `write_sent`) and journal it, atomically.

        Call it before every write to the target: if the attempt then dies without an answer,
        the next attempt knows it must re-read the target rather than assume nothing happened.
        """
        if entry.kind != "intent":
            raise InvalidInputError(f"record_intent journals an intent, not {entry.kind!r}")
        with self._write() as conn:
            row = task_store.held_task(conn, task_id, worker)
            now = _now()
            task_store.insert_journal(conn, [task_store.for_task(entry, row)], now)
            conn.execute(
                tasks.update().where(tasks.c.id == task_id).values(write_sent=True, updated_at=now)
            )
            return task_store.task_record(task_store.task_row(conn, task_id))

    def append_journal(self, entries: Sequence[JournalEntry]) -> list[int]:
        """Append journal lines, all or nothing; returns their ids. There is no update or delete."""
        with self._write() as conn:
            return task_store.insert_journal(conn, entries, _now())

    def finish_task(
        self,
        task_id: int,
        *,
        worker: str,
        state: FinalTaskState,
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
        if state not in FINAL_TASK_STATES:
            raise InvalidInputError(
                f"a task finishes as one of {', '.join(FINAL_TASK_STATES)}, not {state!r}"
            )
        now = now or _now()
        with self._write() as conn:
            row = task_store.held_task(conn, task_id, worker)
            if account_changes:
                # Take the endpoint row before the journal insert's foreign-key share lock does:
                # two workers each holding that share lock and waiting to upgrade it deadlock.
                conn.execute(
                    sa.select(endpoints.c.id)
                    .where(endpoints.c.id == row.endpoint_id)
                    .with_for_update()
                ).scalar_one()
            entries = [task_store.for_task(entry, row) for entry in journal]
            entries.append(task_store.state_entry(row, state, error=error))
            conn.execute(
                tasks.update()
                .where(tasks.c.id == task_id)
                .values(
                    state=state,
                    finished_at=now,
                    updated_at=now,
                    last_error=error,
                    next_attempt_at=None,
                    lease_owner=None,
                    lease_until=None,
                )
            )
            task_store.insert_journal(conn, entries, now)
            if account_changes:
                task_store.apply_account_changes(
                    conn, row.endpoint_id, account_changes, task_id=task_id, now=now
                )
            return task_store.task_record(task_store.task_row(conn, task_id))

    def reschedule_task(
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
        with self._write() as conn:
            row = task_store.held_task(conn, task_id, worker)
            exhausted = row.attempts >= row.max_attempts
            after = "failed" if exhausted else "new"
            detail = (
                {"reason": f"{row.attempts} of {row.max_attempts} attempts used"}
                if exhausted
                else {"next_attempt_at": iso(next_attempt_at)}
            )
            entries = [task_store.for_task(entry, row) for entry in journal]
            entries.append(task_store.state_entry(row, after, error=error, detail=detail))
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
            task_store.insert_journal(conn, entries, now)
            return task_store.task_record(task_store.task_row(conn, task_id))

    def retry_task(self, task_id: int, *, now: datetime | None = None) -> TaskRecord:
        """Put a failed or discontinued task back in the queue with a fresh attempt budget."""
        now = now or _now()
        with self._write() as conn:
            row = task_store.task_row(conn, task_id, lock=True)
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
            entry = task_store.state_entry(
                row, "new", kind="note", detail={"action": "retry"}, attempt=0
            )
            task_store.insert_journal(conn, [entry], now)
            return task_store.task_record(task_store.task_row(conn, task_id))

    def discontinue_task(
        self, task_id: int, *, reason: str | None = None, now: datetime | None = None
    ) -> TaskRecord:
        """Stop a task that is new, failed or in progress (its worker then loses the lease)."""
        now = now or _now()
        with self._write() as conn:
            row = task_store.task_row(conn, task_id, lock=True)
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
            task_store.insert_journal(
                conn, [task_store.state_entry(row, "discontinued", detail=detail)], now
            )
            return task_store.task_record(task_store.task_row(conn, task_id))

    # -- the journal (append-only) -----------------------------------------------------------

    def list_journal(
        self,
        *,
        endpoint: str | None = None,
        task_id: int | None = None,
        target: str | None = None,
        request_id: str | None = None,
        kind: str | None = None,
        limit: int | None = None,
    ) -> list[JournalRecord]:
        """Journal lines oldest first."""
        query = task_store.journal_query().order_by(journal_table.c.id)
        if endpoint is not None:
            query = query.where(endpoints.c.name == endpoint)
        if task_id is not None:
            query = query.where(journal_table.c.task_id == task_id)
        if target is not None:
            query = query.where(journal_table.c.target == target.strip().lower())
        if request_id is not None:
            query = query.where(journal_table.c.request_id == request_id)
        if kind is not None:
            query = query.where(journal_table.c.kind == kind)
        if limit is not None:
            query = query.limit(limit)
        with self._read() as conn:
            return [task_store.journal_record(row) for row in conn.execute(query)]

    def last_removed_access(self, endpoint: str, email: str) -> dict[str, Any] | None:
        """What the newest `remove_account` task saw the account hold before deleting it.

        The `detail` of that task's `snapshot` line (role, sites, name), for `restore`.
        """
        with self._read() as conn:
            endpoint_id = self._endpoint_id(conn, endpoint)
            detail = conn.execute(
                sa.select(journal_table.c.detail)
                .where(
                    journal_table.c.endpoint_id == endpoint_id,
                    journal_table.c.target == email.strip().lower(),
                    journal_table.c.kind == "snapshot",
                    journal_table.c.operation == "remove_account",
                )
                .order_by(journal_table.c.id.desc())
                .limit(1)
            ).scalar_one_or_none()
        return dict(detail) if detail is not None else None


def _load(value: str | None) -> Any:
    return None if value is None else json.loads(value)


def _counts(counts: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return dict(counts) if counts is not None else None


def _write_checkpoint(conn: Connection, endpoint_id: int, checkpoint: Checkpoint) -> None:
    conn.execute(
        endpoints.update()
        .where(endpoints.c.id == endpoint_id)
        .values(
            checkpoint_at=checkpoint.last_activity,
            checkpoint_event_ids=list(checkpoint.event_ids),
            checkpoint_membership_feed=checkpoint.membership_feed,
        )
    )


def _endpoint_info(row: Row[Any]) -> EndpointInfo:
    return EndpointInfo(
        id=row.id,
        name=row.name,
        connector=row.connector,
        api_url=row.api_url,
        corp=row.corp,
        email=row.email,
        settings=dict(row.settings or {}),
        checkpoint=Checkpoint(
            row.checkpoint_at,
            tuple(row.checkpoint_event_ids or ()),
            row.checkpoint_membership_feed,
        ),
        version=row.version,
        created_at=row.created_at,
    )


def _runs_query() -> sa.Select[Any]:
    return sa.select(
        import_runs.c.id,
        endpoints.c.name.label("endpoint_name"),
        import_runs.c.mode,
        import_runs.c.dry_run,
        import_runs.c.status,
        import_runs.c.started_at,
        import_runs.c.finished_at,
        import_runs.c.counts,
        import_runs.c.reason,
        import_runs.c.base_version,
        import_runs.c.applied_version,
        import_runs.c.diff.is_not(None).label("has_diff"),
    ).join(endpoints, endpoints.c.id == import_runs.c.endpoint_id)


def _run_record(row: Row[Any]) -> RunRecord:
    return RunRecord(
        id=row.id,
        endpoint=row.endpoint_name,
        mode=row.mode,
        dry_run=bool(row.dry_run),
        status=row.status,
        started_at=row.started_at,
        finished_at=row.finished_at,
        counts=row.counts,
        reason=row.reason,
        base_version=row.base_version,
        applied_version=row.applied_version,
        has_diff=bool(row.has_diff),
    )


def _holders(endpoint_id: int, type_name: str, value: str) -> sa.Select[Any]:
    return (
        sa.select(account_entitlements.c.account_id)
        .join(entitlement_values, entitlement_values.c.id == account_entitlements.c.value_id)
        .join(entitlement_types, entitlement_types.c.id == entitlement_values.c.type_id)
        .where(
            entitlement_types.c.endpoint_id == endpoint_id,
            entitlement_types.c.name == type_name,
            entitlement_values.c.value == value,
        )
    )


def _account_records(
    conn: Connection,
    endpoint: str,
    endpoint_id: int,
    filters: list[sa.ColumnElement[bool]],
) -> list[AccountRecord]:
    where = [accounts.c.endpoint_id == endpoint_id, *filters]
    rows = conn.execute(
        sa.select(
            accounts.c.id,
            accounts.c.email,
            accounts.c.name,
            accounts.c.role,
            accounts.c.status,
            accounts.c.mfa_enabled,
            accounts.c.created,
            accounts.c.extra,
            identities.c.username,
        )
        .outerjoin(identities, identities.c.id == accounts.c.identity_id)
        .where(*where)
        .order_by(accounts.c.email)
    ).all()
    site_rows = conn.execute(
        sa.select(account_entitlements.c.account_id, entitlement_values.c.value)
        .join(entitlement_values, entitlement_values.c.id == account_entitlements.c.value_id)
        .join(entitlement_types, entitlement_types.c.id == entitlement_values.c.type_id)
        .where(
            entitlement_types.c.endpoint_id == endpoint_id,
            entitlement_types.c.name == EntitlementType.SITE.value,
            entitlement_values.c.status == EntitlementStatus.ACTIVE.value,
            account_entitlements.c.account_id.in_(sa.select(accounts.c.id).where(*where)),
        )
    )
    sites: dict[int, list[str]] = {}
    for account_id, value in site_rows:
        sites.setdefault(account_id, []).append(value)
    return [
        AccountRecord(
            endpoint=endpoint,
            email=row.email,
            name=row.name,
            role=row.role,
            status=row.status,
            mfa_enabled=bool(row.mfa_enabled),
            created=row.created,
            sites=sorted(sites.get(row.id, ())),
            identity=row.username,
            extra=row.extra or {},
        )
        for row in rows
    ]
