"""One HTTP call as the project sees it: the agent it is sent as, the record it leaves, and the
scopes that capture those records."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

USER_AGENT = "sigsci-iga/0.1"


@dataclass(frozen=True)
class CallRecord:
    """One HTTP call as observers (journal, statistics) see it: no headers, no bodies."""

    method: str
    path: str
    status: int | None
    seconds: float
    error: str | None
    #: The path with its names (corp, users, sites) replaced, or the package call's name:
    #: what metrics may label a call with (no personal data).
    template: str = ""


CallObserver = Callable[[CallRecord], None]


@dataclass(eq=False)
class _Scope:
    calls: list[CallRecord]
    open: bool = True


#: The capture scopes around the running code, outermost first. A tuple, never mutated: a task
#: inherits its parent's scopes, and a scope it opens is added to its own copy only.
_SCOPES: ContextVar[tuple[_Scope, ...]] = ContextVar("sigsci_iga_call_scopes", default=())


@contextmanager
def capture_calls() -> Iterator[list[CallRecord]]:
    """Collect every call made inside the block, including in tasks it starts, into a new list.

    A call lands in every scope open around it, so an outer scope also sees its inner scopes'
    calls; scopes opened by sibling tasks never see each other's. Once the block ends, the list
    takes no more calls, even from a task that outlives it.
    """
    scope = _Scope([])
    token = _SCOPES.set((*_SCOPES.get(), scope))
    try:
        yield scope.calls
    finally:
        scope.open = False
        _SCOPES.reset(token)


def record_call(record: CallRecord) -> None:
    """Add one finished call to the capture scopes open around it (the HTTP layer's duty)."""
    for scope in _SCOPES.get():
        if scope.open:
            scope.calls.append(record)
    for watcher in _WATCHERS.get():
        watcher.on_call(record)


@dataclass(frozen=True)
class _Watcher:
    on_call: CallObserver
    on_wait: Callable[[float], None] | None


_WATCHERS: ContextVar[tuple[_Watcher, ...]] = ContextVar("sigsci_iga_call_watchers", default=())


@contextmanager
def watch_calls(
    on_call: CallObserver, on_wait: Callable[[float], None] | None = None
) -> Iterator[None]:
    """Call `on_call` for every call made inside the block (and in tasks it starts), and
    `on_wait` with each wait for the client-side rate limiter: for counters, not storage."""
    token = _WATCHERS.set((*_WATCHERS.get(), _Watcher(on_call, on_wait)))
    try:
        yield
    finally:
        _WATCHERS.reset(token)


def record_wait(seconds: float) -> None:
    """Report time a call waited for the rate limiter to the watchers around it."""
    for watcher in _WATCHERS.get():
        if watcher.on_wait is not None:
            watcher.on_wait(seconds)
