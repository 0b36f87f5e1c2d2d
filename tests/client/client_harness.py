"""Shared harness for the SigSciClient suite: the simulator in-process or on loopback, one API for both.

`Sim.client()` builds a real `SigSciClient` whose transport records every request that leaves it
(so tests can prove a request was, or was never, sent) and the most requests in flight at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from sigsci_iga.connectors.http.calls import CallRecord
from sigsci_iga.connectors.signalsciences.client import SigSciClient
from sigsci_iga.sim import (
    DEMO_CORP,
    DEMO_EMAIL,
    DEMO_PASSWORD,
    DEMO_TOKEN,
    FaultRule,
    SimConfig,
    SimRuntime,
    SimState,
    inprocess_transport,
)

T = TypeVar("T")
E = TypeVar("E", bound=BaseException)

#: Every secret a test hands the client; none may ever show up in an error or a call record.
SECRETS = (DEMO_TOKEN, DEMO_PASSWORD)

ResponseHook = Callable[[httpx.Request, httpx.Response], Awaitable[httpx.Response]]


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run one test coroutine (pytest-asyncio is not part of this project)."""
    return asyncio.run(coro)


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"secret leaked into {text!r}"


async def raises(cls: type[E], awaitable: Awaitable[Any]) -> E:
    """Await, expecting exactly `cls`; the error's text must not carry any secret."""
    with pytest.raises(cls) as info:
        await awaitable
    error = info.value
    assert type(error) is cls, f"expected {cls.__name__}, got {type(error).__name__}: {error}"
    assert_no_secret(str(error))
    assert_no_secret(repr(error))
    return error


class RecordingTransport(httpx.AsyncBaseTransport):
    """Wraps the real transport: records requests, tracks concurrency, may rewrite responses."""

    def __init__(self, inner: httpx.AsyncBaseTransport, sim: Sim) -> None:
        self._inner = inner
        self._sim = sim

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        sim = self._sim
        sim.requests.append(request)
        sim.in_flight += 1
        sim.max_in_flight = max(sim.max_in_flight, sim.in_flight)
        try:
            response = await self._inner.handle_async_request(request)
        finally:
            sim.in_flight -= 1
        if sim.response_hook is not None:
            response = await sim.response_hook(request, response)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


@dataclass
class Sim:
    """One simulator and how this test reaches it."""

    mode: str
    app: FastAPI
    base_url: str
    requests: list[httpx.Request] = field(default_factory=list)
    records: list[CallRecord] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    response_hook: ResponseHook | None = None

    @property
    def runtime(self) -> SimRuntime:
        runtime: SimRuntime = self.app.state.sim
        return runtime

    @property
    def state(self) -> SimState:
        return self.runtime.state

    @property
    def config(self) -> SimConfig:
        return self.runtime.config

    def calls(self, key: str | None = None) -> int:
        """API calls the simulator received: all, or one `METHOD /template` key.

        On loopback this reads the `/_sim/calls` admin API, as an outside observer would.
        """
        if self.mode == "inprocess":
            counter = self.runtime.calls
            return counter.total() if key is None else counter[key]
        body = self._admin("GET", "/_sim/calls")
        return int(body["total"] if key is None else body["calls"].get(key, 0))

    def fault(self, kind: str, **options: Any) -> None:
        """Add one fault rule (through `POST /_sim/faults` when on loopback)."""
        rule = {"kind": kind, **options}
        if self.mode == "inprocess":
            self.runtime.faults.add(FaultRule.from_dict(rule))
        else:
            self._admin("POST", "/_sim/faults", rule)

    def _admin(self, method: str, path: str, body: Any = None) -> Any:
        response = httpx.request(method, self.base_url + path, json=body, timeout=5)
        response.raise_for_status()
        return response.json()

    def advance_clock(self, seconds: float) -> None:
        """Move the simulated clock: through the `/_sim/clock` admin API when on loopback."""
        if self.mode == "inprocess":
            self.state.advance_clock(seconds)
            return
        self._admin("PUT", "/_sim/clock", {"advance": seconds})

    def transport(self) -> RecordingTransport:
        inner = (
            inprocess_transport(self.app)
            if self.mode == "inprocess"
            else httpx.AsyncHTTPTransport()
        )
        return RecordingTransport(inner, self)

    def client(self, **overrides: Any) -> SigSciClient:
        """A client with fast retries and no client-side pacing unless a test asks for it.

        Build it inside the running event loop (the limiter's primitives belong to one loop).
        """
        options: dict[str, Any] = {
            "base_url": self.base_url,
            "corp": DEMO_CORP,
            "email": DEMO_EMAIL,
            "token": SecretStr(DEMO_TOKEN),
            "transport": self.transport(),
            "timeout": 5.0,
            "rate_limit_per_minute": 60_000.0,
            "max_concurrency": 4,
            "read_attempts": 3,
            "retry_wait_initial": 0.01,
            "retry_wait_max": 0.05,
            # Throttling is retried for a bounded time; test_client_throttling proves the real one.
            "throttle_wait_max": 0.05,
            "throttle_patience": 0.5,
            "observers": [self.records.append],
        }
        options.update(overrides)
        return SigSciClient(**options)


SimFactory = Callable[..., Sim]

#: The shared small corp (as tests/conftest.py), with a short stall for `timeout` faults.
DEFAULT_CONFIG: dict[str, Any] = {"users": 50, "sites": 8, "seed": 7, "timeout_fault_seconds": 3.0}
