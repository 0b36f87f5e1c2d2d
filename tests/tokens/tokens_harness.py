"""What the service-token tests share: a server key, another key, and a clock moved by hand."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sigsci_iga import app

#: A server key for the tests; the tests check it never leaks anywhere.
KEY = "test-server-key-0123456789-abcdefghijklmnopqrstuvwxyz"
OTHER_KEY = "another-server-key-9876543210-zyxwvutsrqponmlkjihgfedcba"
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

#: Builds an application context on the test's repository, with the settings given.
ContextFactory = Callable[..., app.AppContext]


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)
