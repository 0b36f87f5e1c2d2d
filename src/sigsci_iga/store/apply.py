"""Apply a diff to one endpoint in bulk, recording every change in the history.

Callers own the transaction; every statement here is a set operation or an executemany, never a
per-row SELECT, so a 50k-account / 500k-link initial import stays a matter of seconds.
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sigsci_iga.domain.diff import AccountChange, Diff, EntitlementChange, FieldChange
from sigsci_iga.domain.model import EntitlementStatus, EntitlementType, parse_iso
from sigsci_iga.errors import RepositoryChangedError
from sigsci_iga.store.db import analyze
from sigsci_iga.store.tables import (
    UTCDateTime,
    account_entitlements,
    accounts,
    endpoints,
    entitlement_types,
    entitlement_values,
    history,
)

ENTITLEMENT_TYPES = (EntitlementType.SITE.value, EntitlementType.CORP_ROLE.value)
#: A diff that adds or removes this many rows is a bulk load: the planner's statistics are
#: refreshed with it (an initial import would otherwise be planned as an empty table).
ANALYZE_AFTER_ROWS = 5_000
#: Every table a listing joins: one left without statistics (a two-row `entitlement_types`
#: PostgreSQL never sampled) made the planner walk all links for each page (0.6 s, not 14 ms).
_ANALYZED_TABLES = (
    "accounts",
    "account_entitlements",
    "entitlement_types",
    "entitlement_values",
    "identities",
    "history",
)
_ACCOUNT_COLUMNS = frozenset({"name", "role", "status", "mfa_enabled", "created", "extra"})
_ENTITLEMENT_COLUMNS = frozenset({"display_name", "status"})


def link_key(email: str, type_: str, value: str) -> str:
    """The history object key naming one link's change, finer than the account's email."""
    return f"{email}\x1f{type_}\x1f{value}"


def dump(value: Any) -> str | None:
    """History values are JSON text; None stays SQL NULL."""
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


def _insert_tuples(
    conn: Connection,
    table: sa.Table,
    columns: tuple[str, ...],
    rows: list[tuple[Any, ...]],
    *,
    binary_types: tuple[str, ...] | None = None,
) -> None:
    """Insert driver-ready tuples without per-row SQLAlchemy parameter processing.

    PostgreSQL gets COPY (binary when the column types are given, which saves formatting and
    parsing half a million link rows), SQLite a plain executemany: for hundreds of thousands of
    link and history rows this is several times faster than Core's executemany.
    """
    if not rows:
        return
    names = ", ".join(columns)
    if conn.dialect.name == "postgresql":
        driver = conn.connection.driver_connection
        assert driver is not None
        options = " (FORMAT BINARY)" if binary_types else ""
        with (
            driver.cursor() as cursor,
            cursor.copy(f"COPY {table.name} ({names}) FROM STDIN{options}") as copy,
        ):
            if binary_types:
                copy.set_types(list(binary_types))
            for row in rows:
                copy.write_row(row)
        return
    marks = ", ".join("?" for _ in columns)
    sql = f"INSERT INTO {table.name} ({names}) VALUES ({marks})"  # noqa: S608  # names are ours
    conn.exec_driver_sql(sql, rows)


#: From this many new links on (an initial import), links are loaded without their secondary
#: index (and, on PostgreSQL, without per-row foreign-key triggers), rebuilt in one pass after.
_BULK_LINKS = 50_000


@contextmanager
def _bulk_link_load(conn: Connection, count: int) -> Iterator[None]:
    """Around a large link insert, build the secondary index once instead of row by row.

    Links arrive in primary-key order, so the primary key grows at its right edge, but every
    row lands somewhere random in the `value_id` index: dropping it and creating it again after
    the load halves SQLite's time for 500,000 links. On PostgreSQL the per-row foreign-key
    checks (~80 % of the server's work) are swapped for one validation the same way. All of it
    happens inside the apply's transaction, so a failure rolls it back with the data, and
    re-adding the keys validates every row (a bad key still fails the whole apply). The table is
    locked exclusively until commit, which only an import this large pays.
    """
    if count < _BULK_LINKS:
        yield
        return
    indexes = sorted(account_entitlements.indexes, key=lambda index: str(index.name))
    keys = (
        sorted(account_entitlements.foreign_key_constraints, key=lambda fk: str(fk.name))
        if conn.dialect.name == "postgresql"
        else []
    )
    for index in indexes:
        conn.execute(sa.schema.DropIndex(index))
    for key in keys:
        conn.execute(sa.schema.DropConstraint(key))
    yield
    for key in keys:
        conn.execute(sa.schema.AddConstraint(key))
    for index in indexes:
        conn.execute(sa.schema.CreateIndex(index))


def _delete_links(conn: Connection, pairs: list[tuple[int, int]]) -> None:
    if not pairs:
        return
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(
            "DELETE FROM account_entitlements AS l USING unnest(%s::int[], %s::int[]) AS d(a, v)"
            " WHERE l.account_id = d.a AND l.value_id = d.v",
            ([a for a, _ in pairs], [v for _, v in pairs]),
        )
        return
    conn.exec_driver_sql(
        "DELETE FROM account_entitlements WHERE account_id = ? AND value_id = ?", pairs
    )


def bump_version(conn: Connection, endpoint_id: int, expected_version: int) -> int:
    """Advance the endpoint's version, or fail if it is no longer `expected_version`."""
    result = conn.execute(
        endpoints.update()
        .where(endpoints.c.id == endpoint_id, endpoints.c.version == expected_version)
        .values(version=endpoints.c.version + 1)
    )
    if result.rowcount != 1:
        actual = conn.execute(
            sa.select(endpoints.c.version).where(endpoints.c.id == endpoint_id)
        ).scalar_one()
        raise RepositoryChangedError(
            f"the repository changed since the diff was computed (version {expected_version}, "
            f"now {actual}); run the import again"
        )
    return expected_version + 1


def ensure_types(conn: Connection, endpoint_id: int) -> dict[str, int]:
    """Entitlement type ids by name, creating `Site` and `CorpRole` if missing."""
    query = sa.select(entitlement_types.c.name, entitlement_types.c.id).where(
        entitlement_types.c.endpoint_id == endpoint_id
    )
    types: dict[str, int] = {name: id_ for name, id_ in conn.execute(query)}
    missing = [t for t in ENTITLEMENT_TYPES if t not in types]
    if missing:
        conn.execute(
            entitlement_types.insert(),
            [{"endpoint_id": endpoint_id, "name": name} for name in missing],
        )
        types = {name: id_ for name, id_ in conn.execute(query)}
    return types


def _column_value(field: str, value: Any) -> Any:
    if field == "created":
        return parse_iso(value)
    if field == "extra":
        return dict(value or {})
    return value


def _grouped_updates(
    conn: Connection,
    table: sa.Table,
    where: list[sa.ColumnElement[bool]],
    items: Iterable[tuple[Mapping[str, Any], Iterable[FieldChange]]],
    allowed: frozenset[str],
) -> None:
    """One executemany per distinct set of changed fields; `items` are (key columns, changes)."""
    groups: dict[tuple[tuple[str, ...], tuple[str, ...]], list[dict[str, Any]]] = defaultdict(list)
    for keys, changes in items:
        values = {c.field: _column_value(c.field, c.new) for c in changes}
        unknown = set(values) - allowed
        if unknown:
            raise ValueError(f"diff changes unknown field(s) {sorted(unknown)} of {table.name}")
        if values:
            row = {f"k_{k}": v for k, v in keys.items()}
            row.update({f"v_{f}": v for f, v in values.items()})
            groups[(tuple(sorted(keys)), tuple(sorted(values)))].append(row)
    for (key_columns, fields), rows in groups.items():
        # Bind names differ from column names: SQLAlchemy reserves those for the SET clause.
        stmt = (
            table.update()
            .where(*where, *(table.c[k] == sa.bindparam(f"k_{k}") for k in key_columns))
            .values({f: sa.bindparam(f"v_{f}") for f in fields})
        )
        conn.execute(stmt, rows)


_NEW_ACCOUNT_COLUMNS = (
    "endpoint_id",
    "email",
    "name",
    "role",
    "status",
    "mfa_enabled",
    "created",
    "extra",
)


def _bind_processors(
    conn: Connection, table: sa.Table, columns: tuple[str, ...]
) -> list[Callable[[Any], Any]]:
    """Each column's conversion to what the driver takes, as Core would apply it."""
    dialect = conn.dialect
    processors = [
        table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in columns
    ]
    return [_same if process is None else process for process in processors]


def _same(value: Any) -> Any:
    return value


_HISTORY_COLUMNS = (
    "run_id",
    "endpoint_id",
    "object_type",
    "object_key",
    "field",
    "old_value",
    "new_value",
    "changed_at",
    "task_id",
)
# Up to this many accounts, links are resolved with an IN list instead of reading every account
# of the endpoint: a provisioning task touches one account of perhaps 50k, and a part of a
# spooled diff a few thousand (reading every account for each part would be quadratic).
_SMALL_LINK_SET = 5_000


class _History:
    """Accumulates history rows for one apply, inserted in one bulk operation."""

    def __init__(
        self,
        conn: Connection,
        endpoint_id: int,
        run_id: int | None,
        now: datetime,
        task_id: int | None = None,
        task_of: Mapping[str, int] | None = None,
    ):
        self.rows: list[tuple[Any, ...]] = []
        self._endpoint_id = endpoint_id
        self._run_id = run_id
        self._task_id = task_id
        self._task_of = task_of or {}
        # Convert the shared timestamp once, the way the column type would for this dialect.
        processor = history.c.changed_at.type.dialect_impl(conn.dialect).bind_processor(
            conn.dialect
        )
        bound = UTCDateTime().process_bind_param(now, conn.dialect)
        self._now = processor(bound) if processor is not None else bound

    def add(
        self,
        object_type: str,
        key: str,
        field: str | None,
        old: Any,
        new: Any,
        *,
        owner_key: str | None = None,
    ) -> None:
        """One history row; `owner_key`, when `task_of` names it, picks the task over `key`."""
        task_id = self._task_of.get(key, self._task_id)
        if owner_key is not None:
            task_id = self._task_of.get(owner_key, task_id)
        self.rows.append(
            (
                self._run_id,
                self._endpoint_id,
                object_type,
                key,
                field,
                old,
                new,
                self._now,
                task_id,
            )
        )

    def flush(self, conn: Connection) -> None:
        _insert_tuples(conn, history, _HISTORY_COLUMNS, self.rows)
        self.rows = []


def apply_diff(
    conn: Connection,
    endpoint_id: int,
    diff: Diff,
    *,
    run_id: int | None,
    expected_version: int,
    now: datetime,
    task_id: int | None = None,
    task_of: Mapping[str, int] | None = None,
) -> int:
    """Apply `diff` inside the caller's transaction; returns the endpoint's new version.

    History rows carry `run_id` for imports and `task_id` for a provisioning task's outcome;
    several tasks' outcomes applied at once name theirs in `task_of`, by history object key
    (the email, or `Type:value` for an entitlement).
    """
    return apply_diff_parts(
        conn,
        endpoint_id,
        diff,
        (),
        links_added=len(diff.links_added),
        run_id=run_id,
        expected_version=expected_version,
        now=now,
        task_id=task_id,
        task_of=task_of,
    )


def apply_diff_parts(
    conn: Connection,
    endpoint_id: int,
    head: Diff,
    parts: Iterable[Diff],
    *,
    links_added: int,
    run_id: int | None,
    expected_version: int,
    now: datetime,
    task_id: int | None = None,
    task_of: Mapping[str, int] | None = None,
) -> int:
    """Apply a diff given as `head` (all its entitlement work) and `parts` (account work).

    A part is applied and forgotten before the next is read, so a diff spooled in parts (see
    `importer.spool`) never needs to be held whole; `links_added` is the total over all of
    them, which decides whether the links are loaded in bulk. Same transaction rules and
    history as `apply_diff`.
    """
    version = bump_version(conn, endpoint_id, expected_version)
    types = ensure_types(conn, endpoint_id)
    record = _History(conn, endpoint_id, run_id, now, task_id, task_of)
    _apply_entitlements(conn, head, types, record)
    value_ids: dict[tuple[str, str], int] | None = None
    loaded = 0
    with _bulk_link_load(conn, links_added):
        for part in itertools.chain((head,), parts):
            _apply_accounts(conn, endpoint_id, part, record)
            if part.links_added or part.links_removed:
                if value_ids is None:
                    value_ids = _value_ids(conn, types)
                _apply_links(conn, endpoint_id, part, value_ids, record)
            record.flush(conn)
            loaded += len(part.accounts_added) + len(part.links_added) + len(part.links_removed)
    if loaded >= ANALYZE_AFTER_ROWS:
        analyze(conn, _ANALYZED_TABLES)
    return version


def _apply_entitlements(
    conn: Connection, diff: Diff, types: Mapping[str, int], record: _History
) -> None:
    if diff.entitlements_added:
        conn.execute(
            entitlement_values.insert(),
            [
                {
                    "type_id": types[e.type],
                    "value": e.value,
                    "display_name": e.display_name,
                    "status": EntitlementStatus.ACTIVE.value,
                }
                for e in diff.entitlements_added
            ],
        )
        for e in diff.entitlements_added:
            new = {"display_name": e.display_name, "status": EntitlementStatus.ACTIVE.value}
            record.add("entitlement", f"{e.type}:{e.value}", None, None, dump(new))
    changes: list[EntitlementChange] = [
        *diff.entitlements_changed,
        *diff.entitlements_inactivated,
        *diff.entitlements_reactivated,
    ]
    _grouped_updates(
        conn,
        entitlement_values,
        [],
        (({"type_id": types[e.type], "value": e.value}, e.changes) for e in changes),
        _ENTITLEMENT_COLUMNS,
    )
    for change in changes:
        key = f"{change.type}:{change.value}"
        for c in change.changes:
            record.add("entitlement", key, c.field, dump(c.old), dump(c.new))


def _apply_accounts(conn: Connection, endpoint_id: int, diff: Diff, record: _History) -> None:
    if diff.accounts_added and conn.dialect.name == "postgresql":
        # COPY: an initial import adds tens of thousands of accounts at once.
        to_utc = UTCDateTime().process_bind_param
        _insert_tuples(
            conn,
            accounts,
            _NEW_ACCOUNT_COLUMNS,
            [
                (
                    endpoint_id,
                    a.email,
                    a.name,
                    a.role,
                    str(a.status),
                    a.mfa_enabled,
                    to_utc(a.created, conn.dialect),
                    json.dumps(dict(a.extra), sort_keys=True),
                )
                for a in diff.accounts_added
            ],
        )
    elif diff.accounts_added:
        # Driver-ready tuples through the columns' own bind processors: what Core's executemany
        # would send, without its per-row parameter handling (seconds for 50,000 accounts).
        mfa, created, extra = _bind_processors(conn, accounts, ("mfa_enabled", "created", "extra"))
        _insert_tuples(
            conn,
            accounts,
            _NEW_ACCOUNT_COLUMNS,
            [
                (
                    endpoint_id,
                    a.email,
                    a.name,
                    a.role,
                    str(a.status),
                    mfa(a.mfa_enabled),
                    created(a.created),
                    extra(dict(a.extra)),
                )
                for a in diff.accounts_added
            ],
        )
    if diff.accounts_added:
        # A new account's first links are part of its "added" record: one history row per
        # account instead of one per link keeps an initial import of 500,000 links cheap.
        initial: dict[str, dict[str, list[str]]] = {a.email: {} for a in diff.accounts_added}
        for link in diff.links_added:
            if link.email in initial:
                initial[link.email].setdefault(link.type, []).append(link.value)
        for a in diff.accounts_added:
            links = {kind: sorted(values) for kind, values in sorted(initial[a.email].items())}
            record.add("account", a.email, None, None, dump({**a.field_values(), "links": links}))
    changes: list[AccountChange] = [
        *diff.accounts_changed,
        *diff.accounts_suspended,
        *diff.accounts_reactivated,
    ]
    _grouped_updates(
        conn,
        accounts,
        [accounts.c.endpoint_id == endpoint_id],
        (({"email": a.email}, a.changes) for a in changes),
        _ACCOUNT_COLUMNS,
    )
    for change in changes:
        for c in change.changes:
            record.add("account", change.email, c.field, dump(c.old), dump(c.new))


def _value_ids(conn: Connection, types: Mapping[str, int]) -> dict[tuple[str, str], int]:
    """Every entitlement value's id, by (type name, value)."""
    type_names = {id_: name for name, id_ in types.items()}
    return {
        (type_names[type_id], value): id_
        for id_, type_id, value in conn.execute(
            sa.select(
                entitlement_values.c.id, entitlement_values.c.type_id, entitlement_values.c.value
            ).where(entitlement_values.c.type_id.in_(list(types.values())))
        )
    }


def _apply_links(
    conn: Connection,
    endpoint_id: int,
    diff: Diff,
    value_ids: Mapping[tuple[str, str], int],
    record: _History,
) -> None:
    wanted = {link.email for link in (*diff.links_added, *diff.links_removed)}
    account_query = sa.select(accounts.c.email, accounts.c.id).where(
        accounts.c.endpoint_id == endpoint_id
    )
    if len(wanted) <= _SMALL_LINK_SET:
        account_query = account_query.where(accounts.c.email.in_(sorted(wanted)))
    account_ids: dict[str, int] = {email: id_ for email, id_ in conn.execute(account_query)}
    if diff.links_removed:
        _delete_links(
            conn,
            [
                (account_ids[link.email], value_ids[(link.type, link.value)])
                for link in diff.links_removed
            ],
        )
        for link in diff.links_removed:
            record.add(
                "link",
                link.email,
                link.type,
                dump(link.value),
                None,
                owner_key=link_key(link.email, link.type, link.value),
            )
    if diff.links_added:
        _insert_tuples(
            conn,
            account_entitlements,
            ("account_id", "value_id"),
            # In primary-key order, so the index grows at its right edge.
            sorted(
                (account_ids[link.email], value_ids[(link.type, link.value)])
                for link in diff.links_added
            ),
            binary_types=("int4", "int4"),
        )
        added_accounts = {a.email for a in diff.accounts_added}
        for link in diff.links_added:
            if link.email not in added_accounts:
                record.add(
                    "link",
                    link.email,
                    link.type,
                    None,
                    dump(link.value),
                    owner_key=link_key(link.email, link.type, link.value),
                )
