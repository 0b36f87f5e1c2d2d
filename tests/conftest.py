"""Shared fixtures: the Signal Sciences simulator, in-process and over loopback HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI

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
