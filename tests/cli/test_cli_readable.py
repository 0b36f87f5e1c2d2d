"""Output people can read: tables that fit 80 columns without cutting a value, a compact journal,
history as `old → new`, pages of accounts, an identities summary, and progress off a terminal.

Through the real command on a real SQLite file holding an imported corp; a test that changes the
repository works on its own copy of the file.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from cli_inprocess import ImportedCorp, Outcome
from rich.console import Console

from sigsci_iga.cli import output
from sigsci_iga.cli.output import Col, Stages, change, plain, show_table
from sigsci_iga.sim import OBSERVER_EMAIL

NARROW = {"COLUMNS": "80"}

LISTINGS = (
    ("accounts", "list"),
    ("accounts", "show", OBSERVER_EMAIL),
    ("entitlements", "list"),
    ("tasks", "list"),
    ("journal", "list"),
    ("runs", "list"),
    ("runs", "show", "1"),
    ("endpoints", "list"),
    ("packages", "list"),
)


def widest(outcome: Outcome) -> int:
    return max(len(each) for each in outcome.stdout.splitlines())


@pytest.mark.parametrize("args", LISTINGS, ids=" ".join)
def test_every_listing_fits_80_columns(imported_corp: ImportedCorp, args: tuple[str, ...]) -> None:
    done = imported_corp.run(*args, **NARROW)
    assert done.code == 0, done.stderr
    assert widest(done) <= 80, done.stdout


def test_the_accounts_table_at_80_columns_shows_every_email_whole(
    imported_corp: ImportedCorp,
) -> None:
    emails = [
        a["email"] for a in json.loads(imported_corp.run("accounts", "list", "--json").stdout)
    ]
    table = imported_corp.run("accounts", "list", **NARROW).stdout
    cells = {part.strip() for each in table.splitlines() for part in each.split("│")}
    assert set(emails) <= cells
    assert "…" not in table


def test_a_narrow_terminal_leaves_out_the_optional_columns_and_says_which(
    imported_corp: ImportedCorp,
) -> None:
    narrow = imported_corp.run("tasks", "list", COLUMNS="60").stdout
    wide = imported_corp.run("tasks", "list", COLUMNS="250").stdout
    assert "next attempt" in wide
    assert "next attempt" not in narrow.splitlines()[1]
    assert "(not shown at this width:" in narrow
    assert "(not shown" not in wide


def test_a_value_wider_than_the_terminal_makes_the_table_wider_instead_of_cutting_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    email = "a.very.long.mailbox.name.that.keeps.going@sub.domain.of.an.example.org"
    buffer = io.StringIO()

    def console(*, err: bool = False, width: int | None = None) -> Console:
        return Console(file=buffer, width=width or 40, soft_wrap=True, markup=False)

    monkeypatch.setattr(output, "_console", console)
    show_table((Col("email", whole=True), Col("name", drop=1)), [(email, "Somebody Long")])
    printed = buffer.getvalue()
    assert email in printed
    assert "name" not in printed.splitlines()[1]
    assert "(not shown at this width: name)" in printed


def test_the_journal_is_compact_by_default_and_complete_with_wide(
    imported_corp: ImportedCorp,
) -> None:
    compact = imported_corp.run("journal", "list")
    wide = imported_corp.run("journal", "list", "--wide")
    assert compact.code == wide.code == 0
    compact_head = compact.stdout.splitlines()[2]
    wide_head = wide.stdout.splitlines()[2]
    assert compact_head.count("┃") == 7  # six columns
    assert "what" in compact_head
    for column in ("operation", "call", "status", "state", "error"):
        assert column in wide_head
    assert "→ new" in compact.stdout


def test_history_reads_old_to_new_without_python_reprs(imported_corp: ImportedCorp) -> None:
    shown = imported_corp.run("accounts", "show", OBSERVER_EMAIL)
    run = imported_corp.run("runs", "show", "1")
    for done in (shown, run):
        assert done.code == 0, done.stderr
        assert "→" in done.stdout
        assert "{'" not in done.stdout
        assert "None" not in done.stdout
    assert "- → created:" in shown.stdout
    assert "counts    accounts: added 20, changed 0" in run.stdout


def test_plain_and_change_word_stored_values() -> None:
    assert change(None, "user") == "- → user"
    assert change("observer", None) == "observer → -"
    assert plain({"role": "user", "mfa": False, "sites": ["a", "b"]}) == (
        "role: user; mfa: no; sites: a, b"
    )
    assert plain({"links": {"Site": ["a"]}}) == "links: (Site: a)"


def test_accounts_come_in_pages_with_limit_and_offset(imported_corp: ImportedCorp) -> None:
    everyone = [
        a["email"] for a in json.loads(imported_corp.run("accounts", "list", "--json").stdout)
    ]
    pages = []
    for offset in range(0, len(everyone), 7):
        page = imported_corp.run(
            "accounts", "list", "--json", "--limit", "7", "--offset", str(offset)
        )
        pages += [a["email"] for a in json.loads(page.stdout)]
    assert pages == everyone
    first = imported_corp.run("accounts", "list", "--limit", "7").stdout
    assert first.startswith("7 accounts in testcorp (next page: --offset 7)")
    last = imported_corp.run("accounts", "list", "--limit", "7", "--offset", "14").stdout
    assert "next page" not in last
    assert last.startswith(f"{len(everyone) - 14} accounts in testcorp from number 15")


@pytest.mark.parametrize("args", [("--limit", "0"), ("--offset", "-1"), ("--limit", "-5")])
def test_a_page_that_means_nothing_is_refused_in_one_line(
    imported_corp: ImportedCorp, args: tuple[str, ...]
) -> None:
    done = imported_corp.run("accounts", "list", *args)
    assert done.code == 2
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith(f"error: {args[0]} must be a whole number")


@pytest.fixture
def copy(imported_corp: ImportedCorp, tmp_path: Path) -> ImportedCorp:
    """The imported corp's repository copied, so a test may change it."""
    db = tmp_path / "iga.db"
    shutil.copyfile(imported_corp.db, db)
    env = {**imported_corp.env, "SIGSCI_IGA_DATABASE_URL": f"sqlite:///{db}"}
    return ImportedCorp(env, tmp_path, db)


