"""Imports keep a user the server stores as `Mixed.Case@corp.example` active and current."""

from __future__ import annotations

import pytest
from import_harness import SimCorp, assert_matches_sim, options, suspended_emails

from sigsci_iga.domain.model import SERVER_EMAIL
from sigsci_iga.store import Repository

MIXED = "Mixed.Case@corp.example"
KEY = MIXED.lower()
USER = "GET /corps/{corp}/users/{email}"
ACTIVITY = "GET /corps/{corp}/activity"


@pytest.fixture(params=["sensitive", "insensitive"])
def mixed(request: pytest.FixtureRequest) -> SimCorp:
    corp = SimCorp.create(users=20, sites=5, seed=4, email_matching=request.param)
    corp.state.add_user(MIXED, "user", sorted(corp.state.sites)[:2], name="Mixed Case")
    return corp


def test_a_full_import_keys_the_account_lower_cased_and_records_the_servers_spelling(
    repo: Repository, mixed: SimCorp
) -> None:
    endpoint = mixed.register(repo)

    mixed.run(repo, opts=options(mode="full")).ok()

    held = repo.inventory.find_account(endpoint, KEY)
    assert held is not None
    assert (held.email, held.status, held.extra[SERVER_EMAIL]) == (KEY, "active", MIXED)
    lower = repo.inventory.find_account(endpoint, "owner@testcorp.example")
    assert lower is not None
    assert SERVER_EMAIL not in lower.extra  # only recorded where the case differs
    assert_matches_sim(repo, endpoint, mixed)


def test_an_incremental_import_re_reads_the_mixed_case_user_by_its_own_spelling(
    repo: Repository, mixed: SimCorp
) -> None:
    endpoint = mixed.register(repo)
    mixed.run(repo, opts=options(mode="full")).ok()
    state = mixed.state
    state.add_membership(MIXED, sorted(state.sites)[3])
    state.change_role(MIXED, "admin")

    outcome = mixed.run(repo, opts=options())

    result = outcome.ok()
    assert (result.mode, result.accounts_read) == ("incremental", 1)
    assert outcome.sim_calls == {ACTIVITY: 1, USER: 1}  # no users-list check was needed
    assert suspended_emails(repo, endpoint) == set()
    assert_matches_sim(repo, endpoint, mixed)


def test_an_incremental_import_suspends_the_mixed_case_user_once_the_server_removed_it(
    repo: Repository, mixed: SimCorp
) -> None:
    endpoint = mixed.register(repo)
    mixed.run(repo, opts=options(mode="full")).ok()
    mixed.state.remove_user(MIXED)

    outcome = mixed.run(repo, opts=options())

    assert outcome.ok().mode == "incremental"
    assert outcome.sim_calls == {ACTIVITY: 1, USER: 1}
    assert suspended_emails(repo, endpoint) == {KEY}
    assert_matches_sim(repo, endpoint, mixed)


def test_a_stale_spelling_is_checked_in_the_users_list_before_anything_is_concluded(
    repo: Repository, mixed: SimCorp
) -> None:
    endpoint = mixed.register(repo)
    mixed.run(repo, opts=options(mode="full")).ok()
    state = mixed.state
    owners = [u.email for u in state.users.values() if u.role == "owner"]
    respelled = next(e for e in owners if e != "owner@testcorp.example")
    state.respell(respelled, respelled.upper())
    state.add_site("new.site")  # no event names the owners: they are re-read as last seen

    outcome = mixed.run(repo, opts=options())

    assert outcome.ok().mode == "incremental"
    exact = mixed.state.config.email_matching == "sensitive"
    assert outcome.sim_calls.get("GET /corps/{corp}/users", 0) == (1 if exact else 0)
    # The owners, and the mixed-case user its own events (within the overlap) name.
    assert outcome.sim_calls[USER] == len(owners) + 1
    assert suspended_emails(repo, endpoint) == set()
    held = repo.inventory.find_account(endpoint, respelled)
    assert held is not None
    assert held.extra[SERVER_EMAIL] == respelled.upper()
    assert_matches_sim(repo, endpoint, mixed)
