"""Each provisioning operation, through the worker, against the simulator (SQLite and PostgreSQL).

Every test reads the simulator's own records for the outcome and its call counter for what was
sent; the repository is checked right after the task and against a following import.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prov_harness import (
    FAST,
    Corp,
    invites_per_email,
    later,
    removals_per_email,
    repo_access,
    role_changes_per_email,
    site_adds_per_pair,
    site_removals_per_pair,
    writes,
)

from sigsci_iga.connectors.base import DeleteAccount, PageResult, Step
from sigsci_iga.connectors.signalsciences.connector import (
    SignalSciencesConnector,
    account_from_user,
)
from sigsci_iga.domain.model import AccountSnapshot
from sigsci_iga.domain.tasks import Operation
from sigsci_iga.provisioning.requests import build_params
from sigsci_iga.provisioning.worker import WorkerOptions
from sigsci_iga.store import Repository, TaskRecord

NEW = "new.hire@example.com"
#: Backoff long enough that a rescheduled task is not due again within the same run.
SLOW_RETRY = WorkerOptions(retry_base_seconds=30, retry_max_seconds=60)
MEMBERS_POST = "POST /corps/{corp}/sites/{site}/members"
USER_PATCH = "PATCH /corps/{corp}/users/{email}"


def request(
    repo: Repository,
    corp: Corp,
    operation: Operation,
    email: str,
    *,
    requester: str = "alice",
    justification: str = "ticket 42",
    max_attempts: int = 10,
    **params: Any,
) -> TaskRecord:
    """Validate and queue one request, as `sigsci-iga request ...` does."""
    built = build_params(repo, corp.endpoint, operation, **params)
    return repo.tasks.create(
        corp.endpoint,
        operation,
        email,
        built,
        requester=requester,
        justification=justification,
        max_attempts=max_attempts,
    )


def pick(corp: Corp, role: str = "user", *, sites: int | None = None, least: int = 1) -> str:
    """A non-demo user with this role and exactly `sites` sites (or at least `least`)."""
    for email, (held_role, held) in corp.all_access().items():
        if email.endswith("@testcorp.example") or held_role != role:
            continue
        if (sites is not None and len(held) == sites) or (sites is None and len(held) >= least):
            return email
    raise AssertionError(f"the seeded corp has no {role} with that many sites")


def missing_site(corp: Corp, email: str) -> str:
    access = corp.access(email)
    assert access is not None
    return next(s for s in corp.sites() if s not in access[1])


def assert_repo_follows_sim(repo: Repository, corp: Corp, email: str) -> None:
    """The repository's account is what the simulator holds, right after the task."""
    access = corp.access(email)
    if access is None:
        assert repo_access(repo, corp.endpoint, email) is None
        return
    role, sites = access
    status = "active" if corp.status(email) == "active" else "pending"
    shown = sorted(corp.sites()) if role == "owner" else list(sites)
    assert repo_access(repo, corp.endpoint, email) == (role, status, shown)


def assert_no_drift(repo: Repository, corp: Corp) -> None:
    """A following incremental import and a full import both find nothing to change."""
    incremental = corp.import_(repo)
    assert incremental.mode == "incremental"
    assert incremental.diff.is_empty, incremental.diff.summary()
    full = corp.import_(repo, mode="full")
    assert full.diff.is_empty, full.diff.summary()


def journal_kinds(repo: Repository, task_id: int) -> list[str]:
    return [e.kind for e in repo.journal.list(task_id=task_id)]


def intents(repo: Repository, task_id: int) -> list[tuple[str | None, str | None, Any]]:
    return [
        (e.method, e.path, (e.detail or {}).get("body"))
        for e in repo.journal.list(task_id=task_id, kind="intent")
    ]


def notes(repo: Repository, task_id: int) -> list[str]:
    return [
        str((e.detail or {}).get("reason")) for e in repo.journal.list(task_id=task_id, kind="note")
    ]


# -- create-account ------------------------------------------------------------------------------