def test_identities_load_prints_a_summary_and_the_same_as_json(copy: ImportedCorp) -> None:
    people = copy.directory / "people.csv"
    people.write_text(
        f"username,email,first_name,last_name\nobs,{OBSERVER_EMAIL},Obs,Erver\n"
        "ghost,ghost@nowhere.example,Gho,St\n",
        encoding="utf-8",
    )
    loaded = copy.run("identities", "load", str(people))
    assert loaded.code == 0, loaded.stderr
    lines = loaded.stdout.splitlines()
    assert lines[0] == "identities: 2 created, 0 updated, 0 unchanged"
    assert lines[1].startswith("correlation (email): 1 matched, ")
    again = copy.run("identities", "load", str(people), "--json")
    assert again.code == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["identities"] == {"created": 0, "updated": 0, "unchanged": 2}
    assert summary["correlation"]["rule"] == "email"
    assert summary["correlation"]["matched"] == 1
    assert len(summary["unmatched"]) == summary["correlation"]["unmatched"]
    assert OBSERVER_EMAIL not in {a["email"] for a in summary["unmatched"]}


def test_an_import_off_a_terminal_prints_one_line_per_phase_on_stderr(copy: ImportedCorp) -> None:
    done = copy.run("import", "--full")
    assert done.code == 0, done.stderr
    # Sites first: the users' memberships are screened against them as the list streams in.
    assert done.stderr.splitlines() == [
        "import: read sites: 4",
        "import: read accounts: 20",
        "import: diff done",
        "import: apply done",
    ]
    assert "run 2: full import" in done.stdout


def test_a_dry_run_import_has_no_apply_phase(copy: ImportedCorp) -> None:
    done = copy.run("import", "--full", "--dry-run")
    assert done.code == 0, done.stderr
    assert done.stderr.splitlines()[-1] == "import: diff done"


def test_provisioning_until_done_counts_tasks_done_out_of_the_total(copy: ImportedCorp) -> None:
    done = copy.run("provision", "run", "--until-done", "--max-wait", "5")
    assert done.code == 0, done.stderr
    assert done.stderr.splitlines() == ["provision: 1 of 1 tasks done"]


def test_stages_cut_short_by_an_error_print_only_the_stages_that_finished(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    buffer = io.StringIO()
    monkeypatch.setattr(output, "stderr", lambda: Console(file=buffer, width=80))

    def work_until_the_database_goes_away() -> None:
        with Stages(lambda s, d, t: f"{s}: {d}/{t}") as stages:
            stages.report("read", 1, None)
            stages.report("read", 5, None)
            stages.report("apply", 0, 3)
            raise RuntimeError("the database went away")

    with pytest.raises(RuntimeError):
        work_until_the_database_goes_away()
    assert buffer.getvalue().splitlines() == ["read: 5/None"]
