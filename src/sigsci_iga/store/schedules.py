"""Schedules and their fires: recording fire times once, claiming them under leases, outcomes.

A fire is keyed by (schedule, fire time): recording a time that is already recorded does
nothing, so scheduler processes that compute the same due time never run it twice. Claiming a
fire takes its schedule's row first (SKIP LOCKED on PostgreSQL; SQLite's write lock serialises
anyway), so two claimers never run two fires of one schedule at once.
"""

from __future__ import annotations

import builtins
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from sigsci_iga.domain.schedules import FireStatus, FireTrigger
from sigsci_iga.errors import InvalidInputError, LeaseLostError, RecordNotFoundError
from sigsci_iga.store.db import Database
from sigsci_iga.store.records import FireRecord, ScheduleRecord
from sigsci_iga.store.tables import endpoints, schedule_fires, schedules
from sigsci_iga.store.values import plain_json, refuse_secrets

#: A schedule named by its name (what people type) or its id (what the HTTP API routes by).
ScheduleRef = str | int

_RUNNING = FireStatus.RUNNING.value
_PENDING = FireStatus.PENDING.value
_FINAL = tuple(status.value for status in FireStatus if status.is_final)
#: What `Schedules.update` may change.
_CHANGEABLE = frozenset(
    {
        "name",
        "job",
        "endpoint",
        "cron",
        "interval_seconds",
        "timezone",
        "enabled",
        "missed",
        "anchor_at",
        "fires_from",
    }
)


@dataclass(frozen=True, slots=True)
class ScheduleState:
    """A schedule with what the scheduler and the listings need to know about its fires."""

    schedule: ScheduleRecord
    #: The newest fire time recorded by the schedule itself (manual runs do not count).
    last_fire_at: datetime | None
    #: The newest fire of any trigger, whatever its status.
    last_fire: FireRecord | None
    #: The fire running under a live lease, if one is.
    running: FireRecord | None
    #: Scheduled fires not finished: pending, or running (under a live lease or not).
    unfinished: int = 0


@dataclass(frozen=True, slots=True)
class Claim:
    """What one claim did: fires now leased to the caller, and fires given up as abandoned."""

    claimed: list[FireRecord]
    abandoned: list[FireRecord]


def _schedules_query() -> sa.Select[Any]:
    return sa.select(schedules, endpoints.c.name.label("endpoint_name")).join(
        endpoints, endpoints.c.id == schedules.c.endpoint_id, isouter=True
    )


def _fires_query() -> sa.Select[Any]:
    return sa.select(schedule_fires, schedules.c.name.label("schedule_name")).join(
        schedules, schedules.c.id == schedule_fires.c.schedule_id
    )


def _where_ref(ref: ScheduleRef) -> sa.ColumnElement[bool]:
    return schedules.c.id == ref if isinstance(ref, int) else schedules.c.name == ref


def _not_found(ref: ScheduleRef) -> RecordNotFoundError:
    return RecordNotFoundError(
        f"schedule {ref} does not exist" if isinstance(ref, int) else f"no schedule named {ref!r}"
    )


