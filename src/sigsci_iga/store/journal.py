"""The append-only journal: appending lines in a hash chain, reading them, verifying the chain.

Each endpoint's lines form one chain: a line carries its sequence number in the endpoint's
chain, the previous line's hash and its own hash over (previous hash, sequence, content). The
endpoint row keeps the chain's head (last sequence and hash). Appending takes the endpoint row
first, so concurrent writers queue on it instead of forking the chain.

Callers own the transaction; nothing here commits.
"""

from __future__ import annotations

import builtins
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from sigsci_iga.domain.emails import email_key
from sigsci_iga.domain.model import iso
from sigsci_iga.errors import InvalidInputError, RecordNotFoundError
from sigsci_iga.store.db import Database
from sigsci_iga.store.records import JournalEntry, JournalRecord
from sigsci_iga.store.tables import JOURNAL_KINDS, endpoints, journal
from sigsci_iga.store.values import plain_json, refuse_secrets

#: The hash before an endpoint's first line.
GENESIS = "0" * 64
#: Columns a line's hash covers, in this order (the id is the database's, not content).
_CONTENT = (
    "at",
    "endpoint_id",
    "task_id",
    "request_id",
    "operation",
    "target",
    "attempt",
    "kind",
    "state_before",
    "state_after",
    "method",
    "path",
    "status",
    "error",
    "detail",
)


