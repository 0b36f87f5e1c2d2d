"""What the repository holds, as the interfaces show it: accounts, entitlements, history."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sigsci_iga.domain.emails import email_key
from sigsci_iga.domain.model import (
    EntitlementStatus,
    EntitlementType,
    iso,
)
from sigsci_iga.errors import RecordNotFoundError
from sigsci_iga.store.db import Database
from sigsci_iga.store.endpoints import find_endpoint_id
from sigsci_iga.store.records import (
    AccountRecord,
    EntitlementRecord,
    HistoryRecord,
)
from sigsci_iga.store.tables import (
    account_entitlements,
    accounts,
    endpoints,
    entitlement_types,
    entitlement_values,
    history,
    identities,
)


class Inventory:
    """Read-only queries; one transaction per call."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def accounts(
        self,
        endpoint: str,
        *,
        site: str | None = None,
        role: str | None = None,
        status: str | None = None,
        correlated: bool | None = None,
        email: str | None = None,
        after: str | None = None,
        limit: int | None = None,
    ) -> list[AccountRecord]:
        """Accounts sorted by email, each with its sorted active sites and identity username.

        `after` and `limit` page through them by email (keyset paging: a page costs the same
        wherever it is).
        """
        filters: list[sa.ColumnElement[bool]] = []
        if email is not None:
            filters.append(accounts.c.email == email_key(email))
        if after is not None:
            filters.append(accounts.c.email > after)
        if correlated is not None:
            filters.append(
                accounts.c.identity_id.is_not(None)
                if correlated
                else accounts.c.identity_id.is_(None)
            )
        with self._db.read() as conn:
            endpoint_id = find_endpoint_id(conn, endpoint)
            filters += _filters(endpoint_id, site=site, role=role, status=status)
            return account_records(conn, endpoint, endpoint_id, filters, limit=limit)

    def iter_accounts(
        self,
        endpoint: str,
        *,
        site: str | None = None,
        role: str | None = None,
        status: str | None = None,
        page_size: int = 1000,
    ) -> Iterator[AccountRecord]:
        """`accounts` as a stream: pages of `page_size` by email, in one read snapshot.

        The first accounts come after one page's queries, whatever the size of the endpoint,
        and no more than a page is held at once.
        """
        with self._db.read(snapshot=True) as conn:
            endpoint_id = find_endpoint_id(conn, endpoint)
            filters = _filters(endpoint_id, site=site, role=role, status=status)
            after: list[sa.ColumnElement[bool]] = []
            while True:
                page = account_records(
                    conn, endpoint, endpoint_id, [*filters, *after], limit=page_size
                )
                yield from page
                if len(page) < page_size:
                    return
                after = [accounts.c.email > page[-1].email]

    def iter_account_json(
        self,
        endpoint: str,
        *,
        site: str | None = None,
        role: str | None = None,
        status: str | None = None,
        first_page: int = 100,
        page_size: int = 5000,
    ) -> Iterator[list[dict[str, Any]]]:
        """`iter_accounts` as the objects `AccountRecord.to_json` gives, in pages.

        One statement a page, in one read snapshot, after one that reads the endpoint's active
        sites: the first page holds `first_page` accounts, so the first are out before a large
        page is read; the others `page_size`.
        """
        with self._db.read(snapshot=True) as conn:
            if conn.dialect.name == "postgresql":
                # A page's estimated cost passes the JIT threshold, and compiling it took
                # seconds for a query that runs in a tenth of one.
                conn.exec_driver_sql("SET LOCAL jit = off")
            endpoint_id = find_endpoint_id(conn, endpoint)
            filters = _filters(endpoint_id, site=site, role=role, status=status)
            active_sites = _values_of(
                endpoint_id,
                EntitlementType.SITE.value,
                entitlement_values.c.id,
                entitlement_values.c.value,
            ).where(entitlement_values.c.status == EntitlementStatus.ACTIVE.value)
            site_names: dict[int, str] = {
                value_id: str(value) for value_id, value in conn.execute(active_sites)
            }
            after: list[sa.ColumnElement[bool]] = []
            size = first_page
            while True:
                page = _account_json_page(
                    conn, endpoint, endpoint_id, site_names, [*filters, *after], size
                )
                if page:
                    yield page
                if len(page) < size:
                    return
                after = [accounts.c.email > page[-1]["email"]]
                size = page_size

    def roles(self, endpoint: str) -> list[str]:
        """The distinct roles the endpoint's accounts hold."""
        with self._db.read() as conn:
            endpoint_id = find_endpoint_id(conn, endpoint)
            query = (
                sa.select(accounts.c.role)
                .where(accounts.c.endpoint_id == endpoint_id)
                .distinct()
                .order_by(accounts.c.role)
            )
            return [str(role) for (role,) in conn.execute(query)]

    def account(self, endpoint: str, email: str) -> AccountRecord:
        """One account by email (case-insensitive)."""
        with self._db.read() as conn:
            endpoint_id = find_endpoint_id(conn, endpoint)
            wanted = [sa.func.lower(accounts.c.email) == email_key(email)]
            found = account_records(conn, endpoint, endpoint_id, wanted)
        if not found:
            raise RecordNotFoundError(f"account {email!r} is not in endpoint {endpoint!r}")
        return found[0]

    def has_value(self, endpoint: str, type: str, value: str) -> bool:
        """Whether the endpoint has entitlement value `value` of `type`, in any status."""
        with self._db.read() as conn:
            endpoint_id = find_endpoint_id(conn, endpoint)
            query = _values_of(endpoint_id, type, entitlement_values.c.id).where(
                entitlement_values.c.value == value
            )
            return conn.execute(query).first() is not None

    def value_statuses(
        self, endpoint: str, type: str, values: Iterable[str]
    ) -> dict[str, str] | None:
        """The status of each of `values` the endpoint has, or None if it has no `type` at all."""
        wanted = sorted(set(values))
        with self._db.read() as conn:
            endpoint_id = find_endpoint_id(conn, endpoint)
            of_type = _values_of(
                endpoint_id, type, entitlement_values.c.value, entitlement_values.c.status
            )
            found = {
                value: status
                for value, status in conn.execute(
                    of_type.where(entitlement_values.c.value.in_(wanted))
                )
            }
            if found or conn.execute(of_type.limit(1)).first() is not None:
                return found
            return None

    def entitlements(
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
        with self._db.read() as conn:
            endpoint_id = find_endpoint_id(conn, endpoint)
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

    def history(
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
        with self._db.read() as conn:
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

    def find_account(self, endpoint: str, email: str) -> AccountRecord | None:
        """One account by email (case-insensitive), or None if the repository does not hold it."""
        with self._db.read() as conn:
            endpoint_id = find_endpoint_id(conn, endpoint)
            wanted = [sa.func.lower(accounts.c.email) == email_key(email)]
            found = account_records(conn, endpoint, endpoint_id, wanted)
        return found[0] if found else None


def _load(value: str | None) -> Any:
    return None if value is None else json.loads(value)


def _filters(
    endpoint_id: int, *, site: str | None, role: str | None, status: str | None
) -> list[sa.ColumnElement[bool]]:
    """The conditions on accounts that the listings' `site`, `role` and `status` filters name."""
    filters: list[sa.ColumnElement[bool]] = []
    if role is not None:
        filters.append(accounts.c.role == role)
    if status is not None:
        filters.append(accounts.c.status == status)
    if site is not None:
        filters.append(accounts.c.id.in_(_holders(endpoint_id, EntitlementType.SITE.value, site)))
    return filters


def _values_of(endpoint_id: int, type_name: str, *columns: Any) -> sa.Select[Any]:
    """`columns` of the endpoint's values of one entitlement type."""
    return (
        sa.select(*columns)
        .join(entitlement_types, entitlement_types.c.id == entitlement_values.c.type_id)
        .where(
            entitlement_types.c.endpoint_id == endpoint_id, entitlement_types.c.name == type_name
        )
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


def account_records(
    conn: Connection,
    endpoint: str,
    endpoint_id: int,
    filters: list[sa.ColumnElement[bool]],
    *,
    limit: int | None = None,
) -> list[AccountRecord]:
    """The accounts `filters` select, by email, each with its sorted active sites.

    Two statements whatever the page's size: the accounts, then their sites aggregated into one
    row per account (planned once for the page; a correlated subquery per account made
    PostgreSQL hash the whole value table for every row).
    """
    query = (
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
        .where(accounts.c.endpoint_id == endpoint_id, *filters)
        .order_by(accounts.c.email)
    )
    if limit is not None:
        query = query.limit(limit)
    rows = conn.execute(query).all()
    sites = _site_lists(conn, endpoint_id, [row[0] for row in rows]) if rows else {}
    return [
        AccountRecord(
            endpoint=endpoint,
            email=email,
            name=name,
            role=role,
            status=status,
            mfa_enabled=bool(mfa_enabled),
            created=created,
            sites=sites.get(account_id, []),
            identity=username,
            extra=extra or {},
        )
        for account_id, email, name, role, status, mfa_enabled, created, extra, username in rows
    ]


def _site_lists(conn: Connection, endpoint_id: int, account_ids: list[int]) -> dict[int, list[str]]:
    """Each of `account_ids`' active sites, sorted; accounts without any are left out."""
    postgres = conn.dialect.name == "postgresql"
    value = entitlement_values.c.value
    query = (
        sa.select(
            account_entitlements.c.account_id,
            sa.func.array_agg(value) if postgres else sa.func.json_group_array(value),
        )
        .join(entitlement_values, entitlement_values.c.id == account_entitlements.c.value_id)
        .join(entitlement_types, entitlement_types.c.id == entitlement_values.c.type_id)
        .where(
            entitlement_types.c.endpoint_id == endpoint_id,
            entitlement_types.c.name == EntitlementType.SITE.value,
            entitlement_values.c.status == EntitlementStatus.ACTIVE.value,
            account_entitlements.c.account_id.in_(account_ids),
        )
        .group_by(account_entitlements.c.account_id)
    )
    # PostgreSQL answers an array, SQLite a JSON array as text.
    return {
        account_id: sorted(values if postgres else json.loads(values))
        for account_id, values in conn.execute(query)
    }


def _account_json_page(
    conn: Connection,
    endpoint: str,
    endpoint_id: int,
    site_names: dict[int, str],
    filters: list[sa.ColumnElement[bool]],
    limit: int,
) -> list[dict[str, Any]]:
    """One page of `account_records`, as plain dicts in the order `AccountRecord.to_json` has.

    One statement: the page's accounts, each with the ids of the values it holds aggregated in
    the database (half a million membership rows, made into Python objects one by one, were
    most of a listing's time), named through `site_names` (the endpoint's active sites, so
    roles and inactive sites drop out). The date and `extra` come as text, decoded here by C
    code.
    """
    postgres = conn.dialect.name == "postgresql"
    page = (
        sa.select(
            accounts.c.id,
            accounts.c.email,
            accounts.c.name,
            accounts.c.role,
            accounts.c.status,
            accounts.c.mfa_enabled,
            # As stored: a naive UTC text on SQLite, an aware datetime on PostgreSQL.
            sa.type_coerce(accounts.c.created, sa.String).label("created"),
            # As JSON text, which msgspec decodes faster than the driver's `json.loads` would;
            # JSONB's text has the key order the driver would have decoded.
            (
                sa.cast(accounts.c.extra, sa.Text)
                if postgres
                else sa.type_coerce(accounts.c.extra, sa.String)
            ).label("extra"),
            accounts.c.identity_id,
        )
        .where(accounts.c.endpoint_id == endpoint_id, *filters)
        .order_by(accounts.c.email)
        .limit(limit)
        .cte("page")
    )
    value_id = account_entitlements.c.value_id
    # Each account's links read by its key (the primary key covers them); with no join in it,
    # both databases run this as one index lookup per account.
    held = (
        sa.select(
            # The driver's list as it comes: SQLAlchemy's array processing cost as much again.
            sa.type_coerce(sa.func.array_agg(value_id), sa.types.NullType())
            if postgres
            else sa.func.json_group_array(value_id)
        )
        .where(account_entitlements.c.account_id == page.c.id)
        .scalar_subquery()
    )
    rows = conn.execute(
        sa.select(
            page.c.email,
            page.c.name,
            page.c.role,
            page.c.status,
            page.c.mfa_enabled,
            page.c.created,
            page.c.extra,
            identities.c.username,
            held,
        )
        .select_from(page.outerjoin(identities, identities.c.id == page.c.identity_id))
        .order_by(page.c.email)
    ).all()
    decode = msgspec.json.decode
    names = site_names.get
    return [
        {
            "endpoint": endpoint,
            "email": email,
            "name": name,
            "role": role,
            "status": status,
            "mfa_enabled": bool(mfa_enabled),
            "created": _iso(created),
            "sites": sorted(
                [n for i in (ids if postgres else decode(ids)) if (n := names(i)) is not None]
            )
            if ids
            else [],
            "identity": username,
            "extra": _json_value(extra) or {},
        }
        for email, name, role, status, mfa_enabled, created, extra, username, ids in rows
    ]


def _json_value(text: str) -> Any:
    """A stored JSON text, decoded as `json.loads` decodes it."""
    try:
        return msgspec.json.decode(text)
    except msgspec.MsgspecError:
        # NaN, infinities and lone surrogates: text `json.dumps` writes and msgspec refuses.
        return json.loads(text)


def _iso(value: datetime | str | None) -> str | None:
    """`iso` of a stored timestamp: SQLite's naive UTC text, or PostgreSQL's aware datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        if len(value) == 26 and value[10] == " " and value[19] == ".":
            # SQLAlchemy's SQLite text, `YYYY-MM-DD HH:MM:SS.ffffff` in UTC, rewritten as
            # `isoformat` writes it (no fraction when it is zero): 50,000 parses saved.
            fraction = "" if value.endswith("000000") else value[19:]
            return f"{value[:10]}T{value[11:19]}{fraction}+00:00"
        value = datetime.fromisoformat(value)
    return iso(value)
