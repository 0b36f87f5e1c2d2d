"""The scheduler: records due fires once, claims them under leases, runs their jobs.

Several scheduler processes may share one repository: a fire time is recorded once (unique
(schedule, fire time)), and a fire is claimed by one of them under a lease it renews while the
job runs. A process that dies leaves a lease that runs out; the fire is then claimed again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sigsci_iga.app import (
    DEFAULT_LEASE_SECONDS,
    JOBS,
    MAX_FIRE_ATTEMPTS,
    AppContext,
    FireRecord,
    FireResult,
    JobRunner,
    default_owner,
    execute_fire,
    release_fire,
    schedule_timing,
)
from sigsci_iga.app.schedules import counted_from
from sigsci_iga.domain.schedules import RUN_ALL_LIMIT, MissedPolicy
from sigsci_iga.errors import SigsciIgaError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SchedulerOptions:
    """How a scheduler process behaves; the defaults suit a service."""

    #: A claimed fire's lease; renewed every fifth of it while the job runs.
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    #: The longest sleep between ticks, so schedules changed by another process, fires queued
    #: elsewhere and leases that ran out are seen without a wake-up.
    poll_seconds: float = 30.0
    #: Jobs this process runs at once (of different schedules; one schedule never overlaps).
    max_running: int = 4
    #: On stop, how long running jobs may take to end before they are cancelled and their
    #: fires released, to run again.
    stop_grace_seconds: float = 10.0
    #: Fires that ended longer ago than this are deleted (each schedule keeps its newest).
    keep_fires: timedelta = timedelta(days=30)
    #: Claims of one fire before it fails as abandoned.
    max_attempts: int = MAX_FIRE_ATTEMPTS


def _now() -> datetime:
    return datetime.now(UTC)


class Scheduler:
    """Runs the repository's schedules.

    In a service, run `run_forever(stop)` as a task and set `stop` to end it::

        stop = asyncio.Event()
        task = asyncio.create_task(Scheduler(ctx).run_forever(stop))
        ...
        stop.set()
        await task

    `wake()` makes it look again at once (after a schedule changed or a run was queued).
    `tick(now)` does one round and waits for the jobs it started (tests, one-shot runs).
    """

    def __init__(
        self,
        ctx: AppContext,
        *,
        clock: Callable[[], datetime] | None = None,
        owner: str | None = None,
        options: SchedulerOptions | None = None,
        jobs: Mapping[str, JobRunner] = JOBS,
    ) -> None:
        self.ctx = ctx
        self.clock = clock or ctx.clock
        self.owner = owner or default_owner()
        self.options = options or SchedulerOptions()
        self.jobs = jobs
        self._wake = asyncio.Event()
        #: Claimed by this process, not yet handed to their job: released if it stops now.
        self._unstarted: dict[int, FireRecord] = {}
        self._stopping = False
        self._pruned_at: datetime | None = None

    # -- one round -----------------------------------------------------------------------------

    def record_due(self, now: datetime) -> list[FireRecord]:
        """Record the fire times that came due by `now`, per the schedules' missed-run policy.

        A schedule with a running fire records nothing: the times that pass while it runs
        are missed, and its policy decides once it has ended. Under `skip` a schedule also
        records nothing while a scheduled fire of it waits to run (or to be run again after
        its runner died), so it never has more than one fire to catch up with.
        """
        repo = self.ctx.repository
        recorded: list[FireRecord] = []
        for state in repo.schedules.states(now=now, enabled=True):
            schedule = state.schedule
            skip = schedule.missed != MissedPolicy.RUN_ALL
            if state.running is not None or (skip and state.unfinished):
                continue
            try:
                limit = 1 if skip else RUN_ALL_LIMIT
                due = schedule_timing(schedule).due(counted_from(state), now, limit=limit)
                if due.times:
                    recorded += repo.schedules.record_fires(
                        schedule.id, due.times, now=now, missed=due.missed
                    )
            except SigsciIgaError as exc:
                # One schedule that cannot be read (a zone this machine lacks) stops no other.
                log.warning("schedule %r: %s", schedule.name, exc)
        return recorded

    def claim(self, now: datetime, limit: int) -> list[FireRecord]:
        """Lease up to `limit` fires that may run now to this process."""
        claim = self.ctx.repository.schedules.claim(
            owner=self.owner,
            now=now,
            lease_seconds=self.options.lease_seconds,
            limit=limit,
            max_attempts=self.options.max_attempts,
        )
        for fire in claim.abandoned:
            log.warning("fire %s of schedule %r: %s", fire.id, fire.schedule, fire.error)
        for fire in claim.claimed:
            self._unstarted[fire.id] = fire
        return claim.claimed

    async def tick(self, now: datetime | None = None) -> list[FireResult]:
        """Record due fires, claim what may run, run it all and return the outcomes."""
        now = now or self.clock()
        self.record_due(now)
        fires = self.claim(now, self.options.max_running)
        try:
            return list(await asyncio.gather(*(self._run(fire) for fire in fires)))
        finally:
            self._release_unstarted()

    async def _run(self, fire: FireRecord) -> FireResult:
        if self._stopping:
            self._unstarted.pop(fire.id, None)
            return release_fire(self.ctx, fire, self.owner)
        self._unstarted.pop(fire.id, None)
        return await execute_fire(
            self.ctx,
            fire,
            owner=self.owner,
            lease_seconds=self.options.lease_seconds,
            jobs=self.jobs,
            clock=self.clock,
        )

    def _release_unstarted(self) -> None:
        for fire in list(self._unstarted.values()):
            self._unstarted.pop(fire.id, None)
            try:
                release_fire(self.ctx, fire, self.owner)
            except SigsciIgaError as exc:
                log.warning("could not release fire %s (its lease will run out): %s", fire.id, exc)

    def next_due(self, now: datetime) -> datetime | None:
        """The soonest fire time after `now` of any enabled schedule that is not running."""
        soonest = None
        for state in self.ctx.repository.schedules.states(now=now, enabled=True):
            if state.running is not None:
                continue
            try:
                nxt = schedule_timing(state.schedule).next_after(max(now, counted_from(state)))
            except SigsciIgaError:
                continue
            if nxt is not None and (soonest is None or nxt < soonest):
                soonest = nxt
        return soonest

    # -- the loop ------------------------------------------------------------------------------

    def wake(self) -> None:
        """Look at the schedules again now, not at the next poll."""
        self._wake.set()

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Tick until `stop` is set, sleeping until the next fire time (or the next poll).

        Jobs run as tasks, so a long import does not hold up the provisioning job. A job that
        fails is recorded and never ends the loop; neither does a database that is briefly
        unavailable. On stop, fires claimed but not started are released at once, running
        jobs get `stop_grace_seconds` to end, and the rest are cancelled and released.
        """
        running: dict[int, asyncio.Task[FireResult]] = {}
        self._stopping = False
        # An event waits on the loop it first waited on; this run may be on a new one.
        self._wake = asyncio.Event()
        try:
            while not stop.is_set():
                self._wake.clear()
                now = self.clock()
                self._round(now, running)
                await self._sleep(stop, running, self._sleep_seconds(now))
                self._reap(running)
        finally:
            self._stopping = True
            await self._stop(running)

    def _round(self, now: datetime, running: dict[int, asyncio.Task[FireResult]]) -> None:
        try:
            self.record_due(now)
            free = self.options.max_running - len(running)
            if free > 0:
                for fire in self.claim(now, free):
                    running[fire.id] = asyncio.create_task(
                        self._run(fire), name=f"fire-{fire.id}-{fire.schedule}"
                    )
            self._prune(now)
        except Exception:
            # The loop outlives any one round: the next one tries again.
            log.exception("scheduler round failed; trying again at the next")

    def _sleep_seconds(self, now: datetime) -> float:
        try:
            nxt = self.next_due(now)
        except Exception:
            log.exception("could not compute the next fire time")
            nxt = None
        poll = self.options.poll_seconds
        if nxt is None:
            return poll
        # A little past the fire time, so the next round finds it due.
        return min(poll, max(0.0, (nxt - self.clock()).total_seconds()) + 0.01)

    async def _sleep(
        self, stop: asyncio.Event, running: dict[int, asyncio.Task[FireResult]], seconds: float
    ) -> None:
        """Until `seconds` pass, `stop` or a wake-up is set, or a running job ends."""
        signals = [
            asyncio.ensure_future(stop.wait()),
            asyncio.ensure_future(self._wake.wait()),
        ]
        waiting: set[asyncio.Future[Any]] = {*signals, *running.values()}
        try:
            await asyncio.wait(waiting, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for signal in signals:
                signal.cancel()
            await asyncio.gather(*signals, return_exceptions=True)

    def _reap(self, running: dict[int, asyncio.Task[FireResult]]) -> None:
        for fire_id, task in list(running.items()):
            if not task.done():
                continue
            del running[fire_id]
            if task.cancelled():
                continue
            exc = task.exception()
            if exc is not None:
                log.error("fire %s failed outside its job", fire_id, exc_info=exc)
            else:
                result = task.result()
                log.info("fire %s of schedule %r: %s", fire_id, result.schedule, result.outcome)

    def _prune(self, now: datetime) -> None:
        if self._pruned_at is not None and now - self._pruned_at < timedelta(hours=1):
            return
        self._pruned_at = now
        self.ctx.repository.schedules.prune(finished_before=now - self.options.keep_fires)

    async def _stop(self, running: dict[int, asyncio.Task[FireResult]]) -> None:
        self._release_unstarted()
        if running:
            _done, late = await asyncio.wait(
                running.values(), timeout=self.options.stop_grace_seconds
            )
            for task in late:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*running.values(), return_exceptions=True)
        self._release_unstarted()
        self._reap(running)
