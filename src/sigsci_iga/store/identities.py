"""Identities from the identity source (CSV or JSON), and correlating accounts to them."""

from __future__ import annotations

import builtins
import csv
import io
import json
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sigsci_iga.errors import ConfigError, InvalidInputError
from sigsci_iga.files import read_regular_file
from sigsci_iga.store.apply import dump
from sigsci_iga.store.db import Database
from sigsci_iga.store.endpoints import find_endpoint_id
from sigsci_iga.store.inventory import account_records
from sigsci_iga.store.records import (
    AccountRecord,
    CorrelationResult,
    IdentityLoadResult,
    IdentityRecord,
)
from sigsci_iga.store.tables import accounts, history, identities

STANDARD_FIELDS = (
    "username",
    "email",
    "first_name",
    "last_name",
    "department",
    "manager",
    "status",
)
_OPTIONAL_FIELDS = ("first_name", "last_name", "department", "manager")
# Deliberately loose: one @, no spaces, a dot in the domain; the target validates the rest.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_MAX_REPORTED_ERRORS = 20


class _Problems:
    """Collects every bad field so one error names them all."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.messages: list[str] = []

    def add(self, where: str, field: str, problem: str) -> None:
        self.messages.append(f"{self.source}: {where}: field {field!r}: {problem}")

    def raise_if_any(self) -> None:
        if not self.messages:
            return
        shown = self.messages[:_MAX_REPORTED_ERRORS]
        more = len(self.messages) - len(shown)
        # One line: interfaces print an error as one line, and a row's text is not ours to
        # break lines with.
        text = "; ".join(shown) + (f"; ... and {more} more" if more else "")
        error = InvalidInputError(f"{len(self.messages)} invalid value(s); nothing loaded: {text}")
        error.add_note(f"{self.source}: fix the file and load it again")
        raise error


def _text(value: Any, where: str, field: str, problems: _Problems) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        problems.add(where, field, f"must be a string, not {type(value).__name__}")
        return None
    stripped = value.strip()
    return stripped or None


def _required(data: Mapping[str, Any], where: str, field: str, problems: _Problems) -> str | None:
    before = len(problems.messages)
    value = _text(data.get(field), where, field, problems)
    if value is None and len(problems.messages) == before:
        problems.add(where, field, "is required")
    return value


def _record(data: Mapping[str, Any], where: str, problems: _Problems) -> IdentityRecord | None:
    before = len(problems.messages)
    username = _required(data, where, "username", problems)
    email = _required(data, where, "email", problems)
    if email is not None and not _EMAIL.match(email):
        problems.add(where, "email", f"{email!r} is not an email address")
    optional = {f: _text(data.get(f), where, f, problems) for f in _OPTIONAL_FIELDS}
    status = _text(data.get("status"), where, "status", problems) or "active"
    extra = {k: v for k, v in data.items() if k not in STANDARD_FIELDS}
    if len(problems.messages) != before or username is None or email is None:
        return None
    return IdentityRecord(
        username=username, email=email, status=status.lower(), extra=extra, **optional
    )


def _read_csv(text: str, problems: _Problems) -> list[tuple[str, IdentityRecord | None]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    missing = [f for f in ("username", "email") if f not in header]
    if missing:
        problems.add("header", missing[0], "column is missing")
        return []
    out: list[tuple[str, IdentityRecord | None]] = []
    for row in reader:
        where = f"row {reader.line_num}"
        if None in row:
            problems.add(where, "*", "has more values than the header has columns")
            continue
        # Empty CSV cells mean "no value", for extra columns too.
        cleaned = {k: v for k, v in row.items() if v is not None and v != ""}
        out.append((where, _record(cleaned, where, problems)))
    return out


def _read_json(text: str, problems: _Problems) -> list[tuple[str, IdentityRecord | None]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        problems.add(f"line {exc.lineno}", "*", f"is not valid JSON ({exc.msg})")
        return []
    if not isinstance(data, list):
        problems.add("top level", "*", "must be a list of objects")
        return []
    out: list[tuple[str, IdentityRecord | None]] = []
    for index, item in enumerate(data):
        where = f"index {index}"
        if not isinstance(item, dict):
            problems.add(where, "*", "must be an object")
            continue
        out.append((where, _record(item, where, problems)))
    return out


def read_identities(path: str | Path) -> list[IdentityRecord]:
    """Parse and validate a whole identity file; any bad value raises `InvalidInputError`."""
    file = Path(path)
    problems = _Problems(str(file))
    suffix = file.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise InvalidInputError(f"{file}: identity files must be .csv or .json")
    # Read without blocking: a FIFO or directory named as the file is refused at once.
    data = read_regular_file(file, "identity file")
    try:
        text = data.decode("utf-8-sig")
        rows = _read_csv(text, problems) if suffix == ".csv" else _read_json(text, problems)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InvalidInputError(f"{file}: cannot read identity file: {exc}") from exc
    seen: dict[str, str] = {}
    records: list[IdentityRecord] = []
    for where, record in rows:
        if record is None:
            continue
        if record.username in seen:
            problems.add(
                where, "username", f"{record.username!r} already at {seen[record.username]}"
            )
            continue
        seen[record.username] = where
        records.append(record)
    problems.raise_if_any()
    return records


def upsert_identities(
    conn: Connection, records: list[IdentityRecord], *, now: datetime
) -> IdentityLoadResult:
    """Insert new usernames and update changed ones in bulk, recording changes in the history."""
    existing = {row.username: row for row in conn.execute(sa.select(identities))}
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    changes: list[dict[str, Any]] = []
    unchanged = 0

    def change(key: str, field: str | None, old: Any, new: Any) -> None:
        changes.append(
            {
                "object_type": "identity",
                "object_key": key,
                "field": field,
                "old_value": dump(old),
                "new_value": dump(new),
                "changed_at": now,
            }
        )

    for record in records:
        values = asdict(record)
        row = existing.get(record.username)
        if row is None:
            inserts.append({**values, "created_at": now, "updated_at": now})
            change(record.username, None, None, values)
            continue
        differs = [f for f, v in values.items() if getattr(row, f) != v]
        if not differs:
            unchanged += 1
            continue
        updates.append({"b_id": row.id, **{f"b_{f}": v for f, v in values.items()}, "b_now": now})
        for f in differs:
            change(record.username, f, getattr(row, f), values[f])
    if inserts:
        conn.execute(identities.insert(), inserts)
    if updates:
        fields = [f for f in STANDARD_FIELDS if f != "username"] + ["extra"]
        conn.execute(
            identities.update()
            .where(identities.c.id == sa.bindparam("b_id"))
            .values(
                {f: sa.bindparam(f"b_{f}") for f in fields} | {"updated_at": sa.bindparam("b_now")}
            ),
            updates,
        )
    if changes:
        conn.execute(history.insert(), changes)
    return IdentityLoadResult(created=len(inserts), updated=len(updates), unchanged=unchanged)


def list_identities(conn: Connection) -> list[IdentityRecord]:
    rows = conn.execute(sa.select(identities).order_by(identities.c.username))
    return [
        IdentityRecord(
            username=row.username,
            email=row.email,
            first_name=row.first_name,
            last_name=row.last_name,
            department=row.department,
            manager=row.manager,
            status=row.status,
            extra=dict(row.extra or {}),
        )
        for row in rows
    ]


@dataclass(frozen=True, slots=True)
class CorrelationRule:
    """Links an account to the identity whose key equals the account's key (case-insensitive)."""

    name: str
    identity_key: Callable[[str, str], str | None]
    """(username, email) of an identity -> key"""
    account_key: Callable[[str], str | None]
    """account email -> key"""


