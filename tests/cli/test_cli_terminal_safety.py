"""Text from servers, files and people is printed as text: no markup, no emoji, no escapes.

A corp whose user names, site names and error messages carry Rich markup, emoji codes, ANSI
escapes and bidi overrides is imported and provisioned against; every command that shows them
must print them spelled out, on the lines they belong to, and never crash.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cli_inprocess import Outcome, invoke
from fastapi import Request
from fastapi.responses import JSONResponse

from sigsci_iga.errors import Outcome as Exit
from sigsci_iga.sim import DEMO_CORP, DEMO_EMAIL, DEMO_TOKEN, SimConfig, create_app
from sigsci_iga.sim import serve_in_thread as serve

ESC = "\x1b"
RLO = "\u202e"
#: Markup, an emoji code, a terminal hyperlink and a screen clear, in one name.
HOSTILE_NAME = f"[red]Mal[/] :x: {ESC}]8;;http://evil.example{ESC}\\click{ESC}]8;;{ESC}\\ {RLO}gpj"
HOSTILE_DISPLAY = f"[link=http://evil.example]Shop[/link] :skull: {ESC}[31mred"
HOSTILE_ERROR = f"bad [/] request {ESC}[2J :x: [bold]loud[/bold] \u200bhidden"
HOSTILE_EMAIL = "[blink]mal[red]@evil.example"
#: An address a spreadsheet would run as a formula.
FORMULA_EMAIL = "=1+1@evil.example"
SITE = "shop"


@dataclass
class Corp:
    env: dict[str, str]
    directory: Path
    hostile_task: int
    #: What `request add-access` printed when the server refused it with HOSTILE_ERROR.
    requested: Outcome | None = None

    def ok(self, *args: str) -> Outcome:
        outcome = invoke(*args, env=self.env, cwd=self.directory)
        assert outcome.crash is None, (args, outcome.crash)
        assert outcome.code == 0, (args, outcome.stdout, outcome.stderr)
        return outcome


@pytest.fixture(scope="module")
def corp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Corp]:
    app = create_app(SimConfig(users=8, sites=2, seed=11, pending_share=0.0))
    state = app.state.sim.state
    state.add_site(SITE, HOSTILE_DISPLAY)
    state.add_user(HOSTILE_EMAIL, "user", [SITE], name=HOSTILE_NAME)
    state.add_user(FORMULA_EMAIL, "user", [SITE], name="-2+3")
    target = next(u for u in state.users.values() if u.role == "user" and SITE not in u.sites)

    @app.middleware("http")
    async def refuse_member_adds(request: Request, call_next):  # type: ignore[no-untyped-def]
        if request.method == "POST" and request.url.path.endswith(f"/sites/{SITE}/members"):
            return JSONResponse({"message": HOSTILE_ERROR}, status_code=400)
        return await call_next(request)

    directory = tmp_path_factory.mktemp("hostile")
    with serve(app) as url:
        env = {
            "SIGSCI_API_URL": url,
            "SIGSCI_EMAIL": DEMO_EMAIL,
            "SIGSCI_TOKEN": DEMO_TOKEN,
            "SIGSCI_CORP": DEMO_CORP,
            "SIGSCI_IGA_DATABASE_URL": f"sqlite:///{directory / 'iga.db'}",
            "USER": "[red]requester[/]",
        }
        world = Corp(env, directory, 0)
        world.ok("import")
        people = directory / "people.csv"
        people.write_text(
            "username,email,first_name,last_name,department,manager\n"
            f"[/]mal,{HOSTILE_EMAIL},{ESC}[31mRed,:x:,[link=http://evil]d[/link],{RLO}abc\n",
            encoding="utf-8",
        )
        world.ok("identities", "load", str(people))
        requested = invoke(
            "request", "add-access", "--email", target.email, "--site", SITE,
            "--justification", f"[/] because {ESC}[2J",
            env=env, cwd=directory,
        )  # fmt: skip
        world.requested = requested
        world.ok("request", "update-role", "--email", FORMULA_EMAIL, "--role", "observer")
        tasks = json.loads(world.ok("tasks", "list", "--json").stdout)
        world.hostile_task = next(t["id"] for t in tasks if t["state"] == "failed")
        yield world


def assert_shown_as_text(output: str) -> None:
    """No raw control or bidi character reached the terminal; emoji codes stayed codes."""
    assert ESC not in output
    assert RLO not in output
    assert "\u200b" not in output
    assert "❌" not in output
    assert "💀" not in output


COMMANDS: list[tuple[str, ...]] = [
    ("accounts", "list"),
    ("accounts", "list", "--site", SITE),
    ("accounts", "show", HOSTILE_EMAIL),
    ("entitlements", "list"),
    ("identities", "list"),
    ("tasks", "list"),
    ("journal", "list"),
    ("journal", "list", "--email", HOSTILE_EMAIL),
    ("runs", "list"),
    ("runs", "show", "1"),
    ("endpoints", "list"),
]


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_hostile_text_is_shown_as_text_by_every_listing(corp: Corp, args: tuple[str, ...]) -> None:
    outcome = corp.ok(*args)
    assert_shown_as_text(outcome.stdout + outcome.stderr)


def test_a_stored_error_with_a_closing_tag_does_not_break_the_journal_and_reads_as_written(
    corp: Corp,
) -> None:
    outcome = corp.ok("journal", "list")
    assert "bad [/] request \\x1b[2J :x:" in outcome.stdout


def test_task_show_prints_the_error_and_justification_spelled_out(corp: Corp) -> None:
    outcome = corp.ok("tasks", "show", str(corp.hostile_task))
    assert_shown_as_text(outcome.stdout)
    assert "bad [/] request \\x1b[2J :x: [bold]loud[/bold] \\u200bhidden" in outcome.stdout
    assert "[/] because \\x1b[2J" in outcome.stdout
    assert "[red]requester[/]" in outcome.stdout


def test_account_show_prints_markup_and_escapes_as_they_are(corp: Corp) -> None:
    outcome = corp.ok("accounts", "show", HOSTILE_EMAIL)
    name_line = next(line for line in outcome.stdout.splitlines() if line.startswith("name"))
    assert name_line.split(None, 1)[1] == (
        "[red]Mal[/] :x: \\x1b]8;;http://evil.example\\x1b\\click\\x1b]8;;\\x1b\\ \\u202egpj"
    )


def test_entitlements_show_a_hostile_display_name_spelled_out(corp: Corp) -> None:
    outcome = corp.ok("entitlements", "list")
    assert "[link=http://evil.example]Shop[/link] :skull: \\x1b[31mred" in outcome.stdout


def test_json_output_stays_exact_json(corp: Corp) -> None:
    outcome = corp.ok("accounts", "list", "--json")
    assert_shown_as_text(outcome.stdout)
    records = json.loads(outcome.stdout)
    assert HOSTILE_NAME in [r["name"] for r in records]
    journal = json.loads(corp.ok("journal", "list", "--json").stdout)
    assert HOSTILE_ERROR in [e["error"] for e in journal]


def test_a_failed_request_prints_the_servers_error_spelled_out(corp: Corp) -> None:
    requested = corp.requested
    assert requested is not None
    assert requested.crash is None
    assert requested.code == Exit.TASKS_FAILED
    assert_shown_as_text(requested.stdout + requested.stderr)
    assert "bad [/] request \\x1b[2J :x: [bold]loud[/bold] \\u200bhidden" in requested.stdout
    shown = corp.ok("tasks", "show", str(corp.hostile_task), "--json")
    assert json.loads(shown.stdout)["task"]["last_error"].endswith(HOSTILE_ERROR)


def test_an_error_line_echoing_hostile_input_stays_one_line_of_text(corp: Corp) -> None:
    hostile = f"[red]x[/]\n{ESC}[2Jforged line :x:@evil.example"
    outcome = invoke("accounts", "show", hostile, env=corp.env, cwd=corp.directory)

    assert outcome.crash is None
    assert outcome.code != 0
    assert len(outcome.error_lines) == 1
    assert outcome.error_lines[0].startswith("error: ")
    assert "[red]x[/]\\n\\x1b[2Jforged line :x:" in outcome.stderr
    assert_shown_as_text(outcome.stderr)


def test_csv_export_escapes_formula_cells_and_control_characters(corp: Corp) -> None:
    outcome = corp.ok("journal", "export", "--format", "csv")
    assert_shown_as_text(outcome.stdout)
    rows = list(csv.DictReader(io.StringIO(outcome.stdout)))
    assert rows
    errors = [row["error"] for row in rows if row["error"]]
    assert "bad [/] request \\x1b[2J :x: [bold]loud[/bold] \\u200bhidden" in errors
    targets = [row["target"] for row in rows]
    assert "'" + FORMULA_EMAIL in targets
    assert FORMULA_EMAIL not in targets
