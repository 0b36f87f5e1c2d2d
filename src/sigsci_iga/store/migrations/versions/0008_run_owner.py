"""Import runs remember which process runs them, so a run whose process died can be closed.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # `host:pid` of the importing process; NULL for runs recorded before this version.
    op.add_column("import_runs", sa.Column("owner", sa.String(200)))


def downgrade() -> None:
    with op.batch_alter_table("import_runs") as batch:
        batch.drop_column("owner")
