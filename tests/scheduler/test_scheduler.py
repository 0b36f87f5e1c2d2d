"""The scheduler: each fire runs once across processes, never overlaps, survives its runner's
death, keeps to the clock through DST, and stops promptly."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi import FastAPI

from schedule_harness import CountingJob, FakeClock, context_for
from sigsci_iga import app
from sigsci_iga.scheduler import Scheduler, SchedulerOptions
from sigsci_iga.sim import SimConfig, create_app

T0 = datetime(2026, 6, 1, 12, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _no_sigsci_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SIGSCI"):
            monkeypatch.delenv(name)


@pytest.fixture
def sim() -> FastAPI:
    return create_app(SimConfig(users=20, sites=4, seed=11))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def ctx(sim: FastAPI, repo_url: str, clock: FakeClock) -> Iterator[app.AppContext]:
    with context_for(sim, repo_url, clock=clock) as context:
        yield context


def scheduler(
    ctx: app.AppContext,
    job: CountingJob,
    owner: str,
    clock: FakeClock | None = None,
    **options: object,
) -> Scheduler:
    return Scheduler(
        ctx,
        clock=clock,
        owner=owner,
        options=SchedulerOptions(**options),  # type: ignore[arg-type]
        jobs=job.jobs(),
    )


def fires(ctx: app.AppContext, name: str) -> list[app.FireRecord]:
    """The schedule's fires, oldest first."""
    return list(reversed(app.get_schedule(ctx, name, fires=1000).fires))


# -- one fire, one run --------------------------------------------------------------------------


def test_two_scheduler_processes_ticking_the_same_due_fire_run_the_job_once(
    sim: FastAPI, repo_url: str
) -> None:
    rounds = 3
    clock = FakeClock(T0)
    with context_for(sim, repo_url, clock=clock) as setup:
        app.add_schedule(setup, "hourly", job="import-full", cron="0 * * * *")
    barrier = threading.Barrier(2)

    def process(owner: str) -> list[app.FireResult]:
        results: list[app.FireResult] = []
        with context_for(sim, repo_url, clock=clock) as ctx:
            one = Scheduler(ctx, owner=owner)
            for hour in range(1, rounds + 1):
                barrier.wait()
                results += asyncio.run(one.tick(T0 + timedelta(hours=hour)))
                barrier.wait()
        return results

    with ThreadPoolExecutor(2) as pool:
        results = [r for done in pool.map(process, ("a", "b")) for r in done]

    with context_for(sim, repo_url, clock=clock) as ctx:
        runs = app.list_runs(ctx, None, limit=100)
        recorded = fires(ctx, "hourly")
    assert len(runs) == rounds
    assert all(run.status == "succeeded" for run in runs)
    assert sorted(r.fire.fire_at for r in results) == [
        T0 + timedelta(hours=hour) for hour in range(1, rounds + 1)
    ]
    assert [r.outcome for r in results] == ["succeeded"] * rounds
    assert [(f.status, f.attempts) for f in recorded] == [("succeeded", 1)] * rounds
    assert sorted(f.summary["run_id"] for f in recorded if f.summary) == sorted(r.id for r in runs)


def test_two_schedulers_in_one_process_run_a_due_fire_once(
    sim: FastAPI, repo_url: str, clock: FakeClock
) -> None:
    job = CountingJob()
    with (
        context_for(sim, repo_url, clock=clock) as one,
        context_for(sim, repo_url, clock=clock) as two,
    ):
        app.add_schedule(one, "retry", job="provision", every="1m")
        first, second = scheduler(one, job, "a"), scheduler(two, job, "b")
        now = clock.advance(minutes=1)

        async def both() -> list[list[app.FireResult]]:
            return list(await asyncio.gather(first.tick(now), second.tick(now)))

        results = asyncio.run(both())

    assert job.runs == [None]
    assert sorted(len(r) for r in results) == [0, 1]


# -- no overlap, and a dead runner's fire -------------------------------------------------------


def test_a_running_fire_blocks_its_schedule_and_the_missed_time_runs_once_after(
    ctx: app.AppContext, clock: FakeClock
) -> None:
    app.add_schedule(ctx, "quarter", job="provision", every="15m")

    async def scenario() -> tuple[list[app.FireResult], list[app.FireResult], list[app.FireResult]]:
        job = CountingJob(gate=asyncio.Event(), started=asyncio.Event())
        # Longer than the jumps of this clock: no renewal happens between them.
        first = scheduler(ctx, job, "a", lease_seconds=3600)
        second = scheduler(ctx, job, "b", lease_seconds=3600)
        long_run = asyncio.create_task(first.tick(T0 + timedelta(minutes=15)))
        assert job.started is not None
        await job.started.wait()
        during = [
            *await second.tick(T0 + timedelta(minutes=30)),
            *await second.tick(T0 + timedelta(minutes=45)),
        ]
        assert job.gate is not None
        job.gate.set()
        ran = await long_run
        after = await second.tick(T0 + timedelta(minutes=50))
        assert len(job.runs) == 2
        return ran, during, after

    ran, during, after = asyncio.run(scenario())

    assert [r.fire.fire_at for r in ran] == [T0 + timedelta(minutes=15)]
    assert during == []
    assert [(r.fire.fire_at, r.fire.missed, r.outcome) for r in after] == [
        (T0 + timedelta(minutes=45), 1, "succeeded")
    ]
    assert [f.fire_at for f in fires(ctx, "quarter")] == [
        T0 + timedelta(minutes=15),
        T0 + timedelta(minutes=45),
    ]


