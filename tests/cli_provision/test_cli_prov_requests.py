"""`sigsci-iga request ...` and `restore`, as a real process against a loopback simulator.

Instant provisioning is on by default: each request runs at once and says how it ended.
"""

from __future__ import annotations

import pytest
from cli_prov_harness import World

NEW = "new.hire@example.com"


def test_create_account_invites_with_every_site_at_once_and_says_so(world: World) -> None:
    first, second = world.sites()[:2]

    result = world.ok(
        "request", "create-account", "--email", "New.Hire@Example.com", "--role", "user",
        "--site", first, "--site", second, "--justification", "joins the web team",
    )  # fmt: skip

    assert result.stdout.splitlines() == [
        f"task 1 (create_account {NEW}) requested",
        "task 1 completed",
    ]
    user = world.sim_user(NEW)
    assert user is not None
    assert (user["role"], user["status"], sorted(user["sites"])) == (
        "user",
        "pending",
        sorted([first, second]),
    )
    (task,) = world.tasks()
    assert (task.state, task.requester, task.justification) == (
        "completed",
        "cli-tester",
        "joins the web team",
    )


def test_update_role_changes_the_role_and_keeps_the_sites(world: World) -> None:
    email = world.pick("user", least=2)
    _, sites = world.access(email) or ("", [])

    result = world.ok("request", "update-role", "--email", email, "--role", "observer")

    assert "task 1 completed" in result.stdout
    assert world.access(email) == ("observer", sites)
    assert world.runtime.calls["PATCH /corps/{corp}/users/{email}"] == 1


def test_add_access_to_a_site_is_one_bulk_members_post(world: World) -> None:
    email = world.pick("user")
    role, sites = world.access(email) or ("", [])
    site = next(s for s in world.sites() if s not in sites)

    result = world.ok("request", "add-access", "--email", email, "--site", site)

    assert "task 1 completed" in result.stdout
    assert world.access(email) == (role, sorted([*sites, site]))
    calls = world.admin("GET", "calls")["calls"]
    assert calls["POST /corps/{corp}/sites/{site}/members"] == 1
    assert not any(key.startswith("PATCH") for key in calls)


def test_add_access_of_a_corp_role_changes_the_role(world: World) -> None:
    email = world.pick("observer")
    _, sites = world.access(email) or ("", [])

    result = world.ok("request", "add-access", "--email", email, "--role", "admin")

    assert "task 1 completed" in result.stdout
    assert world.access(email) == ("admin", sites)


def test_remove_access_takes_one_site_away(world: World) -> None:
    email = world.pick("user", least=2)
    role, sites = world.access(email) or ("", [])

    result = world.ok("request", "remove-access", "--email", email, "--site", sites[0])

    assert "task 1 completed" in result.stdout
    assert world.access(email) == (role, sites[1:])


def test_remove_account_then_restore_reinvites_with_the_same_role_and_sites(world: World) -> None:
    email = world.pick("admin", least=2)
    role, sites = world.access(email) or ("", [])

    removed = world.ok(
        "request", "remove-account", "--email", email, "--justification", "left the company"
    )
    assert "task 1 completed" in removed.stdout
    assert world.sim_user(email) is None

    restored = world.ok("restore", email)

    assert restored.stdout.splitlines() == [
        f"task 2 (create_account {email}) requested",
        "task 2 completed",
    ]
    user = world.sim_user(email)
    assert user is not None
    assert (user["role"], user["status"], sorted(user["sites"])) == (role, "pending", sites)
    restore_task = world.tasks()[1]
    assert restore_task.params == {"role": role, "sites": sites}
    assert restore_task.justification == f"restore of {email}"


def test_restore_of_an_account_never_removed_exits_2(world: World) -> None:
    result = world.run("restore", "nobody@example.com")

    assert result.code == 2
    assert result.stderr.strip() == (
        "error: no removal of nobody@example.com is in the journal of endpoint 'testcorp'"
    )
    assert world.tasks() == []


def test_an_instant_attempt_that_fails_transiently_stays_queued_for_the_retry_job(
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

    queued = world.ok("request", "add-access", "--email", email, "--site", site)

    lines = queued.stdout.splitlines()
    assert lines[0] == f"task 1 (add_access {email}) requested"
    assert lines[1].startswith("task 1 queued for the retry job (next attempt ")
    assert "500" in lines[1]
    (task,) = world.tasks()
    assert (task.state, task.attempts) == ("new", 1)
    assert world.access(email) == (role, sites)

    done = world.ok("provision", "run", "--until-done", "--max-wait", "30")

    assert done.stdout.splitlines()[0] == (
        "claimed 1 tasks in 1 batches: 1 completed, 0 no_action_required, 0 failed, "
        "0 queued for retry"
    )
    (task,) = world.tasks()
    assert (task.state, task.attempts) == ("completed", 2)
    assert world.access(email) == (role, sorted([*sites, site]))
    assert world.runtime.faults.fired["error_500"] == 1


def test_instant_provisioning_off_queues_the_request_without_running_it(world: World) -> None:
    email = world.pick("user", least=2)
    before = world.access(email)
    world.runtime.calls.reset()

    result = world.ok(
        "request", "remove-access", "--email", email, "--site", (before or ("", [""]))[1][0],
        SIGSCI_IGA_INSTANT_PROVISIONING="false",
    )  # fmt: skip

    assert result.stdout.splitlines() == [
        f"task 1 (remove_access {email}) requested",
        "queued for the retry job (instant provisioning is off)",
    ]
    (task,) = world.tasks()
    assert (task.state, task.attempts) == ("new", 0)
    assert world.access(email) == before
    assert world.runtime.calls.total() == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("request", "create-account", "--role", "superuser", "--site", "{site}"),
            "error: role 'superuser' is not one of owner, admin, user, observer; "
            "did you mean 'user'?",
        ),
        (
            ("request", "update-role", "--role", "root"),
            "error: role 'root' is not one of owner, admin, user, observer",
        ),
        (
            ("request", "add-access", "--site", "nosuch.example.com"),
            "error: unknown site 'nosuch.example.com' in endpoint 'testcorp' "
            "(import the endpoint first if the site is new)",
        ),
        (
            ("request", "create-account", "--role", "user", "--site", "nosuch.example.com"),
            "error: unknown site 'nosuch.example.com' in endpoint 'testcorp' "
            "(import the endpoint first if the site is new)",
        ),
        (
            ("request", "remove-access", "--role", "user"),
            "error: a corp role cannot be removed, only changed: request update-role",
        ),
        (
            ("request", "remove-access"),
            "error: remove-access needs --site",
        ),
        (
            ("request", "create-account", "--role", "user"),
            "error: create-account needs at least one --site for a non-owner (owners get every "
            "site)",
        ),
    ],
    ids=[
        "unknown-role",
        "unknown-role-update",
        "unknown-site",
        "unknown-site-create",
        "remove-access-with-role",
        "remove-access-without-site",
        "no-site",
    ],
)
def test_bad_input_exits_2_with_a_one_line_message_and_creates_no_task(
    world: World, args: tuple[str, ...], message: str
) -> None:
    email = world.pick("user")
    filled = [a.replace("{site}", world.sites()[0]) for a in args]
    world.runtime.calls.reset()

    result = world.run(*filled, "--email", email)

    assert result.code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.splitlines() == [message]
    assert world.tasks() == []
    assert world.runtime.calls.total() == 0
