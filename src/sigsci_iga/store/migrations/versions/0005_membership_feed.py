"""Endpoints remember which activity feeds show site membership events.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # NULL: not learned yet, which makes an incremental import read the site feeds as well.
    op.add_column("endpoints", sa.Column("checkpoint_membership_feed", sa.String(16)))


def downgrade() -> None:
    with op.batch_alter_table("endpoints") as batch:
        batch.drop_column("checkpoint_membership_feed")
