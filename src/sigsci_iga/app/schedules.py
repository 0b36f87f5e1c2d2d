"""Schedule use cases: add, list, show, change, pause, resume, remove, run now; and the jobs.

A schedule runs one job (`JobKind`) for one endpoint on a cron expression or an interval. The
scheduler (`sigsci_iga.scheduler`) records due fires and hands each to `execute_fire`, which
runs the job under a renewed lease and records its outcome; `run_schedule` does the same at
once for a person.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from types import MappingProxyType
from typing import Any, Literal

from sigsci_iga.app.context import AppContext
from sigsci_iga.app.endpoints import endpoint_name, resolve_endpoint
from sigsci_iga.app.imports import run_import
from sigsci_iga.app.provisioning import run_queue
from sigsci_iga.domain.schedules import (
    FireStatus,
    FireTrigger,
    JobKind,
    MissedPolicy,
    Timing,
    format_every,
    interval_anchor,
    parse_cron,
    parse_every,
    parse_job,
    parse_missed,
    parse_timezone,
)
from sigsci_iga.errors import (
    InvalidInputError,
    LeaseLostError,
    RecordNotFoundError,
    ScheduleBusyError,
    SigsciIgaError,
)
from sigsci_iga.store import FireRecord, ScheduleRecord, ScheduleRef, ScheduleState

log = logging.getLogger(__name__)

#: How long a claimed fire stays leased without a renewal. Long, because the jobs do their
#: repository work synchronously: a large import's apply can hold the event loop for a while.
DEFAULT_LEASE_SECONDS = 300.0
#: A fire whose lease ran out this many times (its runner died each time) fails as abandoned.
MAX_FIRE_ATTEMPTS = 3
_MAX_ERROR_CHARS = 1000


def default_owner() -> str:
    """A lease owner unique to this process (host, pid and a random part)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


# -- the jobs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobOutcome:
    """How a job ended: succeeded or held (a job that fails raises), and a short summary."""

    status: Literal[FireStatus.SUCCEEDED, FireStatus.HELD]
    summary: dict[str, Any] = field(default_factory=dict)


#: Runs a job for an endpoint (None: the configured corp).
JobRunner = Callable[[AppContext, str | None], Awaitable[JobOutcome]]


async def _import(
    ctx: AppContext, endpoint: str | None, mode: Literal["auto", "full"]
) -> JobOutcome:
    result = await run_import(ctx, endpoint, mode=mode)
    run = result.run
    summary: dict[str, Any] = {"run_id": run.id, "mode": result.mode, "endpoint": run.endpoint}
    changes = {
        kind: sum(int(n) for n in counts.values() if isinstance(n, int))
        for kind, counts in result.diff.summary().items()
    }
    summary["changes"] = {kind: n for kind, n in changes.items() if n}
    if result.fallback_reason:
        summary["note"] = result.fallback_reason
    if run.status == "held":
        summary["reasons"] = list(result.verdict.reasons)
        return JobOutcome(FireStatus.HELD, summary)
    return JobOutcome(FireStatus.SUCCEEDED, summary)


async def import_job(ctx: AppContext, endpoint: str | None) -> JobOutcome:
    """`import`: incremental once a checkpoint exists, else full; a held run is `held`."""
    return await _import(ctx, endpoint, "auto")


async def import_full_job(ctx: AppContext, endpoint: str | None) -> JobOutcome:
    """`import-full`: read everything."""
    return await _import(ctx, endpoint, "full")


async def provision_job(ctx: AppContext, endpoint: str | None) -> JobOutcome:
    """`provision`: the retry job; work the due tasks once. Failed tasks are the tasks' news."""
    done = await run_queue(ctx, endpoint)
    summary: dict[str, Any] = {
        "claimed": done.claimed,
        "completed": done.completed,
        "no_action_required": done.no_action_required,
        "failed": done.failed,
        "rescheduled": done.rescheduled,
    }
    if done.errors:
        summary["errors"] = done.errors[:3]
    return JobOutcome(FireStatus.SUCCEEDED, summary)


#: Every job a schedule can run. A new job is a `JobKind` member and a runner here.
JOBS: Mapping[str, JobRunner] = MappingProxyType(
    {
        JobKind.IMPORT.value: import_job,
        JobKind.IMPORT_FULL.value: import_full_job,
        JobKind.PROVISION.value: provision_job,
    }
)


