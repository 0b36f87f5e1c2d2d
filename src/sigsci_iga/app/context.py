"""The application context: settings, the repository, the connector factory and the clock.

Every interface (the CLI today; the service, scheduler and console next) builds one context and
calls the use cases with it. Nothing here is built at import time.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self

from sigsci_iga.connectors.base import ConnectionReport, ProvisioningConnector
from sigsci_iga.errors import ConfigError
from sigsci_iga.store import DatabaseOptions, EndpointInfo, Repository, open_repository

if TYPE_CHECKING:
    # The HTTP clients load when a command opens a connector: one that only reads the
    # repository (a listing) starts without them.
    import httpx
    from pydantic import SecretStr

    from sigsci_iga.connectors.rest.runtime import RestConnector
    from sigsci_iga.connectors.signalsciences.client import SigSciClient
    from sigsci_iga.settings import Settings


class EndpointConnector(ProvisioningConnector, Protocol):
    """What the use cases need of a connector: reading, provisioning and `validate`."""

    async def validate(self, caller: str | None) -> ConnectionReport: ...


class ConnectorFactory(Protocol):
    """Opens the connector an endpoint names, with its secrets resolved at that moment."""

    def open(
        self, endpoint: EndpointInfo, *, quick: bool = False
    ) -> AbstractAsyncContextManager[EndpointConnector]:
        """`quick`: answer fast rather than patiently (few retries, short waits), for checks."""
        ...


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Connectors:
    """The default factory: the native client, or a `rest` package with its parameters.

    An endpoint with stored credential references uses those; one without (the endpoint the
    single-corp settings describe) uses the process settings' `SIGSCI_TOKEN`/`SIGSCI_PASSWORD`.
    `transport` and `client_options` exist for tests that reach a simulator in-process.
    """

    settings: Settings
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    transport: httpx.AsyncBaseTransport | None = None
    client_options: Mapping[str, Any] = field(default_factory=dict)

    @asynccontextmanager
    async def open(
        self, endpoint: EndpointInfo, *, quick: bool = False
    ) -> AsyncIterator[EndpointConnector]:
        if endpoint.connector == "rest":
            async with self._rest(endpoint) as rest:
                yield rest
            return
        from sigsci_iga.connectors.signalsciences.connector import (  # noqa: PLC0415
            SignalSciencesConnector,
        )

        async with self._client(endpoint, quick=quick) as client:
            yield SignalSciencesConnector(client)

    def _rest(self, endpoint: EndpointInfo) -> RestConnector:
        from sigsci_iga.app.credentials import resolve_credentials  # noqa: PLC0415
        from sigsci_iga.connectors.rest.loader import load_package  # noqa: PLC0415
        from sigsci_iga.connectors.rest.runtime import RestConnector  # noqa: PLC0415
        from sigsci_iga.files import check_text_file  # noqa: PLC0415

        # The package may have changed since it was registered: a FIFO or non-UTF-8 bytes in
        # its place must fail as configuration, not hang or crash the loader.
        path = check_text_file(str(endpoint.settings["package"]), "package file", error=ConfigError)
        package = load_package(path)
        params = {str(k): str(v) for k, v in dict(endpoint.settings.get("params") or {}).items()}
        secrets = resolve_credentials(endpoint.credentials, self.environ, endpoint.name)
        bound = package.bind(
            params,
            env=self.environ,
            secrets={name: value.get_secret_value() for name, value in secrets.items()},
        )
        return RestConnector(
            bound, transport=self.transport, max_body_bytes=self.settings.max_body_bytes
        )

    def _client(self, endpoint: EndpointInfo, *, quick: bool) -> SigSciClient:
        from sigsci_iga.app.credentials import resolve_credentials  # noqa: PLC0415
        from sigsci_iga.connectors.signalsciences.client import SigSciClient  # noqa: PLC0415

        token: SecretStr | None
        password: SecretStr | None
        if endpoint.credentials:
            secrets = resolve_credentials(endpoint.credentials, self.environ, endpoint.name)
            token, password = secrets.get("token"), secrets.get("password")
        else:
            token, password = self.settings.token, self.settings.password
        if token is None and password is None:
            raise ConfigError(
                f"endpoint {endpoint.name!r} has no credentials: set SIGSCI_TOKEN (or "
                "SIGSCI_PASSWORD), or register it with --token-env / --token-file"
            )
        if not endpoint.email:
            raise ConfigError(f"endpoint {endpoint.name!r} has no caller email")
        options: dict[str, Any] = {
            "base_url": endpoint.api_url,
            "corp": endpoint.corp,
            "email": endpoint.email,
            "token": token,
            "password": password,
            "transport": self.transport,
            "timeout": self.settings.timeout_seconds,
            "rate_limit_per_minute": self.settings.rate_limit_per_minute,
            "max_concurrency": self.settings.max_concurrency,
            "read_attempts": self.settings.read_attempts,
            "max_body_bytes": self.settings.max_body_bytes,
            "max_sites": self.settings.max_sites,
        }
        if quick:
            # A check should answer quickly: two tries, short waits.
            options.update(
                read_attempts=2, retry_wait_initial=0.2, retry_wait_max=1.0, throttle_patience=5.0
            )
        options.update(self.client_options)
        return SigSciClient(**options)


class AppContext:
    """What every use case is given; the repository is opened on first use."""

    def __init__(
        self,
        settings: Settings,
        *,
        connectors: ConnectorFactory | None = None,
        repository: Repository | None = None,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.settings = settings
        self.connectors: ConnectorFactory = connectors or Connectors(settings)
        self.clock = clock
        self._repository = repository
        self._owns_repository = repository is None

    @property
    def repository(self) -> Repository:
        """The repository the settings name, migrated on first use."""
        if self._repository is None:
            options = DatabaseOptions(
                busy_timeout_seconds=self.settings.db_busy_timeout_seconds,
                statement_timeout_seconds=self.settings.db_statement_timeout_seconds,
            )
            self._repository = open_repository(self.settings.database_url, options=options)
        return self._repository

    def close(self) -> None:
        if self._repository is not None and self._owns_repository:
            self._repository.close()
            self._repository = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
