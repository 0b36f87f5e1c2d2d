"""Initial repository: identities, endpoints, accounts, entitlements, links, runs, history.

Revision ID: 0001
Revises:
Create Date: 2024-11-27
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(JSONB(), "postgresql")


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "identities",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("username", sa.String(255), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("first_name", sa.String(255)),
        sa.Column("last_name", sa.String(255)),
        sa.Column("department", sa.String(255)),
        sa.Column("manager", sa.String(255)),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("extra", _json(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_identities"),
        sa.UniqueConstraint("username", name="uq_identities_username"),
    )
    op.create_table(
        "endpoints",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("connector", sa.String(32), nullable=False),
        sa.Column("api_url", sa.String(500), nullable=False),
        sa.Column("corp", sa.String(200), nullable=False),
        sa.Column("email", sa.String(320)),
        sa.Column("settings", _json(), nullable=False),
        sa.Column("checkpoint_at", _ts()),
        sa.Column("checkpoint_event_ids", _json(), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_endpoints"),
        sa.UniqueConstraint("name", name="uq_endpoints_name"),
        sa.CheckConstraint(
            "connector IN ('signalsciences', 'rest')", name="ck_endpoints_connector"
        ),
    )
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("endpoint_id", sa.Integer, nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("name", sa.String(500), nullable=False),
        sa.Column("role", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("mfa_enabled", sa.Boolean, nullable=False),
        sa.Column("created", _ts()),
        sa.Column("extra", _json(), nullable=False),
        sa.Column("identity_id", sa.Integer),
        sa.PrimaryKeyConstraint("id", name="pk_accounts"),
        sa.UniqueConstraint("endpoint_id", "email", name="uq_accounts_endpoint_id_email"),
        sa.CheckConstraint(
            "status IN ('active', 'pending', 'suspended')", name="ck_accounts_status"
        ),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["endpoints.id"],
            name="fk_accounts_endpoint_id_endpoints",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["identity_id"],
            ["identities.id"],
            name="fk_accounts_identity_id_identities",
            ondelete="SET NULL",
        ),
    )
    op.create_index("ix_accounts_identity_id", "accounts", ["identity_id"])
    op.create_table(
        "entitlement_types",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("endpoint_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_entitlement_types"),
        sa.UniqueConstraint("endpoint_id", "name", name="uq_entitlement_types_endpoint_id_name"),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["endpoints.id"],
            name="fk_entitlement_types_endpoint_id_endpoints",
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "entitlement_values",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("type_id", sa.Integer, nullable=False),
        sa.Column("value", sa.String(500), nullable=False),
        sa.Column("display_name", sa.String(500), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_entitlement_values"),
        sa.UniqueConstraint("type_id", "value", name="uq_entitlement_values_type_id_value"),
        sa.CheckConstraint("status IN ('active', 'inactive')", name="ck_entitlement_values_status"),
        sa.ForeignKeyConstraint(
            ["type_id"],
            ["entitlement_types.id"],
            name="fk_entitlement_values_type_id_entitlement_types",
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "account_entitlements",
        sa.Column("account_id", sa.Integer, nullable=False),
        sa.Column("value_id", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("account_id", "value_id", name="pk_account_entitlements"),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name="fk_account_entitlements_account_id_accounts",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["value_id"],
            ["entitlement_values.id"],
            name="fk_account_entitlements_value_id_entitlement_values",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_account_entitlements_value_id", "account_entitlements", ["value_id"])
    op.create_table(
        "import_runs",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("endpoint_id", sa.Integer, nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("dry_run", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", _ts(), nullable=False),
        sa.Column("finished_at", _ts()),
        sa.Column("counts", _json()),
        sa.Column("reason", sa.Text),
        sa.Column("diff", _json()),
        sa.Column("base_version", sa.Integer),
        sa.Column("applied_version", sa.Integer),
        sa.PrimaryKeyConstraint("id", name="pk_import_runs"),
        sa.CheckConstraint("mode IN ('full', 'incremental')", name="ck_import_runs_mode"),
        sa.CheckConstraint(
            "status IN ('running', 'succeeded', 'failed', 'held', 'approved', 'refused')",
            name="ck_import_runs_status",
        ),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["endpoints.id"],
            name="fk_import_runs_endpoint_id_endpoints",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_import_runs_endpoint_id", "import_runs", ["endpoint_id"])
    op.create_table(
        "history",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_id", sa.Integer),
        sa.Column("endpoint_id", sa.Integer),
        sa.Column("object_type", sa.String(32), nullable=False),
        sa.Column("object_key", sa.String(1000), nullable=False),
        sa.Column("field", sa.String(64)),
        sa.Column("old_value", sa.Text),
        sa.Column("new_value", sa.Text),
        sa.Column("changed_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_history"),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["import_runs.id"],
            name="fk_history_run_id_import_runs",
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["endpoints.id"],
            name="fk_history_endpoint_id_endpoints",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_history_run_id", "history", ["run_id"])
    op.create_index(
        "ix_history_endpoint_id_object_type_object_key",
        "history",
        ["endpoint_id", "object_type", "object_key"],
    )
    op.create_index("ix_history_changed_at", "history", ["changed_at"])


def downgrade() -> None:
    for table in (
        "history",
        "import_runs",
        "account_entitlements",
        "entitlement_values",
        "entitlement_types",
        "accounts",
        "endpoints",
        "identities",
    ):
        op.drop_table(table)