# -- what the interfaces show -------------------------------------------------------------------


def schedule_timing(schedule: ScheduleRecord) -> Timing:
    return Timing(
        schedule.timezone,
        schedule.anchor_at,
        cron=schedule.cron,
        interval_seconds=schedule.interval_seconds,
    )


def counted_from(state: ScheduleState) -> datetime:
    """The moment after which the schedule's next fire time is due."""
    last = state.last_fire_at
    start = state.schedule.fires_from
    return start if last is None else max(last, start)


@dataclass(frozen=True)
class ScheduleView:
    """A schedule with its next fire time and its newest fire (the last run and its outcome)."""

    schedule: ScheduleRecord
    #: The next fire time after now, in the schedule's zone; None while paused.
    next_fire_at: datetime | None
    #: A fire time has passed that no fire records yet: the scheduler runs it at its next tick.
    due: bool
    last_fire: FireRecord | None
    running: FireRecord | None

    @property
    def timing(self) -> str:
        return schedule_timing(self.schedule).describe()

    def to_json(self) -> dict[str, Any]:
        data = self.schedule.to_json()
        interval = self.schedule.interval_seconds
        data.update(
            every=format_every(interval) if interval is not None else None,
            timing=self.timing,
            next_fire_at=self.next_fire_at.isoformat() if self.next_fire_at else None,
            due=self.due,
            last_fire=self.last_fire.to_json() if self.last_fire else None,
            running=self.running.to_json() if self.running else None,
        )
        return data


@dataclass(frozen=True)
class ScheduleDetail:
    """A schedule and its recent fires, newest first."""

    view: ScheduleView
    fires: list[FireRecord]

    def to_json(self) -> dict[str, Any]:
        return {**self.view.to_json(), "fires": [fire.to_json() for fire in self.fires]}


def _view(state: ScheduleState, now: datetime) -> ScheduleView:
    schedule = state.schedule
    if not schedule.enabled:
        return ScheduleView(schedule, None, False, state.last_fire, state.running)
    timing = schedule_timing(schedule)
    first = timing.next_after(counted_from(state))
    upcoming = timing.next_after(max(now, counted_from(state)))
    due = first is not None and first <= now and state.running is None
    return ScheduleView(schedule, upcoming, due, state.last_fire, state.running)


def _state(ctx: AppContext, ref: ScheduleRef) -> ScheduleState:
    [state] = ctx.repository.schedules.states(now=ctx.clock(), ref=ref)
    return state


def list_schedules(ctx: AppContext) -> list[ScheduleView]:
    """Every schedule by name, with its next fire time and its last run."""
    now = ctx.clock()
    return [_view(state, now) for state in ctx.repository.schedules.states(now=now)]


def get_schedule(ctx: AppContext, ref: ScheduleRef, *, fires: int = 10) -> ScheduleDetail:
    """A schedule (by name or id) with its most recent fires."""
    view = _view(_state(ctx, ref), ctx.clock())
    recent = ctx.repository.schedules.fires(view.schedule.id, limit=fires)
    return ScheduleDetail(view, recent)


# -- changing schedules -------------------------------------------------------------------------


def _timing_fields(every: str | float | None, cron: str | None) -> dict[str, Any]:
    if (every is None) == (cron is None):
        raise InvalidInputError(
            "give a schedule an interval (every) or a cron expression, not both"
        )
    if cron is not None:
        return {"cron": parse_cron(cron), "interval_seconds": None}
    assert every is not None
    return {"cron": None, "interval_seconds": parse_every(every)}


def _endpoint_for(ctx: AppContext, endpoint: str | None) -> str | None:
    """The endpoint a schedule stores: None for the configured corp, which must be set now."""
    if endpoint is None:
        endpoint_name(ctx, None)
        return None
    if endpoint == ctx.settings.corp and endpoint not in {
        info.name for info in ctx.repository.endpoints.list()
    }:
        # The settings' corp is registered on first use, as an import would do.
        resolve_endpoint(ctx, endpoint)
    return endpoint


