"""Import runs from the command line: identities and correlation, dry runs, held runs and approval."""

from __future__ import annotations

import json
import re

from cli_import_harness import Cli, shown

from sigsci_iga.errors import Outcome, RunStateError, rule_for
from sigsci_iga.sim import DEMO_EMAIL, OBSERVER_EMAIL


def _row(*cells: str) -> str:
    """A table row (or its start) holding these cells, whatever the column widths."""
    return r"│ " + r"\s*│ ".join(re.escape(cell) for cell in cells)


def _dump(cli: Cli) -> tuple[object, object]:
    return cli.json("accounts", "list"), cli.json("entitlements", "list")


def test_identities_load_from_csv_and_json_and_correlate_with_accounts(cli: Cli) -> None:
    cli("import")
    members = sorted(
        u.email for u in cli.state.users.values() if u.email not in (DEMO_EMAIL, OBSERVER_EMAIL)
    )
    csv_file = cli.workdir / "people.csv"
    csv_file.write_text(
        "username,email,first_name,last_name,department\n"
        f"downer,{DEMO_EMAIL.upper()},Demo,Owner,Security\n"
        f"dobserver,{OBSERVER_EMAIL},Demo,Observer,Audit\n"
        "stranger,stranger@example.com,No,Account,Sales\n",
        encoding="utf-8",
    )
    json_file = cli.workdir / "more.json"
    json_file.write_text(
        json.dumps(
            [
                {"username": "member1", "email": members[0], "department": "Ops"},
                {"username": "dobserver", "email": OBSERVER_EMAIL, "department": "Risk"},
            ]
        ),
        encoding="utf-8",
    )

    from_csv = cli("identities", "load", str(csv_file)).stdout
    from_json = cli("identities", "load", str(json_file)).stdout

    assert "3 created, 0 updated, 0 unchanged" in from_csv
    assert "correlation (email): 2 matched" in from_csv
    assert "1 created, 1 updated, 0 unchanged" in from_json
    assert "correlation (email): 3 matched" in from_json
    identities = cli.json("identities", "list")
    assert [(i["username"], i["email"], i["department"]) for i in identities] == [
        ("dobserver", OBSERVER_EMAIL, "Risk"),
        ("downer", DEMO_EMAIL.upper(), "Security"),
        ("member1", members[0], "Ops"),
        ("stranger", "stranger@example.com", "Sales"),
    ]
    linked = {a["email"]: a["identity"] for a in cli.json("accounts", "list") if a["identity"]}
    assert linked == {DEMO_EMAIL: "downer", OBSERVER_EMAIL: "dobserver", members[0]: "member1"}
    # A later import keeps the links.
    cli.state.add_user("later@example.com", "user", [next(iter(cli.state.sites))])
    cli("import")
    relinked = {a["email"]: a["identity"] for a in cli.json("accounts", "list") if a["identity"]}
    assert relinked == linked


def test_the_configured_correlation_rule_is_used_by_identities_load_and_by_every_import(
    cli: Cli,
) -> None:
    cli.extra_env["SIGSCI_IGA_CORRELATION_RULE"] = "username-localpart"
    cli("import")
    member = sorted(
        u.email for u in cli.state.users.values() if u.email not in (DEMO_EMAIL, OBSERVER_EMAIL)
    )[0]
    local_part = member.split("@")[0]
    people = cli.workdir / "people.json"
    # Different email domain on purpose: only the username rule can link this identity.
    people.write_text(
        json.dumps([{"username": local_part, "email": f"{local_part}@hr.example"}]),
        encoding="utf-8",
    )

    loaded = cli("identities", "load", str(people)).stdout
    cli.state.add_user("later@example.com", "user", [next(iter(cli.state.sites))])
    cli("import")

    assert "correlation (username-localpart): 1 matched" in loaded
    linked = {a["email"]: a["identity"] for a in cli.json("accounts", "list") if a["identity"]}
    assert linked == {member: local_part}


def test_an_unknown_correlation_rule_is_refused_before_an_import_reads_anything(cli: Cli) -> None:
    cli.extra_env["SIGSCI_IGA_CORRELATION_RULE"] = "nickname"

    done = cli("import", code=2)

    assert "nickname" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert cli.app.state.sim.calls.snapshot() == {}


