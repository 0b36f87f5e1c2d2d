"""A glitch the client cannot retry away fails the run and leaves the repository untouched."""

from __future__ import annotations

from typing import Any

import pytest
from import_harness import (
    SimCorp,
    assert_matches_sim,
    fault_after_first_sites_page,
    full_dump,
    options,
)

from sigsci_iga.errors import SigsciIgaError
from sigsci_iga.sim import FaultKind, FaultRule
from sigsci_iga.store import Repository

GLITCHES: dict[str, dict[str, Any]] = {
    # One-shot by nature: the next call would be fine, but this run must not believe it.
    "an empty users list": {"kind": FaultKind.EMPTY_USERS},
    "an HTML login page instead of JSON": {"kind": FaultKind.LOGIN_REDIRECT, "path": "/users$"},
    "a truncated users list on every attempt": {"kind": FaultKind.TRUNCATE, "path": "/users$"},
    "a truncated sites page on every attempt": {"kind": FaultKind.TRUNCATE, "path": "/sites$"},
    "a dropped connection on every attempt": {"kind": FaultKind.DROP, "path": "/users$"},
}


def _changed_corp(corp: SimCorp, repo: Repository) -> str:
    """Import once, then change the corp so a successful import would write something."""
    endpoint = corp.register(repo)
    corp.run(repo, opts=options(mode="full")).ok()
    state = corp.state
    state.invite_user("glitch-newcomer@example.com", "user", [next(iter(state.sites))])
    state.remove_user(next(u.email for u in state.users.values() if u.role == "observer"))
    state.add_site("glitch.example.com")
    return endpoint


def _assert_failed_and_untouched(
    repo: Repository, endpoint: str, before: dict[str, Any], error: Exception | None
) -> None:
    assert isinstance(error, SigsciIgaError)
    assert full_dump(repo, endpoint) == before
    last = repo.runs.list(endpoint)[0]
    assert last.status == "failed"
    assert last.reason
    assert last.applied_version is None


@pytest.mark.parametrize("glitch", list(GLITCHES))
def test_a_glitch_in_a_full_import_fails_the_run_and_changes_nothing(
    repo: Repository, corp: SimCorp, glitch: str
) -> None:
    endpoint = _changed_corp(corp, repo)
    before = full_dump(repo, endpoint)
    corp.add_fault(**GLITCHES[glitch])

    outcome = corp.run(repo, opts=options(mode="full"))

    _assert_failed_and_untouched(repo, endpoint, before, outcome.error)
    corp.runtime.faults.clear()
    corp.run(repo, opts=options(mode="full")).ok()
    assert_matches_sim(repo, endpoint, corp)


def test_an_empty_users_list_is_refused_without_a_retry(
    sqlite_repo: Repository, corp: SimCorp
) -> None:
    endpoint = _changed_corp(corp, sqlite_repo)
    corp.add_fault(kind=FaultKind.EMPTY_USERS)

    outcome = corp.run(sqlite_repo, opts=options(mode="full"))

    assert outcome.error is not None
    assert "empty" in str(outcome.error)
    assert "empty" in (sqlite_repo.runs.list(endpoint)[0].reason or "")


@pytest.mark.parametrize("read_attempts", [1, 5])
def test_a_server_error_on_the_second_page_of_sites_fails_the_run_and_changes_nothing(
    repo: Repository, corp: SimCorp, read_attempts: int
) -> None:
    corp.site_page_size = 3
    endpoint = _changed_corp(corp, repo)
    before = full_dump(repo, endpoint)
    # Persistent once it starts, so every retry of page two fails as well.
    rule = FaultRule(kind=FaultKind.ERROR_500, path="/sites$")

    with fault_after_first_sites_page(corp, rule):
        outcome = corp.run(repo, opts=options(mode="full"), read_attempts=read_attempts)

    _assert_failed_and_untouched(repo, endpoint, before, outcome.error)
    assert "500" in str(outcome.error)
    # The sites are read before the users (the users' memberships are screened against them
    # as they stream in), so a failed site read costs no users list at all.
    assert outcome.sim_calls == {"GET /corps/{corp}/sites": 1 + read_attempts}


def test_a_server_error_while_re_reading_a_user_fails_an_incremental_run_and_changes_nothing(
    repo: Repository, corp: SimCorp
) -> None:
    endpoint = _changed_corp(corp, repo)
    corp.run(repo, opts=options(mode="full")).ok()
    changed = next(u for u in corp.state.users.values() if u.role == "user")
    corp.state.change_role(changed.email, "admin")
    before = full_dump(repo, endpoint)
    corp.add_fault(kind=FaultKind.ERROR_500, path="/users/[^/]+$")

    outcome = corp.run(repo, opts=options(mode="incremental"))

    _assert_failed_and_untouched(repo, endpoint, before, outcome.error)
    assert repo.runs.list(endpoint)[0].mode == "incremental"
