"""A simulated corp on loopback, imported once into a SQLite file, for in-process CLI runs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cli_inprocess import ImportedCorp

from sigsci_iga.sim import (
    DEMO_CORP,
    DEMO_EMAIL,
    DEMO_TOKEN,
    OBSERVER_EMAIL,
    SimConfig,
    serve_in_thread,
)


@pytest.fixture(scope="module")
def imported_corp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ImportedCorp]:
    """20 users and 4 sites imported, one task queued; tests must leave the file unchanged."""
    directory = tmp_path_factory.mktemp("imported-corp")
    db = directory / "iga.db"
    with serve_in_thread(SimConfig(users=20, sites=4, seed=23, pending_share=0.0)) as url:
        env = {
            "SIGSCI_API_URL": url,
            "SIGSCI_EMAIL": DEMO_EMAIL,
            "SIGSCI_TOKEN": DEMO_TOKEN,
            "SIGSCI_CORP": DEMO_CORP,
            "SIGSCI_IGA_DATABASE_URL": f"sqlite:///{db}",
            "SIGSCI_IGA_INSTANT_PROVISIONING": "false",
        }
        corp = ImportedCorp(env, directory, db)
        for args in (
            ("import",),
            ("request", "update-role", "--email", OBSERVER_EMAIL, "--role", "user"),
        ):
            done = corp.run(*args)
            assert done.code == 0, (args, done.stdout, done.stderr, done.crash)
        yield corp