def add_schedule(
    ctx: AppContext,
    name: str,
    *,
    job: str,
    every: str | float | None = None,
    cron: str | None = None,
    endpoint: str | None = None,
    timezone: str = "UTC",
    missed: str = MissedPolicy.SKIP.value,
    enabled: bool = True,
) -> ScheduleView:
    """Add a schedule; every field is checked before anything is stored.

    `every` is `30s`, `15m`, `1h`, `1d` or a number of seconds; `endpoint` None runs the job
    for the configured corp (whatever it is at each run).
    """
    kind = parse_job(job)
    timing = _timing_fields(every, cron)
    parse_timezone(timezone)
    policy = parse_missed(missed)
    now = ctx.clock()
    ctx.repository.schedules.add(
        name,
        job=kind.value,
        endpoint=_endpoint_for(ctx, endpoint),
        timezone=timezone,
        missed=policy.value,
        anchor_at=interval_anchor(now, timezone),
        now=now,
        enabled=enabled,
        **timing,
    )
    return _view(_state(ctx, name.strip()), now)


class Unchanged(Enum):
    """A field a patch leaves as it is (None can be a value: the configured corp)."""

    UNCHANGED = "unchanged"


UNCHANGED = Unchanged.UNCHANGED


@dataclass(frozen=True)
class SchedulePatch:
    """What `update_schedule` changes; fields left UNCHANGED keep their value.

    Setting `cron` or `every` switches the schedule to that timing. `endpoint` None means the
    configured corp.
    """

    name: str | Unchanged = UNCHANGED
    job: str | Unchanged = UNCHANGED
    cron: str | Unchanged = UNCHANGED
    every: str | float | Unchanged = UNCHANGED
    timezone: str | Unchanged = UNCHANGED
    enabled: bool | Unchanged = UNCHANGED
    endpoint: str | Unchanged | None = UNCHANGED
    missed: str | Unchanged = UNCHANGED


def update_schedule(ctx: AppContext, ref: ScheduleRef, patch: SchedulePatch) -> ScheduleView:
    """Change a schedule. A new timing, zone or resumption counts fire times from now on."""
    current = ctx.repository.schedules.get(ref)
    changes: dict[str, Any] = {}
    if not isinstance(patch.name, Unchanged):
        changes["name"] = patch.name
    if not isinstance(patch.job, Unchanged):
        changes["job"] = parse_job(patch.job).value
    if not isinstance(patch.missed, Unchanged):
        changes["missed"] = parse_missed(patch.missed).value
    if not isinstance(patch.endpoint, Unchanged):
        changes["endpoint"] = _endpoint_for(ctx, patch.endpoint)
    cron = None if isinstance(patch.cron, Unchanged) else patch.cron
    every = None if isinstance(patch.every, Unchanged) else patch.every
    retimed = False
    if cron is not None or every is not None:
        timing = _timing_fields(every, cron)
        changes.update(timing)
        retimed = (timing["cron"], timing["interval_seconds"]) != (
            current.cron,
            current.interval_seconds,
        )
    zone = current.timezone
    if not isinstance(patch.timezone, Unchanged):
        parse_timezone(patch.timezone)
        changes["timezone"] = zone = patch.timezone
        retimed = retimed or zone != current.timezone
    if not isinstance(patch.enabled, Unchanged) and patch.enabled != current.enabled:
        changes["enabled"] = patch.enabled
        # Resuming counts from now: what passed while paused is not caught up on.
        retimed = retimed or patch.enabled
    now = ctx.clock()
    if retimed:
        changes["fires_from"] = now
        changes["anchor_at"] = interval_anchor(now, zone)
    updated = ctx.repository.schedules.update(current.id, changes, now=now)
    return _view(_state(ctx, updated.id), now)


def pause_schedule(ctx: AppContext, ref: ScheduleRef) -> ScheduleView:
    """Stop firing (a running fire runs on); pending fire times are dropped."""
    return update_schedule(ctx, ref, SchedulePatch(enabled=False))


def resume_schedule(ctx: AppContext, ref: ScheduleRef) -> ScheduleView:
    """Fire again from now on; what passed while paused is not caught up on."""
    return update_schedule(ctx, ref, SchedulePatch(enabled=True))


def remove_schedule(ctx: AppContext, ref: ScheduleRef) -> ScheduleRecord:
    """Delete a schedule and its fires; a fire running now ends without recording an outcome."""
    return ctx.repository.schedules.remove(ref)


@dataclass(frozen=True)
class DefaultSchedule:
    name: str
    job: JobKind
    every: str | None = None
    cron: str | None = None


