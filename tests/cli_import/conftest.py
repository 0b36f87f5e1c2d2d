"""CLI fixtures: a simulator on loopback and a repository file per test (or per module)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_import_harness import CONFIG, Cli

from sigsci_iga.sim import SimConfig, create_app, serve_in_thread


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    """A fresh simulator on loopback and an empty repository, for tests that change things."""
    app = create_app(SimConfig(**CONFIG))
    with serve_in_thread(app) as base_url:
        yield Cli(base_url, app, tmp_path)


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """A simulator and a repository holding one full import, shared by read-only tests."""
    app = create_app(SimConfig(**CONFIG))
    with serve_in_thread(app) as base_url:
        runner = Cli(base_url, app, tmp_path_factory.mktemp("imported"))
        runner("import")
        yield runner
