"""Full imports against the simulator: the repository ends up holding exactly the corp."""

from __future__ import annotations

import math

import pytest
from import_harness import (
    SimCorp,
    actual_sites,
    assert_matches_sim,
    options,
    state_of,
    suspended_emails,
)

from sigsci_iga.errors import ConfigError
from sigsci_iga.sim import FaultKind, serve_in_thread
from sigsci_iga.store import Repository

USERS = "GET /corps/{corp}/users"
SITES = "GET /corps/{corp}/sites"


def test_a_full_import_stores_exactly_the_simulators_users_sites_and_roles(
    repo: Repository, corp: SimCorp
) -> None:
    endpoint = corp.register(repo)

    result = corp.run(repo, opts=options(mode="full")).ok()

    assert (result.mode, result.run.status) == ("full", "succeeded")
    assert (result.accounts_read, result.sites_read) == (40, 8)
    assert_matches_sim(repo, endpoint, corp)
    # The seeded corp has owners, pending invitees and every role, so none of that is vacuous.
    statuses = {a.status for a in repo.inventory.accounts(endpoint)}
    assert statuses == {"active", "pending"}
    assert set(corp.expected_roles()) == {"owner", "admin", "user", "observer"}
    assert repo.endpoints.get(endpoint).checkpoint.last_activity is not None


@pytest.mark.parametrize(("sites", "page_size"), [(8, 3), (9, 3), (8, 100), (1, 1)])
def test_a_full_import_costs_one_users_call_plus_one_call_per_page_of_sites_given_a_total(
    sqlite_repo: Repository, sites: int, page_size: int
) -> None:
    corp = SimCorp.create(
        users=12, sites=sites, seed=3, sites_total_count=True, sites_next_links=True
    )
    corp.site_page_size = page_size
    corp.register(sqlite_repo)

    outcome = corp.run(sqlite_repo, opts=options(mode="full"))

    outcome.ok()
    expected = 1 + math.ceil(sites / page_size)
    assert outcome.total_sim_calls == expected
    assert outcome.total_client_calls == expected
    assert outcome.sim_calls == {USERS: 1, SITES: expected - 1}
    assert_matches_sim(sqlite_repo, corp.corp, corp)


@pytest.mark.parametrize(
    ("sites", "page_size", "cap"), [(8, 3, None), (9, 3, None), (8, 100, None), (12, 100, 5)]
)
def test_a_full_import_of_a_data_only_sites_list_costs_one_call_more_for_the_empty_last_page(
    sqlite_repo: Repository, sites: int, page_size: int, cap: int | None
) -> None:
    corp = SimCorp.create(users=12, sites=sites, seed=3, site_page_max_limit=cap or 1000)
    corp.site_page_size = page_size
    corp.register(sqlite_repo)

    outcome = corp.run(sqlite_repo, opts=options(mode="full"))

    result = outcome.ok()
    expected = 2 + math.ceil(sites / min(page_size, cap or page_size))
    assert outcome.total_sim_calls == outcome.total_client_calls == expected
    assert outcome.sim_calls == {USERS: 1, SITES: expected - 1}
    assert result.sites_read == sites
    assert_matches_sim(sqlite_repo, corp.corp, corp)


@pytest.mark.parametrize(
    "envelope",
    [{}, {"sites_total_count": True}, {"sites_next_links": True}],
    ids=["data only", "totalCount", "next links"],
)
def test_a_server_that_silently_caps_the_site_limit_loses_no_site_in_a_full_import(
    sqlite_repo: Repository, envelope: dict[str, bool]
) -> None:
    corp = SimCorp.create(users=12, sites=23, seed=3, site_page_max_limit=4, **envelope)
    corp.register(sqlite_repo)
    corp.run(sqlite_repo, opts=options(mode="full")).ok()
    gone = sorted(corp.state.sites)[-1]
    corp.state.remove_site(gone)

    result = corp.run(sqlite_repo, opts=options(mode="full")).ok()

    assert result.sites_read == 22
    assert result.diff.summary()["Site"]["inactivated"] == 1
    assert set(actual_sites(sqlite_repo, corp.corp, status="inactive")) == {gone}
    assert_matches_sim(sqlite_repo, corp.corp, corp)


