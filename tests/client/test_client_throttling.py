"""Throttled reads back off past one whole rate-limit window, then give up at a bounded time.

Nothing here sleeps: the client gets a fake clock and a sleeper that only moves that clock.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from client_harness import raises, run
from pydantic import SecretStr

from sigsci_iga.connectors.signalsciences.backoff import RATE_LIMIT_WINDOW
from sigsci_iga.connectors.signalsciences.client import SigSciClient
from sigsci_iga.errors import RateLimitedError, TransientError
from sigsci_iga.sim import (
    DEMO_CORP,
    DEMO_EMAIL,
    DEMO_TOKEN,
    SimConfig,
    SimState,
    create_app,
    inprocess_transport,
)

CORP_BODY = {"name": DEMO_CORP, "displayName": "Test Corp"}
THROTTLED = {"message": "Rate limit exceeded"}


class FakeTime:
    """A monotonic clock that only moves when the client sleeps; records every wait."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def _client(time: FakeTime, transport: httpx.AsyncBaseTransport, **options: Any) -> SigSciClient:
    values: dict[str, Any] = {
        "base_url": "http://mock",
        "corp": DEMO_CORP,
        "email": DEMO_EMAIL,
        "token": SecretStr(DEMO_TOKEN),
        "transport": transport,
        "rate_limit_per_minute": 1_000_000.0,
        "retry_jitter": 0.0,
        "clock": time.clock,
        "sleep": time.sleep,
        **options,
    }
    return SigSciClient(**values)


def _server(answer: Callable[[float], httpx.Response], time: FakeTime) -> httpx.MockTransport:
    """A server whose answer depends on the fake time it is asked at."""
    return httpx.MockTransport(lambda request: answer(time.now))


def _throttle_until(seconds: float, status: int = 429) -> Callable[[float], httpx.Response]:
    def answer(now: float) -> httpx.Response:
        if now < seconds:
            return httpx.Response(status, json=THROTTLED)
        return httpx.Response(200, json=CORP_BODY)

    return answer


@pytest.mark.parametrize("status", [429, 400])
def test_a_read_throttled_for_65_seconds_backs_off_exponentially_and_succeeds(
    status: int,
) -> None:
    time = FakeTime()
    transport = _server(_throttle_until(65.0, status), time)

    async def go() -> str:
        async with _client(time, transport, read_attempts=5) as client:
            return (await client.get_corp()).name

    assert run(go()) == DEMO_CORP
    # Doubling from 0.5 s, capped at 15 s; nine waits, far more than read_attempts allows
    # failures, because throttling is bounded by time, not by tries.
    assert time.waits == [0.5, 1, 2, 4, 8, 15, 15, 15, 15]
    assert time.now == 75.5


def test_a_server_that_throttles_forever_fails_at_the_patience_mark_with_a_clear_error() -> None:
    time = FakeTime()
    calls: list[float] = []

    def answer(now: float) -> httpx.Response:
        calls.append(now)
        return httpx.Response(429, json=THROTTLED)

    transport = _server(answer, time)

    async def go() -> RateLimitedError:
        async with _client(time, transport) as client:
            return await raises(RateLimitedError, client.get_corp())

    error = run(go())
    assert time.waits == [0.5, 1, 2, 4, 8, 15, 15, 15, 15, 15, 9.5]
    assert sum(time.waits) == 100.0
    assert calls[-1] == 100.0  # the last try lands on the mark: a full window and more passed
    assert calls[-1] - calls[0] > RATE_LIMIT_WINDOW
    assert error.status == 429
    assert error.message == (
        "Rate limit exceeded; still throttled 100 s after the first refusal (12 tries), giving up"
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_jittered_waits_still_give_up_exactly_at_the_patience_mark(seed: int) -> None:
    time = FakeTime()
    transport = _server(_throttle_until(float("inf")), time)

    async def go() -> None:
        async with _client(
            time, transport, retry_jitter=0.25, rng=random.Random(seed), throttle_patience=90.0
        ) as client:
            await raises(RateLimitedError, client.get_corp())

    run(go())
    assert sum(time.waits) == pytest.approx(90.0)
    assert all(0 < w <= 15 for w in time.waits)
    assert len(set(time.waits)) > 3  # jittered, not a fixed ladder


def test_a_retry_after_sets_the_throttle_wait_but_never_past_the_patience() -> None:
    time = FakeTime()

    def answer(now: float) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "70"}, json=THROTTLED)

    transport = _server(answer, time)

    async def go() -> None:
        async with _client(time, transport) as client:
            await raises(RateLimitedError, client.get_corp())

    run(go())
    assert time.waits == [70.0, 30.0]


def test_throttling_does_not_use_up_the_tries_for_failures_and_failures_stay_bounded() -> None:
    time = FakeTime()
    answers = iter(
        [429] * 6 + [500, 500, 429, 429, 500, 200]  # three failures: under read_attempts=4
    )

    def answer(now: float) -> httpx.Response:
        status = next(answers)
        body = CORP_BODY if status == 200 else {"message": "busy"}
        return httpx.Response(status, json=body)

    async def go() -> str:
        async with _client(time, _server(answer, time), read_attempts=4) as client:
            return (await client.get_corp()).name

    assert run(go()) == DEMO_CORP

    failing = FakeTime()

    async def give_up() -> None:
        transport = _server(lambda now: httpx.Response(500, json={"message": "down"}), failing)
        async with _client(failing, transport, read_attempts=4) as client:
            await raises(TransientError, client.get_corp())

    run(give_up())
    assert failing.waits == [0.5, 1, 2]  # today's tries for failures: four, three waits


def test_a_read_outlasts_the_simulators_own_full_rate_limit_window() -> None:
    time = FakeTime()
    start = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    config = SimConfig(users=5, sites=1, rate_limit_per_minute=3)
    state = SimState(config, now=lambda: start + timedelta(seconds=time.now))
    app = create_app(config, state)

    async def go() -> None:
        async with _client(time, inprocess_transport(app), base_url="http://sim") as client:
            for _ in range(3):  # fill the server's window at t=0
                await client.list_corps()
            assert time.waits == []
            assert (await client.get_corp()).name == DEMO_CORP

    run(go())
    # Refused until the three stamps of t=0 leave the sliding minute; no try was given up on.
    assert time.now > 60.0
    assert time.waits == [0.5, 1, 2, 4, 8, 15, 15, 15]
    assert app.state.sim.calls["GET /corps/{corp}"] == 9
