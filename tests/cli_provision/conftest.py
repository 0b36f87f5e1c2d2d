"""CLI provisioning fixtures: a loopback simulator and an imported SQLite repository per test."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_prov_harness import World

from sigsci_iga.sim import SimConfig, create_app, serve_in_thread
from sigsci_iga.store.db import upgrade


@pytest.fixture(scope="session")
def cli_prov_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli-prov-template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def world(tmp_path: Path, cli_prov_template: Path) -> Iterator[World]:
    """30 users (nobody pending), 6 sites, served on loopback; the corp already imported."""
    app = create_app(SimConfig(users=30, sites=6, seed=17, pending_share=0.0))
    db_path = tmp_path / "iga.db"
    shutil.copyfile(cli_prov_template, db_path)
    with serve_in_thread(app) as api_url:
        world = World(app=app, api_url=api_url, db_path=db_path, cwd=tmp_path)
        world.import_corp()
        yield world