#: `add_default_schedules`: what Saviynt's Job Scheduler typically runs for a connection.
DEFAULT_SCHEDULES = (
    DefaultSchedule("hourly-import", JobKind.IMPORT, cron="0 * * * *"),
    # Incremental imports infer nothing from absence; a weekly full read catches what they miss.
    DefaultSchedule("weekly-full-import", JobKind.IMPORT_FULL, cron="30 3 * * 0"),
    DefaultSchedule("provision-retry", JobKind.PROVISION, every="1m"),
)


def add_default_schedules(
    ctx: AppContext, *, endpoint: str | None = None, timezone: str = "UTC"
) -> list[ScheduleView]:
    """Add the default schedules that are not there yet (by name); returns the ones added.

    For a named endpoint the names end in `-ENDPOINT`, so several endpoints can have them.
    """
    existing = {schedule.name for schedule in ctx.repository.schedules.list()}
    added = []
    for default in DEFAULT_SCHEDULES:
        name = default.name if endpoint is None else f"{default.name}-{endpoint}"
        if name in existing:
            continue
        added.append(
            add_schedule(
                ctx,
                name,
                job=default.job.value,
                every=default.every,
                cron=default.cron,
                endpoint=endpoint,
                timezone=timezone,
            )
        )
    return added


# -- running fires ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FireResult:
    """What became of a fire this process ran.

    `outcome` is the recorded status (succeeded, failed, held), or `released` (stopped before
    or while running and given back, to run again) or `lost` (its lease was taken over, or its
    schedule removed; nothing was recorded by this process).
    """

    fire: FireRecord
    outcome: Literal["succeeded", "failed", "held", "released", "lost"]

    @property
    def schedule(self) -> str:
        return self.fire.schedule

    def to_json(self) -> dict[str, Any]:
        return {**self.fire.to_json(), "outcome": self.outcome}


def error_text(ctx: AppContext, exc: BaseException) -> str:
    """A failed job's error for the record: one line, bounded, without the settings' secrets.

    The project's errors never carry secrets; anything else is masked for the secrets this
    process knows, in case a library put one in its message.
    """
    text = str(exc) if isinstance(exc, SigsciIgaError) else f"{type(exc).__name__}: {exc}"
    for secret in (ctx.settings.token, ctx.settings.password):
        value = secret.get_secret_value() if secret is not None else ""
        if value:
            text = text.replace(value, "***")
    text = " ".join(text.split()) or type(exc).__name__
    return text if len(text) <= _MAX_ERROR_CHARS else text[: _MAX_ERROR_CHARS - 1] + "…"


async def _keep_leased(
    ctx: AppContext,
    fire_id: int,
    owner: str,
    lease_seconds: float,
    every: float,
    clock: Callable[[], datetime],
) -> None:
    """Renew the lease until cancelled; returns when the lease is lost."""
    while True:
        await asyncio.sleep(every)
        try:
            ctx.repository.schedules.renew(
                fire_id, owner=owner, now=clock(), lease_seconds=lease_seconds
            )
        except LeaseLostError as exc:
            log.warning("%s", exc)
            return
        except Exception:
            # A database hiccup now is no reason to give the fire up: the lease has slack, and
            # if it runs out before a renewal works, the next renewal says the lease is lost.
            log.exception("could not renew the lease of fire %s; trying again", fire_id)


def release_fire(ctx: AppContext, fire: FireRecord, owner: str) -> FireResult:
    """Give a claimed fire back, pending, so it runs again (elsewhere, or at the next start)."""
    try:
        released = ctx.repository.schedules.release(fire.id, owner=owner)
    except LeaseLostError:
        return FireResult(fire, "lost")
    return FireResult(released, "released")


