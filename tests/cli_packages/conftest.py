"""CLI package fixtures: a repository file per test, and a loopback simulator run in-process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_pkg_harness import Cli, Sim

from sigsci_iga.sim import SimConfig, create_app, serve_in_thread


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """The CLI run in the test's directory on an empty SQLite repository there."""
    return Cli(tmp_path, tmp_path / "iga.db")


@pytest.fixture
def sim() -> Iterator[Sim]:
    """30 users (some pending), 12 sites: more than the 10 of the simulator's first sites page."""
    app = create_app(SimConfig(users=30, sites=12, seed=17, pending_share=0.1))
    with serve_in_thread(app) as url:
        yield Sim(app, url)
