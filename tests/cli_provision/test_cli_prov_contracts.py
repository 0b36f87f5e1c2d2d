"""What scripts rely on: request dry runs, `--json` documents and the exit codes of outcomes."""

from __future__ import annotations

import json

from cli_prov_harness import World

from sigsci_iga.errors import Outcome

NEW = "dry.hire@example.com"
OFF = {"SIGSCI_IGA_INSTANT_PROVISIONING": "false"}


def test_a_request_dry_run_prints_the_calls_it_would_make_stores_nothing_and_exits_7(
    world: World,
) -> None:
    site = world.sites()[0]
    tasks_before, journal_before = world.tasks(), world.journal()
    world.admin("DELETE", "calls")

    result = world.exits(
        Outcome.PENDING,
        "request", "create-account", "--email", NEW, "--role", "user", "--site", site,
        "--dry-run",
    )  # fmt: skip

    invite = json.dumps(
        {"role": "user", "memberships": {"data": [{"site": {"name": site}}]}}, sort_keys=True
    )
    assert result.stdout.splitlines() == [
        f"create_account {NEW}: POST /api/v0/corps/testcorp/users/{NEW}/invite {invite}",
        "1 write calls would be sent; nothing was changed",
    ]
    assert world.tasks() == tasks_before
    assert world.journal() == journal_before
    assert world.access(NEW) is None
    calls = world.admin("GET", "calls")["calls"]
    assert calls
    assert all(key.startswith("GET ") for key in calls), calls


def test_a_request_dry_run_as_json_names_each_task_its_outcome_and_calls(world: World) -> None:
    email = world.pick("user")
    role, sites = world.access(email) or ("", [])

    result = world.exits(
        Outcome.PENDING,
        "request", "add-access", "--email", email, "--site", sites[0],
        "--site", next(s for s in world.sites() if s not in sites), "--dry-run", "--json",
    )  # fmt: skip

    document = json.loads(result.stdout)
    assert document["dry_run"] is True
    assert document["calls"] == 1
    outcomes = [(t["operation"], t["email"], t["outcome"], t["task_id"]) for t in document["tasks"]]
    assert sorted(outcomes) == [
        ("add_access", email, "act", None),
        ("add_access", email, "no_action", None),
    ]
    (acting,) = [t for t in document["tasks"] if t["outcome"] == "act"]
    assert acting["calls"][0]["method"] == "POST"
    assert acting["calls"][0]["body"] == {"members": [email]}
    assert world.tasks() == []
    assert world.access(email) == (role, sites)


def test_a_request_dry_run_with_nothing_to_send_exits_0(world: World) -> None:
    email = world.pick("user")
    _, sites = world.access(email) or ("", [])

    result = world.ok("request", "add-access", "--email", email, "--site", sites[0], "--dry-run")

    assert result.stdout.splitlines()[-1] == "0 write calls would be sent; nothing was changed"
    assert world.tasks() == []


def test_a_request_as_json_has_the_api_names_and_its_tasks(world: World) -> None:
    email = world.pick("user", least=2)

    document = world.json("request", "update-role", "--email", email, "--role", "observer")

    assert set(document) == {"request_id", "task_ids", "executed", "tasks"}
    (task,) = document["tasks"]
    assert document["task_ids"] == [task["id"]]
    assert (task["operation"], task["state"], task["email"]) == (
        "update_account",
        "completed",
        email,
    )
    assert task["request_id"] == document["request_id"]


def test_a_request_whose_task_fails_exits_11(world: World) -> None:
    owner = next(e for e in world.state.owners() if not e.endswith("@testcorp.example"))

    result = world.exits(
        Outcome.TASKS_FAILED,
        "request", "remove-access", "--email", owner, "--site", world.sites()[0],
    )  # fmt: skip

    assert "task 1 failed" in result.stdout
    (task,) = world.tasks()
    assert task.state == "failed"


def test_provision_run_until_done_leaving_failed_tasks_exits_11_and_reports_json(
    world: World,
) -> None:
    site = world.sites()[0]
    owner = next(e for e in world.state.owners() if not e.endswith("@testcorp.example"))
    world.ok("request", "create-account", "--email", NEW, "--role", "user", "--site", site, **OFF)
    world.ok("request", "remove-access", "--email", owner, "--site", site, **OFF)

    result = world.exits(
        Outcome.TASKS_FAILED, "provision", "run", "--until-done", "--json", "--max-wait", "5"
    )

    summary = json.loads(result.stdout)
    assert {k: summary[k] for k in ("claimed", "completed", "failed", "rescheduled")} == {
        "claimed": 2,
        "completed": 1,
        "failed": 1,
        "rescheduled": 0,
    }
    again = world.ok("provision", "run", "--json")
    assert json.loads(again.stdout)["claimed"] == 0
    assert world.ok("provision", "run", "--dry-run").stdout.strip() == "no task is due"


def test_check_as_json_names_the_corp_the_caller_and_what_it_sees(world: World) -> None:
    document = world.json("check")

    assert document["target"] == "testcorp"
    assert document["caller_role"] == "owner"
    assert document["sites_visible"] == len(world.sites())
    assert document["ok"] is True


def test_tasks_retry_and_discontinue_print_the_task_as_json(world: World) -> None:
    owner = next(e for e in world.state.owners() if not e.endswith("@testcorp.example"))
    world.exits(
        Outcome.TASKS_FAILED,
        "request", "remove-access", "--email", owner, "--site", world.sites()[0],
    )  # fmt: skip

    retried = world.json("tasks", "retry", "1")
    stopped = world.json("tasks", "discontinue", "1", "--reason", "not wanted")

    assert (retried["id"], retried["state"], retried["attempts"]) == (1, "new", 0)
    assert (stopped["id"], stopped["state"], stopped["operation"]) == (
        1,
        "discontinued",
        "remove_access",
    )
