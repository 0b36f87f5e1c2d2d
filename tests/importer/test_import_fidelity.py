"""The product against every server behaviour the reference leaves open, in every combination.

Each case runs a full import, an incremental import after out-of-band changes (users added and
removed, memberships added and removed, a mixed-case user), provisioning through the worker,
and imports after it, against a simulator switched to one combination of:

* membership events on the corp feed, the site feeds, or both;
* emails in paths matched exactly, or ignoring case;
* the sites list's `limit` honoured, or silently capped at 4;
* an unknown user answered 400 `ID not found`, or 404;
* the sites list as `{"data": [...]}` only, or with `totalCount` and `next` links.

That is the full product, 3 x 2 x 2 x 2 x 2 = 48 cases, on SQLite (about half a second each).
After every step the repository must equal the simulator's own records.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from import_harness import SimCorp, assert_matches_sim, options

from sigsci_iga.connectors.signalsciences.connector import SignalSciencesConnector
from sigsci_iga.provisioning.requests import build_params
from sigsci_iga.provisioning.worker import Worker, WorkerOptions
from sigsci_iga.store import Repository

MIXED = "Mixed.Case@corp.example"
LATE = "Late.Joiner@corp.example"
NEW = "new.hire@corp.example"
SITES = 9
FAST = WorkerOptions(retry_base_seconds=0.01, retry_max_seconds=0.05, throttle_wait_seconds=0.01)

FEEDS = ["corp", "site", "both"]
MATCHING = ["sensitive", "insensitive"]
CAPS = [None, 4]
NOT_FOUND = [400, 404]
ENVELOPES = {"data": {}, "paged": {"sites_total_count": True, "sites_next_links": True}}


def _later(minutes: float) -> Callable[[], datetime]:
    return lambda: datetime.now(UTC) + timedelta(minutes=minutes)


def _work(corp: SimCorp, repo: Repository, endpoint: str) -> None:
    async def main() -> None:
        async with corp.client() as client:
            worker = Worker(repo, endpoint, SignalSciencesConnector(client), options=FAST)
            await worker.run(until_done=True, max_wait_seconds=5)

    asyncio.run(main())


def _queue(repo: Repository, endpoint: str, operation: str, email: str, **params: Any) -> int:
    built = build_params(repo, endpoint, operation, **params)  # type: ignore[arg-type]
    task = repo.tasks.create(
        endpoint, operation, email, built, requester="fidelity", justification="matrix"
    )
    return task.id


def _access(corp: SimCorp, email: str) -> tuple[str, list[str]] | None:
    user = corp.state.get_user(email)
    return None if user is None else (user.role, sorted(user.sites))


@pytest.mark.parametrize("envelope", list(ENVELOPES))
@pytest.mark.parametrize("not_found", NOT_FOUND)
@pytest.mark.parametrize("cap", CAPS, ids=["uncapped", "capped"])
@pytest.mark.parametrize("matching", MATCHING)
@pytest.mark.parametrize("feed", FEEDS)
def test_the_repository_equals_the_simulator_through_imports_and_provisioning(
    sqlite_repo: Repository,
    feed: str,
    matching: str,
    cap: int | None,
    not_found: int,
    envelope: str,
) -> None:
    corp = SimCorp.create(
        users=24,
        sites=SITES,
        seed=21,
        pending_share=0.1,
        membership_events=feed,
        email_matching=matching,
        site_page_max_limit=cap or 1000,
        not_found_status=not_found,
        **ENVELOPES[envelope],
    )
    state = corp.state
    sites = sorted(state.sites)
    state.add_user(MIXED, "user", sites[:3], name="Mixed Case")
    endpoint = corp.register(sqlite_repo)

    # 1. A full import reads every site however the list is paged and capped.
    full = corp.run(sqlite_repo, opts=options(mode="full")).ok()
    assert full.sites_read == SITES
    assert_matches_sim(sqlite_repo, endpoint, corp)

    # 2. Out-of-band changes, then an incremental import finds them on whichever feed.
    users = [u for u in state.users.values() if u.role == "user" and u.email != MIXED]
    leaver, mover = users[0].email, next(u for u in users[1:] if len(u.sites) >= 2)
    state.remove_user(leaver)
    state.add_membership(mover.email, next(s for s in sites if s not in mover.sites))
    state.remove_membership(mover.email, sorted(mover.sites)[0])
    state.add_user(LATE, "observer", [sites[3]])
    state.add_membership(MIXED, sites[4])
    state.remove_membership(MIXED, sites[0])

    incremental = corp.run(sqlite_repo, opts=options(), clock=_later(10)).ok()
    assert incremental.mode == "incremental"
    assert incremental.site_feeds_read == (SITES if feed == "site" else 0)
    learned = sqlite_repo.endpoints.get(endpoint).checkpoint.membership_feed
    assert learned == ("sites" if feed == "site" else "corp")
    assert_matches_sim(sqlite_repo, endpoint, corp)

    # 3. Provisioning names every user as the server spells it.
    gone = next(u.email for u in state.users.values() if u.role == "observer" and u.sites)
    tasks = [
        _queue(sqlite_repo, endpoint, "add_access", MIXED.lower(), site=sites[5]),
        _queue(sqlite_repo, endpoint, "remove_access", MIXED.lower(), site=sites[1]),
        _queue(sqlite_repo, endpoint, "update_account", LATE.lower(), role="user"),
        _queue(sqlite_repo, endpoint, "remove_account", gone),
        _queue(sqlite_repo, endpoint, "create_account", NEW, role="user", sites=[sites[6]]),
    ]
    _work(corp, sqlite_repo, endpoint)

    assert [sqlite_repo.tasks.get(t).state for t in tasks] == ["completed"] * len(tasks)
    assert _access(corp, MIXED) == ("user", [sites[2], sites[4], sites[5]])
    assert _access(corp, LATE) == ("user", [sites[3]])
    assert _access(corp, gone) is None
    assert _access(corp, NEW) == ("user", [sites[6]])
    assert_matches_sim(sqlite_repo, endpoint, corp)

    # 4. The imports that follow find nothing the worker did not already record.
    after = corp.run(sqlite_repo, opts=options()).ok()
    assert (after.mode, after.diff.is_empty) == ("incremental", True), after.diff.summary()
    again = corp.run(sqlite_repo, opts=options(mode="full")).ok()
    assert again.diff.is_empty, again.diff.summary()
    assert_matches_sim(sqlite_repo, endpoint, corp)