def test_create_account_invites_the_user_once_with_every_requested_site(
    imported: Repository, corp: Corp
) -> None:
    sites = sorted(corp.sites()[:3])
    task = request(imported, corp, "create_account", NEW, role="user", sites=sites)
    corp.runtime.calls.reset()

    summary, _ = corp.work(imported)

    assert (summary.claimed, summary.completed) == (1, 1)
    assert corp.access(NEW) == ("user", tuple(sites))
    assert corp.status(NEW) == "pending"
    assert writes(corp.runtime.calls.snapshot()) == {"POST /corps/{corp}/users/{email}/invite": 1}
    assert invites_per_email(corp.state) == {NEW: 1}
    body = {"role": "user", "memberships": {"data": [{"site": {"name": s}} for s in sites]}}
    assert intents(imported, task.id) == [
        ("POST", f"/api/v0/corps/testcorp/users/{NEW}/invite", body)
    ]
    assert imported.tasks.get(task.id).state == "completed"
    assert_repo_follows_sim(imported, corp, NEW)
    assert_no_drift(imported, corp)


# -- update-role and CorpRole ---------------------------------------------------------------------


def test_update_role_sends_only_the_role_and_leaves_every_site_alone(
    imported: Repository, corp: Corp
) -> None:
    email = pick(corp, "user", least=2)
    _, sites_before = corp.access(email) or ("", ())
    everyone_else = {k: v for k, v in corp.all_access().items() if k != email}
    task = request(imported, corp, "update_account", email, role="admin")
    corp.runtime.calls.reset()

    summary, _ = corp.work(imported)

    assert summary.completed == 1
    assert corp.access(email) == ("admin", sites_before)
    assert {k: v for k, v in corp.all_access().items() if k != email} == everyone_else
    assert writes(corp.runtime.calls.snapshot()) == {USER_PATCH: 1}
    assert intents(imported, task.id) == [
        ("PATCH", f"/api/v0/corps/testcorp/users/{email}", {"role": "admin"})
    ]
    assert site_adds_per_pair(corp.state) == {}
    assert site_removals_per_pair(corp.state) == {}
    assert_repo_follows_sim(imported, corp, email)
    assert_no_drift(imported, corp)


def test_add_access_of_a_corp_role_is_a_role_change(imported: Repository, corp: Corp) -> None:
    email = pick(corp, "observer")
    _, sites_before = corp.access(email) or ("", ())
    task = request(imported, corp, "add_access", email, role="user")
    assert task.params == {"entitlement_type": "CorpRole", "value": "user"}
    corp.runtime.calls.reset()

    summary, _ = corp.work(imported)

    assert summary.completed == 1
    assert corp.access(email) == ("user", sites_before)
    assert writes(corp.runtime.calls.snapshot()) == {USER_PATCH: 1}
    assert intents(imported, task.id) == [
        ("PATCH", f"/api/v0/corps/testcorp/users/{email}", {"role": "user"})
    ]
    assert role_changes_per_email(corp.state) == {email: 1}
    assert_repo_follows_sim(imported, corp, email)
    assert_no_drift(imported, corp)


# -- add-access and remove-access -----------------------------------------------------------------


def test_add_access_is_one_bulk_members_post_per_site_never_a_patch(
    imported: Repository, corp: Corp
) -> None:
    site = corp.sites()[0]
    emails = [e for e, (r, s) in corp.all_access().items() if r != "owner" and site not in s][:4]
    assert len(emails) == 4
    other = pick(corp, "user", least=1)
    other_site = missing_site(corp, other)
    before = corp.all_access()
    tasks = [request(imported, corp, "add_access", e, site=site) for e in emails]
    if other not in emails:
        tasks.append(request(imported, corp, "add_access", other, site=other_site))
    corp.runtime.calls.reset()

    summary, client_calls = corp.work(imported)

    assert summary.completed == len(tasks)
    for email in emails:
        role, sites = before[email]
        assert corp.access(email) == (role, tuple(sorted({*sites, site})))
    sent = writes(corp.runtime.calls.snapshot())
    # The four tasks for one site share one call; nothing is ever PATCHed.
    assert sent == {MEMBERS_POST: 1 + (other not in emails)}
    assert not any(k.startswith("PATCH") for k in client_calls)
    shared = intents(imported, tasks[0].id)
    assert shared == [
        ("POST", f"/api/v0/corps/testcorp/sites/{site}/members", {"members": sorted(emails)})
    ]
    assert all(imported.tasks.get(t.id).state == "completed" for t in tasks)
    assert site_adds_per_pair(corp.state) == {(e, site): 1 for e in emails} | (
        {(other, other_site): 1} if other not in emails else {}
    )
    for email in emails:
        assert_repo_follows_sim(imported, corp, email)
    assert_no_drift(imported, corp)


