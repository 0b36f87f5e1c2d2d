"""Endpoints carry references to their secrets, and can be retired.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("endpoints") as batch:
        # References such as `env:ACME_TOKEN` or `file:/run/secrets/acme`, never the secrets.
        batch.add_column(sa.Column("credentials", _json()))
        # An endpoint whose journal must be kept is retired instead of deleted.
        batch.add_column(sa.Column("retired_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("endpoints") as batch:
        batch.drop_column("retired_at")
        batch.drop_column("credentials")
