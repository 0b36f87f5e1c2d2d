"""Schedules in the repository: fires recorded once per (schedule, time), leases, no overlap."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from sigsci_iga.errors import InvalidInputError, LeaseLostError, RecordNotFoundError
from sigsci_iga.store import Repository, ScheduleRecord, open_repository
from store.helpers import add_endpoint

T0 = datetime(2026, 6, 1, 12, tzinfo=UTC)
LEASE = 60.0


def add_schedule(
    repo: Repository, name: str = "hourly", *, endpoint: str | None = None, **fields: object
) -> ScheduleRecord:
    values: dict[str, object] = {
        "job": "import",
        "endpoint": endpoint,
        "cron": "0 * * * *",
        "interval_seconds": None,
        "timezone": "UTC",
        "missed": "skip",
        "anchor_at": T0,
        "now": T0,
        **fields,
    }
    return repo.schedules.add(name, **values)  # type: ignore[arg-type]


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def test_a_schedule_is_stored_listed_changed_and_removed(repo: Repository) -> None:
    add_endpoint(repo, "prod")
    created = add_schedule(
        repo, "nightly", endpoint="prod", cron="0 2 * * *", timezone="Europe/Berlin"
    )
    add_schedule(repo, "retry", job="provision", cron=None, interval_seconds=60)

    assert created.endpoint == "prod"
    assert (created.fires_from, created.enabled, created.missed) == (T0, True, "skip")
    assert repo.schedules.get(created.id) == repo.schedules.get("nightly") == created
    assert [s.name for s in repo.schedules.list()] == ["nightly", "retry"]

    changed = repo.schedules.update(
        "nightly", {"enabled": False, "endpoint": None, "missed": "run-all"}, now=at(1)
    )

    assert (changed.enabled, changed.endpoint, changed.missed, changed.updated_at) == (
        False,
        None,
        "run-all",
        at(1),
    )
    assert [s.name for s in repo.schedules.list(enabled=True)] == ["retry"]
    assert repo.schedules.remove("nightly").id == created.id
    with pytest.raises(RecordNotFoundError, match="nightly"):
        repo.schedules.get("nightly")


def test_a_taken_name_an_unknown_endpoint_and_a_numeric_name_are_refused(
    repo: Repository,
) -> None:
    add_schedule(repo, "hourly")

    with pytest.raises(InvalidInputError, match="already exists"):
        add_schedule(repo, "hourly")
    with pytest.raises(InvalidInputError, match="'ghost' is not registered"):
        add_schedule(repo, "other", endpoint="ghost")
    with pytest.raises(InvalidInputError, match="ids"):
        add_schedule(repo, "42")
    with pytest.raises(InvalidInputError, match="timing"):
        add_schedule(repo, "neither", cron=None)
    add_schedule(repo, "second")
    with pytest.raises(InvalidInputError, match="already exists"):
        repo.schedules.update("second", {"name": "hourly"}, now=T0)


def test_recording_a_fire_time_twice_records_it_once(repo: Repository) -> None:
    schedule = add_schedule(repo)

    first = repo.schedules.record_fires(schedule.id, [at(1)], now=at(1))
    again = repo.schedules.record_fires(schedule.id, [at(1), at(2)], now=at(2))

    assert [(f.fire_at, f.status, f.trigger) for f in first] == [(at(1), "pending", "schedule")]
    assert [f.fire_at for f in again] == [at(2)]
    assert len(repo.schedules.fires(schedule.id)) == 2


def test_two_processes_recording_the_same_fire_time_at_once_record_it_once(
    repo_url: str,
) -> None:
    with open_repository(repo_url) as setup:
        schedule_id = add_schedule(setup).id
    rounds = 8
    barrier = threading.Barrier(2)

    def record(_: int) -> list[int]:
        mine = []
        with open_repository(repo_url) as repo:
            for hour in range(1, rounds + 1):
                barrier.wait()
                mine += [f.id for f in repo.schedules.record_fires(schedule_id, [at(hour)], now=T0)]
        return mine

    with ThreadPoolExecutor(2) as pool:
        recorded = [fire for mine in pool.map(record, range(2)) for fire in mine]

    assert len(recorded) == len(set(recorded)) == rounds


def test_a_claimed_fire_is_not_claimed_again_while_its_lease_lives(repo: Repository) -> None:
    schedule = add_schedule(repo)
    repo.schedules.record_fires(schedule.id, [at(1)], now=at(1))

    claim = repo.schedules.claim(owner="a", now=at(1), lease_seconds=LEASE, limit=5, max_attempts=3)
    other = repo.schedules.claim(
        owner="b", now=at(1) + timedelta(seconds=59), lease_seconds=LEASE, limit=5, max_attempts=3
    )

    [fire] = claim.claimed
    assert (fire.status, fire.lease_owner, fire.attempts, fire.started_at) == (
        "running",
        "a",
        1,
        at(1),
    )
    assert fire.lease_until == at(1) + timedelta(seconds=LEASE)
    assert other.claimed == []


def test_a_dead_owners_fire_is_claimed_again_after_its_lease_and_abandoned_after_max(
    repo: Repository,
) -> None:
    schedule = add_schedule(repo)
    repo.schedules.record_fires(schedule.id, [at(1)], now=at(1))
    now = at(1)
    owners = []
    for owner in ("a", "b", "c"):
        [fire] = repo.schedules.claim(
            owner=owner, now=now, lease_seconds=LEASE, limit=1, max_attempts=3
        ).claimed
        owners.append((fire.lease_owner, fire.attempts))
        now += timedelta(seconds=LEASE + 1)

    last = repo.schedules.claim(owner="d", now=now, lease_seconds=LEASE, limit=1, max_attempts=3)

    assert owners == [("a", 1), ("b", 2), ("c", 3)]
    assert last.claimed == []
    [abandoned] = last.abandoned
    assert abandoned.status == "failed"
    assert abandoned.error is not None
    assert "abandoned" in abandoned.error
    assert "c" in abandoned.error


def test_one_schedule_never_runs_two_fires_at_once(repo: Repository) -> None:
    schedule = add_schedule(repo, missed="run-all")
    repo.schedules.record_fires(schedule.id, [at(1), at(2)], now=at(2), missed=3)

    first = repo.schedules.claim(owner="a", now=at(2), lease_seconds=LEASE, limit=5, max_attempts=3)
    during = repo.schedules.claim(
        owner="b", now=at(2), lease_seconds=LEASE, limit=5, max_attempts=3
    )
    recorded_during = repo.schedules.record_fires(schedule.id, [at(3)], now=at(2))
    repo.schedules.finish(first.claimed[0].id, owner="a", status="succeeded", now=at(2))
    after = repo.schedules.claim(owner="b", now=at(2), lease_seconds=LEASE, limit=5, max_attempts=3)

    assert [(f.fire_at, f.missed) for f in first.claimed] == [(at(1), 3)]
    assert during.claimed == []
    assert recorded_during == []
    assert [(f.fire_at, f.missed) for f in after.claimed] == [(at(2), 0)]


def test_claims_of_different_schedules_go_oldest_first_up_to_the_limit(repo: Repository) -> None:
    ids = [add_schedule(repo, name).id for name in ("a", "b", "c")]
    for hours, schedule_id in zip((3, 1, 2), ids, strict=True):
        repo.schedules.record_fires(schedule_id, [at(hours)], now=at(3))

    claim = repo.schedules.claim(owner="x", now=at(3), lease_seconds=LEASE, limit=2, max_attempts=3)

    assert [f.schedule for f in claim.claimed] == ["b", "c"]


def test_only_the_lease_holder_renews_releases_or_finishes_a_fire(repo: Repository) -> None:
    schedule = add_schedule(repo)
    repo.schedules.record_fires(schedule.id, [at(1)], now=at(1))
    [fire] = repo.schedules.claim(
        owner="a", now=at(1), lease_seconds=LEASE, limit=1, max_attempts=3
    ).claimed

    renewed = repo.schedules.renew(fire.id, owner="a", now=at(1.5), lease_seconds=LEASE)
    for call in (
        lambda: repo.schedules.renew(fire.id, owner="b", now=at(1.5), lease_seconds=LEASE),
        lambda: repo.schedules.release(fire.id, owner="b"),
        lambda: repo.schedules.finish(fire.id, owner="b", status="failed", now=at(1.5)),
    ):
        with pytest.raises(LeaseLostError, match="b lost its lease"):
            call()
    done = repo.schedules.finish(
        fire.id, owner="a", status="held", now=at(1.6), summary={"run_id": 4}, error=None
    )

    assert renewed.lease_until == at(1.5) + timedelta(seconds=LEASE)
    assert (done.status, done.summary, done.finished_at, done.lease_owner) == (
        "held",
        {"run_id": 4},
        at(1.6),
        None,
    )
    with pytest.raises(LeaseLostError):
        repo.schedules.finish(fire.id, owner="a", status="succeeded", now=at(2))


def test_a_fire_finishes_only_with_an_outcome_and_a_summary_without_secrets(
    repo: Repository,
) -> None:
    schedule = add_schedule(repo)
    repo.schedules.record_fires(schedule.id, [at(1)], now=at(1))
    [fire] = repo.schedules.claim(
        owner="a", now=at(1), lease_seconds=LEASE, limit=1, max_attempts=3
    ).claimed

    with pytest.raises(InvalidInputError, match="succeeded"):
        repo.schedules.finish(fire.id, owner="a", status="pending", now=at(1))
    with pytest.raises(InvalidInputError, match="secrets"):
        repo.schedules.finish(
            fire.id, owner="a", status="failed", now=at(1), summary={"token": "x"}
        )


def test_a_released_fire_is_pending_again_without_counting_the_claim(repo: Repository) -> None:
    schedule = add_schedule(repo)
    repo.schedules.record_fires(schedule.id, [at(1)], now=at(1))
    [fire] = repo.schedules.claim(
        owner="a", now=at(1), lease_seconds=LEASE, limit=1, max_attempts=3
    ).claimed

    released = repo.schedules.release(fire.id, owner="a")
    again = repo.schedules.claim(owner="b", now=at(1), lease_seconds=LEASE, limit=1, max_attempts=3)

    assert (released.status, released.attempts, released.lease_owner) == ("pending", 0, None)
    assert [(f.id, f.attempts) for f in again.claimed] == [(fire.id, 1)]


def test_two_processes_claiming_at_once_never_share_a_fire(repo_url: str) -> None:
    with open_repository(repo_url) as setup:
        schedule_ids = [add_schedule(setup, f"s{n}").id for n in range(6)]
        for schedule_id in schedule_ids:
            setup.schedules.record_fires(schedule_id, [at(1)], now=at(1))
    barrier = threading.Barrier(2)

    def claim(owner: str) -> list[int]:
        mine = []
        with open_repository(repo_url) as repo:
            for _ in range(4):
                barrier.wait()
                got = repo.schedules.claim(
                    owner=owner, now=at(1), lease_seconds=LEASE, limit=2, max_attempts=3
                )
                mine += [f.id for f in got.claimed]
        return mine

    with ThreadPoolExecutor(2) as pool:
        claimed = [fire for mine in pool.map(claim, ("a", "b")) for fire in mine]

    assert sorted(claimed) == sorted(set(claimed))
    assert len(claimed) == len(schedule_ids)


def test_states_give_the_newest_fire_time_the_newest_fire_and_the_running_one(
    repo: Repository,
) -> None:
    busy = add_schedule(repo, "busy")
    idle = add_schedule(repo, "idle")
    repo.schedules.record_fires(busy.id, [at(1)], now=at(1))
    repo.schedules.record_fires(busy.id, [at(1.5)], now=at(1.5), trigger="manual")
    [running] = repo.schedules.claim(
        owner="a", now=at(1.5), lease_seconds=LEASE, limit=1, max_attempts=3
    ).claimed

    states = {s.schedule.name: s for s in repo.schedules.states(now=at(1.5))}
    later = repo.schedules.states(now=at(3), ref="busy")

    assert states["busy"].last_fire_at == at(1)
    assert states["busy"].last_fire is not None
    assert states["busy"].last_fire.trigger == "manual"
    assert states["busy"].running == running
    assert (states["idle"].last_fire_at, states["idle"].last_fire, states["idle"].running) == (
        None,
        None,
        None,
    )
    assert later[0].running is None  # its lease ran out
    assert idle.id != busy.id
    with pytest.raises(RecordNotFoundError):
        repo.schedules.states(now=at(1), ref="ghost")


def test_pruning_keeps_each_schedules_newest_fire_time_and_unfinished_fires(
    repo: Repository,
) -> None:
    schedule = add_schedule(repo, missed="run-all")
    repo.schedules.record_fires(schedule.id, [at(1), at(2), at(3), at(4)], now=at(4))
    for _ in range(3):
        [fire] = repo.schedules.claim(
            owner="a", now=at(4), lease_seconds=LEASE, limit=1, max_attempts=3
        ).claimed
        repo.schedules.finish(fire.id, owner="a", status="succeeded", now=at(4))

    first = repo.schedules.prune(finished_before=at(10))
    [last] = repo.schedules.claim(
        owner="a", now=at(4), lease_seconds=LEASE, limit=1, max_attempts=3
    ).claimed
    repo.schedules.finish(last.id, owner="a", status="failed", now=at(4))
    second = repo.schedules.prune(finished_before=at(10))

    assert (first, second) == (3, 0)
    assert [(f.fire_at, f.status) for f in repo.schedules.fires(schedule.id)] == [(at(4), "failed")]


def test_removing_or_retiring_an_endpoint_removes_its_schedules(repo: Repository) -> None:
    add_endpoint(repo, "gone")
    add_endpoint(repo, "kept")
    schedule = add_schedule(repo, "gone-hourly", endpoint="gone")
    add_schedule(repo, "kept-hourly", endpoint="kept")
    repo.schedules.record_fires(schedule.id, [at(1)], now=at(1))

    assert repo.endpoints.remove("gone") == "deleted"

    assert [s.name for s in repo.schedules.list()] == ["kept-hourly"]
    assert repo.schedules.fires() == []


def test_pausing_or_retiming_drops_pending_scheduled_fires_but_not_manual_ones(
    repo: Repository,
) -> None:
    schedule = add_schedule(repo)
    repo.schedules.record_fires(schedule.id, [at(1)], now=at(1))
    repo.schedules.record_fires(schedule.id, [at(1.5)], now=at(1.5), trigger="manual")

    repo.schedules.update(schedule.id, {"enabled": False}, now=at(2))

    assert [(f.trigger, f.status) for f in repo.schedules.fires(schedule.id)] == [
        ("manual", "pending")
    ]


def test_scheduled_times_are_not_recorded_while_paused_or_at_or_before_fires_from(
    repo: Repository,
) -> None:
    schedule = add_schedule(repo)
    repo.schedules.update(schedule.id, {"fires_from": at(2)}, now=at(2))

    early = repo.schedules.record_fires(schedule.id, [at(1), at(2)], now=at(2))
    later = repo.schedules.record_fires(schedule.id, [at(3)], now=at(3))
    repo.schedules.update(schedule.id, {"enabled": False}, now=at(3))
    paused = repo.schedules.record_fires(schedule.id, [at(4)], now=at(4))
    by_hand = repo.schedules.record_fires(schedule.id, [at(4)], now=at(4), trigger="manual")

    assert early == []
    assert [f.fire_at for f in later] == [at(3)]
    assert paused == []
    assert [f.trigger for f in by_hand] == ["manual"]