def test_remove_access_takes_away_that_site_only(imported: Repository, corp: Corp) -> None:
    email = pick(corp, "user", least=2)
    role, sites = corp.access(email) or ("", ())
    gone = sites[0]
    task = request(imported, corp, "remove_access", email, site=gone)
    corp.runtime.calls.reset()

    summary, _ = corp.work(imported)

    assert summary.completed == 1
    assert corp.access(email) == (role, sites[1:])
    assert writes(corp.runtime.calls.snapshot()) == {
        "DELETE /corps/{corp}/sites/{site}/members/{email}": 1
    }
    assert site_removals_per_pair(corp.state) == {(email, gone): 1}
    assert imported.tasks.get(task.id).state == "completed"
    assert_repo_follows_sim(imported, corp, email)
    assert_no_drift(imported, corp)


# -- an account's site grants go together ---------------------------------------------------------


def test_an_accounts_grants_on_different_sites_finish_in_one_batch_with_one_call_per_site(
    imported: Repository, corp: Corp
) -> None:
    email = pick(corp, "user", least=1)
    _, held = corp.access(email) or ("", ())
    wanted = [s for s in corp.sites() if s not in held][:3]
    assert len(wanted) == 3
    other = next(
        e
        for e, (r, s) in corp.all_access().items()
        if r == "user" and e != email and wanted[0] not in s and not e.endswith(".example")
    )
    tasks = [request(imported, corp, "add_access", email, site=site) for site in wanted]
    tasks.append(request(imported, corp, "add_access", other, site=wanted[0]))
    planned = corp.plan(imported)
    corp.runtime.calls.reset()

    summary, _ = corp.work(imported)

    assert (summary.batches, summary.completed) == (1, 4)
    # Three sites, three members calls; the first is shared with the other user's grant.
    assert writes(corp.runtime.calls.snapshot()) == {MEMBERS_POST: 3}
    assert site_adds_per_pair(corp.state) == {
        **{(email, site): 1 for site in wanted},
        (other, wanted[0]): 1,
    }
    assert intents(imported, tasks[0].id) == [
        (
            "POST",
            f"/api/v0/corps/testcorp/sites/{wanted[0]}/members",
            {"members": sorted([email, other])},
        )
    ]
    # The dry run before showed the same calls.
    assert [p.task.id for p in planned] == [t.id for t in tasks]
    assert [p.calls[0].body for p in planned[:3]] == [
        {"members": sorted([email, other])},
        {"members": [email]},
        {"members": [email]},
    ]
    # Each grant's link is its own task's doing in the history.
    for task, site in zip(tasks, wanted, strict=False):
        links = [h.new_value for h in imported.inventory.history(task_id=task.id)]
        assert site in links, (site, links)
        assert not {s for s in wanted if s != site} & set(links)
    assert_repo_follows_sim(imported, corp, email)
    assert all(report.intact for report in imported.journal.verify())
    assert_no_drift(imported, corp)


def test_a_remove_account_queued_after_a_grant_waits_for_it_and_stops_later_grants(
    imported: Repository, corp: Corp
) -> None:
    email = pick(corp, "user", least=1)
    _, held = corp.access(email) or ("", ())
    first, last = [s for s in corp.sites() if s not in held][:2]
    grant = request(imported, corp, "add_access", email, site=first)
    leaver = request(imported, corp, "remove_account", email)
    late = request(imported, corp, "add_access", email, site=last)
    corp.runtime.calls.reset()

    summary, _ = corp.work(imported)

    # One batch each: the grant, then the removal alone, then the later grant (refused: gone).
    assert summary.batches == 3
    states = [imported.tasks.get(t.id).state for t in (grant, leaver, late)]
    assert states == ["completed", "completed", "failed"]
    kinds = [(e.event_type, e.msg_data.get("siteName")) for e in corp.state.events]
    assert kinds.index(("userAddedToSite", first)) < kinds.index(("userRemoved", None))
    assert ("userAddedToSite", last) not in kinds
    snapshot = imported.journal.list(task_id=leaver.id, kind="snapshot")[0]
    assert snapshot.detail is not None
    assert first in snapshot.detail["sites"]


