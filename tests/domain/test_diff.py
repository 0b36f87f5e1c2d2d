"""The pure diff between the repository view and a corp snapshot."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from sigsci_iga.domain import (
    AccountSnapshot,
    CorpSnapshot,
    Diff,
    FieldChange,
    LinkRef,
    RepositoryView,
    SiteSnapshot,
    apply_to_view,
    compute_diff,
    compute_partial_diff,
)
from sigsci_iga.errors import InvalidInputError

CREATED = datetime(2021, 3, 4, 5, 6, 7, tzinfo=UTC)


def alice(**changes: object) -> AccountSnapshot:
    values: dict[str, object] = {
        "email": "alice@example.com",
        "name": "Alice",
        "role": "admin",
        "created": CREATED,
        "sites": frozenset({"www", "api"}),
        "extra": {"api_user": False},
    }
    values.update(changes)
    return AccountSnapshot(**values)  # type: ignore[arg-type]


BOB = AccountSnapshot(email="bob@example.com", name="Bob", role="user", sites=frozenset({"www"}))
SITES = (SiteSnapshot("www", "WWW"), SiteSnapshot("api", "API"))


def view_of(*accounts: AccountSnapshot, sites: tuple[SiteSnapshot, ...] = SITES) -> RepositoryView:
    empty = RepositoryView.empty()
    return apply_to_view(empty, compute_diff(empty, CorpSnapshot(accounts, sites)))


def test_an_empty_repository_gets_every_account_site_role_and_link_added() -> None:
    diff = compute_diff(RepositoryView.empty(), CorpSnapshot((alice(), BOB), SITES))

    assert [a.email for a in diff.accounts_added] == ["alice@example.com", "bob@example.com"]
    assert all(a.sites == frozenset() for a in diff.accounts_added)
    assert {(e.type, e.value) for e in diff.entitlements_added} == {
        ("Site", "www"),
        ("Site", "api"),
        ("CorpRole", "admin"),
        ("CorpRole", "user"),
    }
    assert set(diff.links_added) == {
        LinkRef("alice@example.com", "Site", "api"),
        LinkRef("alice@example.com", "Site", "www"),
        LinkRef("alice@example.com", "CorpRole", "admin"),
        LinkRef("bob@example.com", "Site", "www"),
        LinkRef("bob@example.com", "CorpRole", "user"),
    }
    assert not diff.links_removed


def test_an_unchanged_snapshot_gives_an_empty_diff() -> None:
    view = view_of(alice(), BOB)

    assert compute_diff(view, CorpSnapshot((alice(), BOB), SITES)).is_empty


def test_a_renamed_account_is_a_field_level_change() -> None:
    diff = compute_diff(view_of(alice()), CorpSnapshot((alice(name="Alice B"),), SITES))

    assert len(diff.accounts_changed) == 1
    assert diff.accounts_changed[0].changes == (FieldChange("name", "Alice", "Alice B"),)


def test_the_same_instant_in_another_offset_is_not_a_change() -> None:
    from datetime import timedelta, timezone  # noqa: PLC0415  # only this test needs it

    shifted = CREATED.astimezone(timezone(timedelta(hours=2)))
    diff = compute_diff(view_of(alice()), CorpSnapshot((alice(created=shifted),), SITES))

    assert diff.is_empty


def test_a_role_change_swaps_the_role_link_and_changes_the_role_field() -> None:
    diff = compute_diff(view_of(alice()), CorpSnapshot((alice(role="observer"),), SITES))

    assert diff.accounts_changed[0].changes == (FieldChange("role", "admin", "observer"),)
    assert diff.links_removed == (LinkRef("alice@example.com", "CorpRole", "admin"),)
    assert diff.links_added == (LinkRef("alice@example.com", "CorpRole", "observer"),)
    assert [(e.type, e.value) for e in diff.entitlements_added] == [("CorpRole", "observer")]


def test_an_account_missing_from_a_full_snapshot_is_suspended_and_loses_its_links() -> None:
    diff = compute_diff(view_of(alice(), BOB), CorpSnapshot((BOB,), SITES))

    assert [(c.email, c.changes) for c in diff.accounts_suspended] == [
        ("alice@example.com", (FieldChange("status", "active", "suspended"),))
    ]
    assert {link.email for link in diff.links_removed} == {"alice@example.com"}
    assert len(diff.links_removed) == 3


def test_a_suspended_account_that_returns_is_reactivated_with_its_links() -> None:
    suspended = apply_to_view(
        view_of(alice(), BOB), compute_diff(view_of(alice(), BOB), CorpSnapshot((BOB,), SITES))
    )
    diff = compute_diff(suspended, CorpSnapshot((alice(), BOB), SITES))

    assert [(c.email, c.changes) for c in diff.accounts_reactivated] == [
        ("alice@example.com", (FieldChange("status", "suspended", "active"),))
    ]
    assert not diff.accounts_changed
    assert len(diff.links_added) == 3


def test_an_already_suspended_account_is_not_suspended_again() -> None:
    view = view_of(alice(), BOB)
    suspended = apply_to_view(view, compute_diff(view, CorpSnapshot((BOB,), SITES)))

    assert compute_diff(suspended, CorpSnapshot((BOB,), SITES)).is_empty


def test_a_site_missing_from_a_full_snapshot_is_inactivated_and_its_links_removed() -> None:
    view = view_of(alice(), BOB)
    diff = compute_diff(
        view, CorpSnapshot((alice(sites=frozenset({"www"})), BOB), (SiteSnapshot("www", "WWW"),))
    )

    assert [(e.type, e.value, e.changes) for e in diff.entitlements_inactivated] == [
        ("Site", "api", (FieldChange("status", "active", "inactive"),))
    ]
    assert diff.links_removed == (LinkRef("alice@example.com", "Site", "api"),)


def test_an_inactive_site_that_returns_is_reactivated_with_its_new_display_name() -> None:
    view = view_of(BOB)
    gone = apply_to_view(view, compute_diff(view, CorpSnapshot((BOB,), (SITES[0],))))
    diff = compute_diff(gone, CorpSnapshot((BOB,), (SITES[0], SiteSnapshot("api", "API v2"))))

    assert [(e.value, e.changes) for e in diff.entitlements_reactivated] == [
        (
            "api",
            (
                FieldChange("display_name", "API", "API v2"),
                FieldChange("status", "inactive", "active"),
            ),
        )
    ]


def test_a_site_still_named_by_a_membership_stays_active_even_if_unlisted() -> None:
    diff = compute_diff(view_of(alice()), CorpSnapshot((alice(),), (SITES[0],)))

    assert diff.is_empty


def test_a_membership_of_an_unknown_site_adds_that_site() -> None:
    diff = compute_diff(RepositoryView.empty(), CorpSnapshot((BOB,), ()))

    assert [(e.type, e.value, e.display_name) for e in diff.entitlements_added] == [
        ("CorpRole", "user", "user"),
        ("Site", "www", ""),
    ]


def test_incremental_mode_never_suspends_or_inactivates_what_is_missing() -> None:
    diff = compute_diff(view_of(alice(), BOB), CorpSnapshot((BOB,), ()), mode="incremental")

    assert diff.is_empty
    assert diff.mode == "incremental"


def test_a_partial_diff_suspends_only_accounts_confirmed_deleted() -> None:
    view = view_of(alice(), BOB)
    diff = compute_partial_diff(view, {"bob@example.com": None}, {})

    assert [c.email for c in diff.accounts_suspended] == ["bob@example.com"]
    assert {link.email for link in diff.links_removed} == {"bob@example.com"}
    assert not diff.accounts_added
    assert not diff.accounts_changed


def test_a_partial_diff_removes_a_deleted_sites_links_from_untouched_accounts() -> None:
    diff = compute_partial_diff(view_of(alice(), BOB), {}, {"www": None})

    assert [e.value for e in diff.entitlements_inactivated] == ["www"]
    assert set(diff.links_removed) == {
        LinkRef("alice@example.com", "Site", "www"),
        LinkRef("bob@example.com", "Site", "www"),
    }


def test_a_partial_diff_refuses_an_account_that_holds_a_deleted_site() -> None:
    with pytest.raises(InvalidInputError, match="reported as deleted"):
        compute_partial_diff(view_of(BOB), {"bob@example.com": BOB}, {"www": None})


def test_a_partial_diff_of_an_unknown_deleted_account_does_nothing() -> None:
    assert compute_partial_diff(view_of(BOB), {"ghost@example.com": None}, {}).is_empty


def test_a_diff_survives_a_json_round_trip() -> None:
    view = view_of(alice(), BOB)
    diff = compute_diff(
        view, CorpSnapshot((alice(role="owner", mfa_enabled=True, extra={"x": [1]}),), SITES[:1])
    )

    text = json.dumps(diff.to_json())

    assert Diff.from_json(json.loads(text)) == diff


def test_a_malformed_stored_diff_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="malformed"):
        Diff.from_json({"format": 1, "mode": "full"})
    with pytest.raises(InvalidInputError, match="format"):
        Diff.from_json({"format": 99})


def test_the_summary_counts_each_kind_and_action() -> None:
    renamed = alice(name="A", sites=frozenset({"www"}))
    diff = compute_diff(view_of(alice(), BOB), CorpSnapshot((renamed,), SITES[:1]))

    summary = diff.summary()

    assert summary["accounts"] == {"added": 0, "changed": 1, "suspended": 1, "reactivated": 0}
    assert summary["Site"]["inactivated"] == 1
    assert summary["links"] == {"added": 0, "removed": 3}
    assert "accounts: 0 added, 1 changed, 1 suspended, 0 reactivated" in diff.format_summary()


def test_a_snapshot_listing_an_email_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        CorpSnapshot((BOB, BOB), ())