def test_a_dead_runners_fire_is_run_again_once_its_lease_runs_out(
    ctx: app.AppContext, clock: FakeClock
) -> None:
    app.add_schedule(ctx, "hourly", job="import", cron="0 * * * *")
    job = CountingJob()
    dead = scheduler(ctx, job, "dead", lease_seconds=60)
    dead.record_due(T0 + timedelta(hours=1))
    [claimed] = dead.claim(T0 + timedelta(hours=1), 1)  # ... and the process dies here
    survivor = scheduler(ctx, job, "survivor", lease_seconds=60)

    too_soon = asyncio.run(survivor.tick(T0 + timedelta(hours=1, seconds=59)))
    later = asyncio.run(survivor.tick(T0 + timedelta(hours=1, seconds=61)))

    assert too_soon == []
    [result] = later
    assert result.fire.id == claimed.id
    assert (result.outcome, result.fire.attempts, result.fire.lease_owner) == ("succeeded", 2, None)
    assert job.runs == [None]


def test_a_job_longer_than_its_lease_keeps_it_renewed_so_no_one_takes_it_over(
    sim: FastAPI, repo_url: str
) -> None:
    with context_for(sim, repo_url) as live:
        app.add_schedule(live, "weekly", job="import", cron="0 3 * * 0")
        app.queue_schedule_run(live, "weekly")
        job = CountingJob(gate=asyncio.Event(), started=asyncio.Event())
        short = SchedulerOptions(lease_seconds=0.5)
        holder = Scheduler(live, owner="holder", options=short, jobs=job.jobs())
        other = Scheduler(live, owner="other", options=short, jobs=job.jobs())

        async def scenario() -> tuple[list[app.FireResult], list[app.FireResult]]:
            running = asyncio.create_task(holder.tick())
            assert job.started is not None
            await job.started.wait()
            await asyncio.sleep(1.5)  # three leases
            taken = await other.tick()
            assert job.gate is not None
            job.gate.set()
            return await running, taken

        ran, taken = asyncio.run(scenario())

    assert taken == []
    assert [(r.outcome, r.fire.attempts) for r in ran] == [("succeeded", 1)]
    assert len(job.runs) == 1


def test_a_fire_whose_runner_keeps_dying_fails_as_abandoned(
    ctx: app.AppContext, clock: FakeClock
) -> None:
    app.add_schedule(ctx, "hourly", job="import", cron="0 * * * *")
    job = CountingJob()
    now = T0 + timedelta(hours=1)
    for attempt in range(app.MAX_FIRE_ATTEMPTS):
        dying = scheduler(ctx, job, f"dying-{attempt}", lease_seconds=60)
        dying.record_due(now)
        assert len(dying.claim(now, 1)) == 1
        now += timedelta(seconds=61)

    results = asyncio.run(scheduler(ctx, job, "last", lease_seconds=60).tick(now))

    assert results == []
    [fire] = fires(ctx, "hourly")
    assert fire.status == "failed"
    assert fire.error is not None
    assert "abandoned" in fire.error
    assert job.runs == []


# -- outcomes and the missed-run policy ---------------------------------------------------------


def test_failed_and_held_jobs_are_recorded_and_the_next_tick_runs_on(
    ctx: app.AppContext, clock: FakeClock
) -> None:
    app.add_schedule(ctx, "hourly", job="import", cron="0 * * * *")
    failing = CountingJob(error=RuntimeError("boom: connection reset"))
    holding = CountingJob(held=True)

    failed = asyncio.run(scheduler(ctx, failing, "a").tick(T0 + timedelta(hours=1)))
    held = asyncio.run(scheduler(ctx, holding, "a").tick(T0 + timedelta(hours=2)))

    assert [(r.outcome, r.fire.error) for r in failed] == [
        ("failed", "RuntimeError: boom: connection reset")
    ]
    assert [(r.outcome, r.fire.summary) for r in held] == [("held", {"run": 1})]
    view = app.get_schedule(ctx, "hourly").view
    assert view.last_fire is not None
    assert view.last_fire.status == "held"


