"""`sigsci-iga schedules`: imports and the provisioning retry job on a timetable."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer

from sigsci_iga import app
from sigsci_iga.cli import context
from sigsci_iga.cli.output import Col, fail, print_json, say, show_table
from sigsci_iga.domain.schedules import RUN_ALL_LIMIT
from sigsci_iga.errors import Outcome

#: The same exit code as `import` for a run held by its thresholds.
HELD_EXIT = Outcome.PENDING

schedules_app = typer.Typer(
    no_args_is_help=True,
    help="Schedules: run imports and the provisioning retry job on a timetable "
    "(`sigsci-iga serve` runs them).",
)

Name = Annotated[str, typer.Argument(help="The schedule's name.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
JOB_HELP = (
    "import (incremental once a checkpoint exists, else full), import-full, or provision "
    "(the retry job: work the due tasks)."
)
EVERY_HELP = "Run at a fixed interval: 30s, 15m, 1h, 1d (counted from midnight in --tz)."
CRON_HELP = 'Run on a cron expression, five fields: "0 * * * *" (minute hour day month weekday).'
ENDPOINT_HELP = "Endpoint the job runs for (default: the configured corp, SIGSCI_CORP)."
TZ_HELP = "IANA time zone the timing is read in, e.g. Europe/Berlin."
MISSED_HELP = (
    "What to do with fire times missed while nothing ran (or while the job was still "
    f"running): skip runs the newest once; run-all runs each, at most the newest {RUN_ALL_LIMIT}."
)


def _when(moment: datetime | None, zone: str) -> str:
    if moment is None:
        return ""
    return moment.astimezone(ZoneInfo(zone)).isoformat(timespec="seconds")


def _summary(fire: app.FireRecord) -> str:
    if fire.error:
        return fire.error if len(fire.error) <= 60 else fire.error[:59] + "…"
    summary: dict[str, Any] = fire.summary or {}
    # Counts of zero say nothing: a retry job with no due task shows as "-".
    parts = [
        f"{key} {value}" for key, value in summary.items() if isinstance(value, int | str) and value
    ]
    if isinstance(summary.get("changes"), dict):
        changed = ", ".join(f"{k} {v}" for k, v in summary["changes"].items())
        parts.append(f"changes: {changed or 'none'}")
    if fire.missed:
        parts.append(f"{fire.missed} missed")
    return "; ".join(parts) or "-"


def _state(view: app.ScheduleView) -> str:
    if view.running is not None:
        return "running"
    return "enabled" if view.schedule.enabled else "paused"


def _last(view: app.ScheduleView) -> tuple[str, str]:
    fire = view.last_fire
    if fire is None:
        return "", ""
    return _when(fire.fire_at, view.schedule.timezone), fire.status


def _print_view(view: app.ScheduleView) -> None:
    schedule = view.schedule
    last_at, last_status = _last(view)
    rows = [
        ("name", schedule.name),
        ("id", str(schedule.id)),
        ("job", schedule.job),
        ("endpoint", schedule.endpoint or "(configured corp)"),
        ("timing", f"{view.timing} ({schedule.timezone})"),
        ("missed", schedule.missed),
        ("state", _state(view)),
        ("next", _when(view.next_fire_at, schedule.timezone) + (" (due now)" if view.due else "")),
        ("last run", f"{last_at} {last_status}".strip()),
    ]
    for label, value in rows:
        say(f"{label:<9} {value}")


@schedules_app.command("add")
def add_command(
    name: Name,
    job: Annotated[str, typer.Option("--job", help=JOB_HELP)],
    every: Annotated[str | None, typer.Option("--every", help=EVERY_HELP)] = None,
    cron: Annotated[str | None, typer.Option("--cron", help=CRON_HELP)] = None,
    endpoint: Annotated[str | None, typer.Option("--endpoint", help=ENDPOINT_HELP)] = None,
    tz: Annotated[str, typer.Option("--tz", help=TZ_HELP)] = "UTC",
    missed: Annotated[str, typer.Option("--missed", help=MISSED_HELP)] = "skip",
    paused: Annotated[bool, typer.Option("--paused", help="Add it paused (resume later).")] = False,
    json_output: JsonOption = False,
) -> None:
    """Add a schedule: a job, and --every or --cron."""
    with context.session() as ctx:
        view = app.add_schedule(
            ctx,
            name,
            job=job,
            every=every,
            cron=cron,
            endpoint=endpoint,
            timezone=tz,
            missed=missed,
            enabled=not paused,
        )
    if json_output:
        print_json(view.to_json())
        return
    _print_view(view)


@schedules_app.command("update")
def update_command(
    name: Name,
    job: Annotated[str | None, typer.Option("--job", help=JOB_HELP)] = None,
    every: Annotated[str | None, typer.Option("--every", help=EVERY_HELP)] = None,
    cron: Annotated[str | None, typer.Option("--cron", help=CRON_HELP)] = None,
    endpoint: Annotated[str | None, typer.Option("--endpoint", help=ENDPOINT_HELP)] = None,
    configured_corp: Annotated[
        bool,
        typer.Option("--configured-corp", help="Run for the configured corp (SIGSCI_CORP) again."),
    ] = False,
    tz: Annotated[str | None, typer.Option("--tz", help=TZ_HELP)] = None,
    missed: Annotated[str | None, typer.Option("--missed", help=MISSED_HELP)] = None,
    json_output: JsonOption = False,
) -> None:
    """Change a schedule; a new timing or zone counts fire times from now on."""
    if endpoint is not None and configured_corp:
        fail("choose one of --endpoint and --configured-corp", code=2)
    patch = app.SchedulePatch(
        job=job if job is not None else app.UNCHANGED,
        every=every if every is not None else app.UNCHANGED,
        cron=cron if cron is not None else app.UNCHANGED,
        endpoint=None if configured_corp else endpoint if endpoint is not None else app.UNCHANGED,
        timezone=tz if tz is not None else app.UNCHANGED,
        missed=missed if missed is not None else app.UNCHANGED,
    )
    with context.session() as ctx:
        view = app.update_schedule(ctx, name, patch)
    if json_output:
        print_json(view.to_json())
        return
    _print_view(view)


@schedules_app.command("list")
def list_command(json_output: JsonOption = False) -> None:
    """Schedules with their next fire time, last run and its outcome."""
    with context.session() as ctx:
        views = app.list_schedules(ctx)
    if json_output:
        print_json([view.to_json() for view in views])
        return
    rows = []
    for view in views:
        schedule = view.schedule
        last_at, last_status = _last(view)
        rows.append(
            (
                schedule.name,
                schedule.job,
                schedule.endpoint or "",
                view.timing,
                schedule.timezone,
                _state(view),
                _when(view.next_fire_at, schedule.timezone) + (" (due)" if view.due else ""),
                last_at,
                last_status,
            )
        )
    show_table(
        (
            "name",
            "job",
            Col("endpoint", drop=1),
            "timing",
            Col("tz", drop=2),
            "state",
            "next",
            Col("last run", drop=4),
            Col("outcome", drop=3),
        ),
        rows,
    )


@schedules_app.command("show")
def show_command(
    name: Name,
    fires: Annotated[int, typer.Option("--fires", help="How many recent fires to show.")] = 10,
    json_output: JsonOption = False,
) -> None:
    """One schedule and its recent fires (newest first)."""
    with context.session() as ctx:
        detail = app.get_schedule(ctx, name, fires=fires)
    if json_output:
        print_json(detail.to_json())
        return
    _print_view(detail.view)
    if not detail.fires:
        say("no fires yet")
        return
    zone = detail.view.schedule.timezone
    show_table(
        (
            "id",
            "fire at",
            Col("trigger", drop=1),
            "status",
            Col("attempts", drop=2),
            Col("started", drop=4),
            Col("finished", drop=3),
            "summary",
        ),
        (
            (
                str(fire.id),
                _when(fire.fire_at, zone),
                fire.trigger,
                fire.status,
                str(fire.attempts),
                _when(fire.started_at, zone),
                _when(fire.finished_at, zone),
                _summary(fire),
            )
            for fire in detail.fires
        ),
        title="recent fires",
    )


@schedules_app.command("remove")
def remove_command(name: Name, json_output: JsonOption = False) -> None:
    """Delete a schedule and its fires."""
    with context.session() as ctx:
        removed = app.remove_schedule(ctx, name)
    if json_output:
        print_json(removed.to_json())
    else:
        say(f"schedule {removed.name} removed")


@schedules_app.command("pause")
def pause_command(name: Name, json_output: JsonOption = False) -> None:
    """Stop firing (a running fire finishes)."""
    with context.session() as ctx:
        view = app.pause_schedule(ctx, name)
    if json_output:
        print_json(view.to_json())
    else:
        say(f"schedule {name} paused")


@schedules_app.command("resume")
def resume_command(name: Name, json_output: JsonOption = False) -> None:
    """Fire again from now on (what passed while paused is not caught up on)."""
    with context.session() as ctx:
        view = app.resume_schedule(ctx, name)
    if json_output:
        print_json(view.to_json())
    else:
        say(f"schedule {name} resumed; next {_when(view.next_fire_at, view.schedule.timezone)}")


@schedules_app.command("run")
def run_command(name: Name, json_output: JsonOption = False) -> None:
    """Run the schedule's job now, here, and record it as a manual fire."""
    with context.session() as ctx:
        result = context.run(app.run_schedule(ctx, name))
    fire = result.fire
    if json_output:
        print_json(result.to_json())
    else:
        say(f"fire {fire.id} of {fire.schedule}: {result.outcome}")
        detail = _summary(fire)
        if detail and not fire.error:
            say(detail)
    if result.outcome == "held":
        raise typer.Exit(HELD_EXIT)
    if result.outcome != "succeeded":
        fail(fire.error or f"the fire was {result.outcome}")


@schedules_app.command("add-defaults")
def add_defaults_command(
    endpoint: Annotated[
        str | None,
        typer.Option("--endpoint", help="For this endpoint (names end in -ENDPOINT)."),
    ] = None,
    tz: Annotated[str, typer.Option("--tz", help=TZ_HELP)] = "UTC",
    json_output: JsonOption = False,
) -> None:
    """Add an hourly import, a weekly full import and a provisioning retry every minute."""
    with context.session() as ctx:
        added = app.add_default_schedules(ctx, endpoint=endpoint, timezone=tz)
    if json_output:
        print_json([view.to_json() for view in added])
        return
    for view in added:
        say(f"added {view.schedule.name}: {view.schedule.job} {view.timing}")
    if not added:
        say("the default schedules are there already")
