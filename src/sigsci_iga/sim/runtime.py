"""What one running simulator holds besides the corp: faults, call counters, the rate limiter."""

from __future__ import annotations

import re
import threading
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sigsci_iga.sim.config import SimConfig
from sigsci_iga.sim.faults import FaultController
from sigsci_iga.sim.state import SimState


class CallCounter:
    """Calls per endpoint, keyed `METHOD /route/template` (e.g. `GET /corps/{corp}/users`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def record(self, key: str) -> None:
        """Count one call."""
        with self._lock:
            self._counts[key] += 1

    def snapshot(self) -> dict[str, int]:
        """The counts so far, sorted by key."""
        with self._lock:
            return dict(sorted(self._counts.items()))

    def total(self) -> int:
        """All calls counted."""
        with self._lock:
            return sum(self._counts.values())

    def __getitem__(self, key: str) -> int:
        with self._lock:
            return self._counts[key]

    def reset(self) -> None:
        """Forget every count."""
        with self._lock:
            self._counts.clear()


class RateLimiter:
    """A sliding one-minute window over the simulated clock; 0 requests/minute turns it off."""

    def __init__(self, per_minute: int, now: Callable[[], datetime]) -> None:
        self.per_minute = per_minute
        self._now = now
        self._lock = threading.Lock()
        self._stamps: deque[float] = deque()

    def allow(self) -> bool:
        """Admit one request if the last minute has room."""
        if self.per_minute <= 0:
            return True
        with self._lock:
            now = self._now().timestamp()
            while self._stamps and (self._stamps[0] <= now - 60.0 or self._stamps[0] > now):
                # Stamps from the future appear after the clock was moved back; drop them too.
                self._stamps.popleft()
            if len(self._stamps) >= self.per_minute:
                return False
            self._stamps.append(now)
            return True

    def reset(self) -> None:
        """Empty the window."""
        with self._lock:
            self._stamps.clear()


@dataclass
class RouteTemplate:
    """One API route: its compiled path pattern, methods and counter template."""

    pattern: re.Pattern[str]
    methods: frozenset[str]
    template: str


@dataclass
class SimRuntime:
    """`app.state.sim`: the corp state plus the fault, counting and throttling machinery."""

    config: SimConfig
    state: SimState
    faults: FaultController
    calls: CallCounter = field(default_factory=CallCounter)
    limiter: RateLimiter | None = None
    routes: list[RouteTemplate] = field(default_factory=list)

    def __post_init__(self) -> None:
        """Tie the rate limiter to the simulated clock."""
        if self.limiter is None:
            self.limiter = RateLimiter(self.config.rate_limit_per_minute, self.state.now)

    def route_key(self, method: str, path: str, prefix: str) -> str:
        """`METHOD /template` for a concrete path; unknown paths keep their concrete form."""
        fallback: str | None = None
        for route in self.routes:
            if route.pattern.match(path):
                if method in route.methods:
                    return f"{method} {route.template}"
                fallback = fallback or f"{method} {route.template}"
        return fallback or f"{method} {path.removeprefix(prefix)}"
