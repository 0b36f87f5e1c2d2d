"""Alembic environment: always handed a live connection by `sigsci_iga.store.db.upgrade`."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from sigsci_iga.store.tables import metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds tables instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError(
            "run migrations with `sigsci-iga db upgrade` (sigsci_iga.store.db.upgrade)"
        )
    _run(connection)


_main()
