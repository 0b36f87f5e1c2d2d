"""Schedules under test: an application context on the in-process simulator, a clock that
moves only when told, and a job that counts its runs and can be held open."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI
from pydantic import SecretStr

from sigsci_iga import app
from sigsci_iga.domain.schedules import FireStatus
from sigsci_iga.settings import Settings
from sigsci_iga.sim import DEMO_CORP, DEMO_EMAIL, DEMO_TOKEN, inprocess_transport

FAST_CLIENT = {
    "rate_limit_per_minute": 1_000_000.0,
    "retry_wait_initial": 0.01,
    "retry_wait_max": 0.05,
}


def settings_for(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "api_url": "http://sim",
        "email": DEMO_EMAIL,
        "token": SecretStr(DEMO_TOKEN),
        "corp": DEMO_CORP,
        "database_url": database_url,
        "retry_base_seconds": 0.05,
        **overrides,
    }
    return Settings(**values)


def context_for(
    sim: FastAPI | None, database_url: str, *, clock: FakeClock | None = None, **overrides: Any
) -> app.AppContext:
    """A context on its own repository connection, as a separate process would have."""
    settings = settings_for(database_url, **overrides)
    connectors = app.Connectors(
        settings,
        environ={},
        transport=inprocess_transport(sim) if sim is not None else None,
        client_options=FAST_CLIENT,
    )
    extra = {"clock": clock} if clock is not None else {}
    return app.AppContext(settings, connectors=connectors, **extra)


@dataclass
class FakeClock:
    """Now is what the test says it is."""

    now: datetime = field(default_factory=lambda: datetime(2026, 6, 1, 12, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@dataclass
class CountingJob:
    """A job runner that records each run; it can wait on a gate, fail, or hold."""

    runs: list[str | None] = field(default_factory=list)
    gate: asyncio.Event | None = None
    started: asyncio.Event | None = None
    error: Exception | None = None
    held: bool = False

    async def __call__(self, _ctx: app.AppContext, endpoint: str | None) -> app.JobOutcome:
        self.runs.append(endpoint)
        if self.started is not None:
            self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        status = FireStatus.HELD if self.held else FireStatus.SUCCEEDED
        return app.JobOutcome(status, {"run": len(self.runs)})

    def jobs(self) -> dict[str, app.JobRunner]:
        """Every job kind runs this one."""
        return dict.fromkeys(app.JOBS, self)