def _lower(value: str) -> str | None:
    return value.strip().lower() or None


def _local_part(email: str) -> str | None:
    local, at, _domain = email.strip().partition("@")
    return local.lower() if at and local else None


EMAIL_RULE = CorrelationRule(
    name="email",
    identity_key=lambda _username, email: _lower(email),
    account_key=_lower,
)
USERNAME_LOCAL_PART_RULE = CorrelationRule(
    name="username-localpart",
    identity_key=lambda username, _email: _lower(username),
    account_key=_local_part,
)
RULES = {rule.name: rule for rule in (EMAIL_RULE, USERNAME_LOCAL_PART_RULE)}


def correlation_rule(name: str) -> CorrelationRule:
    """The built-in rule called `name`."""
    try:
        return RULES[name]
    except KeyError:
        raise ConfigError(
            f"correlation rule {name!r} is unknown; choose one of {', '.join(sorted(RULES))}"
        ) from None


def correlate(
    conn: Connection,
    endpoint_id: int,
    rule: CorrelationRule,
    *,
    emails: Collection[str] | None = None,
) -> CorrelationResult:
    """Set every account's identity to the rule's match; a key two identities share links neither.

    With `emails`, only those accounts are (re)linked and counted: an incremental import
    correlates the accounts it read, not the whole corp.
    """
    by_key: dict[str, int | None] = {}
    usernames: dict[int | None, str | None] = {None: None}
    for id_, username, email in conn.execute(
        sa.select(identities.c.id, identities.c.username, identities.c.email)
    ):
        usernames[id_] = username
        key = rule.identity_key(username, email)
        if key is not None:
            by_key[key] = None if key in by_key else id_
    updates: list[dict[str, Any]] = []
    changes: list[dict[str, Any]] = []
    matched = 0
    ambiguous: list[str] = []
    now = datetime.now(UTC)
    which = [accounts.c.endpoint_id == endpoint_id]
    if emails is not None:
        which.append(accounts.c.email.in_(sorted(emails)))
    for id_, email, current in conn.execute(
        sa.select(accounts.c.id, accounts.c.email, accounts.c.identity_id).where(*which)
    ):
        key = rule.account_key(email)
        wanted = by_key.get(key) if key is not None else None
        if wanted is not None:
            matched += 1
        elif key is not None and key in by_key:
            ambiguous.append(email)
        if wanted != current:
            updates.append({"b_id": id_, "b_identity": wanted})
            changes.append(
                {
                    "endpoint_id": endpoint_id,
                    "object_type": "account",
                    "object_key": email,
                    "field": "identity",
                    "old_value": dump(usernames.get(current)),
                    "new_value": dump(usernames.get(wanted)),
                    "changed_at": now,
                }
            )
    if updates:
        conn.execute(
            accounts.update()
            .where(accounts.c.id == sa.bindparam("b_id"))
            .values(identity_id=sa.bindparam("b_identity")),
            updates,
        )
        conn.execute(history.insert(), changes)
    unmatched_count = conn.execute(
        sa.select(sa.func.count()).where(*which, accounts.c.identity_id.is_(None))
    ).scalar_one()
    return CorrelationResult(
        rule=rule.name,
        matched=matched,
        changed=len(updates),
        unmatched=int(unmatched_count),
        ambiguous=sorted(ambiguous),
    )


def _now() -> datetime:
    return datetime.now(UTC)


class Identities:
    """Identities and correlation; one transaction per call."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def load(self, path: str | Path) -> IdentityLoadResult:
        """Upsert identities from a CSV or JSON file, all or nothing."""
        records = read_identities(path)
        with self._db.write() as conn:
            return upsert_identities(conn, records, now=_now())

    def list(self) -> builtins.list[IdentityRecord]:
        with self._db.read() as conn:
            return list_identities(conn)

    def correlate(self, endpoint: str, rule: CorrelationRule | str = "email") -> CorrelationResult:
        """(Re)link every account of `endpoint` to the identity the rule picks, or to none."""
        chosen = correlation_rule(rule) if isinstance(rule, str) else rule
        with self._db.write() as conn:
            return correlate(conn, find_endpoint_id(conn, endpoint), chosen)

    def unmatched(self, endpoint: str) -> builtins.list[AccountRecord]:
        """Accounts not linked to any identity (suspended ones included)."""
        with self._db.read() as conn:
            return account_records(
                conn,
                endpoint,
                find_endpoint_id(conn, endpoint),
                [accounts.c.identity_id.is_(None)],
            )
