"""`sigsci-iga import`, then `accounts`, `entitlements` and `runs` show exactly what the corp holds."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from cli_import_harness import Cli, shown

from sigsci_iga.errors import RecordNotFoundError, rule_for
from sigsci_iga.sim import OBSERVER_EMAIL
from sigsci_iga.store import open_repository
from sigsci_iga.store.db import create_engine_for, current_revision, head_revision


def test_accounts_list_json_returns_exactly_the_simulators_users_after_an_import(
    imported: Cli,
) -> None:
    accounts = imported.json("accounts", "list")

    assert isinstance(accounts, list)
    assert shown(accounts) == imported.expected_accounts()
    assert all(a["identity"] is None for a in accounts)
    assert {a["status"] for a in accounts} == {"active", "pending"}


@pytest.mark.parametrize(
    ("site_index", "role", "status"),
    [(0, "user", "active"), (1, None, "pending"), (None, "owner", None)],
)
def test_accounts_list_filters_by_site_role_and_status(
    imported: Cli, site_index: int | None, role: str | None, status: str | None
) -> None:
    site = sorted(imported.state.sites)[site_index] if site_index is not None else None
    args = ["accounts", "list"]
    for option, value in (("--site", site), ("--role", role), ("--status", status)):
        if value is not None:
            args += [option, value]

    accounts = imported.json(*args)

    expected = [
        a
        for a in imported.expected_accounts()
        if (site is None or site in a["sites"])
        and (role is None or a["role"] == role)
        and (status is None or a["status"] == status)
    ]
    assert expected  # the filter selects someone, so an empty answer would fail
    assert shown(accounts) == expected


def test_accounts_show_prints_one_account_with_all_its_sites(imported: Cli) -> None:
    expected = next(a for a in imported.expected_accounts() if a["email"] == OBSERVER_EMAIL)

    detail = imported.json("accounts", "show", OBSERVER_EMAIL.upper())
    text = imported("accounts", "show", OBSERVER_EMAIL).stdout

    assert shown([detail]) == [expected]
    assert detail["history"]
    assert re.search(r"^role\s+observer$", text, re.MULTILINE)
    assert re.search(r"^sites\s+" + re.escape(", ".join(expected["sites"])) + "$", text, re.M)


def test_accounts_show_of_an_unknown_email_fails_with_a_one_line_reason(imported: Cli) -> None:
    done = imported(
        "accounts", "show", "nobody@example.com", code=rule_for(RecordNotFoundError).exit_code
    )

    assert "nobody@example.com" in done.stderr
    assert done.stdout == ""


def test_entitlements_list_json_returns_the_simulators_sites_and_roles(imported: Cli) -> None:
    entitlements = imported.json("entitlements", "list")

    state = imported.state
    roles = Counter(u.role for u in state.users.values())
    expected = [
        {"type": "CorpRole", "value": r, "display_name": r, "status": "active", "holders": n}
        for r, n in sorted(roles.items())
    ] + [
        {
            "type": "Site",
            "value": name,
            "display_name": site.display_name,
            "status": "active",
            "holders": len(site.members) + roles["owner"],
        }
        for name, site in sorted(state.sites.items())
    ]
    assert [{k: e[k] for k in expected[0]} for e in entitlements] == expected


def test_runs_list_and_runs_show_describe_the_import(imported: Cli) -> None:
    runs = imported.json("runs", "list")
    table = imported("runs", "list").stdout

    assert [(r["id"], r["mode"], r["status"], r["dry_run"]) for r in runs] == [
        (1, "full", "succeeded", False)
    ]
    assert re.search(r"│ 1\s+│ testcorp\s+│ full\s+│ succeeded", table)
    detail = imported.json("runs", "show", "1")
    assert detail["run"]["counts"]["accounts"]["added"] == len(imported.state.users)
    assert detail["changes"]
    assert detail["plan"] is None
    text = imported("runs", "show", "1").stdout
    assert re.search(r"^status\s+succeeded$", text, re.MULTILINE)
    missing = imported("runs", "show", "999", code=rule_for(RecordNotFoundError).exit_code)
    assert "999" in missing.stderr


def test_db_upgrade_migrates_a_new_repository_to_the_newest_schema(cli: Cli) -> None:
    assert not cli.database.exists()

    done = cli("db", "upgrade")

    assert "newest schema" in done.stdout
    engine = create_engine_for(cli.database_url)
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()
    again = cli("db", "upgrade")
    assert "newest schema" in again.stdout
    with open_repository(cli.database_url) as repo:
        assert repo.endpoints.list() == []
