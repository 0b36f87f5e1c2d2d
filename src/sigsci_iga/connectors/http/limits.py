"""Client-side pacing: a requests-per-minute token bucket plus a bound on requests in flight."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from types import TracebackType

from sigsci_iga.connectors.http.calls import record_wait


class RequestLimiter:
    """`async with limiter:` waits for a free slot and a token before a request goes out.

    The bucket holds one second's worth of requests (at least one), so bursts stay short and the
    long-run rate never exceeds `per_minute`.
    """

    def __init__(
        self,
        per_minute: float,
        max_concurrency: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be positive")
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self.per_minute = per_minute
        self.max_concurrency = max_concurrency
        self._rate = per_minute / 60.0
        self._capacity = max(1.0, self._rate)
        self._tokens = self._capacity
        self._clock = clock
        self._last = clock()
        self._lock = asyncio.Lock()
        self._slots = asyncio.Semaphore(max_concurrency)

    async def _take_token(self) -> None:
        async with self._lock:
            while True:
                now = self._clock()
                self._tokens = min(self._capacity, self._tokens + (now - self._last) * self._rate)
                self._last = now
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return
                await asyncio.sleep((1.0 - self._tokens) / self._rate)

    async def __aenter__(self) -> None:
        started = self._clock()
        await self._slots.acquire()
        try:
            await self._take_token()
        except BaseException:
            self._slots.release()
            raise
        waited = self._clock() - started
        if waited > 0:
            record_wait(waited)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._slots.release()