# -- remove-account and restore -------------------------------------------------------------------


class SnapshotWitness(SignalSciencesConnector):
    """Records what the journal says about the account at the moment each DELETE is sent."""

    seen: list[tuple[str, dict[str, Any] | None]]
    repo: Repository

    async def execute(self, step: Step) -> None:
        if isinstance(step, DeleteAccount):
            access = self.repo.tasks.last_removed_access(self.client.corp, step.email)
            SnapshotWitness.seen.append((step.email, access))
        await super().execute(step)


def test_remove_account_journals_a_snapshot_before_the_delete_and_restore_reinvites(
    imported: Repository, corp: Corp
) -> None:
    email = pick(corp, "admin", least=2)
    role, sites = corp.access(email) or ("", ())
    task = request(imported, corp, "remove_account", email)
    SnapshotWitness.seen = []
    SnapshotWitness.repo = imported
    corp.runtime.calls.reset()

    summary, _ = corp.work(imported, connector_cls=SnapshotWitness)

    assert summary.completed == 1
    assert corp.access(email) is None
    assert writes(corp.runtime.calls.snapshot()) == {"DELETE /corps/{corp}/users/{email}": 1}
    # When the DELETE went out, the journal already held the account's role and sites.
    assert len(SnapshotWitness.seen) == 1
    seen_email, seen_access = SnapshotWitness.seen[0]
    assert seen_email == email
    assert seen_access is not None
    assert (seen_access["role"], seen_access["sites"]) == (role, list(sites))
    kinds = journal_kinds(imported, task.id)
    assert kinds.index("snapshot") < kinds.index("intent") < len(kinds) - 1
    assert_repo_follows_sim(imported, corp, email)
    suspended = imported.inventory.find_account(corp.endpoint, email)
    assert suspended is not None
    assert (suspended.status, suspended.sites) == ("suspended", [])
    assert_no_drift(imported, corp)

    # Restore: the journaled access becomes a new create-account task, and a re-invite.
    access = imported.tasks.last_removed_access(corp.endpoint, email)
    assert access is not None
    restore = request(
        imported, corp, "create_account", email, role=access["role"], sites=access["sites"]
    )
    summary, _ = corp.work(imported)

    assert summary.completed == 1
    assert imported.tasks.get(restore.id).state == "completed"
    assert corp.access(email) == (role, sites)
    assert corp.status(email) == "pending"
    assert invites_per_email(corp.state) == {email: 1}
    assert removals_per_email(corp.state) == {email: 1}
    assert_repo_follows_sim(imported, corp, email)
    assert_no_drift(imported, corp)


# -- nothing to do, and refusals ------------------------------------------------------------------


def test_every_operation_needs_no_action_when_the_change_is_already_in_place(
    imported: Repository, corp: Corp
) -> None:
    email = pick(corp, "user", least=2)
    role, sites = corp.access(email) or ("", ())
    absent_site = missing_site(corp, email)
    tasks = [
        request(imported, corp, "create_account", email, role=role, sites=list(sites)),
        request(imported, corp, "update_account", email, role=role),
        request(imported, corp, "add_access", email, site=sites[0]),
        request(imported, corp, "add_access", email, role=role),
        request(imported, corp, "remove_access", email, site=absent_site),
        request(imported, corp, "remove_account", "nobody@example.com"),
    ]
    before = corp.all_access()
    events_before = len(corp.state.events)
    corp.runtime.calls.reset()

    summary, _ = corp.work(imported)

    assert summary.no_action_required == len(tasks)
    assert [imported.tasks.get(t.id).state for t in tasks] == ["no_action_required"] * len(tasks)
    assert writes(corp.runtime.calls.snapshot()) == {}
    assert corp.all_access() == before
    assert len(corp.state.events) == events_before
    for task in tasks:
        assert "intent" not in journal_kinds(imported, task.id)
        assert notes(imported, task.id) != ["None"]
    assert notes(imported, tasks[2].id) == [f"{email} is already a member of {sites[0]}"]
    assert notes(imported, tasks[4].id) == [f"{email} is not a member of {absent_site}"]
    assert_no_drift(imported, corp)


