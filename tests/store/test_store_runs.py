"""Held runs: approval applies exactly the stored diff, only if the repository is unchanged."""

from __future__ import annotations

import pytest

from sigsci_iga.domain import compute_diff, evaluate_thresholds
from sigsci_iga.store import Repository, RepositoryChangedError, RunRecord, RunStateError

from .helpers import account, add_endpoint, corp, import_full

EVERYONE = tuple(account(f"user{i}@example.com", "www") for i in range(20))


def hold_mass_suspension(repo: Repository) -> RunRecord:
    """Import 20 accounts, then a snapshot with only 5: the suspension of 15 is held."""
    add_endpoint(repo)
    import_full(repo, corp(*EVERYONE))
    run_id = repo.runs.start("prod")
    view = repo.runs.load_view("prod")
    diff = compute_diff(view, corp(*EVERYONE[:5]))
    verdict = evaluate_thresholds(diff, view.counts())
    assert verdict.held
    return repo.runs.hold(run_id, diff=diff, base_version=view.version, reasons=verdict.reasons)


def test_a_held_run_stores_its_diff_and_changes_nothing(repo: Repository) -> None:
    run = hold_mass_suspension(repo)

    assert run.status == "held"
    assert run.has_diff
    assert run.reason is not None
    assert "accounts to suspend: 15 > 10" in run.reason
    assert repo.inventory.accounts("prod", status="suspended") == []
    diff = repo.runs.diff(run.id)
    assert diff is not None
    assert len(diff.accounts_suspended) == 15


def test_approving_a_held_run_on_an_unchanged_repository_applies_its_diff(
    repo: Repository,
) -> None:
    run = hold_mass_suspension(repo)

    approved = repo.runs.approve(run.id)

    assert approved.status == "approved"
    assert approved.applied_version == 2
    assert len(repo.inventory.accounts("prod", status="suspended")) == 15
    assert {h.run_id for h in repo.inventory.history(endpoint="prod", object_type="account")} >= {
        run.id
    }


def test_approving_a_held_run_after_the_repository_changed_is_refused(
    repo: Repository,
) -> None:
    run = hold_mass_suspension(repo)
    import_full(repo, corp(*EVERYONE, account("new@example.com")))

    with pytest.raises(RepositoryChangedError, match="run the import again"):
        repo.runs.approve(run.id)

    assert repo.runs.get(run.id).status == "held"
    assert repo.inventory.accounts("prod", status="suspended") == []


def test_only_held_runs_can_be_approved_or_refused(repo: Repository) -> None:
    add_endpoint(repo)
    run = import_full(repo, corp(*EVERYONE))

    with pytest.raises(RunStateError, match="only held runs"):
        repo.runs.approve(run.id)
    with pytest.raises(RunStateError, match="only held runs"):
        repo.runs.refuse(run.id)


def test_a_refused_run_can_no_longer_be_approved(repo: Repository) -> None:
    run = hold_mass_suspension(repo)

    refused = repo.runs.refuse(run.id, reason="HR feed was truncated")

    assert refused.status == "refused"
    assert refused.reason is not None
    assert refused.reason.endswith("refused: HR feed was truncated")
    with pytest.raises(RunStateError):
        repo.runs.approve(run.id)


def test_runs_are_listed_newest_first_per_endpoint(repo: Repository) -> None:
    held = hold_mass_suspension(repo)
    add_endpoint(repo, "other")
    repo.runs.start("other")

    runs = repo.runs.list("prod")

    assert [r.status for r in runs] == ["held", "succeeded"]
    assert runs[0].id == held.id
    assert len(repo.runs.list()) == 3
    assert runs[0].to_json()["started_at"].endswith("+00:00")
