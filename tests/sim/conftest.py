"""An async in-process client for the simulator tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from sigsci_iga.sim import demo_headers


@pytest.fixture
async def api(sim_transport: httpx.AsyncBaseTransport) -> AsyncIterator[httpx.AsyncClient]:
    """An AsyncClient into the app, authenticated as the demo owner."""
    async with httpx.AsyncClient(
        transport=sim_transport, base_url="http://sim.test", headers=demo_headers()
    ) as client:
        yield client
