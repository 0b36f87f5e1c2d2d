"""Package and Saviynt files that are not text are refused with an error, never a traceback.

The use cases check a file before they hand it to the readers (`app/packages.py`,
`app/endpoints.py`, `app/context.py`), and the readers refuse it themselves too, for any other
caller.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sigsci_iga import app
from sigsci_iga.connectors.rest.loader import load_package
from sigsci_iga.connectors.rest.saviynt import import_saviynt
from sigsci_iga.domain.tasks import Operation
from sigsci_iga.errors import ConfigError, InvalidInputError, SigsciIgaError
from sigsci_iga.settings import load_settings
from sigsci_iga.store import Checkpoint

NOT_UTF8 = bytes(range(128, 256)) * 4


@pytest.fixture
def binary(tmp_path: Path) -> Path:
    path = tmp_path / "package.yaml"
    path.write_bytes(NOT_UTF8)
    return path


def test_the_use_cases_refuse_a_package_that_is_not_utf8_text(binary: Path) -> None:
    with pytest.raises(InvalidInputError, match="not UTF-8 text"):
        app.validate_package(binary)
    with pytest.raises(InvalidInputError, match="not UTF-8 text"):
        app.render_operation(binary, Operation.REMOVE_ACCOUNT, account="a@x.example")
    with pytest.raises(InvalidInputError, match="not UTF-8 text"):
        app.convert_saviynt(binary)


def test_a_registered_package_replaced_by_binary_fails_as_configuration(
    binary: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("SIGSCI_TOKEN", "SIGSCI_IGA_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    info = app.EndpointInfo(
        id=1,
        name="pkg",
        connector="rest",
        api_url="https://api.example.com",
        corp="acme",
        email=None,
        settings={"package": str(binary), "params": {}},
        checkpoint=Checkpoint(last_activity=None),
        version=0,
        created_at=datetime.now(UTC),
    )
    connectors = app.Connectors(load_settings(), environ={})

    async def open_it() -> None:
        async with connectors.open(info):
            pass

    with pytest.raises(ConfigError, match="not UTF-8 text"):
        asyncio.run(open_it())


def test_the_package_loader_itself_refuses_a_file_that_is_not_utf8(binary: Path) -> None:
    with pytest.raises(SigsciIgaError):
        load_package(binary)


def test_the_saviynt_reader_itself_refuses_a_file_that_is_not_utf8(binary: Path) -> None:
    with pytest.raises(SigsciIgaError):
        import_saviynt(binary)