def test_a_dry_run_shows_its_plan_exits_7_writes_nothing_but_the_run_and_can_be_shown_again(
    cli: Cli,
) -> None:
    cli("import")
    before = _dump(cli)
    site = sorted(cli.state.sites)[0]
    cli.state.invite_user("dry@example.com", "admin", [site])
    leaver = next(u.email for u in cli.state.users.values() if u.role == "observer" and u.sites)
    leaver_sites = sorted(cli.state.users[leaver].sites)
    cli.state.remove_user(leaver)

    done = cli("import", "--dry-run", code=Outcome.PENDING)

    assert "(dry run)" in done.stdout
    assert re.search(r"│ accounts\s+│ 1\s+│ 0\s+│ 1\s+│ 0", done.stdout)
    assert "plan: 1 add_account, 1 suspend_account, 2 add_link, 3 remove_link" in done.stdout
    assert re.search(_row("suspend_account", "account", leaver, "status", "active"), done.stdout)
    assert re.search(
        r"│ add_link\s+│ link\s+│ dry@example.com\s+│ Site\s+│\s+│ " + re.escape(site), done.stdout
    )
    assert _dump(cli) == before
    runs = cli.json("runs", "list")
    assert [(r["dry_run"], r["status"], r["has_diff"]) for r in runs] == [
        (True, "succeeded", True),
        (False, "succeeded", False),
    ]
    assert runs[0]["reason"] == "dry run: nothing applied"
    stored = cli.json("runs", "show", str(runs[0]["id"]))["plan"]
    printed = json.loads(cli("import", "--dry-run", "--json", code=Outcome.PENDING).stdout)["plan"]
    assert stored == printed
    assert stored["counts"]["suspend_account"] == 1
    assert [
        (i["action"], i["key"], i["changes"])
        for i in stored["items"]
        if i["action"] == "remove_link"
    ] == [("remove_link", leaver, [{"field": "CorpRole", "old": "observer", "new": None}])] + [
        ("remove_link", leaver, [{"field": "Site", "old": s, "new": None}]) for s in leaver_sites
    ]
    again = cli("runs", "show", str(runs[0]["id"])).stdout
    assert "plan: 1 add_account, 1 suspend_account" in again
    cli("import")
    assert shown(cli.json("accounts", "list", "--status", "pending")) == [
        a for a in cli.expected_accounts() if a["status"] == "pending"
    ]
    assert cli("import", "--dry-run").stdout.count("plan: no changes") == 1


def test_a_large_plan_is_summarised_and_limit_and_all_choose_how_much_is_shown(cli: Cli) -> None:
    cli("import")
    victims = sorted(u.email for u in cli.state.users.values() if u.role != "owner")[:11]
    for email in victims:
        cli.state.remove_user(email)

    default = cli("import", "--dry-run", code=Outcome.PENDING).stdout
    three = cli("import", "--dry-run", "--limit", "3", "--json", code=Outcome.PENDING).stdout
    every = cli("import", "--dry-run", "--all", code=Outcome.PENDING).stdout

    total = json.loads(three)["plan"]["total"]
    assert total > 50
    assert f"showing 50 of {total} items" in default
    assert json.loads(three)["plan"]["truncated"] is True
    assert len(json.loads(three)["plan"]["items"]) == 3
    assert "showing" not in every
    assert all(email in every for email in victims)
    refused = cli("import", "--dry-run", "--limit", "0", code=2)
    assert "--limit" in refused.stderr


def test_a_held_import_exits_7_and_import_approve_applies_it(cli: Cli) -> None:
    cli("import")
    before = _dump(cli)
    victims = sorted(u.email for u in cli.state.users.values() if u.role != "owner")[:11]
    for email in victims:
        cli.state.remove_user(email)

    held = cli("import", "--full", code=7)

    assert "-> held" in held.stdout
    assert "accounts to suspend: 11 > 10" in held.stdout
    run_id = re.search(r"sigsci-iga import approve (\d+)", held.stdout)
    assert run_id is not None
    assert _dump(cli) == before
    shown_run = cli.json("runs", "show", run_id.group(1))
    assert shown_run["run"]["status"] == "held"
    assert shown_run["plan"]["counts"]["suspend_account"] == 11
    suspended_keys = [
        i["key"] for i in shown_run["plan"]["items"] if i["action"] == "suspend_account"
    ]
    assert suspended_keys == victims
    assert "suspend_account" in held.stdout
    rendered = cli("runs", "show", run_id.group(1), "--all").stdout
    assert all(re.search(_row("suspend_account", "account", e), rendered) for e in victims)
    assert f"sigsci-iga import approve {run_id.group(1)}" in rendered

    approved = cli.json("import", "approve", run_id.group(1))

    assert (approved["id"], approved["status"]) == (int(run_id.group(1)), "approved")
    suspended = cli.json("accounts", "list", "--status", "suspended")
    assert [(a["email"], a["sites"]) for a in suspended] == [(e, []) for e in victims]
    listed = [a for a in cli.json("accounts", "list") if a["status"] != "suspended"]
    assert shown(listed) == cli.expected_accounts()
    again = cli("import", "approve", run_id.group(1), code=rule_for(RunStateError).exit_code)
    assert "approved" in again.stderr


def test_an_incremental_import_from_the_command_line_picks_up_a_change(cli: Cli) -> None:
    cli("import")
    cli.state.change_role(OBSERVER_EMAIL, "admin")

    result = cli.json("import")

    assert (result["mode"], result["run"]["status"], result["held"]) == (
        "incremental",
        "succeeded",
        False,
    )
    assert result["diff"]["accounts"]["changed"] == 1
    assert shown(cli.json("accounts", "list")) == cli.expected_accounts()
