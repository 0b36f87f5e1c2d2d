"""Schedules: the jobs they run, what happens to missed fires, and when they fire.

A schedule fires on a cron expression (evaluated by cronsim) or on a fixed interval, in an IANA
time zone. Fire times are computed here, purely; the scheduler records and runs them.
"""

from __future__ import annotations

import math
import re
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from sigsci_iga.errors import InvalidInputError


class JobKind(StrEnum):
    """What a schedule runs. A new job is a new member here and a runner in `app.schedules`."""

    #: Incremental once a checkpoint exists, else full (what `sigsci-iga import` does).
    IMPORT = "import"
    IMPORT_FULL = "import-full"
    #: The provisioning retry job: work the due tasks (what `sigsci-iga provision run` does).
    PROVISION = "provision"


class MissedPolicy(StrEnum):
    """What a schedule does with fire times that passed while nothing ran them."""

    #: Run once, for the most recent missed fire time; the others are counted, not run.
    SKIP = "skip"
    #: Run every missed fire time, oldest first, but at most `RUN_ALL_LIMIT` of the newest.
    RUN_ALL = "run-all"


class FireStatus(StrEnum):
    """pending -> running (leased) -> succeeded | failed | held; or back to pending if released."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    #: The job ran and stopped for a person: an import held by its thresholds.
    HELD = "held"

    @property
    def is_final(self) -> bool:
        return self not in (FireStatus.PENDING, FireStatus.RUNNING)


class FireTrigger(StrEnum):
    """Why a fire exists: its schedule came due, or someone asked to run it now."""

    SCHEDULE = "schedule"
    MANUAL = "manual"


#: `run-all` runs at most this many missed fires (the newest); an hourly job catches up a day.
RUN_ALL_LIMIT = 24
#: Counting missed fire times stops here; a count that reached it means "at least".
MISSED_COUNT_CAP = 10_000
MAX_INTERVAL_SECONDS = 366 * 86_400
_UNITS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400}
_EVERY = re.compile(r"(\d+)([smhd])")
_EVERY_HELP = "a whole number with a unit: 30s, 15m, 1h, 1d"
_CRON_HELP = "five fields: minute hour day-of-month month day-of-week, e.g. '0 * * * *'"


def parse_job(value: str) -> JobKind:
    try:
        return JobKind(value)
    except ValueError:
        raise InvalidInputError(
            f"job {value!r} is not one of {', '.join(kind.value for kind in JobKind)}"
        ) from None


def parse_missed(value: str) -> MissedPolicy:
    try:
        return MissedPolicy(value)
    except ValueError:
        raise InvalidInputError(
            f"missed-run policy {value!r} is not one of "
            f"{', '.join(policy.value for policy in MissedPolicy)}"
        ) from None


def parse_every(value: str | float) -> int:
    """An interval in whole seconds, from `30s`, `15m`, `1h`, `1d` or a number of seconds."""
    if isinstance(value, bool):
        raise InvalidInputError(f"interval {value!r} is not {_EVERY_HELP}")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value != int(value):
            raise InvalidInputError(f"interval {value!r} must be a whole number of seconds")
        seconds = int(value)
    else:
        match = _EVERY.fullmatch(value.strip().lower())
        if match is None:
            raise InvalidInputError(f"interval {value!r} is not {_EVERY_HELP}")
        seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise InvalidInputError(f"interval {value!r} must be longer than zero")
    if seconds > MAX_INTERVAL_SECONDS:
        raise InvalidInputError(f"interval {value!r} is longer than a year; use a cron expression")
    return seconds


def format_every(seconds: int) -> str:
    """The shortest spelling `parse_every` reads back: 900 -> `15m`."""
    for unit in ("d", "h", "m"):
        if seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"


def parse_cron(expression: str) -> str:
    """A five-field cron expression that fires at least once, with its spacing normalised."""
    fields = expression.split()
    if len(fields) != 5:
        raise InvalidInputError(f"cron expression {expression!r} is not {_CRON_HELP}")
    normalised = " ".join(fields)
    try:
        next(iter(CronSim(normalised, datetime(2000, 1, 1, tzinfo=UTC))))
    except CronSimError as exc:
        raise InvalidInputError(
            f"cron expression {expression!r} is not valid ({exc}); expected {_CRON_HELP}"
        ) from None
    except StopIteration:
        raise InvalidInputError(f"cron expression {expression!r} never fires") from None
    return normalised


def parse_timezone(name: str) -> ZoneInfo:
    """An IANA time zone (`Europe/Berlin`, `UTC`)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInputError(
            f"time zone {name!r} is not an IANA time zone name such as UTC or Europe/Berlin"
        ) from None


def interval_anchor(moment: datetime, timezone: str) -> datetime:
    """Where an interval counts from: midnight of `moment`'s day in the zone, in UTC.

    So `15m` fires on the quarter hours and `1d` at local midnight (until a DST change: an
    interval is elapsed time, not wall-clock time).
    """
    local = moment.astimezone(parse_timezone(timezone))
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class DueFires:
    """The fire times a schedule should run now, oldest first, and how many came due in all."""

    times: tuple[datetime, ...]
    #: Fire times in the range, the ones in `times` included (capped at `MISSED_COUNT_CAP`).
    total: int

    @property
    def missed(self) -> int:
        """Fire times in the range that will not run."""
        return self.total - len(self.times)


