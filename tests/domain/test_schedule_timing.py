"""Fire times of schedules: cron and intervals in a time zone, across both 2026 DST changes."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sigsci_iga.domain.schedules import (
    MISSED_COUNT_CAP,
    Timing,
    format_every,
    interval_anchor,
    parse_cron,
    parse_every,
    parse_job,
    parse_missed,
    parse_timezone,
)
from sigsci_iga.errors import InvalidInputError

ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)


def cron(expression: str, zone: str) -> Timing:
    return Timing(zone, ANCHOR, cron=expression)


def local_day(zone: str, year: int, month: int, day: int) -> tuple[datetime, datetime]:
    """The instants just before a local calendar day starts and when it ends."""
    tz = ZoneInfo(zone)
    start = datetime(year, month, day, tzinfo=tz)
    end = start + timedelta(days=1)
    return start - timedelta(microseconds=1), end.replace(tzinfo=tz) - timedelta(microseconds=1)


def fired_on(timing: Timing, year: int, month: int, day: int) -> list[str]:
    after, until = local_day(timing.timezone, year, month, day)
    return [t.isoformat() for t in timing.due(after, until, limit=100).times]


def walked(timing: Timing, start: datetime, end: datetime) -> list[datetime]:
    """Every fire time from `start` to `end`, one `next_after` at a time, as the scheduler steps."""
    found = []
    moment = start
    while (nxt := timing.next_after(moment)) is not None and nxt <= end:
        found.append(nxt)
        moment = nxt
    return found


# -- DST: a fixed-time daily job runs once on both change days ------------------------------

DST_2026 = [
    # Berlin: spring 29 March 02:00 -> 03:00 (02:xx does not exist); autumn 25 October 03:00 ->
    # 02:00 (02:xx happens twice).
    ("0 2 * * *", "Europe/Berlin", (2026, 3, 29), ["2026-03-29T03:00:00+02:00"]),
    ("30 1 * * *", "Europe/Berlin", (2026, 3, 29), ["2026-03-29T01:30:00+01:00"]),
    ("30 2 * * *", "Europe/Berlin", (2026, 3, 29), ["2026-03-29T03:00:00+02:00"]),
    ("0 2 * * *", "Europe/Berlin", (2026, 10, 25), ["2026-10-25T02:00:00+02:00"]),
    ("30 1 * * *", "Europe/Berlin", (2026, 10, 25), ["2026-10-25T01:30:00+02:00"]),
    ("30 2 * * *", "Europe/Berlin", (2026, 10, 25), ["2026-10-25T02:30:00+02:00"]),
    # New York: spring 8 March 02:00 -> 03:00; autumn 1 November 02:00 -> 01:00 (01:xx twice).
    ("0 2 * * *", "America/New_York", (2026, 3, 8), ["2026-03-08T03:00:00-04:00"]),
    ("30 1 * * *", "America/New_York", (2026, 3, 8), ["2026-03-08T01:30:00-05:00"]),
    ("0 2 * * *", "America/New_York", (2026, 11, 1), ["2026-11-01T02:00:00-05:00"]),
    ("30 1 * * *", "America/New_York", (2026, 11, 1), ["2026-11-01T01:30:00-04:00"]),
]


@pytest.mark.parametrize(("expression", "zone", "day", "expected"), DST_2026)
def test_a_fixed_time_daily_cron_fires_once_on_each_dst_change_day(
    expression: str, zone: str, day: tuple[int, int, int], expected: list[str]
) -> None:
    assert fired_on(cron(expression, zone), *day) == expected


@pytest.mark.parametrize(("expression", "zone", "day", "expected"), DST_2026)
def test_stepping_fire_by_fire_through_a_dst_change_never_fires_twice_or_skips_a_day(
    expression: str, zone: str, day: tuple[int, int, int], expected: list[str]
) -> None:
    timing = cron(expression, zone)
    tz = ZoneInfo(zone)
    start = datetime(*day, tzinfo=tz) - timedelta(days=3)
    fires = walked(timing, start, start + timedelta(days=7))

    local_days = [f.astimezone(tz).date() for f in fires]
    assert local_days == sorted(set(local_days))
    assert len(local_days) == 7
    assert expected[0] in [f.isoformat() for f in fires]


@pytest.mark.parametrize(
    ("expression", "zone", "moment", "expected"),
    [
        # 02:15 for the second time (01:15 UTC); the day's 02:30 was at 00:30 UTC.
        (
            "30 2 * * *",
            "Europe/Berlin",
            datetime(2026, 10, 25, 1, 15, tzinfo=UTC),
            "2026-10-26T02:30:00+01:00",
        ),
        # 01:15 for the second time (06:15 UTC); the day's 01:30 was at 05:30 UTC.
        (
            "30 1 * * *",
            "America/New_York",
            datetime(2026, 11, 1, 6, 15, tzinfo=UTC),
            "2026-11-02T01:30:00-05:00",
        ),
    ],
)
def test_asking_from_inside_a_repeated_hour_does_not_offer_a_time_already_passed(
    expression: str, zone: str, moment: datetime, expected: str
) -> None:
    nxt = cron(expression, zone).next_after(moment)

    assert nxt is not None
    assert nxt.isoformat() == expected


def test_an_hourly_cron_follows_elapsed_time_through_both_changes() -> None:
    timing = cron("0 * * * *", "Europe/Berlin")

    assert len(fired_on(timing, 2026, 3, 29)) == 23
    autumn = fired_on(timing, 2026, 10, 25)
    assert len(autumn) == 25
    assert autumn[2:4] == ["2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00"]


def test_an_interval_is_a_fixed_period_through_a_dst_change() -> None:
    start = datetime(2026, 10, 24, 12, tzinfo=UTC)
    hourly = Timing("Europe/Berlin", interval_anchor(start, "Europe/Berlin"), interval_seconds=3600)
    daily = Timing("Europe/Berlin", interval_anchor(start, "Europe/Berlin"), interval_seconds=86400)

    assert len(fired_on(hourly, 2026, 10, 25)) == 25
    # Counted from local midnight before the change, a day later is 23:00 after it.
    assert [t.isoformat() for t in walked(daily, start, start + timedelta(days=2))] == [
        "2026-10-25T00:00:00+02:00",
        "2026-10-25T23:00:00+01:00",
    ]


def test_an_interval_counts_from_local_midnight_of_the_zone() -> None:
    created = datetime(2026, 5, 4, 10, 17, 23, tzinfo=UTC)
    timing = Timing("Asia/Kolkata", interval_anchor(created, "Asia/Kolkata"), interval_seconds=900)

    nxt = timing.next_after(created)

    assert nxt is not None
    assert nxt.isoformat() == "2026-05-04T16:00:00+05:30"


# -- missed fires -------------------------------------------------------------------------------


def test_due_gives_the_newest_fire_times_oldest_first_and_counts_the_rest() -> None:
    timing = cron("0 * * * *", "UTC")
    after = datetime(2026, 6, 1, 0, 30, tzinfo=UTC)
    until = datetime(2026, 6, 1, 10, 15, tzinfo=UTC)

    one = timing.due(after, until, limit=1)
    three = timing.due(after, until, limit=3)

    assert [t.hour for t in one.times] == [10]
    assert (one.total, one.missed) == (10, 9)
    assert [t.hour for t in three.times] == [8, 9, 10]
    assert three.missed == 7
    assert timing.due(until, after, limit=1).times == ()


def test_due_after_a_long_outage_is_quick_and_caps_the_count() -> None:
    timing = cron("* * * * *", "Europe/Berlin")
    after = datetime(2026, 1, 1, tzinfo=UTC)

    due = timing.due(after, after + timedelta(days=60), limit=2)

    assert [t.isoformat() for t in due.times] == [
        "2026-03-02T00:59:00+01:00",
        "2026-03-02T01:00:00+01:00",
    ]
    assert due.total == MISSED_COUNT_CAP


def test_due_counts_interval_fire_times_by_arithmetic() -> None:
    timing = Timing("UTC", ANCHOR, interval_seconds=60)

    due = timing.due(ANCHOR, ANCHOR + timedelta(minutes=5, seconds=30), limit=2)

    assert [t.minute for t in due.times] == [4, 5]
    assert due.total == 5


ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]
EXPRESSIONS = ["0 2 * * *", "30 1 * * *", "0 * * * *", "*/20 * * * *", "15 2,3 * * 0"]


@settings(max_examples=60, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    expression=st.sampled_from(EXPRESSIONS),
    start=st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 25), timezones=st.just(UTC)
    ),
    hours=st.integers(min_value=0, max_value=24 * 9),
    limit=st.integers(min_value=1, max_value=5),
)
def test_due_agrees_with_walking_forward_fire_by_fire(
    zone: str, expression: str, start: datetime, hours: int, limit: int
) -> None:
    timing = cron(expression, zone)
    until = start + timedelta(hours=hours)
    every = walked(timing, start, until)

    due = timing.due(start, until, limit=limit)

    assert list(due.times) == every[-limit:] if every else due.times == ()
    assert due.total == len(every)


# -- parsing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("15m", 900), ("1h", 3600), ("1d", 86400), (" 2H ", 7200), (90, 90), (60.0, 60)],
)
def test_intervals_are_read_with_a_unit_or_as_seconds(text: str | float, seconds: int) -> None:
    assert parse_every(text) == seconds


@pytest.mark.parametrize(
    "text",
    ["0s", "0", "-5m", "5", "1.5h", "1w", "", "nan", "15 m", 0, -30, math.nan, math.inf, 1.5, True],
)
def test_zero_negative_nan_and_unitless_intervals_are_refused(text: str | float) -> None:
    with pytest.raises(InvalidInputError, match="interval"):
        parse_every(text)


def test_an_interval_longer_than_a_year_is_refused_in_favour_of_cron() -> None:
    with pytest.raises(InvalidInputError, match="cron"):
        parse_every("400d")


@pytest.mark.parametrize(
    ("seconds", "text"), [(30, "30s"), (900, "15m"), (3600, "1h"), (90, "90s")]
)
def test_intervals_are_shown_in_their_shortest_spelling(seconds: int, text: str) -> None:
    assert format_every(seconds) == text
    assert parse_every(text) == seconds


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("61 * * * *", "Bad minute"),
        ("* * *", "five fields"),
        ("0 0 * * * *", "five fields"),
        ("0 0 30 2 *", "Bad day-of-month"),
        ("@hourly", "five fields"),
        ("0 25 * * *", "Bad hour"),
    ],
)
def test_a_bad_cron_expression_is_refused_with_the_reason(expression: str, reason: str) -> None:
    with pytest.raises(InvalidInputError, match=reason):
        parse_cron(expression)


def test_a_cron_expression_is_kept_with_normalised_spacing() -> None:
    assert parse_cron("  0   2 * *  MON ") == "0 2 * * MON"


@pytest.mark.parametrize("name", ["Mars/Olympus", "../etc/passwd", "", "Europe/"])
def test_an_unknown_time_zone_is_refused(name: str) -> None:
    with pytest.raises(InvalidInputError, match="IANA"):
        parse_timezone(name)


def test_unknown_jobs_and_missed_run_policies_are_refused_with_the_choices() -> None:
    with pytest.raises(InvalidInputError, match="import, import-full, provision"):
        parse_job("backup")
    with pytest.raises(InvalidInputError, match="skip, run-all"):
        parse_missed("never")


def test_a_timing_needs_exactly_one_of_cron_and_interval() -> None:
    with pytest.raises(InvalidInputError):
        Timing("UTC", ANCHOR)
    with pytest.raises(InvalidInputError):
        Timing("UTC", ANCHOR, cron="* * * * *", interval_seconds=60)


def test_an_hourly_job_fires_in_both_passes_of_the_repeated_hour_fire_by_fire() -> None:
    # New York, 1 November 2026: 01:00 EDT, then 01:00 EST an hour later. Two times of one zone
    # compare by wall clock, so the second pass once looked no later than the first.
    timing = cron("0 * * * *", "America/New_York")
    start = datetime(2026, 11, 1, 3, 30, tzinfo=UTC)  # 23:30 EDT
    fires = walked(timing, start, start + timedelta(hours=4))
    assert [t.astimezone(UTC).hour for t in fires] == [4, 5, 6, 7]
    assert timing.due(start, start + timedelta(hours=4), limit=4).total == 4
