"""Client-side pacing: the requests-per-minute budget and the bound on requests in flight.

These assert behaviour (a lower bound on time, a ceiling on concurrency), never speed.
"""

from __future__ import annotations

import asyncio
import time

from client_harness import Sim, SimFactory, run


def test_a_rate_limit_of_120_per_minute_spreads_7_reads_over_at_least_2_5_seconds(
    local_sim: Sim,
) -> None:
    sim = local_sim

    async def go() -> float:
        async with sim.client(rate_limit_per_minute=120) as client:
            started = time.monotonic()
            for _ in range(7):
                await client.get_corp()
            return time.monotonic() - started

    elapsed = run(go())
    # A one-second bucket (2 requests) goes at once; the 5 others wait 0.5 s each.
    assert elapsed >= 2.4
    assert sim.calls("GET /corps/{corp}") == 7


def test_no_more_than_max_concurrency_requests_are_ever_in_flight(
    make_sim: SimFactory, mode: str
) -> None:
    sim = make_sim(mode, latency_ms=150)

    async def go() -> float:
        async with sim.client(max_concurrency=2) as client:
            started = time.monotonic()
            corps = await asyncio.gather(*(client.get_corp() for _ in range(8)))
            assert len(corps) == 8
            return time.monotonic() - started

    elapsed = run(go())
    assert sim.max_in_flight == 2  # measured in the transport: the bound held, and was used
    # 8 requests of >= 150 ms each, two at a time, cannot take less than 4 x 150 ms.
    assert elapsed >= 0.55
    assert sim.calls("GET /corps/{corp}") == 8