def test_adding_a_site_to_an_owner_needs_no_action_and_says_why(
    imported: Repository, corp: Corp
) -> None:
    owner = corp.users_by_role("owner")[0]
    task = request(imported, corp, "add_access", owner, site=corp.sites()[0])
    corp.runtime.calls.reset()

    corp.work(imported)

    done = imported.tasks.get(task.id)
    assert (done.state, done.last_error) == ("no_action_required", None)
    assert notes(imported, task.id) == [
        f"{owner} is an owner, and owners are members of every site"
    ]
    assert writes(corp.runtime.calls.snapshot()) == {}


def test_removing_a_site_from_an_owner_fails_with_the_reason(
    imported: Repository, corp: Corp
) -> None:
    owner = corp.users_by_role("owner")[0]
    task = request(imported, corp, "remove_access", owner, site=corp.sites()[0])
    corp.runtime.calls.reset()

    summary, _ = corp.work(imported)

    done = imported.tasks.get(task.id)
    assert (summary.failed, done.state) == (1, "failed")
    assert done.last_error is not None
    assert "is an owner, and owners are members of every site" in done.last_error
    assert writes(corp.runtime.calls.snapshot()) == {}
    assert corp.access(owner) == ("owner", ())


def test_removing_the_last_site_of_a_non_owner_is_refused_unless_allowed(
    imported: Repository, corp: Corp
) -> None:
    email = pick(corp, "user", sites=1)
    role, (only,) = corp.access(email) or ("", ("",))
    refused = request(imported, corp, "remove_access", email, site=only)
    corp.runtime.calls.reset()

    corp.work(imported)

    done = imported.tasks.get(refused.id)
    assert done.state == "failed"
    assert done.last_error == (
        f"removing {only} would leave {email} ({role}) with no site; "
        "request remove-account, or pass --allow-no-sites"
    )
    assert corp.access(email) == (role, (only,))
    assert writes(corp.runtime.calls.snapshot()) == {}

    allowed = request(imported, corp, "remove_access", email, site=only, allow_no_sites=True)
    corp.work(imported)

    assert imported.tasks.get(allowed.id).state == "completed"
    assert corp.access(email) == (role, ())
    assert_repo_follows_sim(imported, corp, email)
    assert_no_drift(imported, corp)


# -- the repository follows every task -----------------------------------------------------------


def test_the_repository_follows_each_task_and_imports_find_no_drift(
    imported: Repository, corp: Corp
) -> None:
    mover = pick(corp, "user", least=2)
    leaver = pick(corp, "observer")
    steps: list[tuple[Operation, str, dict[str, Any]]] = [
        ("create_account", NEW, {"role": "observer", "sites": corp.sites()[:2]}),
        ("add_access", NEW, {"site": corp.sites()[2]}),
        ("update_account", NEW, {"role": "user"}),
        ("remove_access", NEW, {"site": corp.sites()[0]}),
        ("add_access", mover, {"site": missing_site(corp, mover)}),
        ("add_access", mover, {"role": "admin"}),
        ("remove_account", leaver, {}),
    ]
    for operation, email, params in steps:
        task = request(imported, corp, operation, email, **params)
        corp.work(imported)
        assert imported.tasks.get(task.id).state == "completed", (operation, email)
        assert_repo_follows_sim(imported, corp, email)
        history = imported.inventory.history(endpoint=corp.endpoint, limit=None)
        assert any(h.task_id == task.id for h in history), (operation, email)
    assert corp.access(NEW) == ("user", tuple(sorted(corp.sites()[1:3])))
    assert_no_drift(imported, corp)


# -- task bookkeeping, retries and limits ---------------------------------------------------------