def schedule_record(row: Row[Any]) -> ScheduleRecord:
    return ScheduleRecord(
        id=row.id,
        name=row.name,
        job=row.job,
        endpoint=row.endpoint_name,
        cron=row.cron,
        interval_seconds=row.interval_seconds,
        timezone=row.timezone,
        enabled=bool(row.enabled),
        missed=row.missed,
        anchor_at=row.anchor_at,
        fires_from=row.fires_from,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def fire_record(row: Row[Any]) -> FireRecord:
    return FireRecord(
        id=row.id,
        schedule_id=row.schedule_id,
        schedule=row.schedule_name,
        fire_at=row.fire_at,
        trigger=row.trigger,
        status=row.status,
        attempts=row.attempts,
        missed=row.missed,
        lease_owner=row.lease_owner,
        lease_until=row.lease_until,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        summary=dict(row.summary) if row.summary is not None else None,
        error=row.error,
    )


def _schedule_row(conn: Connection, ref: ScheduleRef) -> Row[Any]:
    row = conn.execute(_schedules_query().where(_where_ref(ref))).first()
    if row is None:
        raise _not_found(ref)
    return row


def _fire_row(conn: Connection, fire_id: int, *, lock: bool = False) -> Row[Any]:
    query = _fires_query().where(schedule_fires.c.id == fire_id)
    if lock:
        query = query.with_for_update(of=schedule_fires)
    row = conn.execute(query).first()
    if row is None:
        raise RecordNotFoundError(f"fire {fire_id} does not exist (was its schedule removed?)")
    return row


def _held_fire(conn: Connection, fire_id: int, owner: str) -> Row[Any]:
    """The locked fire row, if `owner` still holds its lease; `LeaseLostError` otherwise."""
    try:
        row = _fire_row(conn, fire_id, lock=True)
    except RecordNotFoundError as exc:
        raise LeaseLostError(str(exc)) from None
    if row.status != _RUNNING or row.lease_owner != owner:
        holder = f"held by {row.lease_owner}" if row.lease_owner else "held by nobody"
        raise LeaseLostError(
            f"fire {fire_id} of schedule {row.schedule_name!r} is {row.status} and {holder}: "
            f"{owner} lost its lease; stop working on it"
        )
    return row


def _endpoint_id(conn: Connection, name: str) -> int:
    row = conn.execute(
        sa.select(endpoints.c.id, endpoints.c.retired_at).where(endpoints.c.name == name)
    ).first()
    if row is None or row.retired_at is not None:
        raise InvalidInputError(
            f"endpoint {name!r} is not registered; register it first (endpoints add), or leave "
            "the endpoint out to use the configured corp"
        )
    return int(row.id)


def _checked_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidInputError("a schedule's name must be 1 to 100 characters")
    if name.isdigit():
        raise InvalidInputError(f"schedule name {name!r} is a number; numbers are schedule ids")
    return name


def _insert_fire(conn: Connection, values: dict[str, Any]) -> int | None:
    """Insert a fire unless its (schedule, fire time) exists; the new id, or None."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(schedule_fires)
        .values(values)
        .on_conflict_do_nothing(index_elements=["schedule_id", "fire_at"])
        .returning(schedule_fires.c.id)
    )
    found = conn.execute(statement).scalar_one_or_none()
    return None if found is None else int(found)


def _live(now: datetime) -> sa.ColumnElement[bool]:
    return sa.and_(schedule_fires.c.status == _RUNNING, schedule_fires.c.lease_until >= now)


def _claimable(now: datetime) -> sa.ColumnElement[bool]:
    # Pending, or running under a lease that ran out: its runner died or hung.
    return sa.or_(
        schedule_fires.c.status == _PENDING,
        sa.and_(schedule_fires.c.status == _RUNNING, schedule_fires.c.lease_until < now),
    )


class Schedules:
    """Schedules (one transaction per call) and the fires recorded for them."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- schedules ---------------------------------------------------------------------------

    def add(
        self,
        name: str,
        *,
        job: str,
        endpoint: str | None,
        cron: str | None,
        interval_seconds: int | None,
        timezone: str,
        missed: str,
        anchor_at: datetime,
        now: datetime,
        enabled: bool = True,
    ) -> ScheduleRecord:
        """Store a schedule whose timing the caller checked; a taken name is refused."""
        name = _checked_name(name)
        try:
            with self._db.write() as conn:
                schedule_id = conn.execute(
                    schedules.insert().returning(schedules.c.id),
                    {
                        "name": name,
                        "job": job,
                        "endpoint_id": None if endpoint is None else _endpoint_id(conn, endpoint),
                        "cron": cron,
                        "interval_seconds": interval_seconds,
                        "timezone": timezone,
                        "enabled": enabled,
                        "missed": missed,
                        "anchor_at": anchor_at,
                        "fires_from": now,
                        "created_at": now,
                        "updated_at": now,
                    },
                ).scalar_one()
                return schedule_record(_schedule_row(conn, int(schedule_id)))
        except IntegrityError as exc:
            if "unique" in str(exc.orig).lower():
                raise InvalidInputError(f"a schedule named {name!r} already exists") from None
            raise InvalidInputError(f"schedule {name!r} is not valid: {exc.orig}") from None

    def get(self, ref: ScheduleRef) -> ScheduleRecord:
        with self._db.read() as conn:
            return schedule_record(_schedule_row(conn, ref))

    def list(self, *, enabled: bool | None = None) -> builtins.list[ScheduleRecord]:
        """Schedules by name."""
        query = _schedules_query().order_by(schedules.c.name)
        if enabled is not None:
            query = query.where(schedules.c.enabled == enabled)
        with self._db.read() as conn:
            return [schedule_record(row) for row in conn.execute(query)]

    def update(
        self, ref: ScheduleRef, changes: Mapping[str, Any], *, now: datetime
    ) -> ScheduleRecord:
        """Change the named fields (`endpoint` by name, None for the configured corp).

        Pausing, or moving `fires_from`, drops the schedule's pending scheduled fires: they
        belong to a timing or a period that no longer applies. A running fire runs on.
        """
        unknown = set(changes) - _CHANGEABLE
        if unknown:
            raise InvalidInputError(f"a schedule has no field(s) {', '.join(sorted(unknown))}")
        values = dict(changes)
        if "name" in values:
            values["name"] = _checked_name(str(values["name"]))
        try:
            with self._db.write() as conn:
                row = conn.execute(
                    sa.select(schedules.c.id).where(_where_ref(ref)).with_for_update()
                ).first()
                if row is None:
                    raise _not_found(ref)
                if "endpoint" in values:
                    endpoint = values.pop("endpoint")
                    values["endpoint_id"] = (
                        None if endpoint is None else _endpoint_id(conn, endpoint)
                    )
                values["updated_at"] = now
                conn.execute(schedules.update().where(schedules.c.id == row.id).values(values))
                if values.get("enabled") is False or "fires_from" in values:
                    conn.execute(
                        schedule_fires.delete().where(
                            schedule_fires.c.schedule_id == row.id,
                            schedule_fires.c.status == _PENDING,
                            schedule_fires.c.trigger == FireTrigger.SCHEDULE.value,
                        )
                    )
                return schedule_record(_schedule_row(conn, int(row.id)))
        except IntegrityError as exc:
            if "unique" in str(exc.orig).lower():
                raise InvalidInputError(
                    f"a schedule named {values.get('name')!r} already exists"
                ) from None
            raise InvalidInputError(f"schedule {ref!r} cannot change so: {exc.orig}") from None

    def remove(self, ref: ScheduleRef) -> ScheduleRecord:
        """Delete a schedule and its fires. A fire running now loses its lease with it."""
        with self._db.write() as conn:
            record = schedule_record(_schedule_row(conn, ref))
            conn.execute(schedule_fires.delete().where(schedule_fires.c.schedule_id == record.id))
            conn.execute(schedules.delete().where(schedules.c.id == record.id))
            return record

    def states(
        self, *, now: datetime, enabled: bool | None = None, ref: ScheduleRef | None = None
    ) -> builtins.list[ScheduleState]:
        """Schedules by name, each with its newest fire time, newest fire and running fire."""
        query = _schedules_query().order_by(schedules.c.name)
        if enabled is not None:
            query = query.where(schedules.c.enabled == enabled)
        if ref is not None:
            query = query.where(_where_ref(ref))
        latest_time = (
            sa.select(schedule_fires.c.schedule_id, sa.func.max(schedule_fires.c.fire_at))
            .where(schedule_fires.c.trigger == FireTrigger.SCHEDULE.value)
            .group_by(schedule_fires.c.schedule_id)
        )
        newest_ids = sa.select(sa.func.max(schedule_fires.c.id)).group_by(
            schedule_fires.c.schedule_id
        )
        with self._db.read(snapshot=True) as conn:
            rows = conn.execute(query).all()
            if ref is not None and not rows:
                raise _not_found(ref)
            times = {sid: at for sid, at in conn.execute(latest_time)}
            newest = {
                row.schedule_id: fire_record(row)
                for row in conn.execute(_fires_query().where(schedule_fires.c.id.in_(newest_ids)))
            }
            running = {
                row.schedule_id: fire_record(row)
                for row in conn.execute(_fires_query().where(_live(now)))
            }
            unfinished = {
                sid: int(count)
                for sid, count in conn.execute(
                    sa.select(schedule_fires.c.schedule_id, sa.func.count())
                    .where(
                        schedule_fires.c.trigger == FireTrigger.SCHEDULE.value,
                        schedule_fires.c.status.in_((_PENDING, _RUNNING)),
                    )
                    .group_by(schedule_fires.c.schedule_id)
                )
            }
        return [
            ScheduleState(
                schedule=schedule_record(row),
                last_fire_at=times.get(row.id),
                last_fire=newest.get(row.id),
                running=running.get(row.id),
                unfinished=unfinished.get(row.id, 0),
            )
            for row in rows
        ]

    # -- fires -------------------------------------------------------------------------------

    def record_fires(
        self,
        schedule_id: int,
        times: Sequence[datetime],
        *,
        now: datetime,
        trigger: str = FireTrigger.SCHEDULE.value,
        missed: int = 0,
    ) -> builtins.list[FireRecord]:
        """Record fire times (pending); the ones already recorded are left alone.

        Nothing is recorded while a fire of the schedule runs under a live lease: the times
        that pass meanwhile are missed, and the schedule's missed-run policy decides later.
        Scheduled times are recorded only while the schedule is enabled, and only after its
        `fires_from` (a caller may have computed them before a pause or a change). `missed` is
        stored on the oldest new fire. Returns the fires this call recorded.
        """
        if not times:
            return []
        with self._db.write() as conn:
            # Waits for a claim or change of this schedule to commit, so both are seen.
            locked = conn.execute(
                sa.select(schedules.c.enabled, schedules.c.fires_from)
                .where(schedules.c.id == schedule_id)
                .with_for_update()
            ).first()
            if locked is None:
                raise _not_found(schedule_id)
            if trigger == FireTrigger.SCHEDULE.value:
                times = [t for t in times if t > locked.fires_from]
                if not locked.enabled or not times:
                    return []
            if conn.execute(
                sa.select(schedule_fires.c.id)
                .where(schedule_fires.c.schedule_id == schedule_id, _live(now))
                .limit(1)
            ).first():
                return []
            ids = []
            for index, at in enumerate(sorted(times)):
                fire_id = _insert_fire(
                    conn,
                    {
                        "schedule_id": schedule_id,
                        "fire_at": at,
                        "trigger": trigger,
                        "status": _PENDING,
                        "attempts": 0,
                        "missed": missed if index == 0 else 0,
                        "created_at": now,
                    },
                )
                if fire_id is not None:
                    ids.append(fire_id)
            rows = conn.execute(
                _fires_query().where(schedule_fires.c.id.in_(ids)).order_by(schedule_fires.c.id)
            )
            return [fire_record(row) for row in rows]

    def claim(
        self,
        *,
        owner: str,
        now: datetime,
        lease_seconds: float,
        limit: int,
        max_attempts: int,
        fire_ids: Collection[int] | None = None,
    ) -> Claim:
        """Lease up to `limit` fires to `owner`: pending ones, or running ones whose lease ran out.

        Per schedule, the oldest such fire, and only while no fire of the schedule runs under
        a live lease. A fire whose lease ran out `max_attempts` times fails as abandoned
        instead. `owner` must be unique per scheduler process: leases are checked by it.
        """
        claimed: list[int] = []
        abandoned: list[int] = []
        if limit < 1:
            return Claim([], [])
        where = [_claimable(now)]
        if fire_ids is not None:
            where.append(schedule_fires.c.id.in_(list(fire_ids)))
        oldest = sa.func.min(schedule_fires.c.fire_at)
        with self._db.write() as conn:
            candidates = conn.execute(
                sa.select(schedule_fires.c.schedule_id, oldest)
                .where(*where)
                .group_by(schedule_fires.c.schedule_id)
                .order_by(oldest, schedule_fires.c.schedule_id)
            ).all()
            for schedule_id, _at in candidates:
                if len(claimed) >= limit:
                    break
                # Another claimer holding this schedule is claiming its fire right now.
                if (
                    conn.execute(
                        sa.select(schedules.c.id)
                        .where(schedules.c.id == schedule_id)
                        .with_for_update(skip_locked=True)
                    ).first()
                    is None
                ):
                    continue
                if conn.execute(
                    sa.select(schedule_fires.c.id)
                    .where(schedule_fires.c.schedule_id == schedule_id, _live(now))
                    .limit(1)
                ).first():
                    continue
                fire_id = self._claim_one(
                    conn, schedule_id, where, owner, now, lease_seconds, max_attempts, abandoned
                )
                if fire_id is not None:
                    claimed.append(fire_id)
            return Claim(
                [fire_record(_fire_row(conn, fire_id)) for fire_id in claimed],
                [fire_record(_fire_row(conn, fire_id)) for fire_id in abandoned],
            )

    def _claim_one(
        self,
        conn: Connection,
        schedule_id: int,
        where: builtins.list[sa.ColumnElement[bool]],
        owner: str,
        now: datetime,
        lease_seconds: float,
        max_attempts: int,
        abandoned: builtins.list[int],
    ) -> int | None:
        while True:
            row = conn.execute(
                sa.select(schedule_fires)
                .where(schedule_fires.c.schedule_id == schedule_id, *where)
                .order_by(schedule_fires.c.fire_at, schedule_fires.c.id)
                .limit(1)
                .with_for_update()
            ).first()
            if row is None:
                return None
            if row.status == _RUNNING and row.attempts >= max_attempts:
                conn.execute(
                    schedule_fires.update()
                    .where(schedule_fires.c.id == row.id)
                    .values(
                        status=FireStatus.FAILED.value,
                        finished_at=now,
                        lease_owner=None,
                        lease_until=None,
                        error=(
                            f"abandoned: its lease ran out {row.attempts} times (last held by "
                            f"{row.lease_owner}); the runner died or hung each time"
                        ),
                    )
                )
                abandoned.append(int(row.id))
                continue
            conn.execute(
                schedule_fires.update()
                .where(schedule_fires.c.id == row.id)
                .values(
                    status=_RUNNING,
                    lease_owner=owner,
                    lease_until=now + timedelta(seconds=lease_seconds),
                    attempts=schedule_fires.c.attempts + 1,
                    started_at=now,
                )
            )
            return int(row.id)

    def renew(self, fire_id: int, *, owner: str, now: datetime, lease_seconds: float) -> FireRecord:
        """Keep a running fire leased; `LeaseLostError` if `owner` no longer holds it."""
        with self._db.write() as conn:
            _held_fire(conn, fire_id, owner)
            conn.execute(
                schedule_fires.update()
                .where(schedule_fires.c.id == fire_id)
                .values(lease_until=now + timedelta(seconds=lease_seconds))
            )
            return fire_record(_fire_row(conn, fire_id))

    def release(self, fire_id: int, *, owner: str) -> FireRecord:
        """Give a claimed fire back, pending, so it runs at once elsewhere (or at the next start).

        The claim is not counted against the fire: releasing is a clean stop, not a death.
        """
        with self._db.write() as conn:
            _held_fire(conn, fire_id, owner)
            conn.execute(
                schedule_fires.update()
                .where(schedule_fires.c.id == fire_id)
                .values(
                    status=_PENDING,
                    lease_owner=None,
                    lease_until=None,
                    started_at=None,
                    attempts=schedule_fires.c.attempts - 1,
                )
            )
            return fire_record(_fire_row(conn, fire_id))

    def finish(
        self,
        fire_id: int,
        *,
        owner: str,
        status: str,
        now: datetime,
        summary: Mapping[str, Any] | None = None,
        error: str | None = None,
    ) -> FireRecord:
        """Record a leased fire's outcome (succeeded, failed or held) and end its lease."""
        if status not in _FINAL:
            raise InvalidInputError(
                f"a fire finishes as one of {', '.join(_FINAL)}, not {status!r}"
            )
        stored = None
        if summary is not None:
            refuse_secrets(summary, "summary")
            stored = plain_json(summary, "fire summary")
        with self._db.write() as conn:
            _held_fire(conn, fire_id, owner)
            conn.execute(
                schedule_fires.update()
                .where(schedule_fires.c.id == fire_id)
                .values(
                    status=status,
                    finished_at=now,
                    summary=stored,
                    error=error,
                    lease_owner=None,
                    lease_until=None,
                )
            )
            return fire_record(_fire_row(conn, fire_id))

    def get_fire(self, fire_id: int) -> FireRecord:
        with self._db.read() as conn:
            return fire_record(_fire_row(conn, fire_id))

    def fires(
        self,
        ref: ScheduleRef | None = None,
        *,
        limit: int | None = 20,
        status: str | Sequence[str] | None = None,
    ) -> builtins.list[FireRecord]:
        """Fires, newest first (by fire time)."""
        query = _fires_query().order_by(schedule_fires.c.fire_at.desc(), schedule_fires.c.id.desc())
        if status is not None:
            query = query.where(
                schedule_fires.c.status.in_([status] if isinstance(status, str) else status)
            )
        if limit is not None:
            query = query.limit(limit)
        with self._db.read() as conn:
            if ref is not None:
                schedule_id = _schedule_row(conn, ref).id
                query = query.where(schedule_fires.c.schedule_id == schedule_id)
            return [fire_record(row) for row in conn.execute(query)]

    def last_successes(self) -> dict[str, datetime]:
        """When each schedule's newest successful fire finished (schedules that had one)."""
        query = (
            sa.select(schedules.c.name, sa.func.max(schedule_fires.c.finished_at))
            .join(schedules, schedules.c.id == schedule_fires.c.schedule_id)
            .where(schedule_fires.c.status == "succeeded")
            .group_by(schedules.c.name)
        )
        with self._db.read() as conn:
            return {str(name): finished for name, finished in conn.execute(query) if finished}

    def prune(self, *, finished_before: datetime) -> int:
        """Delete fires that ended before the time, keeping each schedule's newest fire time.

        That one stays because the next due time is counted from it.
        """
        other = schedule_fires.alias("other")
        newest = (
            sa.select(sa.func.max(other.c.fire_at))
            .where(
                other.c.schedule_id == schedule_fires.c.schedule_id,
                other.c.trigger == FireTrigger.SCHEDULE.value,
            )
            .scalar_subquery()
        )
        with self._db.write() as conn:
            result = conn.execute(
                schedule_fires.delete().where(
                    schedule_fires.c.status.in_(_FINAL),
                    schedule_fires.c.finished_at < finished_before,
                    sa.or_(
                        schedule_fires.c.trigger != FireTrigger.SCHEDULE.value,
                        schedule_fires.c.fire_at < newest,
                    ),
                )
            )
            return int(result.rowcount or 0)
