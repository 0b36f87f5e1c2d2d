"""Endpoints are kept tidy: removal guards open tasks, a typo leaves nothing, observers change no caller."""

from __future__ import annotations

import json

from cli_import_harness import Cli

from sigsci_iga.errors import InvalidInputError, NotFoundError, Outcome, rule_for
from sigsci_iga.sim import DEMO_EMAIL, OBSERVER_EMAIL, OBSERVER_TOKEN

OFF = {"SIGSCI_IGA_INSTANT_PROVISIONING": "false"}


def endpoints(cli: Cli) -> list[dict[str, object]]:
    listed: list[dict[str, object]] = cli.json("endpoints", "list", "--all")
    return listed


def test_endpoints_remove_is_refused_while_tasks_are_open_unless_forced(cli: Cli) -> None:
    cli("import")
    user = next(u.email for u in cli.state.users.values() if u.role == "user")
    cli.extra_env.update(OFF)
    cli("request", "update-role", "--email", user, "--role", "observer")

    refused = cli("endpoints", "remove", "testcorp", code=rule_for(InvalidInputError).exit_code)

    assert "1 open task(s)" in refused.stderr
    assert "--force" in refused.stderr
    assert [e["name"] for e in endpoints(cli)] == ["testcorp"]
    forced = json.loads(cli("endpoints", "remove", "testcorp", "--force", "--json").stdout)
    assert forced == {"endpoint": "testcorp", "outcome": "retired", "discontinued": 1}
    (task,) = cli.json("tasks", "list")
    assert task["state"] == "discontinued"


def test_a_mistyped_corp_whose_first_contact_fails_leaves_no_endpoint_behind(cli: Cli) -> None:
    missing = rule_for(NotFoundError).exit_code
    cli.extra_env["SIGSCI_CORP"] = "testcorpp"
    site = sorted(cli.state.sites)[0]

    cli("import", code=missing)
    cli("import", "--dry-run", code=missing)
    cli(
        "request", "create-account", "--email", "new@example.com", "--role", "user",
        "--site", site, code=missing,
    )  # fmt: skip
    cli(
        "request", "create-account", "--email", "new@example.com", "--role", "user",
        "--site", site, "--dry-run", code=missing,
    )  # fmt: skip

    assert endpoints(cli) == []
    assert cli.json("runs", "list") == []
    assert cli.json("tasks", "list") == []
    cli.extra_env["SIGSCI_CORP"] = "testcorp"
    cli("import")
    assert [e["name"] for e in endpoints(cli)] == ["testcorp"]


def test_an_import_with_observer_credentials_does_not_make_the_observer_the_caller(
    cli: Cli,
) -> None:
    cli("import")
    before = cli.state.users[OBSERVER_EMAIL].role
    assert before == "observer"

    cli.extra_env.update(SIGSCI_EMAIL=OBSERVER_EMAIL, SIGSCI_TOKEN=OBSERVER_TOKEN)
    # An observer sees only its own sites' members, so the thresholds hold this run.
    cli("import", "--full", code=Outcome.PENDING)

    cli.extra_env.clear()
    (endpoint,) = endpoints(cli)
    assert endpoint["email"] == DEMO_EMAIL
    cli("import", "--full")
    assert endpoints(cli)[0]["email"] == DEMO_EMAIL