def test_a_task_keeps_its_state_attempts_error_request_id_requester_and_justification(
    imported: Repository, corp: Corp
) -> None:
    email = pick(corp, "user", least=1)
    site = missing_site(corp, email)
    task = request(
        imported, corp, "add_access", email, site=site, requester="bob", justification="JIRA-7"
    )
    corp.add_fault(kind="error_500", method="POST", path="/members$", count=1)

    summary, _ = corp.work(imported, SLOW_RETRY)

    waiting = imported.tasks.get(task.id)
    assert summary.rescheduled == 1
    assert (waiting.state, waiting.attempts, waiting.write_sent) == ("new", 1, True)
    assert waiting.last_error is not None
    assert "500" in waiting.last_error
    assert waiting.next_attempt_at is not None
    assert corp.access(email) is not None
    assert site not in (corp.access(email) or ("", ()))[1]

    summary, _ = corp.work(imported, clock=later(120))

    done = imported.tasks.get(task.id)
    assert summary.completed == 1
    assert (done.state, done.attempts, done.last_error) == ("completed", 2, None)
    assert (done.request_id, done.requester, done.justification) == (
        task.request_id,
        "bob",
        "JIRA-7",
    )
    entries = imported.journal.list(task_id=task.id)
    assert {e.request_id for e in entries} == {task.request_id}
    assert [e.attempt for e in entries if e.kind == "claimed"] == [1, 2]
    requested = entries[0]
    assert requested.kind == "requested"
    assert requested.detail is not None
    assert (requested.detail["requester"], requested.detail["justification"]) == ("bob", "JIRA-7")
    assert site_adds_per_pair(corp.state) == {(email, site): 1}


def test_a_task_fails_once_it_used_its_max_attempts(imported: Repository, corp: Corp) -> None:
    email = pick(corp, "user", least=1)
    site = missing_site(corp, email)
    task = request(imported, corp, "add_access", email, site=site, max_attempts=3)
    corp.add_fault(kind="error_500", method="POST", path="/members$")

    summary, _ = corp.work(imported, until_done=True, max_wait_seconds=10)

    done = imported.tasks.get(task.id)
    assert (summary.failed, summary.rescheduled) == (1, 2)
    assert (done.state, done.attempts) == ("failed", 3)
    assert done.last_error is not None
    assert "500" in done.last_error
    assert corp.runtime.calls[MEMBERS_POST] == 3
    last = imported.journal.list(task_id=task.id, kind="state")[-1]
    assert last.state_after == "failed"
    assert last.detail == {"reason": "3 of 3 attempts used"}


def test_retry_task_queues_a_failed_task_again_and_discontinue_task_stops_one(
    imported: Repository, corp: Corp
) -> None:
    email = pick(corp, "user", least=1)
    site = missing_site(corp, email)
    failing = request(imported, corp, "add_access", email, site=site, max_attempts=1)
    corp.add_fault(kind="error_500", method="POST", path="/members$", count=1)
    corp.work(imported)
    assert imported.tasks.get(failing.id).state == "failed"

    retried = imported.tasks.retry(failing.id)
    assert (retried.state, retried.attempts) == ("new", 0)
    corp.work(imported)
    done = imported.tasks.get(failing.id)
    assert (done.state, done.attempts) == ("completed", 1)
    assert site in (corp.access(email) or ("", ()))[1]

    other = pick(corp, "observer")
    stopped = request(imported, corp, "remove_account", other)
    imported.tasks.discontinue(stopped.id, reason="asked by mistake")
    corp.runtime.calls.reset()
    summary, _ = corp.work(imported)

    assert summary.claimed == 0
    assert imported.tasks.get(stopped.id).state == "discontinued"
    assert corp.access(other) is not None
    assert corp.runtime.calls.total() == 0
    last = imported.journal.list(task_id=stopped.id)[-1]
    assert (last.state_after, last.detail) == ("discontinued", {"reason": "asked by mistake"})


def test_per_operation_limits_cap_remove_account_tasks_per_run(
    imported: Repository, corp: Corp
) -> None:
    leavers = [e for e, (r, _) in corp.all_access().items() if r in ("user", "observer")][:5]
    tasks = [request(imported, corp, "remove_account", e) for e in leavers]
    joiner = request(imported, corp, "create_account", NEW, role="user", sites=corp.sites()[:1])
    options = WorkerOptions(
        retry_base_seconds=0.01,
        retry_max_seconds=0.05,
        throttle_wait_seconds=0.01,
        per_operation_limits={"remove_account": 2},
    )

    removed_per_run = []
    for _ in range(3):
        summary, _ = corp.work(imported, options)
        removed_per_run.append(sum(removals_per_email(corp.state).values()))
    assert removed_per_run == [2, 4, 5]
    assert imported.tasks.get(joiner.id).state == "completed"
    assert all(imported.tasks.get(t.id).state == "completed" for t in tasks)
    assert all(corp.access(e) is None for e in leavers)
    # A run that hits the limit with more waiting ends instead of idling (until_done too).
    more = [
        request(imported, corp, "remove_account", e) for e in corp.users_by_role("observer")[:3]
    ]
    summary, _ = corp.work(imported, options, until_done=True, max_wait_seconds=5)
    assert summary.completed == 2
    assert [imported.tasks.get(t.id).state for t in more].count("new") == 1


