"""`sigsci-iga schedules` through the real command, against a SQLite file and the simulator."""

from __future__ import annotations

import re

import pytest
import typer
from cli_import_harness import Cli

from sigsci_iga.cli.schedules import schedules_app
from sigsci_iga.errors import InvalidInputError, RecordNotFoundError, rule_for

INVALID = rule_for(InvalidInputError).exit_code


def test_a_fresh_repository_has_no_schedules_until_some_are_added(cli: Cli) -> None:
    cli("db", "upgrade")

    assert cli.json("schedules", "list") == []
    assert "no fires yet" not in cli("schedules", "list").stdout

    added = cli("schedules", "add-defaults").stdout
    again = cli("schedules", "add-defaults").stdout

    assert [line.split(":")[0] for line in added.splitlines()] == [
        "added hourly-import",
        "added weekly-full-import",
        "added provision-retry",
    ]
    assert "there already" in again
    assert [s["name"] for s in cli.json("schedules", "list")] == [
        "hourly-import",
        "provision-retry",
        "weekly-full-import",
    ]


def test_schedules_are_added_listed_shown_changed_paused_and_removed(cli: Cli) -> None:
    nightly = cli.json(
        "schedules", "add", "nightly", "--job", "import-full", "--cron", "30 1 * * *",
        "--tz", "America/New_York", "--missed", "run-all",
    )  # fmt: skip
    cli("schedules", "add", "retry", "--job", "provision", "--every", "30s")

    assert (nightly["job"], nightly["cron"], nightly["timezone"], nightly["missed"]) == (
        "import-full",
        "30 1 * * *",
        "America/New_York",
        "run-all",
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT01:30:00-0[45]:00", nightly["next_fire_at"])
    table = cli("schedules", "list").stdout
    assert re.search(
        r"│ nightly\s+│ import-full\s+│\s+│ cron 30 1 \* \* \*\s+│ America/New_York", table
    )
    assert re.search(r"│ retry\s+│ provision\s+│\s+│ every 30s\s+│ UTC\s+│ enabled", table)

    paused = cli.json("schedules", "pause", "retry")
    assert (paused["name"], paused["enabled"]) == ("retry", False)
    assert cli.json("schedules", "show", "retry")["enabled"] is False
    assert "paused" in cli("schedules", "list").stdout
    assert "resumed; next" in cli("schedules", "resume", "retry").stdout
    moved = cli.json("schedules", "update", "retry", "--every", "15m", "--tz", "Asia/Kolkata")
    assert (moved["every"], moved["timezone"]) == ("15m", "Asia/Kolkata")
    assert re.search(r":(00|15|30|45):00\+05:30$", moved["next_fire_at"])

    assert cli.json("schedules", "remove", "nightly")["name"] == "nightly"
    assert [s["name"] for s in cli.json("schedules", "list")] == ["retry"]
    gone = cli("schedules", "show", "nightly", code=rule_for(RecordNotFoundError).exit_code)
    assert "nightly" in gone.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--job", "backup", "--every", "1h"], "job 'backup' is not one of"),
        (["--job", "import", "--cron", "0 2 * *"], "is not five fields"),
        (["--job", "import", "--cron", "0 25 * * *"], "Bad hour"),
        (["--job", "import", "--every", "0s"], "longer than zero"),
        (["--job", "import", "--every", "-5m"], "a whole number with a unit"),
        (["--job", "import", "--every", "nan"], "a whole number with a unit"),
        (["--job", "import"], "not both"),
        (["--job", "import", "--every", "1h", "--tz", "Mars/Olympus"], "IANA"),
        (["--job", "import", "--every", "1h", "--endpoint", "ghost"], "'ghost' is not registered"),
    ],
)
def test_a_bad_schedule_is_refused_with_one_clear_line(
    cli: Cli, args: list[str], message: str
) -> None:
    done = cli("schedules", "add", "bad", *args, code=INVALID)

    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_taken_name_is_refused(cli: Cli) -> None:
    cli("schedules", "add", "hourly", "--job", "import", "--every", "1h")

    done = cli("schedules", "add", "hourly", "--job", "import", "--every", "2h", code=INVALID)

    assert "'hourly' already exists" in done.stderr


def test_running_a_schedule_now_imports_and_shows_in_its_fires(cli: Cli) -> None:
    cli("schedules", "add", "hourly", "--job", "import", "--every", "1h")

    done = cli("schedules", "run", "hourly")
    shown = cli.json("schedules", "show", "hourly")
    runs = cli.json("runs", "list")

    assert done.stdout.startswith("fire 1 of hourly: succeeded")
    [fire] = shown["fires"]
    assert (fire["trigger"], fire["status"]) == ("manual", "succeeded")
    assert fire["summary"]["run_id"] == runs[0]["id"]
    assert shown["last_fire"]["id"] == fire["id"]
    assert re.search(
        r"│ 1\s+│ \S+\s+│ manual\s+│ succeeded", cli("schedules", "show", "hourly").stdout
    )


def test_every_schedules_option_and_argument_has_help_text() -> None:
    commands = typer.main.get_command(schedules_app).commands  # type: ignore[attr-defined]

    missing = [
        f"{name} {param.name}"
        for name, command in commands.items()
        for param in command.params
        if not getattr(param, "help", None)
    ]

    assert sorted(commands) == [
        "add", "add-defaults", "list", "pause", "remove", "resume", "run", "show", "update"
    ]  # fmt: skip
    assert missing == []
    assert all(command.help for command in commands.values())
