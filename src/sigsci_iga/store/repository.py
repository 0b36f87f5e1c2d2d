"""The repository: endpoints, import runs, applying diffs, and the queries the CLI shows."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.exc import IntegrityError

from sigsci_iga.domain.diff import Diff
from sigsci_iga.domain.model import EntitlementStatus, EntitlementType, RepositoryView
from sigsci_iga.errors import InvalidInputError
from sigsci_iga.store import identities as identity_store
from sigsci_iga.store.apply import apply_diff, ensure_types
from sigsci_iga.store.db import WRITE_LOCK
from sigsci_iga.store.errors import RecordNotFoundError, RunStateError
from sigsci_iga.store.records import (
    AccountRecord,
    Checkpoint,
    CorrelationResult,
    EndpointInfo,
    EntitlementRecord,
    HistoryRecord,
    IdentityLoadResult,
    IdentityRecord,
    RunRecord,
)
from sigsci_iga.store.tables import (
    CONNECTOR_KINDS,
    account_entitlements,
    accounts,
    endpoints,
    entitlement_types,
    entitlement_values,
    history,
    identities,
    import_runs,
)
from sigsci_iga.store.view import load_view

RunMode = Literal["full", "incremental"]
# Substrings of setting names that would hold a secret; such settings are refused, not stored.
_SECRET_MARKERS = (
    "token",
    "password",
    "passwd",
    "secret",
    "credential",
    "apikey",
    "api_key",
    "authorization",
    "cookie",
    "private_key",
)


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
                )
                for row in conn.execute(query)
            ]


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
        checkpoint=Checkpoint(row.checkpoint_at, tuple(row.checkpoint_event_ids or ())),
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