async def execute_fire(
    ctx: AppContext,
    fire: FireRecord,
    *,
    owner: str,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    jobs: Mapping[str, JobRunner] = JOBS,
    clock: Callable[[], datetime] | None = None,
) -> FireResult:
    """Run a fire `owner` has claimed: its job under a renewed lease, then record the outcome.

    A job that raises is recorded as failed with its error; it never escapes. If the lease is
    lost (taken over after it ran out, or the schedule removed), the job is cancelled and
    nothing is recorded. If this call is cancelled, the job is cancelled and the fire released.
    The lease is renewed every fifth of `lease_seconds`; `clock` (default: the context's)
    times it.
    """
    clock = clock or ctx.clock
    try:
        schedule = ctx.repository.schedules.get(fire.schedule_id)
    except RecordNotFoundError:
        return FireResult(fire, "lost")
    runner = jobs.get(schedule.job)
    job: asyncio.Future[JobOutcome]
    if runner is None:
        job = asyncio.get_running_loop().create_future()
        job.set_exception(
            InvalidInputError(f"job {schedule.job!r} is not one this version can run")
        )
    else:
        job = asyncio.ensure_future(runner(ctx, schedule.endpoint))
    keeper = asyncio.ensure_future(
        _keep_leased(ctx, fire.id, owner, lease_seconds, max(0.05, lease_seconds / 5), clock)
    )
    either: set[asyncio.Future[Any]] = {job, keeper}
    try:
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        await _cancel(job, keeper)
        release_fire(ctx, fire, owner)
        raise
    if not job.done():
        await _cancel(job)
        return FireResult(fire, "lost")
    await _cancel(keeper)
    status, summary, error = _ended(ctx, schedule, job)
    try:
        finished = ctx.repository.schedules.finish(
            fire.id, owner=owner, status=status, now=clock(), summary=summary, error=error
        )
    except LeaseLostError as exc:
        log.warning("%s", exc)
        return FireResult(fire, "lost")
    return FireResult(finished, status)


def _ended(
    ctx: AppContext, schedule: ScheduleRecord, job: asyncio.Future[JobOutcome]
) -> tuple[Literal["succeeded", "failed", "held"], dict[str, Any] | None, str | None]:
    if job.cancelled():
        return "failed", None, "the job was cancelled"
    exc = job.exception()
    if exc is None:
        result = job.result()
        return ("held" if result.status is FireStatus.HELD else "succeeded"), result.summary, None
    if not isinstance(exc, Exception):
        raise exc
    if not isinstance(exc, SigsciIgaError):
        log.exception("job %s of schedule %r failed", schedule.job, schedule.name, exc_info=exc)
    return "failed", None, error_text(ctx, exc)


async def _cancel(*futures: asyncio.Future[Any]) -> None:
    for future in futures:
        future.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.gather(*futures, return_exceptions=True)


def queue_schedule_run(ctx: AppContext, ref: ScheduleRef) -> FireRecord:
    """Record a manual fire (due now) for the scheduler to run; refused while one is running."""
    state = _state(ctx, ref)
    busy = _busy(state)
    if busy is not None:
        raise busy
    now = ctx.clock()
    recorded = ctx.repository.schedules.record_fires(
        state.schedule.id, [now], now=now, trigger=FireTrigger.MANUAL.value
    )
    if not recorded:
        raise _busy(_state(ctx, ref)) or ScheduleBusyError(
            f"schedule {state.schedule.name!r} was just run; try again"
        )
    return recorded[0]


def _busy(state: ScheduleState) -> ScheduleBusyError | None:
    running = state.running
    if running is None:
        return None
    until = f"{running.lease_until:%Y-%m-%d %H:%M:%S} UTC" if running.lease_until else "now"
    return ScheduleBusyError(
        f"schedule {state.schedule.name!r} is running fire {running.id} ({running.lease_owner}, "
        f"leased until {until}); run it again when that one has ended"
    )


async def run_schedule(
    ctx: AppContext,
    ref: ScheduleRef,
    *,
    owner: str | None = None,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    jobs: Mapping[str, JobRunner] = JOBS,
) -> FireResult:
    """Run a schedule's job now, in this process, as a recorded manual fire.

    Works on a paused schedule too. Refused while a fire of the schedule is running.
    """
    owner = owner or default_owner()
    fire = queue_schedule_run(ctx, ref)
    claim = ctx.repository.schedules.claim(
        owner=owner,
        now=ctx.clock(),
        lease_seconds=lease_seconds,
        limit=1,
        max_attempts=MAX_FIRE_ATTEMPTS,
        fire_ids=[fire.id],
    )
    if not claim.claimed:
        raise ScheduleBusyError(
            f"schedule {fire.schedule!r} started another fire first; fire {fire.id} waits for "
            "the scheduler"
        )
    return await execute_fire(
        ctx, claim.claimed[0], owner=owner, lease_seconds=lease_seconds, jobs=jobs
    )
