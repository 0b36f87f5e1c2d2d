"""Endpoints: the governed corps (or package targets), their checkpoints and secret references."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from sigsci_iga.domain.secrets import parse_secret_ref
from sigsci_iga.errors import InvalidInputError, RecordNotFoundError, TaskStateError
from sigsci_iga.store.apply import ensure_types
from sigsci_iga.store.db import Database
from sigsci_iga.store.records import (
    Checkpoint,
    EndpointInfo,
)
from sigsci_iga.store.tables import (
    CONNECTOR_KINDS,
    OPEN_TASK_STATES,
    account_entitlements,
    accounts,
    endpoints,
    entitlement_types,
    entitlement_values,
    history,
    import_runs,
    schedule_fires,
    schedules,
    tasks,
)
from sigsci_iga.store.tables import journal as journal_table
from sigsci_iga.store.values import SECRET_MARKERS

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


def find_endpoint_id(conn: Connection, name: str) -> int:
    """The id of a registered endpoint; RecordNotFoundError names it otherwise."""
    endpoint_id = conn.execute(
        sa.select(endpoints.c.id).where(endpoints.c.name == name)
    ).scalar_one_or_none()
    if endpoint_id is None:
        raise RecordNotFoundError(f"endpoint {name!r} is not registered")
    return int(endpoint_id)


class Endpoints:
    """Registering, changing, listing and removing endpoints; one transaction per call."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(
        self,
        name: str,
        *,
        corp: str,
        api_url: str,
        email: str | None = None,
        connector: str = "signalsciences",
        settings: Mapping[str, Any] | None = None,
        credentials: Mapping[str, str] | None = None,
    ) -> EndpointInfo:
        """Register a governed corp; `settings` must hold no secrets (refused if they look so).

        `credentials` maps a secret's name (`token`, `password`, a package's secret parameter)
        to a reference to it (`env:NAME`, `file:PATH`); values that are not references are
        refused, so a secret pasted in by mistake never reaches the database.
        """
        if not name.strip():
            raise InvalidInputError("endpoint name must not be empty")
        if connector not in CONNECTOR_KINDS:
            raise InvalidInputError(
                f"connector {connector!r} is not one of {', '.join(CONNECTOR_KINDS)}"
            )
        _refuse_secrets(settings or {})
        refs = _checked_credentials(credentials or {})
        try:
            with self._db.write() as conn:
                endpoint_id = conn.execute(
                    endpoints.insert().returning(endpoints.c.id),
                    {
                        "name": name,
                        "connector": connector,
                        "api_url": api_url,
                        "corp": corp,
                        "email": email,
                        "settings": dict(settings or {}),
                        "credentials": refs,
                        "checkpoint_event_ids": [],
                        "version": 0,
                        "created_at": _now(),
                    },
                ).scalar_one()
                ensure_types(conn, endpoint_id)
        except IntegrityError as exc:
            raise InvalidInputError(f"endpoint {name!r} already exists") from exc
        return self.get(name)

    def remove(self, name: str) -> Literal["deleted", "retired"]:
        """Delete an endpoint and everything imported for it, or retire it if it has a journal.

        The journal is append-only evidence: an endpoint with journal lines is kept, marked
        retired, and no longer listed or usable. Open tasks must be ended first.
        """
        with self._db.write() as conn:
            endpoint_id = find_endpoint_id(conn, name)
            open_tasks = conn.execute(
                sa.select(sa.func.count())
                .select_from(tasks)
                .where(tasks.c.endpoint_id == endpoint_id, tasks.c.state.in_(OPEN_TASK_STATES))
            ).scalar_one()
            if open_tasks:
                raise TaskStateError(
                    f"endpoint {name!r} has {open_tasks} open task(s); discontinue them first"
                )
            # An endpoint's schedules go with it, whether it is deleted or retired.
            schedule_ids = sa.select(schedules.c.id).where(schedules.c.endpoint_id == endpoint_id)
            conn.execute(
                schedule_fires.delete().where(schedule_fires.c.schedule_id.in_(schedule_ids))
            )
            conn.execute(schedules.delete().where(schedules.c.endpoint_id == endpoint_id))
            journaled = conn.execute(
                sa.select(journal_table.c.id)
                .where(journal_table.c.endpoint_id == endpoint_id)
                .limit(1)
            ).first()
            if journaled is not None:
                conn.execute(
                    endpoints.update()
                    .where(endpoints.c.id == endpoint_id)
                    .values(retired_at=_now())
                )
                return "retired"
            # Children first: SQLite enforces the foreign keys but the schema does not cascade
            # every one of them.
            value_ids = (
                sa.select(entitlement_values.c.id)
                .join(entitlement_types, entitlement_types.c.id == entitlement_values.c.type_id)
                .where(entitlement_types.c.endpoint_id == endpoint_id)
            )
            account_ids = sa.select(accounts.c.id).where(accounts.c.endpoint_id == endpoint_id)
            conn.execute(
                account_entitlements.delete().where(
                    account_entitlements.c.account_id.in_(account_ids)
                    | account_entitlements.c.value_id.in_(value_ids)
                )
            )
            conn.execute(history.delete().where(history.c.endpoint_id == endpoint_id))
            conn.execute(tasks.delete().where(tasks.c.endpoint_id == endpoint_id))
            conn.execute(accounts.delete().where(accounts.c.endpoint_id == endpoint_id))
            conn.execute(entitlement_values.delete().where(entitlement_values.c.id.in_(value_ids)))
            conn.execute(
                entitlement_types.delete().where(entitlement_types.c.endpoint_id == endpoint_id)
            )
            conn.execute(import_runs.delete().where(import_runs.c.endpoint_id == endpoint_id))
            conn.execute(endpoints.delete().where(endpoints.c.id == endpoint_id))
        return "deleted"

    def update(
        self,
        name: str,
        *,
        api_url: str | None = None,
        email: str | None = None,
        settings: Mapping[str, Any] | None = None,
        credentials: Mapping[str, str] | None = None,
    ) -> EndpointInfo:
        """Change connection details; arguments left as None keep their value."""
        values: dict[str, Any] = {}
        if credentials is not None:
            values["credentials"] = _checked_credentials(credentials)
        if api_url is not None:
            values["api_url"] = api_url
        if email is not None:
            values["email"] = email
        if settings is not None:
            _refuse_secrets(settings)
            values["settings"] = dict(settings)
        if values:
            with self._db.write() as conn:
                endpoint_id = find_endpoint_id(conn, name)
                conn.execute(endpoints.update().where(endpoints.c.id == endpoint_id).values(values))
        return self.get(name)

    def get(self, name: str) -> EndpointInfo:
        with self._db.read() as conn:
            row = conn.execute(sa.select(endpoints).where(endpoints.c.name == name)).first()
        if row is None:
            raise RecordNotFoundError(f"endpoint {name!r} is not registered")
        return _endpoint_info(row)

    def list(self, *, include_retired: bool = False) -> builtins.list[EndpointInfo]:
        query = sa.select(endpoints).order_by(endpoints.c.name)
        if not include_retired:
            query = query.where(endpoints.c.retired_at.is_(None))
        with self._db.read() as conn:
            rows = conn.execute(query).all()
        return [_endpoint_info(row) for row in rows]

    def set_checkpoint(self, name: str, checkpoint: Checkpoint) -> None:
        """Record where the next incremental import starts."""
        with self._db.write() as conn:
            write_checkpoint(conn, find_endpoint_id(conn, name), checkpoint)


def write_checkpoint(conn: Connection, endpoint_id: int, checkpoint: Checkpoint) -> None:
    conn.execute(
        endpoints.update()
        .where(endpoints.c.id == endpoint_id)
        .values(
            checkpoint_at=checkpoint.last_activity,
            checkpoint_event_ids=list(checkpoint.event_ids),
            checkpoint_membership_feed=checkpoint.membership_feed,
        )
    )


def _checked_credentials(credentials: Mapping[str, str]) -> dict[str, str]:
    checked: dict[str, str] = {}
    for name, ref in credentials.items():
        if not str(name).strip():
            raise InvalidInputError("credentials: a secret's name must not be empty")
        checked[str(name)] = str(parse_secret_ref(ref, f"credentials.{name}"))
    return checked


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
        credentials=dict(row.credentials or {}),
        retired_at=row.retired_at,
    )