# -- dry run --------------------------------------------------------------------------------------


def test_plan_due_lists_the_exact_calls_and_changes_nothing(
    imported: Repository, corp: Corp
) -> None:
    site = corp.sites()[0]
    adders = [e for e, (r, s) in corp.all_access().items() if r != "owner" and site not in s][:2]
    mover = next(
        e
        for e, (r, s) in corp.all_access().items()
        if r == "user" and len(s) >= 2 and e not in adders
    )
    mover_sites = (corp.access(mover) or ("", ()))[1]
    owner = corp.users_by_role("owner")[0]
    tasks = [
        request(imported, corp, "create_account", NEW, role="user", sites=[site]),
        *(request(imported, corp, "add_access", e, site=site) for e in adders),
        request(imported, corp, "remove_access", mover, site=mover_sites[0]),
        request(imported, corp, "remove_access", owner, site=site),
    ]
    tasks_before = imported.tasks.list()
    journal_before = imported.journal.list()
    sim_before = corp.all_access()
    corp.runtime.calls.reset()

    planned = corp.plan(imported)

    by_task = {p.task.id: p for p in planned}
    assert sorted(by_task) == [t.id for t in tasks]
    invite = by_task[tasks[0].id].calls
    assert [(c.method, c.path, c.body) for c in invite] == [
        (
            "POST",
            f"/api/v0/corps/testcorp/users/{NEW}/invite",
            {"role": "user", "memberships": {"data": [{"site": {"name": site}}]}},
        )
    ]
    for task in tasks[1:3]:
        item = by_task[task.id]
        assert [(c.method, c.path, c.body) for c in item.calls] == [
            ("POST", f"/api/v0/corps/testcorp/sites/{site}/members", {"members": sorted(adders)})
        ]
        assert set(item.shared_with) == {t.id for t in tasks[1:3]} - {task.id}
    assert [(c.method, c.path, c.body) for c in by_task[tasks[3].id].calls] == [
        ("DELETE", f"/api/v0/corps/testcorp/sites/{mover_sites[0]}/members/{mover}", None)
    ]
    refused = by_task[tasks[4].id]
    assert (refused.plan.outcome, refused.calls) == ("refuse", ())
    assert "owners are members of every site" in refused.plan.reason
    # Reads only; nothing claimed, journaled or changed.
    sent = corp.runtime.calls.snapshot()
    assert sent
    assert all(key.startswith("GET ") for key in sent)
    assert imported.tasks.list() == tasks_before
    assert imported.journal.list() == journal_before
    assert corp.all_access() == sim_before


def test_plan_due_honours_the_per_operation_limits_of_a_run(
    imported: Repository, corp: Corp
) -> None:
    leavers = [e for e, (r, _) in corp.all_access().items() if r == "user"][:3]
    for email in leavers:
        request(imported, corp, "remove_account", email)
    options = WorkerOptions(per_operation_limits={"remove_account": 2})

    planned = corp.plan(imported, options)

    assert [p.task.email for p in planned] == leavers[:2]
    assert all(p.calls[0].method == "DELETE" for p in planned)


@pytest.mark.parametrize("role", ["owner", "observer"])
def test_create_account_for_an_existing_user_converges_instead_of_inviting_twice(
    imported: Repository, corp: Corp, role: str
) -> None:
    email = pick(corp, "user", least=1)
    _, sites = corp.access(email) or ("", ())
    wanted = sorted({*sites, missing_site(corp, email)})
    task = request(imported, corp, "create_account", email, role=role, sites=wanted)
    corp.runtime.calls.reset()

    corp.work(imported, FAST)

    assert imported.tasks.get(task.id).state == "completed"
    assert invites_per_email(corp.state) == {}
    expected_sites = () if role == "owner" else tuple(wanted)
    assert corp.access(email) == (role, expected_sites)
    assert_repo_follows_sim(imported, corp, email)
    assert_no_drift(imported, corp)


