"""Engines, migrations and endpoints."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from sigsci_iga.errors import ConfigError, InvalidInputError
from sigsci_iga.store import Checkpoint, RecordNotFoundError, Repository, open_repository
from sigsci_iga.store.db import (
    MIGRATIONS_DIR,
    create_engine_for,
    current_revision,
    head_revision,
    normalize_url,
)
from sigsci_iga.store.tables import metadata


def test_the_migrations_create_exactly_the_declared_tables(repo: Repository) -> None:
    with repo.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)

    assert differences == []
    assert current_revision(repo.engine) == head_revision()


def test_the_head_revision_the_package_names_is_alembic_s_head() -> None:
    # Commands compare the database with the constant and load Alembic only to migrate: a new
    # migration must move the constant too.
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert head_revision() == ScriptDirectory.from_config(config).get_current_head()


def test_opening_a_migrated_repository_does_not_load_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'iga.db'}"
    open_repository(url).close()
    child = (
        "import sys; from sigsci_iga.store import open_repository; "
        f"open_repository({url!r}).close(); print('alembic' in sys.modules)"
    )
    done = subprocess.run(  # noqa: S603  # our own interpreter, fixed code
        [sys.executable, "-c", child], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_opening_a_fresh_database_upgrades_it_once(
    backend: str, tmp_path: object, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{request.getfixturevalue('tmp_path') / 'new.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("fresh_pg_url")
    )

    first = open_repository(url)
    first.endpoints.add("prod", corp="c", api_url="https://x")
    first.close()
    second = open_repository(url)

    assert [e.name for e in second.endpoints.list()] == ["prod"]
    second.close()


def test_postgres_urls_are_rewritten_to_psycopg_and_other_backends_refused() -> None:
    assert normalize_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("postgres://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"
    with pytest.raises(ConfigError, match="not supported"):
        normalize_url("mysql://u@h/db")


def test_sqlite_connections_enforce_foreign_keys_and_use_wal(tmp_path: object) -> None:
    engine = create_engine_for(f"sqlite:///{tmp_path}/pragmas.db")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    engine.dispose()


def test_an_endpoint_keeps_settings_and_checkpoint_but_refuses_secrets(
    repo: Repository,
) -> None:
    repo.endpoints.add(
        "prod",
        corp="acme",
        api_url="https://d.example",
        email="bot@acme.io",
        settings={"page_size": 100, "proxy": {"host": "p"}},
    )
    seen = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    repo.endpoints.set_checkpoint("prod", Checkpoint(seen, ("ev1", "ev2")))

    endpoint = repo.endpoints.get("prod")

    assert endpoint.settings == {"page_size": 100, "proxy": {"host": "p"}}
    assert endpoint.checkpoint == Checkpoint(seen, ("ev1", "ev2"))
    assert endpoint.to_json()["checkpoint"]["last_activity"] == "2024-01-02T03:04:05+00:00"
    assert endpoint.checkpoint.membership_feed is None
    repo.endpoints.set_checkpoint("prod", Checkpoint(seen, ("ev1",), membership_feed="sites"))
    assert repo.endpoints.get("prod").checkpoint == Checkpoint(seen, ("ev1",), "sites")
    assert repo.endpoints.get("prod").to_json()["checkpoint"]["membership_feed"] == "sites"
    with pytest.raises(InvalidInputError, match="secrets are never stored"):
        repo.endpoints.add("x", corp="c", api_url="u", settings={"proxy": {"Password": "p"}})
    with pytest.raises(InvalidInputError, match="secrets are never stored"):
        repo.endpoints.update("prod", settings={"api_token": "t"})
    with pytest.raises(InvalidInputError, match="already exists"):
        repo.endpoints.add("prod", corp="c", api_url="u")


def test_unknown_endpoints_runs_and_accounts_are_reported_by_name(repo: Repository) -> None:
    with pytest.raises(RecordNotFoundError, match="'nope'"):
        repo.runs.load_view("nope")
    with pytest.raises(RecordNotFoundError, match="run 42"):
        repo.runs.get(42)
    repo.endpoints.add("prod", corp="c", api_url="u")
    with pytest.raises(RecordNotFoundError, match=r"ghost@x\.io"):
        repo.inventory.account("prod", "ghost@x.io")


def test_deleting_an_endpoint_row_cascades_through_foreign_keys(repo: Repository) -> None:
    repo.endpoints.add("prod", corp="c", api_url="u")
    with repo.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM endpoints"))
        assert conn.execute(sa.text("SELECT count(*) FROM entitlement_types")).scalar() == 0
