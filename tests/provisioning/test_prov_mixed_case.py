"""A user the server stores as `Mixed.Case@corp.example` stays governable.

The repository keys the account by the lower-cased email; every call names the user as the
server spells it, and a "not found" for any other spelling is checked before it means "gone".
"""

from __future__ import annotations

from typing import Any

import pytest
from prov_harness import Corp, removals_per_email, repo_access, writes

from sigsci_iga.domain.model import SERVER_EMAIL
from sigsci_iga.provisioning.requests import build_params
from sigsci_iga.store import Repository, TaskRecord

MIXED = "Mixed.Case@corp.example"
KEY = MIXED.lower()
USERS_LIST = "GET /corps/{corp}/users"
USER_GET = "GET /corps/{corp}/users/{email}"


def _corp(matching: str) -> Corp:
    corp = Corp.create(users=20, sites=6, seed=5, pending_share=0.0, email_matching=matching)
    corp.state.add_user(MIXED, "user", corp.sites()[:2], name="Mixed Case")
    return corp


@pytest.fixture(params=["sensitive", "insensitive"])
def corp(request: pytest.FixtureRequest) -> Corp:
    """A corp with one mixed-case user, matching emails exactly (the default) or not."""
    return _corp(request.param)


@pytest.fixture(params=["imported", "never imported"])
def known(request: pytest.FixtureRequest, repo: Repository, corp: Corp) -> Repository:
    """The repository after a full import (the spelling is recorded), or with no account at all."""
    corp.register(repo)
    if request.param == "imported":
        corp.import_(repo, mode="full")
        held = repo.inventory.find_account(corp.endpoint, KEY)
        assert held is not None
        assert held.status == "active"
        assert held.extra[SERVER_EMAIL] == MIXED
    return repo


def _request(repo: Repository, corp: Corp, operation: str, **params: Any) -> TaskRecord:
    built = build_params(repo, corp.endpoint, operation, **params)  # type: ignore[arg-type]
    return repo.tasks.create(
        corp.endpoint, operation, KEY, built, requester="alice", justification="ticket 7"
    )


def _assert_no_drift(repo: Repository, corp: Corp) -> None:
    """A full import agrees with what the worker wrote (if the corp had been imported before)."""
    imported_before = repo.endpoints.get(corp.endpoint).checkpoint.last_activity is not None
    full = corp.import_(repo, mode="full")
    assert full.diff.is_empty or not imported_before, full.diff.summary()
    held = repo.inventory.find_account(corp.endpoint, KEY)
    access = corp.access(MIXED)
    if access is None:
        assert held is None or held.status == "suspended"
    else:
        assert held is not None
        assert (held.role, held.status, held.extra[SERVER_EMAIL]) == (access[0], "active", MIXED)


def _intent_paths(repo: Repository, task: TaskRecord) -> list[str | None]:
    return [e.path for e in repo.journal.list(task_id=task.id, kind="intent")]


def test_a_leaver_request_removes_the_mixed_case_user_and_suspends_the_account(
    known: Repository, corp: Corp
) -> None:
    task = _request(known, corp, "remove_account")
    corp.runtime.calls.reset()

    corp.work(known)

    assert known.tasks.get(task.id).state == "completed"
    assert corp.access(MIXED) is None
    assert removals_per_email(corp.state) == {MIXED: 1}
    assert writes(corp.runtime.calls.snapshot()) == {"DELETE /corps/{corp}/users/{email}": 1}
    assert _intent_paths(known, task) == [f"/api/v0/corps/testcorp/users/{MIXED}"]
    held = known.inventory.find_account(corp.endpoint, KEY)
    assert held is None or held.status == "suspended"
    _assert_no_drift(known, corp)


@pytest.mark.parametrize("operation", ["add_access", "remove_access", "update_account"])
def test_access_changes_reach_the_mixed_case_user(
    known: Repository, corp: Corp, operation: str
) -> None:
    _, sites = corp.access(MIXED) or ("", ())
    params: dict[str, Any] = {
        "add_access": {"site": next(s for s in corp.sites() if s not in sites)},
        "remove_access": {"site": sites[0]},
        "update_account": {"role": "admin"},
    }[operation]
    task = _request(known, corp, operation, **params)

    corp.work(known)

    assert known.tasks.get(task.id).state == "completed"
    expected = {
        "add_access": ("user", tuple(sorted({*sites, params.get("site", "")}))),
        "remove_access": ("user", sites[1:]),
        "update_account": ("admin", sites),
    }[operation]
    assert corp.access(MIXED) == expected
    assert all(MIXED in (p or "") or "/members" in (p or "") for p in _intent_paths(known, task))
    assert repo_access(known, corp.endpoint, KEY) == (expected[0], "active", list(expected[1]))
    _assert_no_drift(known, corp)


def test_a_batch_names_the_mixed_case_user_in_its_one_bulk_call(
    known: Repository, corp: Corp
) -> None:
    site = next(s for s in corp.sites() if s not in (corp.access(MIXED) or ("", ()))[1])
    others = [
        e
        for e, (role, held) in corp.all_access().items()
        if role == "user" and site not in held and e != MIXED
    ][:2]
    tasks = [_request(known, corp, "add_access", site=site)]
    for email in others:
        built = build_params(known, corp.endpoint, "add_access", site=site)
        tasks.append(
            known.tasks.create(
                corp.endpoint, "add_access", email, built, requester="a", justification="b"
            )
        )
    corp.runtime.calls.reset()

    corp.work(known)

    assert [known.tasks.get(t.id).state for t in tasks] == ["completed"] * 3
    assert writes(corp.runtime.calls.snapshot()) == {"POST /corps/{corp}/sites/{site}/members": 1}
    assert all(site in (corp.access(e) or ("", ()))[1] for e in [MIXED, *others])


def test_a_joiner_request_for_an_existing_mixed_case_user_converges_instead_of_inviting(
    known: Repository, corp: Corp
) -> None:
    sites = sorted(corp.sites()[2:4])
    task = _request(known, corp, "create_account", role="observer", sites=sites)

    corp.work(known)

    assert known.tasks.get(task.id).state == "completed"
    assert "POST /corps/{corp}/users/{email}/invite" not in corp.runtime.calls.snapshot()
    assert corp.access(MIXED) == ("observer", tuple(sorted({*corp.sites()[:2], *sites})))


def test_a_user_gone_from_the_server_is_confirmed_absent_with_one_users_list_read(
    known: Repository, corp: Corp
) -> None:
    corp.state.remove_user(MIXED)
    task = _request(known, corp, "remove_account")
    corp.runtime.calls.reset()

    corp.work(known)

    assert known.tasks.get(task.id).state == "no_action_required"
    assert corp.runtime.calls.snapshot() == {USER_GET: 1, USERS_LIST: 1}