def test_run_until_done_waits_out_an_abandoned_lease_and_reclaims_the_task(
    imported: Repository, corp: Corp
) -> None:
    email = pick(corp, "user", least=1)
    site = missing_site(corp, email)
    task = request(imported, corp, "add_access", email, site=site)
    # A worker claims the task and dies: its lease has a second to run.
    (held,) = imported.tasks.claim(
        corp.endpoint, worker="dead-worker", now=datetime.now(UTC), lease_seconds=1, limit=10
    )
    assert held.id == task.id

    summary, _ = corp.work(imported)
    assert summary.claimed == 0  # the lease is live: a plain run leaves the task alone

    started = time.monotonic()
    summary, _ = corp.work(imported, until_done=True, max_wait_seconds=10)

    assert 0.3 < time.monotonic() - started < 8
    assert (summary.claimed, summary.completed) == (1, 1)
    done = imported.tasks.get(task.id)
    assert (done.state, done.attempts) == ("completed", 2)
    claims = imported.journal.list(task_id=task.id, kind="claimed")
    assert [c.detail.get("reclaimed_from") if c.detail else None for c in claims] == [
        None,
        "dead-worker",
    ]
    assert site_adds_per_pair(corp.state) == {(email, site): 1}


def test_plan_due_shows_an_abandoned_task_a_run_would_reclaim(
    imported: Repository, corp: Corp
) -> None:
    email = pick(corp, "user", least=1)
    site = missing_site(corp, email)
    past = datetime.now(UTC) - timedelta(minutes=10)
    params = build_params(imported, corp.endpoint, "add_access", site=site)
    task = imported.tasks.create(corp.endpoint, "add_access", email, params, now=past)
    imported.tasks.claim(corp.endpoint, worker="dead-worker", now=past, lease_seconds=60, limit=1)
    before = imported.tasks.get(task.id)
    assert before.state == "in_progress"

    planned = corp.plan(imported)

    assert [(p.task.id, [(c.method, c.path) for c in p.calls]) for p in planned] == [
        (task.id, [("POST", f"/api/v0/corps/testcorp/sites/{site}/members")])
    ]
    assert imported.tasks.get(task.id) == before
    summary, _ = corp.work(imported)
    assert (summary.claimed, summary.completed) == (1, 1)
    assert site in (corp.access(email) or ("", ()))[1]


class UncheckedLists(SignalSciencesConnector):
    """Reads the users list without the native connector's own caller check (as a package may)."""

    async def accounts_page(self, cursor: str | None) -> PageResult[AccountSnapshot]:
        users = await self.client.list_users(expand_memberships=True)
        accounts = [account_from_user(u) for u in users]
        return PageResult(accounts, None, [a.email for a in accounts])


def test_an_empty_users_glitch_never_reads_as_accounts_gone_and_tasks_wait_for_a_real_read(
    imported: Repository, corp: Corp
) -> None:
    leavers = [e for e, (role, _) in corp.all_access().items() if role == "observer"][:3]
    tasks = [request(imported, corp, "remove_account", email) for email in leavers]
    corp.add_fault(kind="empty_users")

    # A long backoff keeps the rescheduled tasks out of this run.
    glitched, _ = corp.work(
        imported, WorkerOptions(retry_base_seconds=60.0), connector_cls=UncheckedLists
    )

    # Read as "nobody", the glitch would have ended every task as no action required.
    assert glitched.no_action_required == 0
    assert glitched.completed == 0
    assert [imported.tasks.get(t.id).state for t in tasks] == ["new"] * 3
    assert all(
        "does not include the caller" in (imported.tasks.get(t.id).last_error or "") for t in tasks
    )
    assert all(corp.access(email) is not None for email in leavers)

    retried, _ = corp.work(imported, connector_cls=UncheckedLists, clock=later(3600))

    assert retried.completed == 3
    assert all(corp.access(email) is None for email in leavers)