def test_after_an_outage_skip_runs_the_newest_missed_fire_once(
    ctx: app.AppContext, clock: FakeClock
) -> None:
    app.add_schedule(ctx, "hourly", job="import", cron="0 * * * *")
    job = CountingJob()
    one = scheduler(ctx, job, "a")

    first = asyncio.run(one.tick(T0 + timedelta(hours=5, minutes=30)))
    again = asyncio.run(one.tick(T0 + timedelta(hours=5, minutes=40)))

    assert [(r.fire.fire_at, r.fire.missed) for r in first] == [(T0 + timedelta(hours=5), 4)]
    assert again == []
    assert len(job.runs) == 1


def test_under_skip_a_fire_waiting_to_run_is_not_joined_by_newer_ones(
    ctx: app.AppContext, clock: FakeClock
) -> None:
    app.add_schedule(ctx, "quarter", job="provision", every="15m")
    job = CountingJob()
    one = scheduler(ctx, job, "a")

    waiting = one.record_due(T0 + timedelta(minutes=15))
    meanwhile = one.record_due(T0 + timedelta(minutes=31))
    ran = asyncio.run(one.tick(T0 + timedelta(minutes=31)))
    then = asyncio.run(one.tick(T0 + timedelta(minutes=32)))

    assert [f.fire_at for f in waiting] == [T0 + timedelta(minutes=15)]
    assert meanwhile == []
    assert [r.fire.fire_at for r in ran] == [T0 + timedelta(minutes=15)]
    assert [(r.fire.fire_at, r.fire.missed) for r in then] == [(T0 + timedelta(minutes=30), 0)]


def test_after_an_outage_run_all_runs_each_missed_fire_in_order_up_to_the_limit(
    ctx: app.AppContext, clock: FakeClock
) -> None:
    app.add_schedule(ctx, "hourly", job="import", cron="0 * * * *", missed="run-all")
    job = CountingJob()
    one = scheduler(ctx, job, "a")
    now = T0 + timedelta(hours=30, minutes=5)

    ran: list[app.FireResult] = []
    while results := asyncio.run(one.tick(now)):
        ran += results

    assert [r.fire.fire_at for r in ran] == [T0 + timedelta(hours=h) for h in range(7, 31)]
    assert [r.fire.missed for r in ran][:2] == [6, 0]
    assert len(job.runs) == 24


# -- DST, on a clock the test moves -------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "zone", "start", "expected"),
    [
        (
            "30 1 * * *",
            "America/New_York",
            datetime(2026, 10, 31, 12),
            ["2026-10-31T01:30:00-04:00", "2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"],
        ),
        (
            "0 2 * * *",
            "America/New_York",
            datetime(2026, 3, 7, 12),
            ["2026-03-07T02:00:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-09T02:00:00-04:00"],
        ),
        (
            "0 2 * * *",
            "Europe/Berlin",
            datetime(2026, 10, 24, 12),
            ["2026-10-24T02:00:00+02:00", "2026-10-25T02:00:00+02:00", "2026-10-26T02:00:00+01:00"],
        ),
        (
            "30 1 * * *",
            "Europe/Berlin",
            datetime(2026, 3, 28, 12),
            ["2026-03-28T01:30:00+01:00", "2026-03-29T01:30:00+01:00", "2026-03-30T01:30:00+02:00"],
        ),
    ],
)
def test_ticking_through_a_dst_change_runs_a_daily_job_once_a_day(
    ctx: app.AppContext,
    clock: FakeClock,
    expression: str,
    zone: str,
    start: datetime,
    expected: list[str],
) -> None:
    tz = ZoneInfo(zone)
    # Noon the day before the first expected fire, to the evening after the last.
    clock.now = (start - timedelta(days=1)).replace(tzinfo=tz).astimezone(UTC)
    app.add_schedule(ctx, "daily", job="import", cron=expression, timezone=zone)
    job = CountingJob()
    one = scheduler(ctx, job, "a", clock=clock)
    end = clock.now + timedelta(days=3, hours=6)

    while clock.now < end:
        clock.advance(minutes=20)
        asyncio.run(one.tick())

    recorded = [f.fire_at.astimezone(tz).isoformat() for f in fires(ctx, "daily")]
    assert recorded == expected
    assert len(job.runs) == 3


# -- the loop -----------------------------------------------------------------------------------


def run_loop(
    loop_scheduler: Scheduler, stop: asyncio.Event, during: object
) -> tuple[float, object]:
    """Run `run_forever` with `during` (a coroutine function) beside it; seconds from stop to end."""

    async def main() -> tuple[float, object]:
        task = asyncio.create_task(loop_scheduler.run_forever(stop))
        value = await during()  # type: ignore[operator]
        stopped_at = time.monotonic()
        stop.set()
        await asyncio.wait_for(task, timeout=10)
        return time.monotonic() - stopped_at, value

    return asyncio.run(main())


