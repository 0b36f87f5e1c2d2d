"""Thresholds hold a run that removes too much; approval applies exactly the held diff; dry runs."""

from __future__ import annotations

import pytest
from import_harness import SimCorp, assert_matches_sim, full_dump, options, state_of

from sigsci_iga.domain.diff import apply_to_view
from sigsci_iga.domain.thresholds import Thresholds
from sigsci_iga.importer.run import ImportOptions
from sigsci_iga.sim import DEMO_EMAIL
from sigsci_iga.store import Repository, RepositoryChangedError, RunStateError

DEFAULTS = ImportOptions(mode="full")  # the shipped thresholds: 10 items or 10 %


def _remove_users(corp: SimCorp, how_many: int) -> list[str]:
    victims = [u.email for u in corp.state.users.values() if u.role in ("user", "observer")]
    victims = sorted(victims)[:how_many]
    for email in victims:
        corp.state.remove_user(email)
    return victims


def test_removing_more_than_ten_accounts_holds_the_run_and_applies_nothing(
    repo: Repository, corp: SimCorp
) -> None:
    endpoint = corp.register(repo)
    corp.run(repo, opts=DEFAULTS).ok()
    before = full_dump(repo, endpoint)
    _remove_users(corp, 11)

    result = corp.run(repo, opts=DEFAULTS).ok()

    assert result.run.status == "held"
    assert result.verdict.held
    assert "accounts to suspend: 11 > 10" in result.verdict.reasons
    assert "accounts to suspend: 11 > 10" in (result.run.reason or "")
    assert result.run.has_diff
    assert full_dump(repo, endpoint) == before


def test_removing_a_few_accounts_stays_under_the_thresholds_and_applies(
    repo: Repository, corp: SimCorp
) -> None:
    endpoint = corp.register(repo)
    corp.run(repo, opts=DEFAULTS).ok()
    # One user with a single site: 1 of 37 accounts, 1 site link and 1 role link of ~140 links.
    single = next(
        u.email for u in corp.state.users.values() if u.role == "user" and len(u.sites) == 1
    )
    corp.state.remove_user(single)

    result = corp.run(repo, opts=DEFAULTS).ok()

    assert (result.run.status, result.verdict.reasons) == ("succeeded", [])
    assert_matches_sim(repo, endpoint, corp)


def test_approving_a_held_run_applies_exactly_the_held_diff(
    repo: Repository, corp: SimCorp
) -> None:
    endpoint = corp.register(repo)
    corp.run(repo, opts=DEFAULTS).ok()
    victims = _remove_users(corp, 11)
    view_before = repo.runs.load_view(endpoint)
    held = corp.run(repo, opts=DEFAULTS).ok()
    assert repo.runs.diff(held.run.id) == held.diff

    approved = repo.runs.approve(held.run.id)

    assert approved.status == "approved"
    assert approved.applied_version == view_before.version + 1
    after = repo.runs.load_view(endpoint)
    assert after == apply_to_view(view_before, held.diff)
    assert {a.email for a in repo.inventory.accounts(endpoint, status="suspended")} == set(victims)
    assert_matches_sim(repo, endpoint, corp)
    with pytest.raises(RunStateError):
        repo.runs.approve(held.run.id)


def test_approving_after_another_import_changed_the_repository_is_refused(
    repo: Repository, corp: SimCorp
) -> None:
    endpoint = corp.register(repo)
    corp.run(repo, opts=DEFAULTS).ok()
    _remove_users(corp, 11)
    held = corp.run(repo, opts=DEFAULTS).ok()
    corp.state.add_user("meanwhile@example.com", "user", [next(iter(corp.state.sites))])
    # A later run the operator let through with looser thresholds moves the repository on.
    corp.run(repo, opts=options(mode="full")).ok()
    moved_on = full_dump(repo, endpoint)

    with pytest.raises(RepositoryChangedError):
        repo.runs.approve(held.run.id)

    assert repo.runs.get(held.run.id).status == "held"
    assert full_dump(repo, endpoint) == moved_on


def test_a_dry_run_writes_only_its_run_record_and_keeps_its_diff(
    repo: Repository, corp: SimCorp
) -> None:
    endpoint = corp.register(repo)
    corp.run(repo, opts=options(mode="full")).ok()
    corp.state.invite_user("dry@example.com", "admin", [next(iter(corp.state.sites))])
    _remove_users(corp, 11)
    before = full_dump(repo, endpoint)
    runs_before = repo.runs.list(endpoint)

    result = corp.run(repo, opts=ImportOptions(mode="full", dry_run=True)).ok()

    assert full_dump(repo, endpoint) == before
    runs = repo.runs.list(endpoint)
    assert runs[1:] == runs_before
    run = runs[0]
    assert (run.dry_run, run.status, run.reason) == (True, "succeeded", "dry run: nothing applied")
    assert run.counts is not None
    assert run.counts["accounts"] == {"added": 1, "changed": 0, "suspended": 11, "reactivated": 0}
    # The dry run reports it would be held, without holding anything.
    assert run.counts["held"] is True
    assert result.verdict.held
    # Its diff is kept, for its plan to be shown again, and never applied.
    assert run.has_diff
    stored = repo.runs.diff(run.id)
    assert stored is not None
    assert len(stored.accounts_suspended) == 11


def test_an_incremental_run_is_held_by_the_same_thresholds(
    sqlite_repo: Repository, corp: SimCorp
) -> None:
    endpoint = corp.register(sqlite_repo)
    corp.run(sqlite_repo, opts=DEFAULTS).ok()
    _remove_users(corp, 11)
    before = state_of(sqlite_repo, endpoint)

    result = corp.run(sqlite_repo, opts=ImportOptions(mode="incremental")).ok()

    assert (result.mode, result.run.status) == ("incremental", "held")
    assert state_of(sqlite_repo, endpoint) == before
    sqlite_repo.runs.approve(result.run.id)
    assert_matches_sim(sqlite_repo, endpoint, corp)


def test_thresholds_can_be_loosened_to_let_a_large_removal_through(
    sqlite_repo: Repository, corp: SimCorp
) -> None:
    endpoint = corp.register(sqlite_repo)
    corp.run(sqlite_repo, opts=DEFAULTS).ok()
    _remove_users(corp, 11)

    result = corp.run(
        sqlite_repo, opts=ImportOptions(mode="full", thresholds=options().thresholds)
    ).ok()

    assert result.run.status == "succeeded"
    assert Thresholds() != options().thresholds
    assert_matches_sim(sqlite_repo, endpoint, corp)


def test_a_token_owner_demoted_to_admin_sees_a_partial_corp_and_the_run_is_held(
    sqlite_repo: Repository, corp: SimCorp
) -> None:
    endpoint = corp.register(sqlite_repo)
    corp.run(sqlite_repo, opts=DEFAULTS).ok()
    before = full_dump(sqlite_repo, endpoint)
    corp.state.change_role(DEMO_EMAIL, "admin")  # an admin with no sites sees only the owners

    result = corp.run(sqlite_repo, opts=DEFAULTS).ok()

    assert result.run.status == "held"
    assert any(r.startswith("accounts to suspend") for r in result.verdict.reasons)
    assert full_dump(sqlite_repo, endpoint) == before
