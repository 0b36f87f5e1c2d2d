"""The journal becomes a hash chain per endpoint; SQLite refuses REPLACE INTO on it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sigsci_iga.store.journal import GENESIS, line_hash
from sigsci_iga.store.tables import UTCDateTime, json_type

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

# REPLACE INTO deletes the old row without firing DELETE triggers; refuse any insert that
# reuses an id instead. (An id the database assigns reads as -1 in a BEFORE trigger.)
_SQLITE_NO_REPLACE = """
    CREATE TRIGGER journal_append_only_replace BEFORE INSERT ON journal
    WHEN NEW.id > 0 AND NEW.id <= (SELECT coalesce(max(id), 0) FROM journal)
    BEGIN SELECT RAISE(ABORT, 'journal is append-only: REPLACE refused'); END
"""
#: The journal's columns as this migration knows them, typed so values read as the code writes.
_JOURNAL = sa.table(
    "journal",
    sa.column("id", sa.Integer),
    sa.column("at", UTCDateTime()),
    *(sa.column(name, sa.Integer) for name in ("endpoint_id", "task_id", "attempt", "status")),
    *(
        sa.column(name, sa.String)
        for name in (
            "request_id",
            "operation",
            "target",
            "kind",
            "state_before",
            "state_after",
            "method",
            "path",
            "error",
            "prev_hash",
            "chain_hash",
        )
    ),
    sa.column("detail", json_type()),
    sa.column("seq", sa.BigInteger),
)


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    op.add_column("endpoints", sa.Column("journal_seq", sa.BigInteger))
    op.add_column("endpoints", sa.Column("journal_head", sa.String(64)))
    op.add_column("journal", sa.Column("seq", sa.BigInteger))
    op.add_column("journal", sa.Column("prev_hash", sa.String(64)))
    op.add_column("journal", sa.Column("chain_hash", sa.String(64)))
    _chain_existing_lines(bind, postgres)
    op.create_index("ix_journal_endpoint_id_seq", "journal", ["endpoint_id", "seq"], unique=True)
    if not postgres:
        op.execute(_SQLITE_NO_REPLACE)


def _chain_existing_lines(bind: sa.Connection, postgres: bool) -> None:
    """Chain the lines written before this version, once, with the append-only guard lifted."""
    full = _JOURNAL
    if bind.execute(sa.select(sa.func.count()).select_from(full)).scalar_one() == 0:
        return
    if postgres:
        op.execute("ALTER TABLE journal DISABLE TRIGGER journal_append_only")
    else:
        op.execute("DROP TRIGGER journal_append_only_update")
    heads: dict[int, tuple[int, str]] = {}
    for row in bind.execute(sa.select(full).order_by(full.c.id)):
        values = dict(row._mapping)
        seq, prev = heads.get(values["endpoint_id"], (0, GENESIS))
        seq += 1
        digest = line_hash(prev, seq, values)
        bind.execute(
            full.update()
            .where(full.c.id == values["id"])
            .values(seq=seq, prev_hash=prev, chain_hash=digest)
        )
        heads[values["endpoint_id"]] = (seq, digest)
    endpoints = sa.table(
        "endpoints", sa.column("id"), sa.column("journal_seq"), sa.column("journal_head")
    )
    for endpoint_id, (seq, digest) in heads.items():
        bind.execute(
            endpoints.update()
            .where(endpoints.c.id == endpoint_id)
            .values(journal_seq=seq, journal_head=digest)
        )
    if postgres:
        op.execute("ALTER TABLE journal ENABLE TRIGGER journal_append_only")
    else:
        op.execute(
            "CREATE TRIGGER journal_append_only_update BEFORE UPDATE ON journal "
            "BEGIN SELECT RAISE(ABORT, 'journal is append-only: UPDATE refused'); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.execute("DROP TRIGGER journal_append_only_replace")
    op.drop_index("ix_journal_endpoint_id_seq", "journal")
    with op.batch_alter_table("journal") as batch:
        batch.drop_column("chain_hash")
        batch.drop_column("prev_hash")
        batch.drop_column("seq")
    with op.batch_alter_table("endpoints") as batch:
        batch.drop_column("journal_head")
        batch.drop_column("journal_seq")
