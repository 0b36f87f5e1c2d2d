"""The installation itself: its version, and whether its database answers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # `sigsci-iga --version` needs neither the repository nor its records
    from sigsci_iga.app.context import AppContext
    from sigsci_iga.store import RunRecord


def version() -> str:
    """The installed package's version."""
    try:
        return metadata.version("sigsci-iga")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def check_database(ctx: AppContext) -> None:
    """One round trip to the repository's database; raises a database error if it fails."""
    ctx.repository.db.ping()


@dataclass(frozen=True)
class Statistics:
    """What the repository can say about the work done, for metrics."""

    #: (state, operation, tasks, attempts)
    tasks: list[tuple[str, str, int, int]]
    #: The newest finished run of every endpoint and mode.
    latest_runs: list[RunRecord]
    runs_by_status: dict[str, int]
    #: Schedule name -> when its newest successful fire finished.
    schedule_successes: dict[str, datetime]


def statistics(ctx: AppContext) -> Statistics:
    repo = ctx.repository
    return Statistics(
        repo.tasks.statistics(),
        repo.runs.latest_finished(),
        repo.runs.count_by_status(),
        repo.schedules.last_successes(),
    )
