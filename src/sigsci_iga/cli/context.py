"""Factories the commands share: settings, the repository and the connector, built on demand."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

from sigsci_iga.cli.output import fail
from sigsci_iga.connectors.base import ProvisioningConnector
from sigsci_iga.connectors.rest.loader import load_package
from sigsci_iga.connectors.rest.runtime import RestConnector
from sigsci_iga.connectors.signalsciences.client import SigSciClient
from sigsci_iga.connectors.signalsciences.connector import SignalSciencesConnector
from sigsci_iga.errors import SigsciIgaError
from sigsci_iga.settings import Settings, load_settings
from sigsci_iga.store import EndpointInfo, RecordNotFoundError, Repository, open_repository


class CliState:
    """Options of the root command, read by every subcommand."""

    config_file: Path | None = None


def settings() -> Settings:
    try:
        return load_settings(CliState.config_file)
    except SigsciIgaError as exc:
        fail(exc)


@contextmanager
def repository(current: Settings | None = None) -> Iterator[Repository]:
    """Open (and, on first use, migrate) the repository the settings name."""
    chosen = current or settings()
    try:
        repo = open_repository(chosen.database_url)
    except SigsciIgaError as exc:
        fail(exc)
    try:
        yield repo
    finally:
        repo.close()


def endpoint_name(current: Settings, explicit: str | None) -> str:
    """The endpoint a command is about: `--endpoint`, else the configured corp."""
    if explicit:
        return explicit
    if current.corp:
        return current.corp
    fail("no endpoint: pass --endpoint or set SIGSCI_CORP", code=2)


def ensure_endpoint(repo: Repository, current: Settings, name: str) -> EndpointInfo:
    """The endpoint record for `name`, registered from the settings the first time it is used.

    A `rest` endpoint (registered with `endpoints add`) carries its own package and parameters.
    """
    try:
        info = repo.get_endpoint(name)
    except RecordNotFoundError:
        email, corp = current.require_credentials()
        return repo.add_endpoint(name, corp=corp, api_url=current.api_url, email=email)
    if info.connector == "rest":
        return info
    email, corp = current.require_credentials()
    if info.corp != corp:
        fail(
            f"endpoint {name!r} governs corp {info.corp!r} but SIGSCI_CORP is {corp!r}; "
            "pass --endpoint to choose another name",
            code=2,
        )
    if info.api_url != current.api_url or info.email != email:
        info = repo.update_endpoint(name, api_url=current.api_url, email=email)
    return info


@asynccontextmanager
async def open_connector(
    current: Settings, info: EndpointInfo
) -> AsyncIterator[ProvisioningConnector]:
    """The endpoint's connector: the native client, or a `rest` package with its parameters."""
    if info.connector == "rest":
        package = load_package(str(info.settings["package"]))
        params = {str(k): str(v) for k, v in dict(info.settings.get("params") or {}).items()}
        async with RestConnector(package.bind(params)) as connector:
            yield connector
        return
    async with SigSciClient.from_settings(current) as client:
        yield SignalSciencesConnector(client)
