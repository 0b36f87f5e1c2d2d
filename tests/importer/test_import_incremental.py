"""Incremental imports: re-read only what the activity feed names, land where a full import would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from import_harness import SimCorp, assert_matches_sim, options, state_of

from sigsci_iga.sim import FaultKind
from sigsci_iga.store import Repository

ACTIVITY = "GET /corps/{corp}/activity"
USER = "GET /corps/{corp}/users/{email}"
SITE = "GET /corps/{corp}/sites/{site}"
SITE_FEED = "GET /corps/{corp}/sites/{site}/activity"


def _both(corp: SimCorp, repo: Repository) -> tuple[str, str]:
    """Two endpoints for the same corp: `inc` gets incremental runs, `full` full ones."""
    inc = corp.register(repo, "inc")
    full = corp.register(repo, "full")
    corp.run(repo, inc, options(mode="full")).ok()
    corp.run(repo, full, options(mode="full")).ok()
    return inc, full


def _user_changes(corp: SimCorp) -> set[str]:
    """A handful of user-level changes; returns the emails they touch."""
    state = corp.state
    users = list(state.users.values())
    pending = next(u.email for u in users if u.status != "active")
    member = next(u for u in users if u.role == "user" and len(u.sites) >= 2)
    other = next(u for u in users if u.role == "observer" and u.email != member.email)
    leaver = next(u.email for u in users if u.role == "admin")
    new_site = next(s for s in state.sites if s not in member.sites)
    state.invite_user("fresh@example.com", "observer", [new_site])
    state.remove_user(leaver)
    state.change_role(other.email, "user")
    state.add_membership(member.email, new_site)
    state.remove_membership(member.email, sorted(member.sites)[0])
    state.register(pending)
    return {"fresh@example.com", leaver, other.email, member.email, pending}


def test_an_incremental_import_re_reads_only_the_users_the_feed_names(
    repo: Repository, corp: SimCorp
) -> None:
    inc, full = _both(corp, repo)
    touched = _user_changes(corp)

    outcome = corp.run(repo, inc, options())

    result = outcome.ok()
    assert (result.mode, result.fallback_reason) == ("incremental", None)
    assert outcome.sim_calls == {ACTIVITY: 1, USER: len(touched)}
    assert outcome.total_client_calls == 1 + len(touched)
    assert result.accounts_read == len(touched)  # the removed user counts, read as gone
    corp.run(repo, full, options(mode="full")).ok()
    assert state_of(repo, inc) == state_of(repo, full)
    assert_matches_sim(repo, inc, corp)


def test_an_incremental_import_re_reads_a_new_site_and_the_owners_who_hold_it_implicitly(
    repo: Repository, corp: SimCorp
) -> None:
    inc, full = _both(corp, repo)
    owners = corp.state.owners()
    corp.state.add_site("brand-new.example.com", "Brand New")

    outcome = corp.run(repo, inc, options())

    outcome.ok()
    # No membership event has shown which feeds carry them yet: the feeds of the 8 governed
    # sites and of the new one are read as well.
    assert outcome.sim_calls == {ACTIVITY: 1, SITE_FEED: 9, SITE: 1, USER: len(owners)}
    for owner in owners:
        assert "brand-new.example.com" in repo.inventory.account(inc, owner).sites
    corp.run(repo, full, options(mode="full")).ok()
    assert state_of(repo, inc) == state_of(repo, full)
    assert_matches_sim(repo, inc, corp)


def test_an_incremental_import_inactivates_a_deleted_site_and_drops_every_link_to_it(
    sqlite_repo: Repository, corp: SimCorp
) -> None:
    inc, full = _both(corp, sqlite_repo)
    doomed = next(iter(corp.state.sites))
    corp.state.remove_site(doomed)

    outcome = corp.run(sqlite_repo, inc, options())

    outcome.ok()
    # Site feeds too (membership events not seen yet), but not the deleted site's.
    assert outcome.sim_calls == {ACTIVITY: 1, SITE_FEED: 7, SITE: 1}
    assert [
        e.status for e in sqlite_repo.inventory.entitlements(inc, type="Site") if e.value == doomed
    ] == ["inactive"]
    corp.run(sqlite_repo, full, options(mode="full")).ok()
    assert state_of(sqlite_repo, inc) == state_of(sqlite_repo, full)


def test_a_site_deleted_and_recreated_between_runs_loses_its_old_members(
    sqlite_repo: Repository, corp: SimCorp
) -> None:
    inc, full = _both(corp, sqlite_repo)
    site = next(iter(corp.state.sites))
    old_members = set(corp.state.sites[site].members)
    kept = sorted(old_members)[0]
    corp.state.remove_site(site)
    corp.state.add_site(site)
    corp.state.add_membership(kept, site)

    corp.run(sqlite_repo, inc, options()).ok()

    holders = {a.email for a in sqlite_repo.inventory.accounts(inc, site=site)}
    assert holders == {kept, *corp.state.owners()}
    corp.run(sqlite_repo, full, options(mode="full")).ok()
    assert state_of(sqlite_repo, inc) == state_of(sqlite_repo, full)
    assert_matches_sim(sqlite_repo, inc, corp)


def test_an_incremental_import_with_nothing_new_only_reads_the_feed(
    sqlite_repo: Repository, corp: SimCorp
) -> None:
    endpoint = corp.register(sqlite_repo)
    corp.run(sqlite_repo, opts=options(mode="full")).ok()
    member = next(u for u in corp.state.users.values() if u.role == "user")
    corp.state.add_membership(
        member.email, next(s for s in corp.state.sites if s not in member.sites)
    )
    corp.run(sqlite_repo, opts=options()).ok()
    before = state_of(sqlite_repo, endpoint)

    outcome = corp.run(sqlite_repo, opts=options())

    assert outcome.ok().diff.is_empty
    # Events still inside the overlap window are recognised by id and not re-read, and the corp
    # feed, known to carry membership events since the last run, is the only feed read.
    assert outcome.sim_calls == {ACTIVITY: 1}
    assert state_of(sqlite_repo, endpoint) == before


def test_without_a_checkpoint_an_incremental_request_runs_a_full_import(
    sqlite_repo: Repository, corp: SimCorp
) -> None:
    endpoint = corp.register(sqlite_repo)

    outcome = corp.run(sqlite_repo, opts=options(mode="incremental"))

    result = outcome.ok()
    assert result.mode == "full"
    assert "no checkpoint" in (result.fallback_reason or "")
    assert ACTIVITY not in outcome.sim_calls
    assert sqlite_repo.runs.list(endpoint)[0].mode == "full"
    assert_matches_sim(sqlite_repo, endpoint, corp)


@pytest.mark.parametrize(("days", "mode"), [(31, "full"), (29, "incremental")])
def test_a_checkpoint_older_than_the_feeds_30_days_forces_a_full_import(
    sqlite_repo: Repository, corp: SimCorp, days: int, mode: str
) -> None:
    endpoint = corp.register(sqlite_repo)
    corp.run(sqlite_repo, opts=options(mode="full")).ok()
    corp.state.advance_clock(timedelta(days=days).total_seconds())
    corp.state.change_role(
        next(u.email for u in corp.state.users.values() if u.role == "user"), "admin"
    )
    later = datetime.now(UTC) + timedelta(days=days)

    outcome = corp.run(sqlite_repo, opts=options(), clock=lambda: later)

    result = outcome.ok()
    assert result.mode == mode
    if mode == "full":
        assert "30-day" in (result.fallback_reason or "")
        assert ACTIVITY not in outcome.sim_calls
    else:
        # A role change is no membership event: the 8 site feeds are read as well.
        assert outcome.sim_calls == {ACTIVITY: 1, SITE_FEED: 8, USER: 1}
    assert_matches_sim(sqlite_repo, endpoint, corp)


def test_an_unreadable_activity_feed_falls_back_to_a_full_import(
    repo: Repository, corp: SimCorp
) -> None:
    endpoint = corp.register(repo)
    corp.run(repo, opts=options(mode="full")).ok()
    _user_changes(corp)
    corp.add_fault(kind=FaultKind.ERROR_500, path="/activity$")

    outcome = corp.run(repo, opts=options(), read_attempts=2)

    result = outcome.ok()
    assert result.mode == "full"
    assert "activity feed unavailable" in (result.fallback_reason or "")
    assert outcome.sim_calls[ACTIVITY] == 2
    assert [r.mode for r in repo.runs.list(endpoint)] == ["full", "full"]
    assert_matches_sim(repo, endpoint, corp)


def test_a_series_of_incremental_imports_keeps_matching_the_simulator(
    sqlite_repo: Repository, corp: SimCorp
) -> None:
    endpoint = corp.register(sqlite_repo)
    corp.run(sqlite_repo, opts=options(mode="full")).ok()
    state = corp.state
    sites = list(state.sites)
    for step in range(4):
        state.invite_user(f"wave{step}@example.com", "user", sites[step : step + 2])
        if step:
            state.register(f"wave{step - 1}@example.com")
        state.add_site(f"wave{step}.example.com")
        result = corp.run(sqlite_repo, opts=options()).ok()
        assert result.mode == "incremental"
        assert_matches_sim(sqlite_repo, endpoint, corp)
