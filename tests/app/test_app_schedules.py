"""Schedule use cases through the application layer, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from schedule_harness import CountingJob, FakeClock, context_for
from sigsci_iga import app
from sigsci_iga.errors import (
    ConfigError,
    DatabaseBusyError,
    InvalidInputError,
    RecordNotFoundError,
    ScheduleBusyError,
)
from sigsci_iga.sim import DEMO_CORP, SimConfig, SimState, create_app


@pytest.fixture(autouse=True)
def _no_sigsci_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SIGSCI"):
            monkeypatch.delenv(name)


@pytest.fixture
def sim() -> FastAPI:
    return create_app(SimConfig(users=30, sites=6, seed=5))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ctx(sim: FastAPI, repo_url: str, clock: FakeClock) -> Iterator[app.AppContext]:
    """A context whose clock moves only when the test moves it."""
    with context_for(sim, repo_url, clock=clock) as context:
        yield context


@pytest.fixture
def live(sim: FastAPI, repo_url: str) -> Iterator[app.AppContext]:
    """A context on the real clock, for jobs that reach the simulator."""
    with context_for(sim, repo_url) as context:
        yield context


def state(sim: FastAPI) -> SimState:
    result: SimState = sim.state.sim.state
    return result


# -- adding and validating ----------------------------------------------------------------------


def test_a_schedule_is_added_with_its_next_fire_time_in_its_zone(
    ctx: app.AppContext, clock: FakeClock
) -> None:
    view = app.add_schedule(
        ctx, "nightly", job="import-full", cron="0 2 * * *", timezone="Europe/Berlin"
    )

    assert view.schedule.job == "import-full"
    assert view.schedule.endpoint is None
    assert (view.schedule.missed, view.schedule.enabled) == ("skip", True)
    assert view.timing == "cron 0 2 * * *"
    assert view.next_fire_at is not None
    assert view.next_fire_at.isoformat() == "2026-06-02T02:00:00+02:00"
    assert (view.due, view.last_fire, view.running) == (False, None, None)
    assert view.schedule.created_at == clock.now


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"job": "backup", "every": "1h"}, "job 'backup' is not one of"),
        ({"job": "import", "cron": "61 * * * *"}, "Bad minute"),
        ({"job": "import", "cron": "* * *"}, "five fields"),
        ({"job": "import", "every": "30"}, "with a unit"),
        ({"job": "import", "every": "0s"}, "longer than zero"),
        ({"job": "import", "every": "-5m"}, "with a unit"),
        ({"job": "import", "every": math.nan}, "whole number"),
        ({"job": "import", "every": -60}, "longer than zero"),
        ({"job": "import", "every": "1h", "cron": "0 * * * *"}, "not both"),
        ({"job": "import"}, "not both"),
        ({"job": "import", "every": "1h", "timezone": "Mars/Olympus"}, "IANA"),
        ({"job": "import", "every": "1h", "endpoint": "ghost"}, "'ghost' is not registered"),
        ({"job": "import", "every": "1h", "missed": "later"}, "skip, run-all"),
    ],
)
def test_a_schedule_with_a_bad_field_is_refused_with_a_clear_reason(
    ctx: app.AppContext, fields: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        app.add_schedule(ctx, "bad", **fields)  # type: ignore[arg-type]

    assert app.list_schedules(ctx) == []


def test_a_taken_name_is_refused(ctx: app.AppContext) -> None:
    app.add_schedule(ctx, "hourly", job="import", every="1h")

    with pytest.raises(InvalidInputError, match="'hourly' already exists"):
        app.add_schedule(ctx, "hourly", job="provision", every="1m")


def test_a_schedule_for_the_configured_corp_needs_one_to_be_configured(
    sim: FastAPI, repo_url: str
) -> None:
    with context_for(sim, repo_url, corp=None) as context, pytest.raises(ConfigError):
        app.add_schedule(context, "hourly", job="import", every="1h")


def test_naming_the_configured_corp_registers_it_as_an_import_would(ctx: app.AppContext) -> None:
    view = app.add_schedule(ctx, "hourly", job="import", every="1h", endpoint=DEMO_CORP)

    assert view.schedule.endpoint == DEMO_CORP
    assert [e.name for e in app.list_endpoints(ctx)] == [DEMO_CORP]


# -- listing and changing -----------------------------------------------------------------------


def test_the_list_shows_the_next_fire_and_says_when_one_is_due(
    ctx: app.AppContext, clock: FakeClock
) -> None:
    app.add_schedule(ctx, "quarter", job="provision", every="15m")
    app.add_schedule(ctx, "hourly", job="import", cron="0 * * * *")
    clock.advance(minutes=20)

    views = {v.schedule.name: v for v in app.list_schedules(ctx)}

    assert [name for name in views] == ["hourly", "quarter"]
    assert views["quarter"].due
    assert views["quarter"].next_fire_at is not None
    assert views["quarter"].next_fire_at.isoformat() == "2026-06-01T12:30:00+00:00"
    assert not views["hourly"].due
    assert views["quarter"].to_json()["every"] == "15m"
    assert views["hourly"].to_json()["every"] is None


def test_a_patch_changes_only_what_it_names_and_a_new_timing_counts_from_now(
    ctx: app.AppContext, clock: FakeClock
) -> None:
    added = app.add_schedule(ctx, "sync", job="import", every="15m")
    clock.advance(hours=3)

    moved = app.update_schedule(
        ctx, "sync", app.SchedulePatch(cron="30 1 * * *", timezone="America/New_York")
    )
    renamed = app.update_schedule(
        ctx, added.schedule.id, app.SchedulePatch(name="nightly", missed="run-all")
    )

    assert (moved.schedule.cron, moved.schedule.interval_seconds) == ("30 1 * * *", None)
    assert moved.schedule.fires_from == clock.now
    assert not moved.due
    assert moved.next_fire_at is not None
    assert moved.next_fire_at.isoformat() == "2026-06-02T01:30:00-04:00"
    assert (renamed.schedule.name, renamed.schedule.missed, renamed.schedule.job) == (
        "nightly",
        "run-all",
        "import",
    )
    assert renamed.schedule.fires_from == moved.schedule.fires_from
    with pytest.raises(InvalidInputError, match="Bad hour"):
        app.update_schedule(ctx, "nightly", app.SchedulePatch(cron="0 24 * * *"))
    with pytest.raises(RecordNotFoundError, match="ghost"):
        app.update_schedule(ctx, "ghost", app.SchedulePatch(enabled=False))


def test_a_paused_schedule_has_no_next_fire_and_resuming_does_not_catch_up(
    ctx: app.AppContext, clock: FakeClock
) -> None:
    app.add_schedule(ctx, "retry", job="provision", every="1m")

    paused = app.pause_schedule(ctx, "retry")
    clock.advance(hours=5)
    resumed = app.resume_schedule(ctx, "retry")

    assert (paused.schedule.enabled, paused.next_fire_at, paused.due) == (False, None, False)
    assert resumed.schedule.enabled
    assert resumed.schedule.fires_from == clock.now
    assert not resumed.due
    assert resumed.next_fire_at == clock.now + timedelta(minutes=1)


def test_a_removed_schedule_is_gone(ctx: app.AppContext) -> None:
    app.add_schedule(ctx, "retry", job="provision", every="1m")

    removed = app.remove_schedule(ctx, "retry")

    assert removed.name == "retry"
    assert app.list_schedules(ctx) == []
    with pytest.raises(RecordNotFoundError):
        app.get_schedule(ctx, "retry")


def test_the_defaults_are_added_only_when_asked_and_only_once(ctx: app.AppContext) -> None:
    assert app.list_schedules(ctx) == []

    first = app.add_default_schedules(ctx)
    second = app.add_default_schedules(ctx)

    assert [(v.schedule.name, v.schedule.job, v.timing) for v in first] == [
        ("hourly-import", "import", "cron 0 * * * *"),
        ("weekly-full-import", "import-full", "cron 30 3 * * 0"),
        ("provision-retry", "provision", "every 1m"),
    ]
    assert second == []


# -- running now --------------------------------------------------------------------------------


def test_running_an_import_schedule_now_imports_and_records_the_run(
    sim: FastAPI, live: app.AppContext
) -> None:
    app.add_schedule(live, "hourly", job="import", every="1h")

    result = asyncio.run(app.run_schedule(live, "hourly"))

    assert result.outcome == "succeeded"
    fire = result.fire
    assert (fire.trigger, fire.status, fire.attempts, fire.lease_owner) == (
        "manual",
        "succeeded",
        1,
        None,
    )
    assert fire.summary is not None
    [run] = app.list_runs(live, None)
    assert fire.summary["run_id"] == run.id
    assert fire.summary["mode"] == "full"
    assert fire.summary["changes"]["accounts"] == len(state(sim).users)
    detail = app.get_schedule(live, "hourly")
    assert detail.fires == [fire]
    assert detail.view.last_fire == fire


def test_running_the_provisioning_job_now_works_the_due_tasks(live: app.AppContext) -> None:
    asyncio.run(app.run_import(live, None, mode="full"))
    app.add_schedule(live, "retry", job="provision", every="1m")

    result = asyncio.run(app.run_schedule(live, "retry"))

    assert result.outcome == "succeeded"
    assert result.fire.summary == {
        "claimed": 0,
        "completed": 0,
        "no_action_required": 0,
        "failed": 0,
        "rescheduled": 0,
    }


def test_an_import_held_by_its_thresholds_is_recorded_as_held(
    sim: FastAPI, live: app.AppContext
) -> None:
    asyncio.run(app.run_import(live, None, mode="full"))
    with state(sim).lock:
        leaving = [u.email for u in state(sim).users.values() if u.role == "user"][:5]
    for email in leaving:
        state(sim).remove_user(email)
    app.add_schedule(live, "full", job="import-full", every="1d")

    result = asyncio.run(app.run_schedule(live, "full"))

    assert result.outcome == "held"
    assert result.fire.summary is not None
    assert result.fire.summary["reasons"]
    [held] = [run for run in app.list_runs(live, None) if run.status == "held"]
    assert result.fire.summary["run_id"] == held.id


def test_a_failing_job_is_recorded_with_its_error_and_no_secret(
    sim: FastAPI, repo_url: str
) -> None:
    wrong = "sim-wrong-token-5f3a9c"
    with context_for(sim, repo_url, token=SecretStr(wrong)) as context:
        app.add_schedule(context, "hourly", job="import", every="1h")

        result = asyncio.run(app.run_schedule(context, "hourly"))

    assert result.outcome == "failed"
    assert result.fire.error is not None
    assert "401" in result.fire.error or "403" in result.fire.error
    assert wrong not in result.fire.error
    assert result.fire.summary is None


def test_a_paused_schedule_can_still_be_run_by_hand(ctx: app.AppContext) -> None:
    app.add_schedule(ctx, "retry", job="provision", every="1m")
    app.pause_schedule(ctx, "retry")
    job = CountingJob()

    result = asyncio.run(app.run_schedule(ctx, "retry", jobs=job.jobs()))

    assert result.outcome == "succeeded"
    assert job.runs == [None]


def test_a_schedule_cannot_be_run_by_hand_while_a_fire_of_it_runs(
    ctx: app.AppContext, clock: FakeClock
) -> None:
    app.add_schedule(ctx, "retry", job="provision", every="1m")
    queued = app.queue_schedule_run(ctx, "retry")
    ctx.repository.schedules.claim(
        owner="elsewhere", now=clock.now, lease_seconds=60, limit=1, max_attempts=3
    )

    with pytest.raises(ScheduleBusyError, match="elsewhere"):
        asyncio.run(app.run_schedule(ctx, "retry", jobs=CountingJob().jobs()))
    with pytest.raises(ScheduleBusyError):
        app.queue_schedule_run(ctx, "retry")

    assert (queued.trigger, queued.status) == ("manual", "pending")
    assert ScheduleBusyError("x").rule.http_status == 409


def test_a_failed_lease_renewal_does_not_stop_the_job_and_a_lost_lease_does(
    live: app.AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    app.add_schedule(live, "retry", job="provision", every="1m")
    schedules = live.repository.schedules
    renew = schedules.renew
    hiccups = {"left": 1}

    def flaky_renew(*args: object, **kwargs: object) -> app.FireRecord:
        if hiccups["left"]:
            hiccups["left"] -= 1
            raise DatabaseBusyError("locked for a moment")
        return renew(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(schedules, "renew", flaky_renew)

    async def finishes_despite_a_hiccup() -> app.FireResult:
        job = CountingJob(gate=asyncio.Event())
        asyncio.get_running_loop().call_later(0.4, job.gate.set)  # type: ignore[union-attr]
        return await app.run_schedule(live, "retry", lease_seconds=0.25, jobs=job.jobs())

    survived = asyncio.run(finishes_despite_a_hiccup())

    async def taken_over() -> tuple[app.FireResult, bool]:
        job = CountingJob(gate=asyncio.Event(), started=asyncio.Event())
        hiccups["left"] = 1_000  # no renewal works: the lease runs out
        running = asyncio.create_task(
            app.run_schedule(live, "retry", lease_seconds=0.25, jobs=job.jobs())
        )
        assert job.started is not None
        await job.started.wait()
        await asyncio.sleep(0.4)
        stolen = schedules.claim(
            owner="thief", now=live.clock(), lease_seconds=60, limit=1, max_attempts=3
        )
        assert len(stolen.claimed) == 1
        hiccups["left"] = 0
        result = await asyncio.wait_for(running, timeout=5)
        assert job.gate is not None
        return result, job.gate.is_set()

    lost, released_gate = asyncio.run(taken_over())

    assert survived.outcome == "succeeded"
    assert lost.outcome == "lost"
    assert not released_gate  # the job was cancelled, not left to finish
    [newest, *_] = app.get_schedule(live, "retry").fires
    assert (newest.status, newest.lease_owner) == ("running", "thief")
