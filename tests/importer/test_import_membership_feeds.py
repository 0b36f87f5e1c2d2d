"""Membership changes reach the repository whichever activity feed carries them.

The simulator's `membership_events` switch puts userAddedToSite/userRemovedFromSite on the corp
feed, on the site's feed, or on both; the endpoint learns which, and reads site feeds until then.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from import_harness import SimCorp, assert_matches_sim, options

from sigsci_iga.sim import FaultKind
from sigsci_iga.store import Repository

ACTIVITY = "GET /corps/{corp}/activity"
SITE_FEED = "GET /corps/{corp}/sites/{site}/activity"
USER = "GET /corps/{corp}/users/{email}"
SITE = "GET /corps/{corp}/sites/{site}"
SITES = 8


def _corp(where: str) -> SimCorp:
    return SimCorp.create(users=40, sites=SITES, seed=11, membership_events=where)


def _minutes_later(minutes: float) -> Callable[[], datetime]:
    """An importer clock ahead of the simulator's: the feed's events are that much older."""
    return lambda: datetime.now(UTC) + timedelta(minutes=minutes)


def _move_someone(corp: SimCorp) -> str:
    """Add a member to a site and remove it from another: membership events only."""
    state = corp.state
    member = next(u for u in state.users.values() if u.role == "user" and len(u.sites) >= 2)
    state.add_membership(member.email, next(s for s in state.sites if s not in member.sites))
    state.remove_membership(member.email, sorted(member.sites)[0])
    return member.email


def _learned(repo: Repository, endpoint: str) -> str | None:
    return repo.endpoints.get(endpoint).checkpoint.membership_feed


@pytest.mark.parametrize("where", ["corp", "both"])
def test_a_corp_feed_with_membership_events_is_learned_at_once_and_read_alone(
    sqlite_repo: Repository, where: str
) -> None:
    corp = _corp(where)
    endpoint = corp.register(sqlite_repo)
    corp.run(sqlite_repo, opts=options(mode="full")).ok()
    assert _learned(sqlite_repo, endpoint) is None
    _move_someone(corp)

    outcome = corp.run(sqlite_repo, opts=options())

    result = outcome.ok()
    assert (result.mode, result.site_feeds_read) == ("incremental", 0)
    assert outcome.sim_calls == {ACTIVITY: 1, USER: 1}
    assert _learned(sqlite_repo, endpoint) == "corp"
    assert_matches_sim(sqlite_repo, endpoint, corp)


def test_membership_events_only_on_site_feeds_are_found_by_reading_every_governed_site(
    sqlite_repo: Repository,
) -> None:
    corp = _corp("site")
    endpoint = corp.register(sqlite_repo)
    corp.run(sqlite_repo, opts=options(mode="full")).ok()
    moved = _move_someone(corp)

    outcome = corp.run(sqlite_repo, opts=options(), clock=_minutes_later(10))

    result = outcome.ok()
    assert (result.mode, result.site_feeds_read, result.accounts_read) == ("incremental", SITES, 1)
    assert outcome.sim_calls == {ACTIVITY: 1, SITE_FEED: SITES, USER: 1}
    assert moved in {a.email for a in sqlite_repo.inventory.accounts(endpoint)}
    assert _learned(sqlite_repo, endpoint) == "sites"
    assert_matches_sim(sqlite_repo, endpoint, corp)


def test_once_learned_site_only_every_incremental_reads_each_governed_sites_feed(
    sqlite_repo: Repository,
) -> None:
    corp = _corp("site")
    endpoint = corp.register(sqlite_repo)
    corp.run(sqlite_repo, opts=options(mode="full")).ok()
    _move_someone(corp)
    corp.run(sqlite_repo, opts=options(), clock=_minutes_later(10)).ok()
    corp.run(sqlite_repo, opts=options(mode="full")).ok()  # keeps what was learned
    assert _learned(sqlite_repo, endpoint) == "sites"
    _move_someone(corp)

    outcome = corp.run(sqlite_repo, opts=options())

    assert outcome.ok().site_feeds_read == SITES
    assert outcome.sim_calls == {ACTIVITY: 1, SITE_FEED: SITES, USER: 1}
    assert _learned(sqlite_repo, endpoint) == "sites"
    assert_matches_sim(sqlite_repo, endpoint, corp)


def test_a_fresh_site_only_event_is_not_yet_taken_as_proof_the_corp_feed_lacks_them(
    sqlite_repo: Repository,
) -> None:
    corp = _corp("site")
    endpoint = corp.register(sqlite_repo)
    corp.run(sqlite_repo, opts=options(mode="full")).ok()
    _move_someone(corp)

    outcome = corp.run(sqlite_repo, opts=options())

    # Written moments before the corp feed was read, it might have been missed by a race.
    assert outcome.ok().site_feeds_read == SITES
    assert _learned(sqlite_repo, endpoint) is None
    assert_matches_sim(sqlite_repo, endpoint, corp)


def test_a_site_created_in_the_window_has_its_own_feed_read_and_a_deleted_one_does_not(
    sqlite_repo: Repository,
) -> None:
    corp = _corp("site")
    endpoint = corp.register(sqlite_repo)
    corp.run(sqlite_repo, opts=options(mode="full")).ok()
    state = corp.state
    doomed = sorted(state.sites)[0]
    state.remove_site(doomed)
    state.add_site("fresh.example.com")
    joiner = next(u.email for u in state.users.values() if u.role == "observer")
    state.add_membership(joiner, "fresh.example.com")

    outcome = corp.run(sqlite_repo, opts=options())

    result = outcome.ok()
    assert result.site_feeds_read == SITES  # 8 governed - 1 deleted + 1 created
    assert outcome.sim_calls[SITE_FEED] == SITES
    assert "fresh.example.com" in sqlite_repo.inventory.account(endpoint, joiner).sites
    assert_matches_sim(sqlite_repo, endpoint, corp)


def test_a_site_deleted_and_created_again_in_the_window_has_its_new_feed_read(
    sqlite_repo: Repository,
) -> None:
    corp = _corp("site")
    endpoint = corp.register(sqlite_repo)
    corp.run(sqlite_repo, opts=options(mode="full")).ok()
    state = corp.state
    site = sorted(state.sites)[2]
    state.remove_site(site)
    state.add_site(site)
    joiner = next(u.email for u in state.users.values() if u.role == "user")
    state.add_membership(joiner, site)

    outcome = corp.run(sqlite_repo, opts=options())

    assert outcome.ok().site_feeds_read == SITES
    assert site in sqlite_repo.inventory.account(endpoint, joiner).sites
    assert_matches_sim(sqlite_repo, endpoint, corp)


def test_a_site_created_and_deleted_in_the_window_costs_a_not_found_but_no_full_import(
    sqlite_repo: Repository,
) -> None:
    corp = _corp("site")
    endpoint = corp.register(sqlite_repo)
    corp.run(sqlite_repo, opts=options(mode="full")).ok()
    state = corp.state
    state.add_site("brief.example.com")
    state.add_membership(
        next(u.email for u in state.users.values() if u.role == "user"), "brief.example.com"
    )
    state.remove_site("brief.example.com")

    outcome = corp.run(sqlite_repo, opts=options())

    result = outcome.ok()
    assert (result.mode, result.site_feeds_read) == ("incremental", SITES + 1)
    assert "brief.example.com" not in {
        e.value for e in sqlite_repo.inventory.entitlements(endpoint)
    }
    assert_matches_sim(sqlite_repo, endpoint, corp)


def test_a_site_feed_that_cannot_be_read_falls_back_to_a_full_import(
    sqlite_repo: Repository,
) -> None:
    corp = _corp("site")
    endpoint = corp.register(sqlite_repo)
    corp.run(sqlite_repo, opts=options(mode="full")).ok()
    _move_someone(corp)
    site = sorted(corp.state.sites)[3]
    corp.add_fault(kind=FaultKind.ERROR_500, path=f"/sites/{site}/activity$")

    outcome = corp.run(sqlite_repo, opts=options(), read_attempts=2)

    result = outcome.ok()
    assert result.mode == "full"
    assert "activity feed unavailable" in (result.fallback_reason or "")
    assert [r.mode for r in sqlite_repo.runs.list(endpoint)] == ["full", "full"]
    assert_matches_sim(sqlite_repo, endpoint, corp)


def test_events_on_both_feeds_are_counted_once(sqlite_repo: Repository) -> None:
    corp = _corp("both")
    endpoint = corp.register(sqlite_repo)
    corp.run(sqlite_repo, opts=options(mode="full")).ok()
    corp.state.add_site("fresh.example.com")  # no membership event: site feeds are read
    member = next(u.email for u in corp.state.users.values() if u.role == "user")
    state = corp.state
    # A role change and a site event: the corp feed has no membership event to learn from.
    state.change_role(member, "admin")

    outcome = corp.run(sqlite_repo, opts=options())

    result = outcome.ok()
    assert result.site_feeds_read == SITES + 1
    assert result.events_read == 2  # newSite (also on its site's feed) and userUpdated, once each
    assert _learned(sqlite_repo, endpoint) is None
    assert SITE in outcome.sim_calls
    assert_matches_sim(sqlite_repo, endpoint, corp)
