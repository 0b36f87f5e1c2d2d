"""Shared fixtures: the simulator (in-process and over loopback HTTP) and repositories."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from pg_databases import create_pg_database, drop_pg_database, truncate_all
from sigsci_iga.sim import (
    SimConfig,
    SimRuntime,
    SimState,
    create_app,
    demo_headers,
    inprocess_transport,
    observer_headers,
    serve_in_thread,
)
from sigsci_iga.store import Repository, open_repository
from sigsci_iga.store.db import upgrade


@pytest.fixture
def sim_config() -> SimConfig:
    """A small corp: 50 users, 8 sites, seed 7."""
    return SimConfig(users=50, sites=8, seed=7)


@pytest.fixture
def sim_app(sim_config: SimConfig) -> FastAPI:
    """A fresh simulator app for each test."""
    return create_app(sim_config)


@pytest.fixture
def sim_runtime(sim_app: FastAPI) -> SimRuntime:
    """The app's runtime: state, faults, call counters."""
    runtime: SimRuntime = sim_app.state.sim
    return runtime


@pytest.fixture
def sim_state(sim_runtime: SimRuntime) -> SimState:
    """The app's corp state, for direct changes between calls."""
    return sim_runtime.state


@pytest.fixture
def sim_transport(sim_app: FastAPI) -> httpx.AsyncBaseTransport:
    """An httpx transport straight into the app (base URL is irrelevant, e.g. http://sim)."""
    return inprocess_transport(sim_app)


@pytest.fixture
def sim_server(sim_app: FastAPI) -> Iterator[str]:
    """The same app served on a free loopback port; yields the base URL."""
    with serve_in_thread(sim_app) as base_url:
        yield base_url


@pytest.fixture
def sim_headers() -> dict[str, str]:
    """Access-token headers of the demo owner."""
    return demo_headers()


@pytest.fixture
def sim_observer_headers() -> dict[str, str]:
    """Access-token headers of the demo observer."""
    return observer_headers()


@pytest.fixture
def sim_http(sim_server: str) -> Iterator[httpx.Client]:
    """A sync client on the loopback server, authenticated as the demo owner."""
    with httpx.Client(base_url=sim_server, headers=demo_headers(), timeout=10) as client:
        yield client


# -- repositories: a real SQLite file and the local PostgreSQL ---------------------------------


@pytest.fixture(scope="session")
def pg_session_url() -> Iterator[str]:
    """One migrated throwaway PostgreSQL database for the whole session, dropped at the end."""
    url = create_pg_database()
    try:
        upgrade(url)
        yield url
    finally:
        drop_pg_database(url)


@pytest.fixture(scope="session")
def migrated_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file; tests copy it instead of migrating a new one each time."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path, migrated_sqlite_template: Path) -> str:
    """A clean, migrated SQLite repository file."""
    target = tmp_path / "repo.db"
    shutil.copyfile(migrated_sqlite_template, target)
    return f"sqlite:///{target}"


@pytest.fixture
def pg_url(pg_session_url: str) -> str:
    """The session's PostgreSQL database, emptied."""
    truncate_all(pg_session_url)
    return pg_session_url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def repo_url(request: pytest.FixtureRequest) -> str:
    """A clean repository: a new SQLite file, or the session's PostgreSQL database emptied."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    url: str = request.getfixturevalue(name)
    return url


@pytest.fixture
def repo(repo_url: str) -> Iterator[Repository]:
    repository = open_repository(repo_url)
    try:
        yield repository
    finally:
        repository.close()
