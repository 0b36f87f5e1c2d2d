"""Provisioning: durable tasks, the append-only journal, and history rows marked by task.

Revision ID: 0002
Revises: 0001
Create Date: 2024-12-04
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

_APPEND_ONLY = "journal is append-only"

# Triggers only guard against UPDATE and DELETE by mistake; TRUNCATE and DROP stay possible
# for an administrator (and for the test suite's cleanup).
_POSTGRES_TRIGGER = (
    f"""
    CREATE FUNCTION journal_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '{_APPEND_ONLY}: % refused', TG_OP;
    END
    $$
    """,
    """
    CREATE TRIGGER journal_append_only BEFORE UPDATE OR DELETE ON journal
    FOR EACH ROW EXECUTE FUNCTION journal_append_only()
    """,
)
_SQLITE_TRIGGERS = tuple(
    f"""
    CREATE TRIGGER journal_append_only_{op_name.lower()} BEFORE {op_name} ON journal
    BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY}: {op_name} refused'); END
    """
    for op_name in ("UPDATE", "DELETE")
)


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(JSONB(), "postgresql")


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("endpoint_id", sa.Integer, nullable=False),
        sa.Column("operation", sa.String(32), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("params", _json(), nullable=False),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("max_attempts", sa.Integer, nullable=False, server_default=sa.text("10")),
        sa.Column("next_attempt_at", _ts()),
        sa.Column("last_error", sa.Text),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("requester", sa.String(320)),
        sa.Column("justification", sa.Text),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.Column("finished_at", _ts()),
        sa.Column("lease_owner", sa.String(200)),
        sa.Column("lease_until", _ts()),
        sa.Column("write_sent", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tasks"),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["endpoints.id"],
            name="fk_tasks_endpoint_id_endpoints",
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(
            "operation IN ('create_account', 'update_account', 'add_access', 'remove_access', "
            "'remove_account')",
            name="ck_tasks_operation",
        ),
        sa.CheckConstraint(
            "state IN ('new', 'in_progress', 'completed', 'failed', 'discontinued', "
            "'no_action_required')",
            name="ck_tasks_state",
        ),
    )
    op.create_index("ix_tasks_state_next_attempt_at", "tasks", ["state", "next_attempt_at"])
    op.create_index("ix_tasks_endpoint_id_email", "tasks", ["endpoint_id", "email"])
    op.create_index("ix_tasks_request_id", "tasks", ["request_id"])

    op.create_table(
        "journal",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", _ts(), nullable=False),
        sa.Column("endpoint_id", sa.Integer, nullable=False),
        sa.Column("task_id", sa.Integer),
        sa.Column("request_id", sa.String(64)),
        sa.Column("operation", sa.String(32)),
        sa.Column("target", sa.String(320)),
        sa.Column("attempt", sa.Integer),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state_before", sa.String(24)),
        sa.Column("state_after", sa.String(24)),
        sa.Column("method", sa.String(16)),
        sa.Column("path", sa.String(2000)),
        sa.Column("status", sa.Integer),
        sa.Column("error", sa.Text),
        sa.Column("detail", _json()),
        sa.PrimaryKeyConstraint("id", name="pk_journal"),
        sa.ForeignKeyConstraint(
            ["endpoint_id"], ["endpoints.id"], name="fk_journal_endpoint_id_endpoints"
        ),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name="fk_journal_task_id_tasks"),
        sa.CheckConstraint(
            "kind IN ('requested', 'claimed', 'snapshot', 'intent', 'call', 'state', 'note')",
            name="ck_journal_kind",
        ),
    )
    op.create_index("ix_journal_task_id", "journal", ["task_id"])
    op.create_index("ix_journal_request_id", "journal", ["request_id"])
    op.create_index("ix_journal_endpoint_id_target", "journal", ["endpoint_id", "target"])
    triggers = _POSTGRES_TRIGGER if op.get_bind().dialect.name == "postgresql" else _SQLITE_TRIGGERS
    for statement in triggers:
        op.execute(statement)

    # A nullable column without a foreign key: SQLite adds it in place, no table rebuild.
    op.add_column("history", sa.Column("task_id", sa.Integer))
    op.create_index("ix_history_task_id", "history", ["task_id"])


def downgrade() -> None:
    op.drop_index("ix_history_task_id", "history")
    with op.batch_alter_table("history") as batch:
        batch.drop_column("task_id")
    op.drop_table("journal")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION journal_append_only()")
    op.drop_table("tasks")
