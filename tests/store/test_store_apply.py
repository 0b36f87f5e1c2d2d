"""Applying diffs: bulk writes, history, suspension, inactivation, reactivation."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from sigsci_iga.domain import compute_diff
from sigsci_iga.store import Repository, RepositoryChangedError, open_repository
from sigsci_iga.store import apply as apply_module
from sigsci_iga.store.tables import account_entitlements

from .helpers import CREATED, account, add_endpoint, corp, import_full

ALICE = account("alice@example.com", "www", "api", role="admin", extra={"api_user": False})
BOB = account("bob@example.com", "www")


def test_a_full_import_stores_accounts_sites_roles_and_links(repo: Repository) -> None:
    add_endpoint(repo)

    run = import_full(repo, corp(ALICE, BOB))

    assert run.status == "succeeded"
    assert run.counts is not None
    assert run.counts["accounts"]["added"] == 2
    detail = repo.inventory.account("prod", "ALICE@example.com")
    assert detail.to_json() | {"created": None} == {
        "endpoint": "prod",
        "email": "alice@example.com",
        "name": "Alice",
        "role": "admin",
        "status": "active",
        "mfa_enabled": False,
        "created": None,
        "sites": ["api", "www"],
        "identity": None,
        "extra": {"api_user": False},
    }
    assert detail.created == CREATED
    assert [
        (e.type, e.value, e.status, e.holders) for e in repo.inventory.entitlements("prod")
    ] == [
        ("CorpRole", "admin", "active", 1),
        ("CorpRole", "user", "active", 1),
        ("Site", "api", "active", 1),
        ("Site", "www", "active", 2),
    ]


def test_the_reloaded_view_equals_what_was_imported(repo: Repository) -> None:
    add_endpoint(repo)
    import_full(repo, corp(ALICE, BOB))

    view = repo.runs.load_view("prod")

    assert compute_diff(view, corp(ALICE, BOB)).is_empty
    assert view.version == 1


def test_every_change_is_recorded_in_the_history_with_its_run(repo: Repository) -> None:
    add_endpoint(repo)
    first = import_full(repo, corp(ALICE, BOB))
    second = import_full(
        repo, corp(account("alice@example.com", "www", role="user", extra={"api_user": False}), BOB)
    )

    changes = repo.inventory.history(endpoint="prod", run_id=second.id)

    assert {(h.object_type, h.object_key, h.field, h.old_value, h.new_value) for h in changes} == {
        ("account", "alice@example.com", "role", "admin", "user"),
        ("link", "alice@example.com", "Site", "api", None),
        ("link", "alice@example.com", "CorpRole", "admin", None),
        ("link", "alice@example.com", "CorpRole", None, "user"),
    }
    # A new account's first links are recorded inside its "added" row, not one row per link.
    initial = repo.inventory.history(run_id=first.id, limit=None)
    assert len(initial) == 2 + 4
    added = {h.object_key: h.new_value for h in initial if h.object_type == "account"}
    assert added["alice@example.com"]["links"] == {"CorpRole": ["admin"], "Site": ["api", "www"]}
    assert all(h.changed_at.tzinfo is not None for h in changes)


def test_a_vanished_account_is_suspended_not_deleted_and_loses_its_links(
    repo: Repository,
) -> None:
    add_endpoint(repo)
    import_full(repo, corp(ALICE, BOB))

    import_full(repo, corp(BOB))

    alice = repo.inventory.account("prod", "alice@example.com")
    assert alice.status == "suspended"
    assert alice.sites == []
    assert [a.email for a in repo.inventory.accounts("prod", status="suspended")] == [alice.email]


def test_a_returning_account_is_reactivated_with_its_links(repo: Repository) -> None:
    add_endpoint(repo)
    import_full(repo, corp(ALICE, BOB))
    import_full(repo, corp(BOB))

    run = import_full(repo, corp(ALICE, BOB))

    assert run.counts is not None
    assert run.counts["accounts"]["reactivated"] == 1
    assert repo.inventory.account("prod", "alice@example.com").sites == ["api", "www"]


def test_a_vanished_site_is_inactivated_and_comes_back_when_listed_again(
    repo: Repository,
) -> None:
    add_endpoint(repo)
    import_full(repo, corp(ALICE, BOB))

    import_full(
        repo,
        corp(
            account("alice@example.com", "www", role="admin", extra={"api_user": False}),
            BOB,
            sites=("www",),
        ),
    )
    inactive = repo.inventory.entitlements("prod", type="Site", status="inactive")
    import_full(repo, corp(ALICE, BOB))

    assert [e.value for e in inactive] == ["api"]
    assert repo.inventory.entitlements("prod", type="Site", status="inactive") == []
    assert repo.inventory.account("prod", "alice@example.com").sites == ["api", "www"]


def test_applying_against_a_stale_version_changes_nothing(repo: Repository) -> None:
    add_endpoint(repo)
    import_full(repo, corp(BOB))
    stale = repo.runs.load_view("prod")
    import_full(repo, corp(BOB, ALICE))
    run_id = repo.runs.start("prod")

    with pytest.raises(RepositoryChangedError, match="run the import again"):
        repo.runs.apply(run_id, compute_diff(stale, corp()), base_version=stale.version)

    assert repo.inventory.account("prod", "bob@example.com").status == "active"
    assert repo.runs.get(run_id).status == "running"


def test_a_dry_run_writes_only_the_run_record(repo: Repository) -> None:
    add_endpoint(repo)
    run_id = repo.runs.start("prod", dry_run=True)
    diff = compute_diff(repo.runs.load_view("prod"), corp(ALICE))

    run = repo.runs.finish(run_id, status="succeeded", counts=diff.summary())

    assert run.dry_run
    assert run.counts == diff.summary()
    assert repo.inventory.accounts("prod") == []
    assert repo.inventory.history() == []
    assert repo.runs.load_view("prod").version == 0


def test_two_endpoints_keep_the_same_email_apart(repo: Repository) -> None:
    add_endpoint(repo, "prod")
    add_endpoint(repo, "staging")
    import_full(repo, corp(ALICE, BOB), endpoint="prod")
    import_full(repo, corp(account("alice@example.com", "lab"), sites=("lab",)), endpoint="staging")

    import_full(repo, corp(BOB), endpoint="prod")

    assert repo.inventory.account("prod", "alice@example.com").status == "suspended"
    staging = repo.inventory.account("staging", "alice@example.com")
    assert (staging.status, staging.sites, staging.role) == ("active", ["lab"], "user")
    assert [e.value for e in repo.inventory.entitlements("staging", type="Site")] == ["lab"]
    assert repo.runs.load_view("staging").version == 1
    assert repo.runs.load_view("prod").version == 2


def test_a_failed_run_records_its_reason(repo: Repository) -> None:
    add_endpoint(repo)
    run_id = repo.runs.start("prod", mode="incremental")

    run = repo.runs.finish(run_id, status="failed", reason="GET /corps/x/users: 503: busy")

    assert (run.status, run.mode, run.reason) == (
        "failed",
        "incremental",
        "GET /corps/x/users: 503: busy",
    )
    assert run.finished_at is not None


@pytest.mark.postgres
def test_a_bulk_link_load_on_postgresql_keeps_every_foreign_key(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Any load counts as bulk here, so the drop-copy-validate path runs on a small corp.
    monkeypatch.setattr(apply_module, "_BULK_LINKS", 1)
    repo = open_repository(pg_url)
    try:
        add_endpoint(repo)
        import_full(repo, corp(ALICE, BOB))

        assert repo.inventory.account("prod", "alice@example.com").sites == ["api", "www"]
        with repo.engine.connect() as conn:
            keys = conn.execute(
                sa.text(
                    "SELECT conname FROM pg_constraint "
                    "WHERE conrelid = 'account_entitlements'::regclass AND contype = 'f'"
                )
            ).scalars()
            assert sorted(keys) == sorted(
                str(fk.name) for fk in account_entitlements.foreign_key_constraints
            )
            with pytest.raises(sa.exc.IntegrityError):
                conn.execute(sa.text("INSERT INTO account_entitlements VALUES (999999, 999999)"))
    finally:
        repo.close()


@pytest.mark.postgres
def test_a_failed_bulk_link_load_rolls_the_constraints_back_with_the_data(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(apply_module, "_BULK_LINKS", 1)
    dropped: list[int] = []
    insert = apply_module._insert_tuples

    def fail_while_loading_links(
        conn: sa.Connection, table: sa.Table, *args: object, **kwargs: object
    ) -> None:
        if table is account_entitlements:
            # The keys are dropped at this point; the failure must bring them back.
            dropped.append(
                conn.execute(
                    sa.text(
                        "SELECT count(*) FROM pg_constraint "
                        "WHERE conrelid = 'account_entitlements'::regclass AND contype = 'f'"
                    )
                ).scalar_one()
            )
            raise RuntimeError("disk full")
        insert(conn, table, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(apply_module, "_insert_tuples", fail_while_loading_links)
    repo = open_repository(pg_url)
    try:
        add_endpoint(repo)
        view = repo.runs.load_view("prod")
        run_id = repo.runs.start("prod")
        with pytest.raises(RuntimeError, match="disk full"):
            repo.runs.apply(run_id, compute_diff(view, corp(ALICE, BOB)), base_version=view.version)

        assert dropped == [0]
        assert repo.inventory.accounts("prod") == []
        with repo.engine.connect() as conn:
            count = conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_constraint "
                    "WHERE conrelid = 'account_entitlements'::regclass AND contype = 'f'"
                )
            ).scalar_one()
            links = conn.execute(sa.text("SELECT count(*) FROM account_entitlements")).scalar_one()
        assert count == 2
        assert links == 0
    finally:
        repo.close()