def test_changes_made_in_the_simulator_between_full_imports_reach_the_repository(
    repo: Repository, corp: SimCorp
) -> None:
    endpoint = corp.register(repo)
    corp.run(repo, opts=options(mode="full")).ok()
    state = corp.state
    users = list(state.users.values())
    pending = next(u.email for u in users if u.status != "active")
    member = next(u for u in users if u.role == "user" and u.sites)
    outsider_site = next(s for s in state.sites if s not in member.sites)
    dropped_site = sorted(member.sites)[0]
    demoted = next(u.email for u in users if u.role == "admin")
    removed = next(
        u.email for u in users if u.role == "observer" and u.email != member.email and u.sites
    )
    doomed_site = next(s for s in state.sites if s not in (outsider_site, dropped_site))
    doomed_display = state.sites[doomed_site].display_name

    state.invite_user("newcomer@example.com", "user", [outsider_site])
    state.remove_user(removed)
    state.change_role(demoted, "observer")
    state.add_membership(member.email, outsider_site)
    state.remove_membership(member.email, dropped_site)
    state.remove_site(doomed_site)
    state.add_site("fresh.example.com", "Fresh Site")
    state.register(pending, "Now Registered")

    result = corp.run(repo, opts=options(mode="full")).ok()

    assert result.run.status == "succeeded"
    assert_matches_sim(repo, endpoint, corp)
    assert suspended_emails(repo, endpoint) == {removed}
    gone = repo.inventory.account(endpoint, removed)
    assert (gone.status, gone.sites) == ("suspended", [])
    assert actual_sites(repo, endpoint, status="inactive") == {doomed_site: (doomed_display, 0)}
    assert repo.inventory.account(endpoint, pending).to_json()["status"] == "active"
    assert repo.inventory.account(endpoint, "newcomer@example.com").status == "pending"
    summary = result.diff.summary()
    assert summary["accounts"] == {"added": 1, "changed": 2, "suspended": 1, "reactivated": 0}
    assert summary["Site"]["added"] == 1
    assert summary["Site"]["inactivated"] == 1


def test_a_removed_user_who_comes_back_is_reactivated(
    sqlite_repo: Repository, corp: SimCorp
) -> None:
    endpoint = corp.register(sqlite_repo)
    corp.run(sqlite_repo, opts=options(mode="full")).ok()
    leaver = next(u for u in corp.state.users.values() if u.role == "user" and u.sites)
    corp.state.remove_user(leaver.email)
    corp.run(sqlite_repo, opts=options(mode="full")).ok()
    assert suspended_emails(sqlite_repo, endpoint) == {leaver.email}

    corp.state.invite_user(leaver.email, "admin", [next(iter(corp.state.sites))])
    result = corp.run(sqlite_repo, opts=options(mode="full")).ok()

    assert result.diff.summary()["accounts"]["reactivated"] == 1
    assert suspended_emails(sqlite_repo, endpoint) == set()
    assert_matches_sim(sqlite_repo, endpoint, corp)


def test_a_second_full_import_of_an_unchanged_corp_changes_nothing(
    sqlite_repo: Repository, corp: SimCorp
) -> None:
    endpoint = corp.register(sqlite_repo)
    corp.run(sqlite_repo, opts=options(mode="full")).ok()
    before = state_of(sqlite_repo, endpoint)

    result = corp.run(sqlite_repo, opts=options(mode="full")).ok()

    assert result.diff.is_empty
    assert state_of(sqlite_repo, endpoint) == before


def test_a_read_glitch_the_client_retries_away_changes_nothing_about_the_import(
    sqlite_repo: Repository, corp: SimCorp
) -> None:
    corp.site_page_size = 3
    endpoint = corp.register(sqlite_repo)
    corp.add_fault(kind=FaultKind.ERROR_500, path="/sites$", count=1)
    corp.add_fault(kind=FaultKind.TRUNCATE, path="/users$", count=1)

    outcome = corp.run(sqlite_repo, opts=options(mode="full"))

    assert outcome.ok().run.status == "succeeded"
    # 8 sites in pages of 3 and the empty page that ends a data-only list; a retry per glitch.
    assert outcome.total_client_calls == 1 + 4 + 2
    assert_matches_sim(sqlite_repo, endpoint, corp)


def test_a_full_import_over_a_real_loopback_server_matches_the_simulator(
    repo: Repository, corp: SimCorp
) -> None:
    with serve_in_thread(corp.app) as base_url:
        corp.base_url = base_url
        corp.inprocess = False
        corp.site_page_size = 5
        endpoint = corp.register(repo)

        outcome = corp.run(repo, opts=options(mode="full"))
        outcome.ok()
        corp.state.add_user("late@example.com", "admin", [next(iter(corp.state.sites))])
        incremental = corp.run(repo, opts=options()).ok()

    assert outcome.total_sim_calls == 1 + 3  # pages of 5, 3 and the empty one that ends the list
    assert (incremental.mode, incremental.accounts_read) == ("incremental", 1)
    assert_matches_sim(repo, endpoint, corp)


def test_an_unknown_correlation_rule_stops_the_import_before_anything_is_read(
    sqlite_repo: Repository, corp: SimCorp
) -> None:
    endpoint = corp.register(sqlite_repo)

    outcome = corp.run(sqlite_repo, opts=options(mode="full", correlation_rule="nickname"))

    assert isinstance(outcome.error, ConfigError)
    assert "nickname" in str(outcome.error)
    assert sum(outcome.client_calls.values()) == 0
    assert sqlite_repo.runs.list(endpoint) == []
