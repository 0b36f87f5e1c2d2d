"""How long a read waits before trying again, and when it gives up.

Transient failures (5xx, timeouts, dropped or truncated replies) get a bounded number of tries.
Throttling gets a bounded time instead: Signal Sciences publishes no limits and sends no
Retry-After, and clients treat its limit as per minute, so a read that gives up sooner than a
minute fails against a server whose window is already full. Throttled reads keep trying until
`throttle_patience` seconds (more than one whole window) have passed since the first refusal.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

#: One rate-limit window, as far as anyone knows the server's limit.
RATE_LIMIT_WINDOW = 60.0


@dataclass(frozen=True)
class ReadRetry:
    """Exponential waits with jitter: `attempts` tries for failures, `throttle_patience` s for 429s."""

    attempts: int = 5
    wait_initial: float = 0.5
    wait_max: float = 30.0
    throttle_patience: float = 100.0
    throttle_wait_max: float = 15.0
    #: Each wait is shortened by up to this fraction, so concurrent readers do not retry in step.
    jitter: float = 0.25

    def __post_init__(self) -> None:
        """Refuse settings that could retry forever or not at all."""
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.wait_initial < 0 or self.wait_max < 0 or self.throttle_wait_max <= 0:
            raise ValueError("waits must not be negative")
        if self.throttle_patience < 0:
            raise ValueError("throttle_patience must not be negative")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")

    def failure_wait(self, failures: int, retry_after: float | None, rng: random.Random) -> float:
        """The wait after the `failures`-th transient failure of one read."""
        if retry_after is not None:
            # A server's Retry-After wins, but a hostile one must not park us for a day.
            return min(retry_after, self.wait_max)
        return self._jittered(min(self.wait_max, self.wait_initial * 2 ** (failures - 1)), rng)

    def throttle_wait(
        self, throttles: int, retry_after: float | None, waited: float, rng: random.Random
    ) -> float | None:
        """The wait after the `throttles`-th throttled answer, `waited` s after the first; None: give up."""
        left = self.throttle_patience - waited
        if left <= 0:
            return None
        if retry_after is not None:
            return min(retry_after, left)
        wait = min(self.throttle_wait_max, self.wait_initial * 2 ** (throttles - 1))
        # The last try lands on the patience mark itself, not short of it.
        return min(self._jittered(wait, rng), left)

    def _jittered(self, wait: float, rng: random.Random) -> float:
        return wait * (1 - self.jitter * rng.random()) if self.jitter else wait