def test_run_forever_runs_due_fires_and_a_failing_job_never_ends_it(
    sim: FastAPI, repo_url: str
) -> None:
    with context_for(sim, repo_url) as live:
        app.add_schedule(live, "ok", job="provision", every="1s")
        app.add_schedule(live, "broken", job="import", every="1s")
        good = CountingJob()
        bad = CountingJob(error=RuntimeError("target down"))
        jobs = {"provision": good, "import": bad}
        loop = Scheduler(live, owner="loop", jobs=jobs)
        stop = asyncio.Event()

        async def during() -> None:
            await asyncio.sleep(2.6)

        run_loop(loop, stop, during)

        ok, broken = fires(live, "ok"), fires(live, "broken")
    assert len(good.runs) >= 2
    assert len(bad.runs) >= 2
    assert {f.status for f in ok} == {"succeeded"}
    assert {f.status for f in broken} == {"failed"}


def test_run_forever_stops_promptly_when_idle(sim: FastAPI, repo_url: str) -> None:
    with context_for(sim, repo_url) as live:
        app.add_schedule(live, "weekly", job="import", cron="0 3 * * 0")
        loop = Scheduler(live, owner="loop", options=SchedulerOptions(poll_seconds=30))

        async def during() -> None:
            await asyncio.sleep(0.2)

        took, _ = run_loop(loop, asyncio.Event(), during)

    assert took < 0.5


def test_run_forever_wakes_for_a_queued_run_without_waiting_for_the_poll(
    sim: FastAPI, repo_url: str
) -> None:
    with context_for(sim, repo_url) as live:
        app.add_schedule(live, "weekly", job="import", cron="0 3 * * 0")
        job = CountingJob(started=asyncio.Event())
        loop = Scheduler(
            live, owner="loop", options=SchedulerOptions(poll_seconds=30), jobs=job.jobs()
        )

        async def during() -> None:
            await asyncio.sleep(0.1)
            app.queue_schedule_run(live, "weekly")
            loop.wake()
            assert job.started is not None
            await asyncio.wait_for(job.started.wait(), timeout=2)

        run_loop(loop, asyncio.Event(), during)

        [fire] = fires(live, "weekly")
    assert (fire.trigger, fire.status) == ("manual", "succeeded")


def test_stopping_lets_a_running_job_finish_within_the_grace(sim: FastAPI, repo_url: str) -> None:
    with context_for(sim, repo_url) as live:
        app.add_schedule(live, "weekly", job="import", cron="0 3 * * 0")
        app.queue_schedule_run(live, "weekly")
        job = CountingJob(gate=asyncio.Event(), started=asyncio.Event())
        loop = Scheduler(
            live, owner="loop", options=SchedulerOptions(stop_grace_seconds=5), jobs=job.jobs()
        )

        async def during() -> None:
            assert job.started is not None
            await job.started.wait()
            asyncio.get_running_loop().call_later(0.2, job.gate.set)  # type: ignore[union-attr]

        took, _ = run_loop(loop, asyncio.Event(), during)

        [fire] = fires(live, "weekly")
    assert fire.status == "succeeded"
    assert took < 2


def test_stopping_cancels_a_job_past_the_grace_and_releases_its_fire(
    sim: FastAPI, repo_url: str
) -> None:
    with context_for(sim, repo_url) as live:
        app.add_schedule(live, "weekly", job="import", cron="0 3 * * 0")
        queued = app.queue_schedule_run(live, "weekly")
        job = CountingJob(gate=asyncio.Event(), started=asyncio.Event())
        loop = Scheduler(
            live, owner="loop", options=SchedulerOptions(stop_grace_seconds=0.2), jobs=job.jobs()
        )

        async def during() -> None:
            assert job.started is not None
            await job.started.wait()

        took, _ = run_loop(loop, asyncio.Event(), during)

        [fire] = fires(live, "weekly")
    assert took < 1.5
    assert fire.id == queued.id
    assert (fire.status, fire.attempts, fire.lease_owner, fire.started_at) == (
        "pending",
        0,
        None,
        None,
    )


def test_stopping_releases_a_fire_claimed_but_not_started(sim: FastAPI, repo_url: str) -> None:
    with context_for(sim, repo_url) as live:
        app.add_schedule(live, "weekly", job="import", cron="0 3 * * 0")
        app.queue_schedule_run(live, "weekly")
        job = CountingJob()
        loop = Scheduler(live, owner="loop", jobs=job.jobs())
        [claimed] = loop.claim(live.clock(), 1)
        stop = asyncio.Event()
        stop.set()

        asyncio.run(loop.run_forever(stop))

        [fire] = fires(live, "weekly")
    assert claimed.status == "running"
    assert (fire.status, fire.lease_owner) == ("pending", None)
    assert job.runs == []