@dataclass(frozen=True, slots=True)
class Timing:
    """When a schedule fires: a cron expression or an interval (seconds), in a time zone.

    Cron follows cronsim, like Debian cron: an expression at a fixed minute and hour (`30 1 * *
    *`) is wall-clock time, so it fires once on a day that repeats that time (the first time)
    and, on a day that skips it, once at the first minute after the gap. Expressions that step
    through the hours (`0 * * * *`, `*/15 * * * *`) follow elapsed time: every real hour fires,
    twice at a repeated wall-clock hour and not at all in a skipped one. Intervals are fixed
    periods counted from `anchor`.
    """

    timezone: str
    anchor: datetime
    cron: str | None = None
    interval_seconds: int | None = None

    def __post_init__(self) -> None:
        # Subtracting two datetimes of one ZoneInfo is wall-clock arithmetic; UTC is not.
        object.__setattr__(self, "anchor", self.anchor.astimezone(UTC))
        if (self.cron is None) == (self.interval_seconds is None):
            raise InvalidInputError("a schedule needs either a cron expression or an interval")
        if self.interval_seconds is not None and self.interval_seconds <= 0:
            raise InvalidInputError("an interval must be longer than zero")

    @property
    def zone(self) -> ZoneInfo:
        return parse_timezone(self.timezone)

    @property
    def period(self) -> timedelta:
        assert self.interval_seconds is not None
        return timedelta(seconds=self.interval_seconds)

    def describe(self) -> str:
        """`cron 0 * * * *` or `every 15m`, as people read and type it."""
        if self.cron is not None:
            return f"cron {self.cron}"
        assert self.interval_seconds is not None
        return f"every {format_every(self.interval_seconds)}"

    def next_after(self, moment: datetime) -> datetime | None:
        """The first fire time strictly after `moment` (None: the expression never fires again)."""
        if self.cron is None:
            steps = (moment - self.anchor) // self.period + 1
            return (self.anchor + steps * self.period).astimezone(self.zone)
        for candidate in self._forward(moment):
            return candidate
        return None

    def due(self, after: datetime, until: datetime, *, limit: int) -> DueFires:
        """The newest `limit` fire times in (`after`, `until`], oldest first, and their count."""
        if until <= after or limit < 1:
            return DueFires((), 0)
        if self.cron is None:
            return self._due_interval(after, until, limit)
        return self._due_cron(after, until, limit)

    def _due_interval(self, after: datetime, until: datetime, limit: int) -> DueFires:
        first = (after - self.anchor) // self.period + 1
        last = (until - self.anchor) // self.period
        if last < first:
            return DueFires((), 0)
        zone = self.zone
        times = tuple(
            (self.anchor + step * self.period).astimezone(zone)
            for step in range(max(first, last - limit + 1), last + 1)
        )
        return DueFires(times, min(last - first + 1, MISSED_COUNT_CAP))

    def _due_cron(self, after: datetime, until: datetime, limit: int) -> DueFires:
        # Walking forward from `after` would take long after a long outage (a minute cron over a
        # month is 43,200 steps), so step back from `until` to near the newest `limit` times,
        # then walk forward from there. cronsim's backward walk can land early around a
        # repeated hour but never late, and the forward walk is the one that decides.
        earliest = None
        for count, candidate in enumerate(self._backward(until), 1):
            if candidate <= after:
                break
            earliest = candidate
            if count == limit:
                break
        # In UTC: wall-clock arithmetic on 03:00 just after a skipped hour lands inside the gap.
        start = (
            after
            if earliest is None
            else max(after, earliest.astimezone(UTC) - timedelta(seconds=1))
        )
        window: deque[datetime] = deque(maxlen=limit)
        inside = 0
        for candidate in self._forward(start):
            if candidate > until:
                break
            window.append(candidate)
            inside += 1
        before = self._count(after, start) if start > after else 0
        return DueFires(tuple(window), min(before + inside, MISSED_COUNT_CAP))

    def _count(self, after: datetime, until: datetime) -> int:
        """Fire times in (`after`, `until`], counted up to the cap."""
        count = 0
        for candidate in self._forward(after):
            if candidate > until or count >= MISSED_COUNT_CAP:
                break
            count += 1
        return count

    def _forward(self, moment: datetime) -> _Walk:
        assert self.cron is not None
        return _Walk(self.cron, moment, self.zone, reverse=False)

    def _backward(self, moment: datetime) -> _Walk:
        assert self.cron is not None
        return _Walk(self.cron, moment, self.zone, reverse=True)


class _Walk:
    """Fire times strictly after (or, backwards, at or before) a moment, in absolute time.

    cronsim compares fixed-time expressions on the wall clock, so in a repeated hour it can
    offer a time on the wrong side of the moment; those are dropped here.
    """

    def __init__(self, cron: str, moment: datetime, zone: ZoneInfo, *, reverse: bool) -> None:
        # Compared in UTC: two times of one zone compare by wall clock, fold ignored, so the
        # repeated hour's second pass (01:00 EST after 01:00 EDT) would not count as later.
        self._moment = moment.astimezone(UTC)
        self._reverse = reverse
        start = moment.astimezone(zone)
        if reverse:
            # cronsim's backward walk starts one second before a whole-second start.
            start = start.replace(microsecond=0) + timedelta(seconds=1)
        self._cron = CronSim(cron, start, reverse=reverse)

    def __iter__(self) -> _Walk:
        return self

    def __next__(self) -> datetime:
        while True:
            candidate = next(self._cron)
            absolute = candidate.astimezone(UTC)
            if (absolute <= self._moment) if self._reverse else (absolute > self._moment):
                return candidate
