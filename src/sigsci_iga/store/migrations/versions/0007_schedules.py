"""Schedules, and their fires keyed by (schedule, fire time) and run under leases.

A fresh repository has no schedules: this only creates the tables.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sigsci_iga.store.tables import UTCDateTime, big_id, json_type

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("job", sa.String(64), nullable=False),
        sa.Column(
            "endpoint_id",
            sa.Integer,
            sa.ForeignKey(
                "endpoints.id", ondelete="CASCADE", name="fk_schedules_endpoint_id_endpoints"
            ),
        ),
        sa.Column("cron", sa.String(200)),
        sa.Column("interval_seconds", sa.Integer),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("missed", sa.String(16), nullable=False),
        sa.Column("anchor_at", UTCDateTime(), nullable=False),
        sa.Column("fires_from", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_schedules"),
        sa.UniqueConstraint("name", name="uq_schedules_name"),
        sa.CheckConstraint(
            "(cron IS NULL AND interval_seconds IS NOT NULL AND interval_seconds > 0)"
            " OR (cron IS NOT NULL AND interval_seconds IS NULL)",
            name="ck_schedules_timing",
        ),
        sa.CheckConstraint("missed IN ('skip', 'run-all')", name="ck_schedules_missed"),
    )
    op.create_index("ix_schedules_endpoint_id", "schedules", ["endpoint_id"])
    op.create_table(
        "schedule_fires",
        sa.Column("id", big_id(), primary_key=True),
        sa.Column(
            "schedule_id",
            sa.Integer,
            sa.ForeignKey(
                "schedules.id", ondelete="CASCADE", name="fk_schedule_fires_schedule_id_schedules"
            ),
            nullable=False,
        ),
        sa.Column("fire_at", UTCDateTime(), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("missed", sa.Integer, nullable=False),
        sa.Column("lease_owner", sa.String(200)),
        sa.Column("lease_until", UTCDateTime()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime()),
        sa.Column("finished_at", UTCDateTime()),
        sa.Column("summary", json_type()),
        sa.Column("error", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_schedule_fires"),
        sa.UniqueConstraint("schedule_id", "fire_at", name="uq_schedule_fires_schedule_id_fire_at"),
        sa.CheckConstraint("trigger IN ('schedule', 'manual')", name="ck_schedule_fires_trigger"),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'succeeded', 'failed', 'held')",
            name="ck_schedule_fires_status",
        ),
    )
    op.create_index("ix_schedule_fires_status", "schedule_fires", ["status"])


def downgrade() -> None:
    op.drop_table("schedule_fires")
    op.drop_table("schedules")
