"""The identity repository: one database, and a part for each kind of record it holds."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from sigsci_iga.store.db import (
    Database,
    DatabaseOptions,
    create_engine_for,
    current_revision,
    head_revision,
    translated_errors,
    upgrade,
)
from sigsci_iga.store.endpoints import Endpoints
from sigsci_iga.store.idempotency import Idempotency
from sigsci_iga.store.identities import Identities
from sigsci_iga.store.inventory import Inventory
from sigsci_iga.store.journal import Journal
from sigsci_iga.store.runs import Runs
from sigsci_iga.store.schedules import Schedules
from sigsci_iga.store.tasks import Tasks
from sigsci_iga.store.tokens import Tokens


class Repository:
    """Every part shares one engine; each call of a part runs in its own transaction."""

    def __init__(self, engine: Engine, options: DatabaseOptions | None = None) -> None:
        self.db = Database(engine, options)
        self.endpoints = Endpoints(self.db)
        self.runs = Runs(self.db)
        self.identities = Identities(self.db)
        self.inventory = Inventory(self.db)
        self.tasks = Tasks(self.db)
        self.journal = Journal(self.db)
        self.tokens = Tokens(self.db)
        self.schedules = Schedules(self.db)
        self.idempotency = Idempotency(self.db)

    @property
    def engine(self) -> Engine:
        return self.db.engine

    def close(self) -> None:
        """Release pooled connections."""
        self.db.close()

    def __enter__(self) -> Repository:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def open_repository(
    url: str, *, echo: bool = False, options: DatabaseOptions | None = None
) -> Repository:
    """Open the repository at `url`, migrating it first if it is behind this package."""
    engine = create_engine_for(url, echo=echo, options=options)
    try:
        with translated_errors(engine, options):
            if current_revision(engine) != head_revision():
                upgrade(engine)
    except BaseException:
        engine.dispose()
        raise
    return Repository(engine, options)
