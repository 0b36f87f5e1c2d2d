"""Service tokens for the HTTP API: keyed hashes, roles, lifetimes, revocation.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None

# Frozen here rather than read from the domain: a migration must create what it created the
# day it was written. A new role needs a new migration.
_ROLES = ("viewer", "requester", "approver", "admin")


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    roles = ", ".join(repr(role) for role in _ROLES)
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("public_id", sa.String(32), nullable=False),
        # HMAC-SHA256 of the token under the server key; the key is never stored.
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("created_by", sa.String(320)),
        sa.Column("expires_at", _ts()),
        sa.Column("last_used_at", _ts()),
        sa.Column("revoked_at", _ts()),
        sa.Column("revoked_by", sa.String(320)),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
        sa.UniqueConstraint("name", name="uq_api_tokens_name"),
        sa.UniqueConstraint("public_id", name="uq_api_tokens_public_id"),
        sa.CheckConstraint(f"role IN ({roles})", name="ck_api_tokens_role"),
    )


def downgrade() -> None:
    op.drop_table("api_tokens")
