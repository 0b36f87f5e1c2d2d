"""The service in-process (its ASGI app under a test client) against an in-process simulator."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from sigsci_iga import app
from sigsci_iga.service import ServiceRuntime, create_service
from sigsci_iga.service.processes import WakePipe
from sigsci_iga.settings import Settings
from sigsci_iga.sim import (
    DEMO_CORP,
    DEMO_EMAIL,
    DEMO_TOKEN,
    SimConfig,
    SimState,
    create_app,
    inprocess_transport,
)

TOKEN_KEY = "service-test-key-" + "k" * 32
FAST_CLIENT = {
    "rate_limit_per_minute": 1_000_000.0,
    "retry_wait_initial": 0.01,
    "retry_wait_max": 0.05,
}
ROLES = ("viewer", "requester", "approver", "admin")


@dataclass
class Service:
    client: TestClient
    runtime: ServiceRuntime
    sim: FastAPI
    tokens: dict[str, str]
    api: FastAPI

    @property
    def ctx(self) -> app.AppContext:
        return self.runtime.ctx

    @property
    def state(self) -> SimState:
        state: SimState = self.sim.state.sim.state
        return state

    def headers(self, role: str = "admin", **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}", **extra}

    def get(self, path: str, role: str = "admin", **kwargs: Any) -> Any:
        return self.client.get(path, headers=self.headers(role), **kwargs)

    def post(self, path: str, role: str = "admin", **kwargs: Any) -> Any:
        headers = {**self.headers(role), **kwargs.pop("headers", {})}
        return self.client.post(path, headers=headers, **kwargs)


def service_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "api_url": "http://sim",
        "email": DEMO_EMAIL,
        "token": SecretStr(DEMO_TOKEN),
        "corp": DEMO_CORP,
        "database_url": database_url,
        "retry_base_seconds": 0.05,
        "token_key": SecretStr(TOKEN_KEY),
        **overrides,
    }
    return Settings(**values)


@contextmanager
def running_service(
    database_url: str,
    *,
    sim: FastAPI | None = None,
    run_scheduler: bool = False,
    run_worker: bool = True,
    worker_poll_seconds: float = 0.2,
    peers: WakePipe | None = None,
    **settings: Any,
) -> Iterator[Service]:
    """The service with one token per role; the worker (and the scheduler) on the job thread."""
    for name in list(os.environ):
        # The suite's own knobs (SIGSCI_IGA_TEST_*) are read by fixtures, never by settings.
        if name.startswith("SIGSCI") and not name.startswith("SIGSCI_IGA_TEST_"):
            raise AssertionError(f"{name} is set: the service test would read it")
    sim = sim or create_app(SimConfig(users=30, sites=6, seed=5))
    config = service_settings(database_url, **settings)
    connectors = app.Connectors(
        config, environ={}, transport=inprocess_transport(sim), client_options=FAST_CLIENT
    )
    ctx = app.AppContext(config, connectors=connectors)
    tokens = {
        role: app.create_token(ctx, f"{role}-bot", role).token.get_secret_value() for role in ROLES
    }
    runtime = ServiceRuntime(
        ctx,
        run_worker=run_worker,
        run_scheduler=run_scheduler,
        worker_poll_seconds=worker_poll_seconds,
        peers=peers,
    )
    service = create_service(runtime)
    with TestClient(service) as client:
        yield Service(client, runtime, sim, tokens, service)