def line_hash(prev_hash: str, seq: int, values: Mapping[str, Any]) -> str:
    """The hash of one line: over the previous hash, its sequence number and its content."""
    content = [iso(values["at"]) if name == "at" else values[name] for name in _CONTENT]
    payload = json.dumps(
        [prev_hash, seq, content], sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def insert_journal(conn: Connection, entries: Sequence[JournalEntry], now: datetime) -> list[int]:
    """Validate every entry first, then append them all to their chains; returns their ids."""
    if not entries:
        return []
    names = {entry.endpoint for entry in entries}
    endpoint_ids: dict[str, int] = {
        name: id_
        for name, id_ in conn.execute(
            sa.select(endpoints.c.name, endpoints.c.id).where(endpoints.c.name.in_(names))
        )
    }
    rows: list[dict[str, Any]] = []
    for entry in entries:
        if entry.endpoint not in endpoint_ids:
            raise RecordNotFoundError(f"endpoint {entry.endpoint!r} is not registered")
        if entry.kind not in JOURNAL_KINDS:
            raise InvalidInputError(
                f"journal kind {entry.kind!r} is not one of {', '.join(JOURNAL_KINDS)}"
            )
        detail = None
        if entry.detail is not None:
            refuse_secrets(entry.detail)
            detail = plain_json(entry.detail, "journal detail")
        rows.append(
            {
                "at": entry.at or now,
                "endpoint_id": endpoint_ids[entry.endpoint],
                "task_id": entry.task_id,
                "request_id": entry.request_id,
                "operation": entry.operation,
                "target": email_key(entry.target) if entry.target is not None else None,
                "attempt": entry.attempt,
                "kind": entry.kind,
                "state_before": entry.state_before,
                "state_after": entry.state_after,
                "method": entry.method,
                "path": entry.path,
                "status": entry.status,
                "error": entry.error,
                "detail": detail,
            }
        )
    heads = _lock_heads(conn, sorted(set(endpoint_ids.values())))
    first = {endpoint_id: seq + 1 for endpoint_id, (seq, _) in heads.items()}
    for row in rows:
        seq, prev = heads[row["endpoint_id"]]
        seq += 1
        row["seq"] = seq
        row["prev_hash"] = prev
        row["chain_hash"] = line_hash(prev, seq, row)
        heads[row["endpoint_id"]] = (seq, row["chain_hash"])
    ids = _insert_then_find(conn, rows, first, heads)
    for endpoint_id, (seq, head) in heads.items():
        conn.execute(
            endpoints.update()
            .where(endpoints.c.id == endpoint_id)
            .values(journal_seq=seq, journal_head=head)
        )
    return ids


_STORED = (*_CONTENT, "seq", "prev_hash", "chain_hash")


def _copy(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """COPY the lines in (PostgreSQL): a batch of a thousand tasks journals several thousand."""
    from psycopg.types.json import Jsonb  # noqa: PLC0415  # the driver is there only on PostgreSQL

    driver = conn.connection.driver_connection
    assert driver is not None
    names = ", ".join(_STORED)
    with driver.cursor() as cursor, cursor.copy(f"COPY journal ({names}) FROM STDIN") as copy:
        for row in rows:
            values = [row[name] for name in _STORED]
            if row["detail"] is not None:
                values[_STORED.index("detail")] = Jsonb(row["detail"])
            copy.write_row(values)


def _insert_then_find(
    conn: Connection,
    rows: Sequence[dict[str, Any]],
    first: Mapping[int, int],
    heads: Mapping[int, tuple[int, str]],
) -> list[int]:
    """Insert in one operation, then read the new ids back by their place in each chain.

    Neither SQLite nor COPY returns ids in row order from a batched insert (SQLAlchemy would
    send one INSERT per line to SQLite); the endpoint rows are locked, so the sequence numbers
    just written are these lines' and no one else's.
    """
    if conn.dialect.name == "postgresql":
        _copy(conn, rows)
    else:
        conn.execute(journal.insert(), rows)
    found: dict[tuple[int, int], int] = {}
    for endpoint_id, (last, _) in heads.items():
        query = sa.select(journal.c.seq, journal.c.id).where(
            journal.c.endpoint_id == endpoint_id, journal.c.seq.between(first[endpoint_id], last)
        )
        found.update(((endpoint_id, int(seq)), int(id_)) for seq, id_ in conn.execute(query))
    return [found[(row["endpoint_id"], row["seq"])] for row in rows]


def _lock_heads(conn: Connection, endpoint_ids: Iterable[int]) -> dict[int, tuple[int, str]]:
    """Each endpoint's chain head, with its row locked until the transaction ends."""
    heads: dict[int, tuple[int, str]] = {}
    for id_, seq, head in conn.execute(
        sa.select(endpoints.c.id, endpoints.c.journal_seq, endpoints.c.journal_head)
        .where(endpoints.c.id.in_(list(endpoint_ids)))
        .order_by(endpoints.c.id)
        # FOR NO KEY UPDATE: only the head columns change, so rows that merely reference the
        # endpoint (a task or journal line inserted earlier in this transaction takes a KEY
        # SHARE lock for its foreign key) must not turn two writers into a deadlock.
        .with_for_update(key_share=True)
    ):
        heads[int(id_)] = (int(seq or 0), head or GENESIS)
    return heads


def journal_query() -> sa.Select[Any]:
    return sa.select(journal, endpoints.c.name.label("endpoint_name")).join(
        endpoints, endpoints.c.id == journal.c.endpoint_id
    )


def journal_record(row: Row[Any]) -> JournalRecord:
    return JournalRecord(
        id=row.id,
        at=row.at,
        endpoint=row.endpoint_name,
        task_id=row.task_id,
        request_id=row.request_id,
        operation=row.operation,
        target=row.target,
        attempt=row.attempt,
        kind=row.kind,
        state_before=row.state_before,
        state_after=row.state_after,
        method=row.method,
        path=row.path,
        status=row.status,
        error=row.error,
        detail=row.detail,
    )


@dataclass(frozen=True, slots=True)
class ChainReport:
    """One endpoint's chain: how many lines were checked, its head, and the first break."""

    endpoint: str
    lines: int
    head_seq: int
    head_hash: str
    #: None when the chain is intact.
    problem: str | None = None
    #: The id of the first line that does not fit (None for a break at the end).
    line_id: int | None = None

    @property
    def intact(self) -> bool:
        return self.problem is None


def verify_chain(conn: Connection, endpoint_id: int, name: str) -> ChainReport:
    """Walk an endpoint's lines in sequence order and report the first that breaks the chain."""
    seq_head, hash_head = conn.execute(
        sa.select(endpoints.c.journal_seq, endpoints.c.journal_head).where(
            endpoints.c.id == endpoint_id
        )
    ).one()
    seq_head, hash_head = int(seq_head or 0), hash_head or GENESIS

    def report(problem: str | None = None, line_id: int | None = None) -> ChainReport:
        return ChainReport(name, expected_seq - 1, seq_head, hash_head, problem, line_id)

    expected_seq, prev = 1, GENESIS
    rows = conn.execute(
        sa.select(journal)
        .where(journal.c.endpoint_id == endpoint_id)
        .order_by(journal.c.seq, journal.c.id)
    )
    for row in rows:
        values = dict(row._mapping)
        seq = values["seq"]
        if seq is None or seq < expected_seq:
            return report(
                f"line {row.id} has sequence {seq}, where {expected_seq} was due: a line was "
                "inserted that the chain never recorded",
                row.id,
            )
        if seq > expected_seq:
            missing = (
                f"{expected_seq}" if seq == expected_seq + 1 else f"{expected_seq} to {seq - 1}"
            )
            return report(
                f"line(s) {missing} of the chain are missing before line {row.id}: deleted",
                row.id,
            )
        if values["prev_hash"] != prev:
            return report(
                f"line {row.id} (sequence {seq}) does not follow the line before it: that line "
                "was replaced, or this one was inserted",
                row.id,
            )
        if line_hash(prev, seq, values) != values["chain_hash"]:
            return report(
                f"line {row.id} (sequence {seq}) no longer matches its hash: it was edited or "
                "replaced",
                row.id,
            )
        prev = values["chain_hash"]
        expected_seq += 1
    last_seq = expected_seq - 1
    if last_seq < seq_head:
        return report(
            f"the chain ends at sequence {last_seq} but its head says {seq_head}: lines were "
            "deleted at the end"
        )
    if last_seq > seq_head or prev != hash_head:
        return report(
            f"the chain ends at sequence {last_seq} ({prev[:12]}…), its head says {seq_head} "
            f"({hash_head[:12]}…): lines were added or changed outside the journal"
        )
    return report()


def _now() -> datetime:
    return datetime.now(UTC)


class Journal:
    """The append-only journal: append, read and verify; one transaction per call."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def append(self, entries: Sequence[JournalEntry]) -> builtins.list[int]:
        """Append journal lines, all or nothing; returns their ids. There is no update or delete."""
        with self._db.write() as conn:
            return insert_journal(conn, entries, _now())

    def list(
        self,
        *,
        endpoint: str | None = None,
        task_id: int | None = None,
        target: str | None = None,
        request_id: str | None = None,
        kind: str | None = None,
        limit: int | None = None,
    ) -> builtins.list[JournalRecord]:
        """Journal lines oldest first."""
        query = journal_query().order_by(journal.c.id)
        if endpoint is not None:
            query = query.where(endpoints.c.name == endpoint)
        if task_id is not None:
            query = query.where(journal.c.task_id == task_id)
        if target is not None:
            query = query.where(journal.c.target == email_key(target))
        if request_id is not None:
            query = query.where(journal.c.request_id == request_id)
        if kind is not None:
            query = query.where(journal.c.kind == kind)
        if limit is not None:
            query = query.limit(limit)
        with self._db.read() as conn:
            return [journal_record(row) for row in conn.execute(query)]

    def verify(self, endpoint: str | None = None) -> builtins.list[ChainReport]:
        """Check every endpoint's journal chain (retired ones included), or one endpoint's."""
        query = sa.select(endpoints.c.id, endpoints.c.name).order_by(endpoints.c.name)
        if endpoint is not None:
            query = query.where(endpoints.c.name == endpoint)
        with self._db.read() as conn:
            found = conn.execute(query).all()
            if endpoint is not None and not found:
                raise RecordNotFoundError(f"endpoint {endpoint!r} is not registered")
            return [verify_chain(conn, id_, name) for id_, name in found]
