"""One HTTP call as the project sees it: the agent it is sent as, and the record it leaves."""

from __future__ import annotations

from collections.abc import Callable
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


CallObserver = Callable[[CallRecord], None]
