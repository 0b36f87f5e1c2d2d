"""`provision run --dry-run`, `tasks ...` and `journal ...` as a real process, on SQLite.

The demo API token must show up in no output, no export and nowhere in the repository's files.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

from cli_prov_harness import World

from sigsci_iga.errors import Outcome
from sigsci_iga.sim import DEMO_TOKEN

NEW = "new.hire@example.com"
OFF = {"SIGSCI_IGA_INSTANT_PROVISIONING": "false"}
PLAIN = re.compile(r"^[a-z0-9.]+@[a-z0-9.]+$")


def plain_users(world: World, role: str, count: int, *, least: int = 1) -> list[str]:
    """Users whose emails need no escaping in a path, so expected paths can be written out."""
    with world.state.lock:
        found = [
            u.email
            for u in world.state.users.values()
            if u.role == role
            and len(u.sites) >= least
            and PLAIN.match(u.email)
            and not u.email.endswith("@testcorp.example")
        ]
    assert len(found) >= count
    return found[:count]


def test_provision_run_dry_run_prints_the_exact_calls_and_changes_nothing(world: World) -> None:
    site = world.sites()[0]
    with world.state.lock:
        adders = sorted(
            u.email
            for u in world.state.users.values()
            if u.role in ("user", "observer") and site not in u.sites and PLAIN.match(u.email)
        )[:2]
    (mover,) = [e for e in plain_users(world, "user", 3, least=2) if e not in adders][:1]
    gone = (world.access(mover) or ("", [""]))[1][0]
    owner = next(e for e in world.state.owners() if not e.endswith("@testcorp.example"))
    world.queue("create_account", NEW, role="user", sites=[site])
    for email in adders:
        world.queue("add_access", email, site=site)
    world.queue("remove_access", mover, site=gone)
    world.queue("remove_access", owner, site=site)
    tasks_before = world.tasks()
    journal_before = world.journal()
    sim_before = {e: world.access(e) for e in [*adders, mover, owner]}
    world.admin("DELETE", "calls")

    result = world.exits(Outcome.PENDING, "provision", "run", "--dry-run")

    base = "/api/v0/corps/testcorp"
    invite = json.dumps(
        {"role": "user", "memberships": {"data": [{"site": {"name": site}}]}}, sort_keys=True
    )
    members = json.dumps({"members": adders}, sort_keys=True)
    assert result.stdout.splitlines() == [
        f"task 1 create_account {NEW}: POST {base}/users/{NEW}/invite {invite}",
        f"task 2 add_access {adders[0]}: POST {base}/sites/{site}/members {members}"
        " (one call with tasks 3)",
        f"task 3 add_access {adders[1]}: POST {base}/sites/{site}/members {members}"
        " (one call with tasks 2)",
        f"task 4 remove_access {mover}: DELETE {base}/sites/{gone}/members/{mover}",
        f"task 5 remove_access {owner}: refuse — {owner} is an owner, and owners are members of "
        "every site; change the role to remove site access",
        "3 write calls would be sent; nothing was changed",
    ]
    calls = world.admin("GET", "calls")["calls"]
    assert calls
    assert all(key.startswith("GET ") for key in calls), calls
    assert world.tasks() == tasks_before
    assert world.journal() == journal_before
    assert {e: world.access(e) for e in [*adders, mover, owner]} == sim_before
    assert world.access(NEW) is None


def test_tasks_list_filters_by_status_and_prints_json(world: World) -> None:
    site = world.sites()[0]
    owner = next(e for e in world.state.owners() if not e.endswith("@testcorp.example"))
    email = world.pick("user")
    world.queue("create_account", NEW, role="user", sites=[site])
    world.queue("remove_access", owner, site=site)
    ran = world.exits(Outcome.TASKS_FAILED, "provision", "run")
    assert ran.stdout.splitlines()[0] == (
        "claimed 2 tasks in 1 batches: 1 completed, 0 no_action_required, 1 failed, "
        "0 queued for retry"
    )
    world.ok("request", "update-role", "--email", email, "--role", "admin", **OFF)

    everything = world.json("tasks", "list")
    failed = world.json("tasks", "list", "--status", "failed")
    table = world.ok("tasks", "list").stdout

    assert [(t["id"], t["state"]) for t in everything] == [
        (1, "completed"),
        (2, "failed"),
        (3, "new"),
    ]
    assert [t["id"] for t in failed] == [2]
    assert failed[0]["last_error"].startswith(f"{owner} is an owner")
    assert (everything[2]["operation"], everything[2]["email"]) == ("update_account", email)
    for line, state in zip(
        [row for row in table.splitlines() if re.match(r"^\W*\d+ ", row)],
        ("completed", "failed", "new"),
        strict=True,
    ):
        assert state in line
    bad = world.run("tasks", "list", "--status", "sleeping")
    assert bad.code == 2
    assert len(bad.stderr.strip().splitlines()) == 1


def test_tasks_show_prints_the_task_and_its_journal(world: World) -> None:
    site = world.sites()[1]
    world.ok(
        "request", "create-account", "--email", NEW, "--role", "observer", "--site", site,
        "--justification", "JIRA-1234", "--requester", "carol",
    )  # fmt: skip

    text = world.ok("tasks", "show", "1").stdout
    shown = world.json("tasks", "show", "1")

    task = shown["task"]
    assert (task["state"], task["requester"], task["justification"]) == (
        "completed",
        "carol",
        "JIRA-1234",
    )
    assert re.search(r"^state\s+completed$", text, re.MULTILINE)
    assert re.search(rf"^request_id\s+{task['request_id']}$", text, re.MULTILINE)
    assert "journal of task 1" in text
    kinds = [e["kind"] for e in shown["journal"]]
    assert kinds[:2] == ["requested", "claimed"]
    assert kinds[-1] == "state"
    assert "intent" in kinds
    assert {e["request_id"] for e in shown["journal"]} == {task["request_id"]}
    missing = world.run("tasks", "show", "99")
    assert missing.code == 4
    assert missing.stderr.strip().splitlines() == ["error: task 99 does not exist"]


def test_tasks_retry_requeues_a_failed_task_and_discontinue_stops_a_queued_one(
    world: World,
) -> None:
    email = world.pick("user")
    role, sites = world.access(email) or ("", [])
    site = next(s for s in world.sites() if s not in sites)
    world.admin(
        "POST",
        "faults",
        json={"kind": "error_500", "method": "POST", "path": "/members$", "count": 1},
    )
    failed = world.run(
        "request", "add-access", "--email", email, "--site", site,
        SIGSCI_IGA_TASK_MAX_ATTEMPTS="1",
    )  # fmt: skip
    assert failed.code == Outcome.TASKS_FAILED
    assert failed.stdout.splitlines()[-1].startswith("task 1 failed: ")
    assert world.tasks()[0].state == "failed"

    retried = world.ok("tasks", "retry", "1")
    assert retried.stdout.strip() == "task 1 queued again"
    assert (world.tasks()[0].state, world.tasks()[0].attempts) == ("new", 0)
    world.ok("provision", "run")
    assert world.tasks()[0].state == "completed"
    assert world.access(email) == (role, sorted([*sites, site]))

    leaver = world.pick("observer")
    world.ok("request", "remove-account", "--email", leaver, **OFF)
    stopped = world.ok("tasks", "discontinue", "2", "--reason", "wrong person")
    assert stopped.stdout.strip() == "task 2 discontinued"
    ran = world.ok("provision", "run")
    assert ran.stdout.startswith("claimed 0 tasks")
    assert world.tasks()[1].state == "discontinued"
    assert world.access(leaver) is not None

    again = world.run("tasks", "retry", "1")
    assert again.code != 0
    assert again.stderr.strip().splitlines() == [
        "error: task 1 is completed; only failed or discontinued tasks can be retried"
    ]


def test_journal_list_and_export_are_valid_and_never_show_the_token(world: World) -> None:
    site = world.sites()[0]
    leaver = world.pick("admin")
    world.queue("create_account", NEW, role="user", sites=[site])
    world.queue("remove_account", leaver)
    world.queue("update_account", NEW, role="observer")
    world.admin("POST", "faults", json={"kind": "error_524", "method": "PATCH", "count": 1})
    world.ok("provision", "run", "--until-done", "--max-wait", "30")
    assert [t.state for t in world.tasks()] == ["completed"] * 3

    listed = world.json("journal", "list")
    table = world.ok("journal", "list").stdout
    exported_json = json.loads(world.ok("journal", "export", "--format", "json").stdout)
    exported_csv = world.ok("journal", "export", "--format", "csv").stdout

    assert exported_json == listed
    kinds = {e["kind"] for e in listed}
    assert {"requested", "claimed", "intent", "call", "state", "snapshot"} <= kinds
    snapshot = next(e for e in listed if e["kind"] == "snapshot")
    assert snapshot["target"] == leaver
    assert snapshot["detail"]["role"] == "admin"
    assert any(e["status"] == 524 for e in listed if e["kind"] == "call")
    rows = list(csv.DictReader(io.StringIO(exported_csv)))
    assert [int(r["id"]) for r in rows] == [e["id"] for e in listed]
    assert [r["kind"] for r in rows] == [e["kind"] for e in listed]
    for row, entry in zip(rows, listed, strict=True):
        detail = json.loads(row["detail"]) if row["detail"] else None
        assert detail == entry["detail"]
    assert "journal" in table
    bad = world.run("journal", "export", "--format", "xml")
    assert bad.code == 2
    assert bad.stderr.strip().splitlines() == ["error: --format must be csv or json, not 'xml'"]

    # The token never reaches the repository: not the database, not its WAL.
    files = [p for p in Path(world.db_path).parent.iterdir() if p.name.startswith("iga.db")]
    assert files
    for path in files:
        assert DEMO_TOKEN.encode() not in path.read_bytes(), path.name
